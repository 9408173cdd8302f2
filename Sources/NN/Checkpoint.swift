import Foundation
import Tensor

/// Why a checkpoint could not be saved or loaded. Messages name the file and the key.
public struct CheckpointError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// Path of the checkpoint file.
    public let file: String
    /// What went wrong, naming the key when one is involved.
    public let problem: String
    /// An error about `file` described by `problem`.
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
        meta[Safetensors.contentChecksumKey] = Safetensors.contentChecksum(of: tensors)
        try Safetensors.write(tensors, metadata: meta, to: url)
    }

    private static func slice(_ s: TensorStorage, _ p: Parameter) -> Tensor {
        Tensor(copying: s, offset: p.offset, shape: p.shape)
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
        do {
            file = try SafetensorsFile(contentsOf: url)
            try file.verifyContentChecksum()                             // a value damaged on disk
        } catch {
            throw CheckpointError(file: url.path, "\(error)")
        }
        let path = url.path
        let (missing, unused) = try store.load(from: file, file: path, prefix: prefix, strict: strict,
                                               otherPrefixes: ["ema.", "optimizer.m.", "optimizer.v.", emaPrefix])
        if let ema {
            try ema.shadow.load(from: file, file: path, prefix: emaPrefix, strict: strict, rejectUnused: false)
            let updates = file.metadata["ema_updates"].map { Int($0) } ?? 0
            guard let updates, updates >= 0 else {
                throw CheckpointError(file: path, "metadata 'ema_updates' is '\(file.metadata["ema_updates"] ?? "")', not a count of updates")
            }
            ema.restore(updates: updates)
        }
        if let optimizer {
            guard let stepString = file.metadata["optimizer_step"] else {
                throw CheckpointError(file: path, "no optimizer state (metadata key 'optimizer_step' missing)")
            }
            guard let step = Int(stepString), step >= 0 else {
                throw CheckpointError(file: path, "metadata 'optimizer_step' is '\(stepString)', not a count of updates")
            }
            // The moments have the store's layout: load them into two stores shaped like it.
            let (m, v) = (ParameterStore(), ParameterStore())
            for p in store.parameters { m.add(p.name, zerosOf: p.shape); v.add(p.name, zerosOf: p.shape) }
            try m.load(from: file, file: path, prefix: "optimizer.m.", rejectUnused: false)
            try v.load(from: file, file: path, prefix: "optimizer.v.", rejectUnused: false)
            optimizer.restore(step: step, m: m.values, v: v.values)
        }
        return LoadReport(metadata: file.metadata, missing: missing, unused: unused)
    }
}
