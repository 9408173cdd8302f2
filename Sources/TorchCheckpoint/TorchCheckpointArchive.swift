import Tensor

/// Reads the parts of a PyTorch zip archive: finds `<archive>/data.pkl`, checks `byteorder`,
/// unpickles `data.pkl` (and `constants.pkl` of a TorchScript archive) with storages resolved to
/// `<archive>/data/<key>` (`<archive>/constants/<key>`), and names the tensors.
struct TorchCheckpointArchive {
    /// Tensor names in order, their views, and what the other names hold.
    var names: TorchCheckpointNames
    /// Tensors of `constants.pkl`, in order (TorchScript only).
    var constants: [TorchTensorRef] = []
    /// True when the archive has `constants.pkl` (written by `torch.jit.save`).
    var isTorchScript = false

    /// The storage types of `torch.save`'s persistent ids that convert to Float32.
    static let storageTypes: [String: SafetensorsDType] = [
        "torch.FloatStorage": .f32, "torch.HalfStorage": .f16, "torch.BFloat16Storage": .bf16,
        "torch.DoubleStorage": .f64, "torch.LongStorage": .i64, "torch.IntStorage": .i32,
        "torch.ShortStorage": .i16, "torch.CharStorage": .i8, "torch.ByteStorage": .u8,
        "torch.BoolStorage": .bool,
    ]

    init(_ bytes: TorchByteView, file: String, verifyingChecksums: Bool = true) throws {
        let zip = try TorchZipArchive(bytes, file: file, verifyingChecksums: verifyingChecksums)
        let dataPickle = try Self.findDataPickle(zip, file: file)
        let directory = String(dataPickle.dropLast("data.pkl".count))     // "archive/" or ""

        let byteorder = directory + "byteorder"
        if zip.contains(byteorder) {
            let range = try zip.dataRange(of: byteorder, in: bytes)
            let text = String(decoding: UnsafeRawBufferPointer(start: bytes.base + range.lowerBound, count: range.count),
                              as: UTF8.self)
            guard text == "little" else {
                throw TorchCheckpointError(file: file, entry: byteorder,
                                           "byte order is '\(text.prefix(20))'; only little-endian checkpoints are supported")
            }
        }

        let pickleSize = try zip.dataRange(of: dataPickle, in: bytes).count
        names = TorchCheckpointNames(file: file, entry: dataPickle, maximumVisits: 10_000 + 4 * pickleSize)
        try Self.unpickle(dataPickle, storageDirectory: directory + "data/", zip: zip, bytes: bytes, file: file) {
            try names.add($0, name: "")
        }

        let constantsPickle = directory + "constants.pkl"
        if zip.contains(constantsPickle) {
            isTorchScript = true
            var found: [TorchTensorRef] = []
            try Self.unpickle(constantsPickle, storageDirectory: directory + "constants/", zip: zip, bytes: bytes,
                              file: file) { root in
                var items: [PickleValue] = []
                switch root {
                case .tuple(let t): items = t.items
                case .list(let l): items = l.items
                default: break
                }
                for (i, item) in items.enumerated() {
                    switch item {
                    case .tensor(let t) where t.storage.dtype != nil: found.append(t)
                    case .invalidTensor(let why):
                        throw TorchCheckpointError(file: file, entry: constantsPickle, key: "constant \(i)", why)
                    default: break
                    }
                }
            }
            constants = found
        }
    }

    /// `<archive>/data.pkl`, where `<archive>` is the directory of the first entry (as PyTorch
    /// reads it); failing that, the only `data.pkl` one level down (or at the top).
    private static func findDataPickle(_ zip: TorchZipArchive, file: String) throws -> String {
        guard let first = zip.entries.first else {
            throw TorchCheckpointError(file: file, "the zip archive has no entries")
        }
        if let slash = first.name.firstIndex(of: "/") {
            let candidate = String(first.name[..<slash]) + "/data.pkl"
            if zip.contains(candidate) { return candidate }
        }
        let candidates = zip.entries.map(\.name).filter { name in
            name == "data.pkl" || (name.hasSuffix("/data.pkl") && name.filter { $0 == "/" }.count == 1)
        }
        guard candidates.count == 1, let only = candidates.first else {
            let listing = zip.entries.prefix(5).map { "'\($0.name)'" }.joined(separator: ", ")
            let problem = candidates.isEmpty
                ? "no '<archive>/data.pkl' entry: not a PyTorch checkpoint (entries: \(listing)"
                    + (zip.entries.count > 5 ? ", ..." : "") + ")"
                : "several data.pkl entries (\(candidates.joined(separator: ", "))): which archive is meant?"
            throw TorchCheckpointError(file: file, problem)
        }
        return only
    }

    /// Unpickles entry `name`, resolving persistent ids to storages in `storageDirectory`.
    private static func unpickle(
        _ name: String, storageDirectory: String, zip: TorchZipArchive, bytes: TorchByteView, file: String,
        _ consume: (PickleValue) throws -> Void
    ) throws {
        let range = try zip.dataRange(of: name, in: bytes)
        var cache: [String: TorchStorageRef] = [:]
        let load: (PickleValue) throws -> PickleValue = { pid in
            let storage = try storageRef(pid, directory: storageDirectory, pickle: name, zip: zip, bytes: bytes,
                                         file: file, cache: &cache)
            return .storage(storage)
        }
        var unpickler = TorchUnpickler(bytes: TorchByteView(base: bytes.base + range.lowerBound, count: range.count),
                                       file: file, entry: name, persistentLoad: load)
        try unpickler.load(consume)
    }

    /// The storage a persistent id `('storage', storage_type, key, location, numel)` names,
    /// checked to exist and to hold `numel` elements.
    private static func storageRef(
        _ pid: PickleValue, directory: String, pickle: String, zip: TorchZipArchive, bytes: TorchByteView,
        file: String, cache: inout [String: TorchStorageRef]
    ) throws -> TorchStorageRef {
        func fail(_ entry: String, _ problem: String) -> TorchCheckpointError {
            TorchCheckpointError(file: file, entry: entry, problem)
        }
        guard case .tuple(let tuple) = pid, case let t = tuple.items, t.count >= 5, case .string("storage") = t[0],
              case .global(let typeName) = t[1], case .int(let count) = t[4], count >= 0 else {
            throw fail(pickle, "persistent id \(pid.summary) is not ('storage', type, key, location, numel)")
        }
        let key: String
        switch t[2] {
        case .string(let s): key = s
        case .int(let i): key = String(i)
        default: throw fail(pickle, "persistent id has storage key \(t[2].summary), not a string")
        }
        if let cached = cache[key] {
            guard cached.typeName == typeName && cached.count == count else {
                throw fail(pickle, "storage '\(key)' is named twice with different types or sizes "
                           + "(\(cached.typeName) x \(cached.count), \(typeName) x \(count))")
            }
            return cached
        }
        let entry = directory + key
        guard zip.contains(entry) else {
            throw fail(pickle, "persistent id refers to storage '\(key)', but the archive has no entry '\(entry)'")
        }
        let range = try zip.dataRange(of: entry, in: bytes)
        let dtype = storageTypes[typeName]
        if let dtype {
            let (needed, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow && needed <= range.count else {
                throw fail(entry, "storage holds \(range.count) bytes, but its persistent id declares \(count) "
                           + "elements of \(typeName) (\(count) x \(dtype.byteSize) bytes)")
            }
        }
        let storage = TorchStorageRef(key: key, entry: entry, typeName: typeName, dtype: dtype, count: count,
                                      dataStart: range.lowerBound)
        cache[key] = storage
        return storage
    }
}
