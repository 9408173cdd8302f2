import Foundation
import Tensor

/// Named tensors a ``ParameterStore`` can load from: a safetensors file, a dictionary (a
/// converted PyTorch state dict, say), or a format of your own.
public protocol TensorSource {
    /// Every key the source holds.
    var tensorKeys: [String] { get }
    /// The shape stored under `key` (without reading its values), or nil when there is no such key.
    func shape(of key: String) -> [Int]?
    /// The tensor under `key`.
    func loadTensor(_ key: String) throws -> Tensor
}

/// A safetensors file is a tensor source (its keys, shapes from the header, values on demand).
extension SafetensorsFile: TensorSource {
    /// The file's tensor keys.
    public var tensorKeys: [String] { keys }
    /// The shape in the header.
    public func shape(of key: String) -> [Int]? { info(key)?.shape }
    /// Reads and converts the tensor.
    public func loadTensor(_ key: String) throws -> Tensor { try tensor(key) }
}

/// A name -> tensor dictionary is a tensor source (a converted PyTorch state dict, say).
extension Dictionary: TensorSource where Key == String, Value == Tensor {
    /// The keys, sorted.
    public var tensorKeys: [String] { keys.sorted() }
    /// The tensor's shape.
    public func shape(of key: String) -> [Int]? { self[key]?.shape.dims }
    /// The tensor.
    public func loadTensor(_ key: String) throws -> Tensor {
        guard let t = self[key] else { throw CheckpointError(file: "(tensors)", "missing key '\(key)'") }
        return t
    }
}

extension TensorSource {
    /// The tensor under `key` if there is one, checked against `shape`; errors name `file` and the key.
    public func tensor(_ key: String, shape: Shape, file: String) throws -> Tensor? {
        guard let found = self.shape(of: key) else { return nil }
        guard found == shape.dims else {
            throw CheckpointError(file: file, "key '\(key)' has shape \(found), the model expects \(shape.dims)")
        }
        do { return try loadTensor(key) } catch let e as CheckpointError { throw e } catch {
            throw CheckpointError(file: file, "key '\(key)': \(error)")
        }
    }
}

extension ParameterStore {
    /// Loads every parameter `p` from `source[prefix + p.name]`: the one strict loader behind
    /// checkpoints, weight files and converted PyTorch states. A tensor holding NaN or infinite
    /// values is refused, naming its key.
    ///
    /// - Parameters:
    ///   - file: names the source in errors.
    ///   - strict: when true, a missing key or (with `rejectUnused`) a key under `prefix` that no
    ///     parameter uses is an error naming it; when false they are returned. A shape mismatch is
    ///     always an error.
    ///   - otherPrefixes: keys with these prefixes belong to something else (EMA weights, optimizer
    ///     moments) and are neither loaded nor unused.
    /// - Returns: the missing keys and the unused keys (empty in strict mode).
    @discardableResult
    public func load(from source: some TensorSource, file: String, prefix: String = "", strict: Bool = true,
                     rejectUnused: Bool = true, otherPrefixes: [String] = []) throws -> (missing: [String], unused: [String]) {
        var missing: [String] = []
        for p in parameters {
            if let t = try source.tensor(prefix + p.name, shape: p.shape, file: file) {
                // Training and saving never produce them: a NaN or infinity is a damaged file, and
                // would otherwise come out as black samples or a NaN loss much later.
                guard t.isFinite else {
                    throw CheckpointError(file: file, "key '\(prefix + p.name)' holds NaN or infinite values (a damaged file?)")
                }
                setValue(p, t)
            } else {
                missing.append(prefix + p.name)
            }
        }
        let used = Set(parameters.map { prefix + $0.name })
        let unused = rejectUnused
            ? source.tensorKeys.filter { k in
                k.hasPrefix(prefix) && !used.contains(k) && !otherPrefixes.contains { !$0.isEmpty && $0 != prefix && k.hasPrefix($0) }
            }.sorted()
            : []
        if strict, let first = missing.first {
            throw CheckpointError(file: file, "missing key '\(first)'" + Self.more(missing))
        }
        if strict, let first = unused.first {
            throw CheckpointError(file: file, "unused key '\(first)'" + Self.more(unused) + " (a network of another config?)")
        }
        return (missing, unused)
    }

    private static func more(_ keys: [String]) -> String {
        keys.count < 2 ? "" : " and \(keys.count - 1) more (" + keys.dropFirst().prefix(4).map { "'\($0)'" }.joined(separator: ", ")
            + (keys.count > 5 ? ", ..." : "") + ")"
    }
}
