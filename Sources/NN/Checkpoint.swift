import Foundation
import Tensor

/// Why a checkpoint could not be saved or loaded. Messages name the file and the key.
public struct CheckpointError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public let file: String
    public let problem: String
    public init(file: String, _ problem: String) { self.file = file; self.problem = problem }
    public var description: String { "checkpoint '\(file)': \(problem)" }
    public var errorDescription: String? { description }
}

/// Training checkpoints in safetensors.
///
/// Layout: online weights under their plain names (the reference's state-dict keys, so a
/// checkpoint is also a weights file), EMA weights under `ema.<name>`, AdamW moments under
/// `optimizer.m.<name>` / `optimizer.v.<name>`. `__metadata__` holds `format`, `optimizer_step`,
/// `ema_updates` and whatever the caller adds (model config, step, seed, RNG state).
/// Writes are atomic (temp file, fsync, rename): a crash never leaves a broken checkpoint.
/// Weights that are not finite are refused, so NaN never reaches disk.
public enum Checkpoint {
    /// Format version written to `__metadata__["format"]`.
    public static let formatVersion = "maskdm-swift-1"

    /// Saves parameters and, when given, EMA weights and optimizer state.
    public static func save(to url: URL, store: ParameterStore, ema: ExponentialMovingAverage? = nil,
                            optimizer: AdamW? = nil, metadata: [String: String] = [:]) throws {
        var tensors: [String: Tensor] = [:]
        for p in store.parameters {
            let v = store.value(p)
            guard v.isFinite else { throw CheckpointError(file: url.path, "refusing to save non-finite values in '\(p.name)'") }
            tensors[p.name] = v
        }
        var meta = metadata
        meta["format"] = formatVersion
        if let ema {
            for p in ema.shadow.parameters { tensors["ema." + p.name] = ema.shadow.value(p) }
            meta["ema_updates"] = String(ema.updates)
        }
        if let optimizer {
            for p in store.parameters {
                tensors["optimizer.m." + p.name] = slice(optimizer.m, p)
                tensors["optimizer.v." + p.name] = slice(optimizer.v, p)
            }
            meta["optimizer_step"] = String(optimizer.step)
        }
        try Safetensors.write(tensors, metadata: meta, to: url)
    }

    private static func slice(_ s: TensorStorage, _ p: Parameter) -> Tensor {
        var t = Tensor(uninitialized: p.shape)
        t.mutablePointer().update(from: s.base + p.offset, count: p.count)
        return t
    }

    /// What a load found besides the tensors it loaded.
    public struct LoadReport: Sendable {
        /// The checkpoint's metadata.
        public var metadata: [String: String]
        /// Parameters of the store that the file does not have (lenient mode only).
        public var missing: [String]
        /// Weight keys in the file that the store does not use (lenient mode only).
        public var unused: [String]
    }

    /// Loads weights into `store` (and EMA / optimizer state when given and present).
    ///
    /// - Parameters:
    ///   - prefix: key prefix of the weights in the file (e.g. `"model."` for the reference's
    ///     checkpoints); EMA weights are read from `emaPrefix`.
    ///   - strict: when true (default), a missing key, an unused weight key or a shape mismatch is
    ///     an error naming the key. When false, matching keys load and the rest are reported
    ///     (shape mismatches are still errors).
    @discardableResult
    public static func load(from url: URL, into store: ParameterStore, ema: ExponentialMovingAverage? = nil,
                            optimizer: AdamW? = nil, prefix: String = "", emaPrefix: String = "ema.",
                            strict: Bool = true) throws -> LoadReport {
        let file: SafetensorsFile
        do { file = try SafetensorsFile(contentsOf: url) } catch {
            throw CheckpointError(file: url.path, "\(error)")
        }
        let path = url.path
        func read(_ key: String, _ p: Parameter) throws -> Tensor? {
            guard let info = file.info(key) else { return nil }
            guard info.shape == p.shape.dims else {
                throw CheckpointError(file: path, "key '\(key)' has shape \(info.shape), the model expects \(p.shape.dims)")
            }
            do { return try file.tensor(key) } catch { throw CheckpointError(file: path, "\(error)") }
        }
        var missing: [String] = []
        for p in store.parameters {
            if let t = try read(prefix + p.name, p) { store.setValue(p, t) } else { missing.append(prefix + p.name) }
        }
        let auxiliary = ["ema.", "optimizer.m.", "optimizer.v.", emaPrefix]
        let used = Set(store.parameters.map { prefix + $0.name })
        let unused = file.keys.filter { k in
            k.hasPrefix(prefix) && !used.contains(k) && !auxiliary.contains { !$0.isEmpty && k.hasPrefix($0) && $0 != prefix }
        }
        if strict && !missing.isEmpty {
            throw CheckpointError(file: path, "missing key\(missing.count > 1 ? "s" : "") \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? " and \(missing.count - 5) more" : "")")
        }
        if strict && !unused.isEmpty {
            throw CheckpointError(file: path, "unused key\(unused.count > 1 ? "s" : "") \(unused.prefix(5).joined(separator: ", "))\(unused.count > 5 ? " and \(unused.count - 5) more" : "")")
        }
        if let ema {
            for p in ema.shadow.parameters {
                guard let t = try read(emaPrefix + p.name, p) else {
                    if strict { throw CheckpointError(file: path, "missing key \(emaPrefix + p.name)") }
                    continue
                }
                ema.shadow.setValue(p, t)
            }
            ema.restore(updates: Int(file.metadata["ema_updates"] ?? "") ?? 0)
        }
        if let optimizer {
            guard let stepString = file.metadata["optimizer_step"], let step = Int(stepString) else {
                throw CheckpointError(file: path, "no optimizer state (metadata key 'optimizer_step' missing)")
            }
            var m = Tensor.zeros([store.count]), v = Tensor.zeros([store.count])
            let mp = m.mutablePointer(), vp = v.mutablePointer()
            for p in store.parameters {
                guard let tm = try read("optimizer.m." + p.name, p), let tv = try read("optimizer.v." + p.name, p) else {
                    throw CheckpointError(file: path, "missing key optimizer.m/v.\(p.name)")
                }
                tm.copyScalars(to: mp + p.offset)
                tv.copyScalars(to: vp + p.offset)
            }
            optimizer.restore(step: step, m: m, v: v)
        }
        return LoadReport(metadata: file.metadata, missing: missing, unused: unused)
    }
}
