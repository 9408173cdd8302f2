import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writing safetensors files: Float32 tensors as `F32`, integer arrays as `I64`, little-endian.
///
/// The layout follows the official writer: keys sorted, `__metadata__` first (omitted when
/// empty), the JSON header padded with spaces to a multiple of 8 bytes, tensor data contiguous
/// in key order. ``write(_:int64s:metadata:to:)`` is atomic: it writes a temporary file in the
/// destination's directory, fsyncs it, renames it over the destination and fsyncs the directory,
/// so a crash or an error leaves either the old file or the new one, never a broken one.
///
/// ```swift
/// try Safetensors.write(["w": w, "b": b],
///                       int64s: ["timesteps": .init(shape: [4], values: [0, 250, 500, 999])],
///                       metadata: ["step": "1000"],
///                       to: URL(fileURLWithPath: "ckpt.safetensors"))
/// ```
public enum Safetensors {
    /// An integer tensor to write as `I64`: row-major `values` with the given `shape`.
    public struct Int64Tensor: Sendable, Equatable {
        /// The dimensions (empty for rank 0).
        public var shape: [Int]
        /// The elements, row-major; `values.count` equals the product of `shape`.
        public var values: [Int64]

        /// Creates an integer tensor; `values.count` must equal the product of `shape`.
        public init(shape: [Int], values: [Int64]) {
            precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == values.count,
                         "Safetensors.Int64Tensor: \(values.count) values do not fill shape \(shape)")
            self.shape = shape
            self.values = values
        }

        /// A rank-1 integer tensor.
        public init(_ values: [Int64]) { self.init(shape: [values.count], values: values) }
    }

    /// The complete file contents for `tensors` (F32), `int64s` (I64) and `metadata`.
    /// Throws if a key is `__metadata__` or appears in both dictionaries.
    public static func encode(
        _ tensors: [String: Tensor], int64s: [String: Int64Tensor] = [:], metadata: [String: String] = [:]
    ) throws -> [UInt8] {
        let layout = try Layout(tensors, int64s, metadata, file: "<memory>")
        var out = [UInt8]()
        out.reserveCapacity(layout.totalBytes)
        try layout.emit { out.append(contentsOf: $0) }
        return out
    }

    /// Atomically writes `tensors` (F32), `int64s` (I64) and `metadata` to `url`; on failure any
    /// previous file at `url` is left intact and the temporary file is removed.
    public static func write(
        _ tensors: [String: Tensor], int64s: [String: Int64Tensor] = [:], metadata: [String: String] = [:],
        to url: URL
    ) throws {
        let layout = try Layout(tensors, int64s, metadata, file: url.path)
        try writeAtomically(to: url) { emit in try layout.emit(emit) }
    }

    /// Removes the temporary files that interrupted writes of `url` left beside it (a process
    /// killed between creating its temporary file and renaming it, e.g. by `kill -9` or a power
    /// cut, cannot remove it; a checkpoint's is as large as the checkpoint). Only files of this
    /// host whose writing process no longer runs are removed, so a write in progress is never
    /// touched. (A writer in another PID namespace under the same host name, e.g. a second
    /// container sharing the folder, looks dead from here: its rename then fails with an error
    /// and its previous file stays whole.) Returns the names removed. Training runs call it when
    /// they open their folder, the FID feature cache before it writes an entry.
    ///
    /// ```swift
    /// let removed = Safetensors.removeStaleTemporaries(of: URL(fileURLWithPath: "run/checkpoint.safetensors"))
    /// ```
    @discardableResult
    public static func removeStaleTemporaries(of url: URL) -> [String] {
        let directory = url.deletingLastPathComponent().path
        let prefix = temporaryPrefix(of: url)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for name in names.sorted() where name.hasPrefix(prefix) {
            // `<host>-<pid>-<random>`, or `<pid>-<random>` from writers before the host was named.
            let parts = name.dropFirst(prefix.count).split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2 || (parts.count == 3 && parts[0] == Substring(localHost)),
                  let pid = Int32(parts[parts.count - 2]), pid > 0, pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            if unlink(directory + "/" + name) == 0 { removed.append(name) }
        }
        return removed
    }

    /// The start of the name of a temporary file that ``write(_:int64s:metadata:to:)`` writes
    /// beside `url`: `.<name>.tmp-`, followed by `<host>-<pid>-<random>`.
    static func temporaryPrefix(of url: URL) -> String { "." + url.lastPathComponent + ".tmp-" }

    /// This host's name with every character but letters, digits and `.` replaced by `_` (so
    /// that `-` separates the fields of a temporary file's name).
    static let localHost: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        let name = gethostname(&buffer, buffer.count - 1) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "localhost"
        let kept = name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == ".") ? $0 : "_" }
        return kept.isEmpty ? "localhost" : String(kept)
    }()

    /// Writes the chunks produced by `produce` to a temporary file beside `url`, fsyncs it,
    /// calls `beforeRename` (a test hook), renames it over `url` and fsyncs the directory.
    static func writeAtomically(
        to url: URL,
        beforeRename: () throws -> Void = {},
        _ produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) throws {
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        func failure(_ what: String) -> SafetensorsError {
            SafetensorsError(file: path, "\(what): \(String(cString: strerror(errno)))")
        }

        var fd: Int32 = -1
        var temporary = ""
        for _ in 0..<8 {        // O_EXCL: retry on the (unlikely) name collision
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
            temporary = directory + "/" + temporaryPrefix(of: url) + "\(localHost)-\(getpid())-" + suffix
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw failure("cannot create a temporary file in \(directory)") }

        var renamed = false
        defer {
            if fd >= 0 { close(fd) }
            if !renamed { unlink(temporary) }
        }
        try produce { chunk in
            guard var p = chunk.baseAddress else { return }
            var left = chunk.count
            while left > 0 {
                let n = writeSome(fd, p, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("cannot write \(temporary)")
                }
                p += n
                left -= n
            }
        }
        guard fsync(fd) == 0 else { throw failure("cannot fsync \(temporary)") }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { throw failure("cannot close \(temporary)") }
        try beforeRename()
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) over it") }
        renamed = true

        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw failure("written, but cannot open directory \(directory) to fsync it") }
        defer { close(dirFD) }
        guard fsync(dirFD) == 0 || errno == EINVAL else {
            throw failure("written, but cannot fsync directory \(directory)")
        }
    }
}

/// `write(2)` under a name that the static `Safetensors.write` does not shadow.
private func writeSome(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, p, count)
}

/// The header and data order of a file being written.
private struct Layout {
    enum Payload {
        case f32(Tensor)
        case i64([Int64])
    }

    let header: [UInt8]
    let payloads: [Payload]
    let totalBytes: Int

    init(_ tensors: [String: Tensor], _ ints: [String: Safetensors.Int64Tensor],
         _ metadata: [String: String], file: String) throws {
        var entries: [(key: String, dtype: String, shape: [Int], payload: Payload, bytes: Int)] = []
        for (key, t) in tensors { entries.append((key, "F32", t.shape.dims, .f32(t), t.count * 4)) }
        for (key, t) in ints {
            guard tensors[key] == nil else {
                throw SafetensorsError(file: file, key: key, "key is both a Float32 and an Int64 tensor")
            }
            entries.append((key, "I64", t.shape, .i64(t.values), t.values.count * 8))
        }
        if entries.contains(where: { $0.key == "__metadata__" }) {
            throw SafetensorsError(file: file, key: "__metadata__", "__metadata__ is reserved, not a tensor name")
        }
        entries.sort { $0.key < $1.key }

        var json = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(Layout.quoted($0)):\(Layout.quoted(metadata[$0] ?? ""))" }
            fields.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for e in entries {
            let shape = e.shape.map(String.init).joined(separator: ",")
            fields.append("\(Layout.quoted(e.key)):{\"dtype\":\"\(e.dtype)\",\"shape\":[\(shape)],"
                          + "\"data_offsets\":[\(offset),\(offset + e.bytes)]}")
            offset += e.bytes
        }
        json += fields.joined(separator: ",") + "}"
        var headerJSON = Array(json.utf8)
        headerJSON.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - headerJSON.count % 8) % 8))

        var header = [UInt8]()
        var n = UInt64(headerJSON.count)
        for _ in 0..<8 { header.append(UInt8(truncatingIfNeeded: n)); n >>= 8 }
        header += headerJSON
        self.header = header
        self.payloads = entries.map(\.payload)
        self.totalBytes = header.count + offset
    }

    /// Calls `sink` with the header and then each tensor's little-endian bytes.
    func emit(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try header.withUnsafeBytes(sink)
        for payload in payloads {
            switch payload {
            case .f32(let t):
                #if _endian(little)
                try t.withUnsafeBufferPointer { try sink(UnsafeRawBufferPointer($0)) }
                #else
                try t.scalars.map { $0.bitPattern.littleEndian }.withUnsafeBytes(sink)
                #endif
            case .i64(let values):
                #if _endian(little)
                try values.withUnsafeBytes(sink)
                #else
                try values.map { $0.littleEndian }.withUnsafeBytes(sink)
                #endif
            }
        }
    }

    /// `s` as a JSON string literal.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
