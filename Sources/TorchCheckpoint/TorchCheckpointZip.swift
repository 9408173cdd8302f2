import Tensor

/// A read-only view of `count` bytes at `base` with little-endian readers.
///
/// Callers check ranges with ``contains(_:_:)`` before reading; the readers themselves only
/// assert, so a missed check is a programmer error, not an out-of-bounds read in release builds
/// of correct code.
struct TorchByteView {
    let base: UnsafeRawPointer
    let count: Int

    /// True when `length` bytes from `offset` lie inside the view (no overflow possible).
    func contains(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= count && length <= count - offset
    }

    func u8(_ offset: Int) -> UInt8 {
        assert(contains(offset, 1))
        return base.load(fromByteOffset: offset, as: UInt8.self)
    }

    func u16(_ offset: Int) -> UInt16 {
        assert(contains(offset, 2))
        return UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    func u32(_ offset: Int) -> UInt32 {
        assert(contains(offset, 4))
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    func u64(_ offset: Int) -> UInt64 {
        assert(contains(offset, 8))
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

/// The central directory of a zip archive (the container of `torch.save` and `torch.jit.save`
/// files), with ZIP64 records. Entry data is located through each entry's local header.
///
/// Only what PyTorch writes is read: a single-disk archive whose entries are STORED (method 0);
/// compressed or encrypted entries are listed but reading them throws. An entry's data is checked
/// against the CRC-32 its central record holds when it is read (an archive written with
/// `torch.serialization.set_crc32_options(False)` records 0, and is not checked).
struct TorchZipArchive {
    /// One central-directory record.
    struct Entry {
        let name: String
        let flags: UInt16
        let method: UInt16
        let compressedSize: Int
        let uncompressedSize: Int
        let localHeaderOffset: Int
        /// The CRC-32 of the data (0: not recorded).
        let crc32: UInt32
    }

    /// Entries in central-directory order.
    let entries: [Entry]
    private let index: [String: Int]
    private let file: String
    /// Whether ``dataRange(of:in:)`` checks the recorded CRC-32s.
    private let verifyingChecksums: Bool

    private static let eocdSignature: UInt32 = 0x0605_4b50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4b50
    private static let zip64EOCDSignature: UInt32 = 0x0606_4b50
    private static let centralSignature: UInt32 = 0x0201_4b50
    private static let localSignature: UInt32 = 0x0403_4b50

    /// Parses the end-of-central-directory record (and its ZIP64 form) and the central directory.
    init(_ bytes: TorchByteView, file: String, verifyingChecksums: Bool = true) throws {
        self.file = file
        self.verifyingChecksums = verifyingChecksums
        func fail(_ problem: String) -> TorchCheckpointError { TorchCheckpointError(file: file, problem) }

        guard bytes.count > 0 else { throw fail("file is empty (0 bytes), not a zip archive") }
        if bytes.count >= 2 && bytes.u8(0) == 0x80 && bytes.u8(1) <= 5 {
            throw fail("this is a bare pickle (the legacy torch.save format from before PyTorch 1.6, "
                       + "or _use_new_zipfile_serialization=False), not a zip archive; re-save it with torch.save")
        }
        if bytes.count >= 9, bytes.u8(8) == UInt8(ascii: "{"), bytes.u64(0) < UInt64(bytes.count) {
            throw fail("this is a safetensors file (a project checkpoint?), not a PyTorch zip archive")
        }
        if bytes.count >= 4, bytes.u32(0) == 0x474E_5089 { throw fail("this is a PNG image, not a PyTorch checkpoint") }
        guard let eocd = Self.findEOCD(bytes) else {
            throw fail("not a zip archive: no end-of-central-directory record in the last "
                       + "\(min(bytes.count, 22 + 0xFFFF)) bytes (file is \(bytes.count) bytes; truncated?)")
        }
        var entryCount = Int(bytes.u16(eocd + 10))
        var directorySize = Int(bytes.u32(eocd + 12))
        var directoryOffset = Int(bytes.u32(eocd + 16))
        guard bytes.u16(eocd + 4) == 0 && bytes.u16(eocd + 6) == 0 else {
            throw fail("multi-disk (split) zip archives are not supported")
        }

        // ZIP64: a 20-byte locator right before the EOCD points to the ZIP64 EOCD record.
        let locator = eocd - 20
        if bytes.contains(locator, 20) && bytes.u32(locator) == Self.zip64LocatorSignature {
            let recordOffset64 = bytes.u64(locator + 8)
            guard recordOffset64 <= UInt64(Int.max), bytes.contains(Int(recordOffset64), 56),
                  Int(recordOffset64) + 56 <= locator else {
                throw fail("ZIP64 end-of-central-directory offset \(recordOffset64) is outside the file "
                           + "(\(bytes.count) bytes)")
            }
            let record = Int(recordOffset64)
            guard bytes.u32(record) == Self.zip64EOCDSignature else {
                throw fail("ZIP64 end-of-central-directory record at offset \(record) has a bad signature")
            }
            let count64 = bytes.u64(record + 32)
            let size64 = bytes.u64(record + 40)
            let offset64 = bytes.u64(record + 48)
            guard count64 <= UInt64(bytes.count), size64 <= UInt64(bytes.count), offset64 <= UInt64(bytes.count) else {
                throw fail("ZIP64 end-of-central-directory record claims \(count64) entries, directory size "
                           + "\(size64) at offset \(offset64): past the end of the file (\(bytes.count) bytes)")
            }
            entryCount = Int(count64)
            directorySize = Int(size64)
            directoryOffset = Int(offset64)
        }

        guard bytes.contains(directoryOffset, directorySize), directoryOffset + directorySize <= eocd else {
            throw fail("central directory (offset \(directoryOffset), \(directorySize) bytes) is outside the "
                       + "file (\(bytes.count) bytes, end record at \(eocd)); truncated or not a zip archive")
        }
        guard entryCount <= directorySize / 46 else {
            throw fail("central directory of \(directorySize) bytes cannot hold \(entryCount) entries")
        }

        var entries: [Entry] = []
        entries.reserveCapacity(entryCount)
        var index: [String: Int] = [:]
        var p = directoryOffset
        let end = directoryOffset + directorySize
        for i in 0..<entryCount {
            let entry = try Self.parseCentralEntry(bytes, at: &p, end: end, number: i, file: file)
            if index[entry.name] == nil { index[entry.name] = entries.count }
            entries.append(entry)
        }
        self.entries = entries
        self.index = index
    }

    /// True when the archive has an entry called `name`.
    func contains(_ name: String) -> Bool { index[name] != nil }

    /// The byte range of the stored data of entry `name`, checked against the file, its local
    /// header and (unless the archive was opened without) its recorded CRC-32; throws for a missing, compressed, encrypted or damaged entry.
    func dataRange(of name: String, in bytes: TorchByteView) throws -> Range<Int> {
        func fail(_ problem: String) -> TorchCheckpointError {
            TorchCheckpointError(file: file, entry: name, problem)
        }
        guard let i = index[name] else { throw fail("no such entry in the zip archive") }
        let e = entries[i]
        guard e.flags & 1 == 0 else { throw fail("entry is encrypted; encrypted zip entries are not supported") }
        guard e.method == 0 else {
            let kind = e.method == 8 ? "DEFLATE-compressed" : "compressed (method \(e.method))"
            throw fail("compressed entry not supported: the entry is \(kind), only STORED entries "
                       + "(as torch.save writes tensors and pickles) can be read")
        }
        guard e.compressedSize == e.uncompressedSize else {
            throw fail("STORED entry has compressed size \(e.compressedSize) but uncompressed size \(e.uncompressedSize)")
        }
        let h = e.localHeaderOffset
        guard bytes.contains(h, 30) else {
            throw fail("local header offset \(h) is past the end of the file (\(bytes.count) bytes)")
        }
        guard bytes.u32(h) == Self.localSignature else {
            throw fail("local header at offset \(h) has a bad signature")
        }
        let nameLength = Int(bytes.u16(h + 26))
        let extraLength = Int(bytes.u16(h + 28))
        let start = h + 30 + nameLength + extraLength
        guard bytes.contains(start, e.compressedSize) else {
            throw fail("data (\(e.compressedSize) bytes at offset \(start)) runs past the end of the file "
                       + "(\(bytes.count) bytes); truncated?")
        }
        if verifyingChecksums && e.crc32 != 0 {
            let actual = CRC32.update(0, UnsafeRawBufferPointer(start: bytes.base + start, count: e.compressedSize))
            guard actual == e.crc32 else {
                throw fail("data is damaged: its CRC-32 is \(CRC32.hex(actual)), the archive records \(CRC32.hex(e.crc32)) "
                           + "(\(e.compressedSize) bytes at offset \(start)); the file was changed or corrupted after it "
                           + "was written, fetch or copy it again")
            }
        }
        return start..<(start + e.compressedSize)
    }

    /// The offset of the end-of-central-directory record: the last signature that leaves room for
    /// the record and its comment, searched within the last 22 + 65535 bytes.
    private static func findEOCD(_ bytes: TorchByteView) -> Int? {
        guard bytes.count >= 22 else { return nil }
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        var p = bytes.count - 22
        while p >= lowest {
            if bytes.u32(p) == eocdSignature && p + 22 + Int(bytes.u16(p + 20)) <= bytes.count {
                return p
            }
            p -= 1
        }
        return nil
    }

    private static func parseCentralEntry(
        _ bytes: TorchByteView, at p: inout Int, end: Int, number: Int, file: String
    ) throws -> Entry {
        func fail(_ problem: String) -> TorchCheckpointError { TorchCheckpointError(file: file, problem) }
        guard p + 46 <= end else {
            throw fail("central directory entry \(number) runs past the end of the directory")
        }
        guard bytes.u32(p) == centralSignature else {
            throw fail("central directory entry \(number) at offset \(p) has a bad signature")
        }
        let flags = bytes.u16(p + 8)
        let method = bytes.u16(p + 10)
        let crc = bytes.u32(p + 16)
        var compressed = UInt64(bytes.u32(p + 20))
        var uncompressed = UInt64(bytes.u32(p + 24))
        let nameLength = Int(bytes.u16(p + 28))
        let extraLength = Int(bytes.u16(p + 30))
        let commentLength = Int(bytes.u16(p + 32))
        var localOffset = UInt64(bytes.u32(p + 42))
        let nameStart = p + 46
        guard nameStart + nameLength + extraLength + commentLength <= end else {
            throw fail("central directory entry \(number): name, extra field and comment run past the directory")
        }
        let name = String(decoding: UnsafeRawBufferPointer(start: bytes.base + nameStart, count: nameLength),
                          as: UTF8.self)

        // ZIP64 extended information (header id 1): the 8-byte values whose 4-byte fields are all ones.
        var q = nameStart + nameLength
        let extraEnd = q + extraLength
        while q + 4 <= extraEnd {
            let id = bytes.u16(q)
            let size = Int(bytes.u16(q + 2))
            let body = q + 4
            guard body + size <= extraEnd else {
                throw TorchCheckpointError(file: file, entry: name, "extra field runs past its entry")
            }
            if id == 1 {
                var r = body
                func next(_ what: String) throws -> UInt64 {
                    guard r + 8 <= body + size else {
                        throw TorchCheckpointError(file: file, entry: name, "ZIP64 extra field lacks the \(what)")
                    }
                    defer { r += 8 }
                    return bytes.u64(r)
                }
                if uncompressed == 0xFFFF_FFFF { uncompressed = try next("uncompressed size") }
                if compressed == 0xFFFF_FFFF { compressed = try next("compressed size") }
                if localOffset == 0xFFFF_FFFF { localOffset = try next("local header offset") }
            }
            q = body + size
        }
        let limit = UInt64(bytes.count)
        guard compressed <= limit, uncompressed <= UInt64(Int.max), localOffset <= limit else {
            throw TorchCheckpointError(file: file, entry: name,
                                       "sizes (\(compressed), \(uncompressed)) or offset \(localOffset) "
                                       + "exceed the file (\(bytes.count) bytes)")
        }
        p = extraEnd + commentLength
        return Entry(name: name, flags: flags, method: method, compressedSize: Int(compressed),
                     uncompressedSize: Int(uncompressed), localHeaderOffset: Int(localOffset), crc32: crc)
    }
}

