import Foundation
import Masking
import NN
import Schedules
import Tensor
import ViTDiffusion

extension MaskedUViTConfig {
    /// The exact number of trainable parameters of the network this config builds (the
    /// reference's `sum(p.numel() for p in model.parameters() if p.requires_grad)`), computed
    /// without allocating it.
    public var trainableParameterCount: Int {
        let d = embedDim, h = mlpHiddenDimensions, n = patchCount
        let blocks = depth / 2 * 2 + 1, outs = depth / 2
        let perBlock = 2 * d + 3 * d * d + (qkvBias ? 2 * d : 0) + d * d + d + 2 * d + d * h + h + h * d + d
        return (1 + n) * d + inChannels * patchSize * patchSize * d + d + blocks * perBlock + outs * (2 * d * d + d)
            + 2 * d + d * patchDimensions + patchDimensions
    }
}

/// What a config or checkpoint builds (`maskdm describe`).
public struct ModelDescription: Sendable, Equatable {
    /// The network.
    public var model: MaskedUViTConfig
    /// The recipe (batch, learning rate, mask, schedule, ...).
    public var recipe: TrainingRecipe
    /// What was described.
    public var source: String
    /// Where the run stands, when a run folder was described.
    public var run: RunProgress? = nil

    /// The description of `model` trained with `recipe`.
    public init(model: MaskedUViTConfig, recipe: TrainingRecipe, source: String) {
        self.model = model; self.recipe = recipe; self.source = source
    }

    /// Describes a reference YAML config (`.yml`/`.yaml`), a project checkpoint or a run folder.
    public init(describing url: URL) throws {
        if ["yml", "yaml"].contains(url.pathExtension.lowercased()) {
            let ref = try ReferenceConfig(contentsOf: url)
            self.init(model: ref.model, recipe: ref.recipe, source: url.path)
        } else {
            var isFolder: ObjCBool = false
            let folder = FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) && isFolder.boolValue
            let checkpoint = url.appendingPathComponent("checkpoint.safetensors")
            let hasCheckpoint = FileManager.default.fileExists(atPath: checkpoint.path)
            let described = folder && hasCheckpoint ? try? DiffusionTrainer.describe(checkpoint: checkpoint) : nil
            if folder, described == nil {
                // A run folder before its first checkpoint, or with one that cannot be read: what
                // its config.json records, with the checkpoint's problem in `run`.
                if let config = try RunConfig.recorded(in: url) {
                    let path = url.appendingPathComponent("config.json").path
                    do { try config.model.validate(); try config.recipe.validate() } catch {
                        throw PipelineError.badConfig(path: path, key: "", problem: "not a config a run could train: \(error)")
                    }
                    self.init(model: config.model, recipe: config.recipe, source: path)
                    run = try RunProgress(folder: url)
                    return
                }
                // A job folder (`maskdm pipeline`, `compare`) holds runs one or two levels down.
                if !hasCheckpoint, let job = JobFolder(url), let first = job.runs.first {
                    throw PipelineError.missingFile(path: url.appendingPathComponent("checkpoint.safetensors").path,
                                                    hint: "this folder holds no run itself but runs in \(job.runNames) "
                                                        + "(\(job.kindDescription)): describe one of those, e.g. \(first.path)")
                }
            }
            let file = try WeightLoading.resolve(url)
            if WeightLoading.isTorchFile(file) {
                throw PipelineError.badCheckpoint(path: file.path, problem: "a PyTorch file records no model config: describe its YAML config, or convert it first")
            }
            let (c, r) = try described ?? DiffusionTrainer.describe(checkpoint: file)
            self.init(model: c, recipe: r, source: file.path)
            if folder { run = try? RunProgress(folder: url) }
        }
    }

    /// Trainable parameters.
    public var parameters: Int { model.trainableParameterCount }

    /// Why the recipe's mask cannot train the network (it does not fit the patch grid or drops
    /// every patch: a training run would refuse it), or nil when it can.
    /// A custom strategy (``MaskSpec/custom(name:)``) is not checked: only its code could.
    public var maskProblem: String? {
        if case .custom = recipe.mask { return nil }
        do {
            try recipe.mask.strategy().validateForTraining(gridHeight: model.gridHeight, gridWidth: model.gridWidth)
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Patch tokens kept per image under the recipe's mask (all without one); nil for a custom
    /// strategy, whose count only its code knows.
    public var visibleTokens: Int? {
        if case .custom = recipe.mask { return nil }
        return ((try? recipe.mask.strategy()).map { $0.visibleCount(gridHeight: model.gridHeight, gridWidth: model.gridWidth) }) ?? model.patchCount
    }

    /// `parameters`, `image_size`, `patch_size`, `tokens`, `mask` {type, name, ratio, block_size,
    /// crop_size}, `batch_size`, `learning_rate`, `schedule` as one JSON object, with `run`
    /// (``RunProgress/json``) for a run folder.
    public var json: String {
        func num(_ x: Double?) -> String { x.map { String($0) } ?? "null" }
        func int(_ x: Int?) -> String { x.map(String.init) ?? "null" }
        let size = model.imageHeight == model.imageWidth ? String(model.imageHeight) : "[\(model.imageHeight), \(model.imageWidth)]"
        let m = recipe.mask
        // Keys in sorted order, as all JSON the tools write.
        return "{\"batch_size\": \(recipe.batchSize), \"image_size\": \(size), "
            + "\"learning_rate\": \(Double("\(recipe.learningRate)") ?? Double(recipe.learningRate)), "
            + "\"mask\": {\"block_size\": \(int(m.blockSize)), \"crop_size\": \(int(m.cropSize)), \"name\": \(oneLineJSON(m.name)), "
            + "\"ratio\": \(num(m.ratio)), \"type\": \"\(m.type)\"}, "
            + "\"parameters\": \(parameters), \"patch_size\": \(model.patchSize), " + (run.map { "\"run\": \($0.json), " } ?? "")
            + "\"schedule\": \"\(recipe.schedule)\", \"tokens\": \(model.patchCount)}"
    }

    /// The mask's line of ``text``.
    private var maskLine: String {
        if let maskProblem { return "\(recipe.mask): unusable, \(maskProblem)" }
        guard let visibleTokens else { return "\(recipe.mask): a custom strategy (its code says how many of the \(model.patchCount) patch tokens stay visible)" }
        return "\(recipe.mask): \(visibleTokens) of \(model.patchCount) patch tokens visible"
    }

    /// A human-readable summary.
    public var text: String {
        let m = model
        return """
        \(source)
          network     \(m)
          parameters  \(parameters) (trainable)
          image       \(m.imageHeight)x\(m.imageWidth) px, patch \(m.patchSize), \(m.patchCount) patch tokens (+1 time token)
          mask        \(maskLine)
          training    batch \(recipe.batchSize)\(recipe.accumulationSteps > 1 ? " in \(recipe.accumulationSteps) micro-batches" : ""), lr \(recipe.learningRate), warm-up \(recipe.warmupSteps), AdamW (\(recipe.beta1), \(recipe.beta2)), weight decay \(recipe.weightDecay), clip \(recipe.gradientClip.map { "\($0)" } ?? "none"), EMA \(recipe.emaBeta), flip \(recipe.flipProbability)
          diffusion   \(recipe.schedule) schedule, objective \(recipe.objective.referenceName), loss \(recipe.loss)
        """ + (run.map { "\n" + $0.text } ?? "")
    }
}

/// Reference training state -> project checkpoint (`maskdm convert`).
public enum ReferenceConversion {
    /// What a conversion wrote.
    public struct Report: Sendable {
        /// Number of parameters of the network.
        public var parameters: Int
        /// The reference's training step, when recorded.
        public var step: Int?
        /// Whether the reference held EMA weights.
        public var hasEMA: Bool
    }

    /// Reads `reference` (a `torch.save` of `{step, model, opt, ema, scaler}`) with the network
    /// of `config`, and writes `output` (safetensors, atomically): online weights, EMA weights
    /// (`ema.*`; the online weights when the file has none), the step, the config and recipe.
    @discardableResult
    public static func convert(reference: URL, config: URL, output: URL) throws -> Report {
        let ref = try ReferenceConfig(contentsOf: config)
        let state = try WeightLoading.referenceState(reference)
        var rng = RandomGenerator(seed: 0)
        let online = MaskedUViT(config: ref.model, rng: &rng)
        try WeightLoading.assign(try state.online(), to: online, file: reference.path)
        let shadow = MaskedUViT(copying: online)
        let ema = ExponentialMovingAverage(online: online.store, shadow: shadow.store, beta: ref.recipe.emaBeta)
        // After the EMA is made: its init copies the online weights into the shadow.
        if state.hasEMA { try WeightLoading.assign(try state.ema(), to: shadow, file: reference.path) }
        ema.restore(updates: state.checkpoint.number("ema.step").map { Int($0) } ?? state.step ?? 0)
        var meta = ["config": ref.model.json, "recipe": ref.recipe.json, "source": reference.path]
        if let s = state.step { meta["step"] = String(s) }
        try Checkpoint.save(to: output, store: online.store, ema: ema, metadata: meta)
        return Report(parameters: online.parameterCount, step: state.step, hasEMA: state.hasEMA)
    }
}
