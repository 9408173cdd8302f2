import Foundation
import NN
import Tensor
import TorchCheckpoint
import ViTDiffusion

/// Loading network weights from whatever a user points at: a run folder, a project checkpoint
/// (safetensors) or a reference training state (`torch.save` of `{step, model, opt, ema,
/// scaler}` from the reference's `train_step.py`).
///
/// In a reference training state the network's weights are `model.model.<name>` (the diffusion
/// wrapper's state dict, whose `model` is the network); the EMA weights are
/// `ema.ema_model.model.<name>` and ema-pytorch's online copy `ema.online_model.model.<name>`.
public enum WeightLoading {
    /// The checkpoint a path names: `RUN/checkpoint.safetensors` for a run folder, else the path.
    public static func resolve(_ url: URL) throws -> URL {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw PipelineError.missingFile(path: url.path, hint: "expected a run folder, a .safetensors checkpoint or a reference .pt")
        }
        guard isDir.boolValue else { return url }
        let ckpt = url.appendingPathComponent("checkpoint.safetensors")
        guard FileManager.default.fileExists(atPath: ckpt.path) else {
            throw PipelineError.missingFile(path: ckpt.path, hint: "the run folder has no checkpoint yet")
        }
        return ckpt
    }

    /// Whether `url` is a PyTorch file (by extension: `.pt`, `.pth`, `.bin`, `.ckpt`).
    public static func isTorchFile(_ url: URL) -> Bool {
        ["pt", "pth", "bin", "ckpt"].contains(url.pathExtension.lowercased())
    }

    /// Loads the online weights (``loadWeights(from:into:ema:)`` with `ema: false`).
    public static func loadOnline(from url: URL, into model: MaskedUViT) throws {
        try loadWeights(from: url, into: model, ema: false)
    }

    /// Loads online (or, with `ema`, EMA) weights strictly into `model`: every parameter must be
    /// there with its shape, and no other network key may be; errors name the file and the key.
    ///
    /// Weights of another image or patch size (their position embedding has another number of
    /// tokens) are refused first, with ``PipelineError/badCheckpoint(path:problem:)`` saying
    /// which network they fit.
    public static func loadWeights(from url: URL, into model: MaskedUViT, ema: Bool) throws {
        let file = try resolve(url)
        let key = model.positionEmbedding.name
        if isTorchFile(file) {
            let state = try referenceState(file)
            let tensors = try ema ? state.ema() : state.online()
            try checkTokens(tensors[key]?.shape.dims, of: model, file: file.path)
            try assign(tensors, to: model, file: file.path)
        } else {
            let prefix = ema ? "ema." : ""
            try checkTokens((try? SafetensorsFile(contentsOf: file))?.info(prefix + key)?.shape, of: model, file: file.path)
            try Checkpoint.load(from: file, into: model.store, prefix: prefix)
        }
    }

    /// Throws when a position embedding of shape `found` (1, tokens, D) does not fit `model`.
    static func checkTokens(_ found: [Int]?, of model: MaskedUViT, file: String) throws {
        let c = model.config
        guard let found, found.count == 3, found != [1, 1 + c.patchCount, c.embedDim] else { return }
        let patches = found[1] - 1
        throw PipelineError.badCheckpoint(
            path: file,
            problem: "its weights are for \(patches) patches of width \(found[2]) (the position embedding "
                + "'\(model.positionEmbedding.name)' is \(found)), but the network is \(c) with \(c.patchCount) patches of width "
                + "\(c.embedDim): build the network they were trained as (its image size, patch size and width; "
                + "maskdm: --config with the reference YAML, or --model and --size)")
    }

    /// A reference training state, opened.
    public struct ReferenceState {
        /// The archive.
        public let checkpoint: TorchCheckpoint
        /// The training step recorded in it (`step`), if any.
        public var step: Int? { checkpoint.number("step").map { Int($0) } }
        /// The network's online weights (`model.model.*`).
        public func online() throws -> [String: Tensor] { try checkpoint.stateDict(prefix: "model.model") }
        /// The EMA weights (`ema.ema_model.model.*`).
        public func ema() throws -> [String: Tensor] { try checkpoint.stateDict(prefix: "ema.ema_model.model") }
        /// Whether the file has EMA weights.
        public var hasEMA: Bool { checkpoint.keys.contains { $0.hasPrefix("ema.ema_model.model.") } }
    }

    /// Opens a reference training state; a `.pt` without `model.model.*` tensors is refused.
    public static func referenceState(_ url: URL) throws -> ReferenceState {
        let ckpt: TorchCheckpoint
        do { ckpt = try TorchCheckpoint(contentsOf: url) } catch let e as TorchCheckpointError {
            // The reader's error already names the file (and the zip entry and key).
            throw PipelineError.badCheckpoint(path: url.path, problem: (e.entry.map { "entry '\($0)': " } ?? "") + (e.key.map { "key '\($0)': " } ?? "") + e.problem)
        } catch {
            throw PipelineError.badCheckpoint(path: url.path, problem: "\(error)")
        }
        guard ckpt.keys.contains(where: { $0.hasPrefix("model.model.") }) else {
            throw PipelineError.badCheckpoint(path: url.path, problem:
                "not a reference training state (no 'model.model.*' tensors; expected torch.save({step, model, opt, ema, scaler}))")
        }
        return ReferenceState(checkpoint: ckpt)
    }

    /// Copies `tensors` (network keys) into `model`, strictly.
    public static func assign(_ tensors: [String: Tensor], to model: MaskedUViT, file: String) throws {
        do { try model.store.load(from: tensors, file: file) } catch let e as CheckpointError {
            throw PipelineError.badCheckpoint(path: e.file, problem: e.problem)
        }
    }
}
