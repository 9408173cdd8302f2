import CZlib

/// CRC-32 (the zip/zlib polynomial) over bytes, through zlib.
///
/// ```swift
/// let crc = CRC32.update(0, UnsafeRawBufferPointer(start: nil, count: 0))   // 0
/// CRC32.hex(crc)                                                             // "0x00000000"
/// ```
public enum CRC32 {
    /// The CRC-32 of the bytes `crc` covered followed by `bytes` (start with 0).
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return UInt32(truncatingIfNeeded: crc32_z(UInt(crc), base.assumingMemoryBound(to: UInt8.self), bytes.count))
    }

    /// `0x` and eight hex digits.
    public static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}

extension Safetensors {
    /// The metadata key under which ``contentChecksum(of:)`` is recorded (`content_crc32`).
    public static let contentChecksumKey = "content_crc32"

    /// The CRC-32 of the tensors' values as a file stores them: every tensor's little-endian
    /// Float32 bytes, in key order. Checkpoints record it (``contentChecksumKey``), so that a
    /// value damaged on disk is found even when it is still a finite number.
    public static func contentChecksum(of tensors: [String: Tensor]) -> String {
        var crc: UInt32 = 0
        for key in tensors.keys.sorted() {
            tensors[key]!.withUnsafeBufferPointer { crc = CRC32.update(crc, UnsafeRawBufferPointer($0)) }
        }
        return CRC32.hex(crc)
    }
}

extension SafetensorsFile {
    /// Throws ``SafetensorsError`` when the file records a ``Safetensors/contentChecksumKey`` that
    /// its tensors' bytes (in key order) do not match: a value damaged on disk. A file without the
    /// key passes.
    public func verifyContentChecksum() throws {
        guard let recorded = metadata[Safetensors.contentChecksumKey] else { return }
        var crc: UInt32 = 0
        for key in keys { crc = withRawBytes(of: key) { CRC32.update(crc, $0) } }
        guard CRC32.hex(crc) == recorded else {
            throw SafetensorsError(file: name, "its tensors' CRC-32 is \(CRC32.hex(crc)), but it records \(recorded): "
                                   + "the file is damaged (a copy or disk error); use an earlier checkpoint")
        }
    }
}
