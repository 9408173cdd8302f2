import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A validated safetensors file, read memory-mapped (or from bytes in memory).
///
/// The whole header is checked when the file is opened (see ``SafetensorsError`` for what a bad
/// file reports); after that, reading a tensor cannot go out of bounds. The mapping lives as long
/// as this value (and its copies).
///
/// ```swift
/// let file = try SafetensorsFile(contentsOf: URL(fileURLWithPath: "model.safetensors"))
/// print(file.metadata["step"] ?? "-", file.keys)
/// let w = try file.tensor("encoder.blocks.0.attn.qkv.weight")    // any float/int dtype -> Float32
/// let t = try file.int64s("timesteps")                           // I64/I32/... -> [Int64]
/// ```
///
/// A mapped file must not be truncated by another process while it is open (the OS would
/// signal `SIGBUS`); ``Safetensors/write(_:int64s:metadata:to:)`` replaces files by renaming, so
/// it never does that.
public struct SafetensorsFile: Sendable {
    /// Where one tensor lives and what it holds.
    public struct TensorInfo: Sendable, Equatable {
        /// The element type in the file.
        public let dtype: SafetensorsDType
        /// The dimensions (empty for a rank-0 tensor).
        public let shape: [Int]
        /// The byte range in the data section (the header's `data_offsets`).
        public let dataOffsets: Range<Int>

        /// Creates a description of one tensor.
        public init(dtype: SafetensorsDType, shape: [Int], dataOffsets: Range<Int>) {
            self.dtype = dtype
            self.shape = shape
            self.dataOffsets = dataOffsets
        }

        /// Number of elements (1 for rank 0).
        public var count: Int { shape.reduce(1, *) }
    }

    /// The file path, or the name given to ``init(bytes:name:)``; used in error messages.
    public let name: String
    /// The `__metadata__` string map (empty if the file has none).
    public let metadata: [String: String]
    /// Every tensor key, sorted.
    public let keys: [String]
    private let entries: [String: TensorInfo]
    private let bytes: SafetensorsBytes
    private let dataStart: Int

    /// Opens and validates the file at `url`, memory-mapping it read-only.
    public init(contentsOf url: URL) throws {
        let path = url.path
        try self.init(bytes: SafetensorsBytes(mapping: path), name: path)
    }

    /// Validates a safetensors file held in memory; `name` is used in error messages.
    public init(bytes: [UInt8], name: String) throws {
        try self.init(bytes: SafetensorsBytes(copying: bytes), name: name)
    }

    private init(bytes: SafetensorsBytes, name: String) throws {
        let header = try withExtendedLifetime(bytes) {
            try SafetensorsHeader(base: bytes.base, count: bytes.count, file: name)
        }
        self.name = name
        self.metadata = header.metadata
        self.entries = header.entries
        self.keys = header.entries.keys.sorted()
        self.bytes = bytes
        self.dataStart = header.dataStart
    }

    /// The dtype, shape and byte range of `key`, or `nil` if there is no such tensor.
    public func info(_ key: String) -> TensorInfo? { entries[key] }

    /// The tensor `key` converted to Float32 (exactly for F16/BF16/F8 and integers up to 2^24;
    /// F64 and larger integers round to nearest; BOOL reads as 0 or 1).
    public func tensor(_ key: String) throws -> Tensor {
        let info = try require(key)
        var result = Tensor(uninitialized: Shape(info.shape))
        let start = dataStart + info.dataOffsets.lowerBound
        result.withUnsafeMutableBufferPointer { dst in
            withExtendedLifetime(bytes) {
                SafetensorsConvert.floats(from: bytes.base + start, dtype: info.dtype, into: dst)
            }
        }
        return result
    }

    /// The integer tensor `key` (I64, I32, I16, I8, U64, U32, U16, U8 or BOOL) as Int64, row-major.
    /// Throws for float dtypes and for U64 values above `Int64.max`.
    public func int64s(_ key: String) throws -> [Int64] {
        let info = try require(key)
        guard info.dtype.isInteger else {
            throw SafetensorsError(file: name, key: key,
                                   "dtype \(info.dtype.rawValue) is not an integer type; read it with tensor(_:)")
        }
        var result = [Int64](repeating: 0, count: info.count)
        let start = dataStart + info.dataOffsets.lowerBound
        let ok = result.withUnsafeMutableBufferPointer { dst in
            withExtendedLifetime(bytes) {
                SafetensorsConvert.int64s(from: bytes.base + start, dtype: info.dtype, into: dst)
            }
        }
        guard ok else {
            throw SafetensorsError(file: name, key: key, "U64 value is larger than Int64.max")
        }
        return result
    }

    /// The raw little-endian bytes of tensor `key`, as stored.
    public func bytes(_ key: String) throws -> [UInt8] {
        let info = try require(key)
        return withExtendedLifetime(bytes) {
            Array(UnsafeRawBufferPointer(start: bytes.base + dataStart + info.dataOffsets.lowerBound,
                                         count: info.dataOffsets.count))
        }
    }

    /// `body` over tensor `key`'s stored bytes (a key of ``keys``), without copying them.
    func withRawBytes<R>(of key: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let info = entries[key]!
        return withExtendedLifetime(bytes) {
            body(UnsafeRawBufferPointer(start: bytes.base + dataStart + info.dataOffsets.lowerBound, count: info.dataOffsets.count))
        }
    }

    private func require(_ key: String) throws -> TensorInfo {
        guard let info = entries[key] else {
            throw SafetensorsError(file: name, key: key, "no such tensor (the file has \(entries.count))")
        }
        return info
    }
}

/// The read-only bytes behind a ``SafetensorsFile`` or a `TorchCheckpoint`: a private memory mapping or a heap copy.
public final class SafetensorsBytes: @unchecked Sendable {
    // @unchecked Sendable: the bytes are never written after init, and are released only in deinit.
    /// The first byte; valid for `count` bytes while this object is alive.
    public let base: UnsafeRawPointer
    /// Number of bytes.
    public let count: Int
    private let mapped: Bool

    private init(base: UnsafeRawPointer, count: Int, mapped: Bool) {
        self.base = base
        self.count = count
        self.mapped = mapped
    }

    /// Copies `bytes` into an owned buffer.
    public convenience init(copying bytes: [UInt8]) {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { src in
            if let b = src.baseAddress { raw.copyMemory(from: b, byteCount: src.count) }
        }
        self.init(base: UnsafeRawPointer(raw), count: bytes.count, mapped: false)
    }

    /// Maps the regular file at `path` read-only.
    public convenience init(mapping path: String) throws {
        func failure(_ what: String) -> SafetensorsError {
            SafetensorsError(file: path, "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("cannot stat") }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw SafetensorsError(file: path, "not a regular file")
        }
        let size = Int(info.st_size)
        if size == 0 {                                  // mmap rejects empty mappings
            self.init(copying: [])
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw failure("cannot memory-map \(size) bytes")
        }
        self.init(base: UnsafeRawPointer(address), count: size, mapped: true)
    }

    deinit {
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }
}
