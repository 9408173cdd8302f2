import Foundation
import Tensor

/// The tensors of a PyTorch checkpoint: a `torch.save` zip file or a TorchScript archive
/// (`torch.jit.save`), read memory-mapped without Python.
///
/// Keys are dotted names, as `state_dict()` spells them:
/// - a `torch.save`d state dict: its keys (`encoder.norm.weight`);
/// - nested dicts, lists and tuples: their paths, e.g. for `{'model': sd, 'ema': ema.state_dict(),
///   'step': 1000, 'opt': opt.state_dict()}`: `model.encoder.norm.weight`,
///   `ema.ema_model.encoder.norm.weight`, `ema.online_model.…`, `ema.step`, `ema.initted`,
///   `opt.state.0.exp_avg`;
/// - a TorchScript archive: the module tree (`net.layers.conv.weight`); every tensor attribute
///   is listed, so a plain tensor attribute appears too although `state_dict()` leaves it out.
///
/// ```swift
/// let ckpt = try TorchCheckpoint(contentsOf: URL(fileURLWithPath: "ckpt.pt"))
/// print(ckpt.keys.count, ckpt.shape("model.encoder.norm.weight") ?? [])
/// let ema = try ckpt.stateDict(prefix: "ema.ema_model")   // keys without the prefix
/// let step = ckpt.number("step")                          // a Python int in the file
/// ```
///
/// Tensors are stored as storages plus views (offset, sizes, strides); ``tensor(_:)`` converts to
/// a dense row-major Float32 ``Tensor`` (F32, F16, BF16, F64, I64, I32, I16, I8, U8 and BOOL
/// storages), following the strides, so transposed or sliced tensors read as PyTorch shows them.
/// Objects the reader does not know (optimizer settings, an argparse `Namespace`, ...) are kept
/// as descriptions and reported only when asked for (``describe(_:)``, or an error from
/// ``tensor(_:)``). The whole archive structure is checked when the file is opened; a malformed
/// file throws a ``TorchCheckpointError`` naming the file and the entry.
///
/// Only STORED zip entries are read (PyTorch stores tensors and pickles uncompressed; TorchScript
/// code entries are compressed and are never needed). The legacy pre-1.6 format is refused, and a
/// whole pickled `nn.Module` (`torch.save(model)`) is an opaque object: save its `state_dict()`.
/// Tensors in a TorchScript archive's `constants.pkl` are read with ``constant(_:)``.
public struct TorchCheckpoint: Sendable {
    /// Where one tensor lives and what it holds.
    public struct TensorInfo: Sendable, Equatable {
        /// The element type of the storage.
        public let dtype: SafetensorsDType
        /// The dimensions (empty for a rank-0 tensor).
        public let shape: [Int]
        /// The strides in elements (row-major for a contiguous tensor).
        public let strides: [Int]
        /// The index of the first element in the storage.
        public let storageOffset: Int
        /// The zip entry holding the storage (`archive/data/3`).
        public let storageEntry: String

        /// Number of elements (1 for rank 0).
        public var count: Int { shape.reduce(1, *) }

        /// True when the elements are laid out row-major without gaps (dimensions of size 1 ignored).
        public var isContiguous: Bool {
            var expected = 1
            for (n, s) in zip(shape, strides).reversed() where n != 1 {
                if s != expected { return false }
                expected *= n
            }
            return true
        }
    }

    /// The file path, or the name given to ``init(bytes:name:)``; used in error messages.
    public let name: String
    /// Every readable tensor's dotted name, in the order of the file (state-dict order).
    public let keys: [String]
    /// True for a TorchScript archive (`torch.jit.save`; it has a `constants.pkl`).
    public let isTorchScript: Bool
    /// Number of tensors in a TorchScript archive's `constants.pkl` (0 otherwise).
    public var constantCount: Int { constants.count }

    private let tensors: [String: Located]
    private let constants: [Located]
    private let descriptions: [String: String]
    private let numbers: [String: Double]
    private let dataPickle: String
    private let bytes: SafetensorsBytes

    /// A tensor's description and the absolute byte offset of its storage's element 0.
    private struct Located: Sendable {
        let info: TensorInfo
        let dataStart: Int
    }

    /// Opens and checks the checkpoint at `url`, memory-mapping it read-only. With
    /// `verifyingChecksums` (the default) each zip entry read is checked against its recorded
    /// CRC-32, so a damaged file is an error naming the entry rather than wrong values.
    public init(contentsOf url: URL, verifyingChecksums: Bool = true) throws {
        let path = url.path
        let bytes: SafetensorsBytes
        do {
            bytes = try SafetensorsBytes(mapping: path)
        } catch let error as SafetensorsError {
            throw TorchCheckpointError(file: path, error.problem)
        }
        try self.init(bytes: bytes, name: path, verifyingChecksums: verifyingChecksums)
    }

    /// Checks a checkpoint held in memory; `name` is used in error messages, and
    /// `verifyingChecksums` is as in ``init(contentsOf:verifyingChecksums:)``.
    public init(bytes: [UInt8], name: String, verifyingChecksums: Bool = true) throws {
        try self.init(bytes: SafetensorsBytes(copying: bytes), name: name, verifyingChecksums: verifyingChecksums)
    }

    private init(bytes: SafetensorsBytes, name: String, verifyingChecksums: Bool) throws {
        let archive = try withExtendedLifetime(bytes) {
            try TorchCheckpointArchive(TorchByteView(base: bytes.base, count: bytes.count), file: name,
                                       verifyingChecksums: verifyingChecksums)
        }
        func locate(_ t: TorchTensorRef) -> Located? {
            guard let dtype = t.storage.dtype else { return nil }
            return Located(info: TensorInfo(dtype: dtype, shape: t.shape, strides: t.strides,
                                            storageOffset: t.storageOffset, storageEntry: t.storage.entry),
                           dataStart: t.storage.dataStart)
        }
        self.name = name
        self.keys = archive.names.keys
        self.isTorchScript = archive.isTorchScript
        self.tensors = archive.names.tensors.compactMapValues(locate)
        self.constants = archive.constants.compactMap(locate)
        self.descriptions = archive.names.descriptions
        self.numbers = archive.names.numbers
        self.dataPickle = archive.names.entry
        self.bytes = bytes
    }

    /// The dtype, shape and layout of tensor `key`, or nil if there is no such tensor.
    public func info(_ key: String) -> TensorInfo? { tensors[key]?.info }

    /// The shape of tensor `key`, or nil if there is no such tensor.
    public func shape(_ key: String) -> [Int]? { tensors[key]?.info.shape }

    /// The tensor `key` as a dense row-major Float32 tensor (F64 and integers beyond 2^24 round to
    /// nearest; BOOL reads as 0 or 1). Throws, saying what the key holds, when it is not a tensor.
    public func tensor(_ key: String) throws -> Tensor {
        try read(try require(key))
    }

    /// The integer tensor `key` (I64, I32, I16, I8, U8 or BOOL) as Int64 in row-major order.
    public func int64s(_ key: String) throws -> [Int64] {
        let located = try require(key)
        guard located.info.dtype.isInteger else {
            throw TorchCheckpointError(file: name, key: key,
                                       "dtype \(located.info.dtype.rawValue) is not an integer type; read it with tensor(_:)")
        }
        var result = [Int64](repeating: 0, count: located.info.count)
        let dtype = located.info.dtype
        result.withUnsafeMutableBufferPointer { dst in
            withExtendedLifetime(bytes) {
                forEachRun(located) { src, d, n in
                    _ = SafetensorsConvert.int64s(from: src, dtype: dtype,
                                                  into: UnsafeMutableBufferPointer(rebasing: dst[d..<(d + n)]))
                }
            }
        }
        return result
    }

    /// Every tensor whose key starts with `prefix` followed by a dot, keyed by the rest of its key
    /// (`stateDict(prefix: "ema.ema_model")` gives `encoder.norm.weight`, ...); every tensor, with
    /// its full key, when `prefix` is nil or empty. Throws when no key has the prefix.
    public func stateDict(prefix: String? = nil) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        guard let prefix, !prefix.isEmpty else {
            for key in keys { result[key] = try tensor(key) }
            return result
        }
        let dotted = prefix.hasSuffix(".") ? prefix : prefix + "."
        for key in keys where key.hasPrefix(dotted) {
            result[String(key.dropFirst(dotted.count))] = try tensor(key)
        }
        guard !result.isEmpty else {
            let tops = Set(keys.map { $0.split(separator: ".", maxSplits: 1).first.map(String.init) ?? $0 })
            throw TorchCheckpointError(file: name, key: prefix,
                                       "no tensor key starts with '\(dotted)' (top-level names with tensors: "
                                       + tops.sorted().prefix(10).joined(separator: ", ") + ")")
        }
        return result
    }

    /// A Python int, float or bool stored under `key` (e.g. `step`), or nil.
    public func number(_ key: String) -> Double? { numbers[key] }

    /// What `key` holds, in words ("a tensor (F32, shape [3, 4])", "the int 1000",
    /// "an object of class argparse.Namespace", ...), or nil if the checkpoint has no such name.
    public func describe(_ key: String) -> String? {
        if let t = tensors[key] { return "a tensor (\(t.info.dtype.rawValue), shape \(t.info.shape))" }
        return descriptions[key]
    }

    /// Tensor `index` of a TorchScript archive's `constants.pkl` as Float32.
    public func constant(_ index: Int) throws -> Tensor {
        guard constants.indices.contains(index) else {
            throw TorchCheckpointError(file: name, key: "constant \(index)",
                                       "no such constant (the archive has \(constants.count))")
        }
        return try read(constants[index])
    }

    private func require(_ key: String) throws -> Located {
        if let t = tensors[key] { return t }
        let problem: String
        if let what = descriptions[key] {
            let under = keys.contains { $0.hasPrefix(key.isEmpty ? "" : key + ".") }
            problem = "this is \(what), not a tensor"
                + (under ? "; read the tensors under it with stateDict(prefix: \"\(key)\")" : "")
        } else {
            problem = "no such tensor (the checkpoint has \(keys.count) tensors"
                + (keys.isEmpty ? ")" : ", e.g. '\(keys[0])')")
        }
        throw TorchCheckpointError(file: name, entry: dataPickle, key: key, problem)
    }

    private func read(_ located: Located) throws -> Tensor {
        var result = Tensor(uninitialized: Shape(located.info.shape))
        let dtype = located.info.dtype
        result.withUnsafeMutableBufferPointer { dst in
            withExtendedLifetime(bytes) {
                forEachRun(located) { src, d, n in
                    SafetensorsConvert.floats(from: src, dtype: dtype,
                                              into: UnsafeMutableBufferPointer(rebasing: dst[d..<(d + n)]))
                }
            }
        }
        return result
    }

    /// Calls `body(source, destinationIndex, count)` for each run of consecutive storage elements
    /// that fills `count` consecutive row-major output elements. Call inside `withExtendedLifetime(bytes)`.
    private func forEachRun(_ located: Located, _ body: (UnsafeRawPointer, Int, Int) -> Void) {
        let info = located.info
        let total = info.count
        guard total > 0 else { return }
        let elementSize = info.dtype.byteSize
        let base = bytes.base + located.dataStart
        if info.isContiguous {
            body(base + info.storageOffset * elementSize, 0, total)
            return
        }
        // Innermost dimension as one run when its stride is 1; an odometer over the others.
        let rank = info.shape.count
        let innerRun = info.strides[rank - 1] == 1
        let run = innerRun ? info.shape[rank - 1] : 1
        let outerRank = innerRun ? rank - 1 : rank
        var index = [Int](repeating: 0, count: outerRank)
        var source = info.storageOffset
        var d = 0
        while d < total {
            body(base + source * elementSize, d, run)
            d += run
            var axis = outerRank - 1
            while axis >= 0 {
                index[axis] += 1
                source += info.strides[axis]
                if index[axis] < info.shape[axis] { break }
                source -= info.strides[axis] * info.shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
