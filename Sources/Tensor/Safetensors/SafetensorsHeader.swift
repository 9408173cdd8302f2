import Foundation

/// A bad, unreadable or unwritable safetensors file. The message names the file, the tensor key
/// (when there is one) and the problem, e.g.
/// `safetensors 'ckpt.safetensors', tensor 'w': data_offsets [0, 20] span 20 bytes but shape (2, 3) of F32 needs 24`.
public struct SafetensorsError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    /// The file path (or the name given for in-memory bytes).
    public let file: String
    /// The tensor key the problem concerns, if any.
    public let key: String?
    /// What is wrong.
    public let problem: String

    /// Creates an error about `file` (and `key`, if the problem concerns one tensor).
    public init(file: String, key: String? = nil, _ problem: String) {
        self.file = file
        self.key = key
        self.problem = problem
    }

    /// The full message: file, key and problem.
    public var description: String {
        if let key { return "safetensors '\(file)', tensor '\(key)': \(problem)" }
        return "safetensors '\(file)': \(problem)"
    }

    /// Same as ``description``.
    public var errorDescription: String? { description }
}

/// The parsed and validated header of a safetensors file.
struct SafetensorsHeader {
    /// The largest header accepted (the official library's limit).
    static let maximumHeaderLength = 100_000_000

    /// `__metadata__`, empty when absent or `null`.
    var metadata: [String: String]
    /// Every tensor, by key.
    var entries: [String: SafetensorsFile.TensorInfo]
    /// Byte offset of the data section in the file (8 + header length).
    var dataStart: Int

    /// Parses and validates the header of the `count` bytes at `base`; any problem throws.
    ///
    /// Checks, as the official library does: the 8-byte little-endian header length fits in the file
    /// and is at most 100 MB; the header is UTF-8 JSON holding an object; `__metadata__` maps
    /// strings to strings; every other entry has a known `dtype`, a `shape` of non-negative
    /// integers and two integer `data_offsets` whose span is exactly shape x element size; and the
    /// tensors tile the data section exactly (no overlap, no hole, no trailing bytes).
    /// What a file that is not safetensors is, from its first bytes, when it is a common kind.
    static func otherFileKind(base: UnsafeRawPointer, count: Int) -> String? {
        let head = (0..<Swift.min(count, 8)).map { base.load(fromByteOffset: $0, as: UInt8.self) }
        func starts(_ magic: [UInt8]) -> Bool { head.count >= magic.count && Array(head.prefix(magic.count)) == magic }
        if starts([0x89, 0x50, 0x4E, 0x47]) { return "a PNG image" }
        if starts([0xFF, 0xD8, 0xFF]) { return "a JPEG image" }
        if starts([0x50, 0x4B, 0x03, 0x04]) { return "a zip archive (a PyTorch .pt checkpoint?)" }
        if starts([0x80]) && head.count >= 2 && head[1] <= 5 { return "a Python pickle (a legacy PyTorch checkpoint?)" }
        if starts([0x1F, 0x8B]) { return "a gzip file" }
        if !head.isEmpty && head.allSatisfy({ $0 == 9 || $0 == 10 || $0 == 13 || (32..<127).contains($0) }) {
            return "a text file (YAML or JSON?)"
        }
        return nil
    }

    init(base: UnsafeRawPointer, count: Int, file: String) throws {
        func fail(_ key: String?, _ problem: String) -> SafetensorsError {
            SafetensorsError(file: file, key: key, problem)
        }
        guard count >= 8 else {
            throw fail(nil, "file is \(count) bytes, shorter than the 8-byte header length")
        }
        var length: UInt64 = 0
        for i in (0..<8).reversed() { length = length << 8 | UInt64(base.load(fromByteOffset: i, as: UInt8.self)) }
        guard length <= UInt64(Self.maximumHeaderLength) else {
            if let kind = Self.otherFileKind(base: base, count: count) {
                throw fail(nil, "this is \(kind), not a safetensors file (a checkpoint)")
            }
            throw fail(nil, "header length \(length) is absurd (more than \(Self.maximumHeaderLength) bytes)")
        }
        let headerLength = Int(length)
        guard headerLength <= count - 8 else {
            throw fail(nil, "header length \(headerLength) runs past the end of the file (\(count) bytes)")
        }
        dataStart = 8 + headerLength
        let dataLength = count - dataStart
        let headerBytes = UnsafeRawBufferPointer(start: base + 8, count: headerLength)

        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw fail(nil, "header is not valid UTF-8")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes))
        } catch {
            throw fail(nil, "header is not valid JSON (\(Self.reason(error)))")
        }
        guard let object = json as? [String: Any] else {
            throw fail(nil, "header is a JSON \(json is [Any] ? "array" : "value"), not an object")
        }
        let topLevelKeys = Self.countTopLevelKeys(headerBytes)
        guard topLevelKeys == object.count else {
            throw fail(nil, "header has a duplicate key (\(topLevelKeys) keys, \(object.count) distinct)")
        }

        metadata = [:]
        entries = [:]
        for key in object.keys.sorted() {
            let value = object[key] ?? NSNull()
            if key == "__metadata__" {
                metadata = try Self.parseMetadata(value, fail: fail)
            } else {
                entries[key] = try Self.parseEntry(key: key, value, dataLength: dataLength, fail: fail)
            }
        }
        try Self.checkTiling(entries, dataLength: dataLength, fail: fail)
    }

    private static func parseMetadata(
        _ value: Any, fail: (String?, String) -> SafetensorsError
    ) throws -> [String: String] {
        if value is NSNull { return [:] }
        guard let map = value as? [String: Any] else {
            throw fail("__metadata__", "__metadata__ is not a JSON object of strings")
        }
        var result: [String: String] = [:]
        for (k, v) in map {
            guard let s = v as? String else {
                throw fail("__metadata__", "__metadata__ value for '\(k)' is not a string")
            }
            result[k] = s
        }
        return result
    }

    private static func parseEntry(
        key: String, _ value: Any, dataLength: Int, fail: (String?, String) -> SafetensorsError
    ) throws -> SafetensorsFile.TensorInfo {
        guard let entry = value as? [String: Any] else {
            throw fail(key, "entry is not a JSON object")
        }
        guard let dtypeValue = entry["dtype"] else { throw fail(key, "missing dtype") }
        guard let dtypeName = dtypeValue as? String else { throw fail(key, "dtype is not a string") }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw fail(key, "unknown or unsupported dtype '\(dtypeName)'")
        }
        guard let shapeValue = entry["shape"] else { throw fail(key, "missing shape") }
        guard let shapeArray = shapeValue as? [Any] else { throw fail(key, "shape is not a JSON array") }
        var shape: [Int] = []
        for d in shapeArray {
            guard let dim = integer(d) else {
                throw fail(key, "shape \(render(shapeArray)) has a dimension that is not an integer")
            }
            guard dim >= 0 else { throw fail(key, "shape \(render(shapeArray)) has a negative dimension") }
            shape.append(dim)
        }
        guard let offsetsValue = entry["data_offsets"] else { throw fail(key, "missing data_offsets") }
        guard let offsets = offsetsValue as? [Any], offsets.count == 2 else {
            throw fail(key, "data_offsets is not a JSON array of two integers")
        }
        guard let begin = integer(offsets[0]), let end = integer(offsets[1]) else {
            throw fail(key, "data_offsets \(render(offsets)) are not non-negative integers")
        }
        guard begin >= 0, end >= 0 else {
            throw fail(key, "data_offsets \(render(offsets)) are negative")
        }
        guard begin <= end else {
            throw fail(key, "data_offsets begin \(begin) > end \(end)")
        }
        guard end <= dataLength else {
            throw fail(key, "data_offsets [\(begin), \(end)] run past the end of the data section (\(dataLength) bytes)")
        }
        var needed = dtype.byteSize
        for dim in shape {
            let (product, overflow) = needed.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw fail(key, "shape \(shape) is too large (size overflows)") }
            needed = product
        }
        guard needed == end - begin else {
            throw fail(key, "data_offsets [\(begin), \(end)] span \(end - begin) bytes but shape "
                + "\(Shape(shape)) of \(dtype.rawValue) needs \(needed) (size mismatch)")
        }
        return SafetensorsFile.TensorInfo(dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// The tensors, ordered by offset, must cover `0..<dataLength` exactly once.
    private static func checkTiling(
        _ entries: [String: SafetensorsFile.TensorInfo], dataLength: Int,
        fail: (String?, String) -> SafetensorsError
    ) throws {
        let ordered = entries.sorted {
            ($0.value.dataOffsets.lowerBound, $0.value.dataOffsets.upperBound, $0.key)
                < ($1.value.dataOffsets.lowerBound, $1.value.dataOffsets.upperBound, $1.key)
        }
        var covered = 0
        var previous: String?
        for (key, info) in ordered {
            let r = info.dataOffsets
            if r.lowerBound < covered {
                throw fail(key, "data_offsets [\(r.lowerBound), \(r.upperBound)] overlap tensor '\(previous ?? "")'")
            }
            if r.lowerBound > covered {
                throw fail(key, "data_offsets [\(r.lowerBound), \(r.upperBound)] leave a gap (hole) at bytes \(covered)..<\(r.lowerBound)")
            }
            covered = r.upperBound
            previous = key
        }
        guard covered == dataLength else {
            throw fail(nil, "data section is \(dataLength) bytes but the tensors cover only \(covered) (trailing bytes)")
        }
    }

    /// A JSON integer as `Int`; `nil` for floats (even `2.0`), booleans, strings and out-of-range values.
    static func integer(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        // JSONSerialization gives integer literals an integer objCType ('i', 'q', 'Q', ...),
        // literals with '.' or an exponent 'd', and true/false 'c'.
        switch UInt8(bitPattern: number.objCType.pointee) {
        case UInt8(ascii: "i"), UInt8(ascii: "s"), UInt8(ascii: "l"), UInt8(ascii: "q"):
            return Int(exactly: number.int64Value)
        case UInt8(ascii: "I"), UInt8(ascii: "S"), UInt8(ascii: "L"), UInt8(ascii: "Q"):
            return Int(exactly: number.uint64Value)
        default:
            return nil
        }
    }

    /// Counts the keys of the outermost JSON object (to detect duplicates, which
    /// JSONSerialization silently merges). `bytes` must already be valid JSON.
    static func countTopLevelKeys(_ bytes: UnsafeRawBufferPointer) -> Int {
        var depth = 0, keys = 0
        var inString = false, escaped = false
        var expectKey = false           // at depth 1, right after '{' or ','
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                if depth == 1 && expectKey { keys += 1 }
                expectKey = false
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectKey = depth == 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectKey = depth == 1
            default:
                break
            }
        }
        return keys
    }

    private static func render(_ values: [Any]) -> String {
        "[" + values.map { "\($0)" }.joined(separator: ", ") + "]"
    }

    private static func reason(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
    }
}
