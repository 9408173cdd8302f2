import ArgumentParser
import Foundation
import ImageIO
import Masking
import Metrics
import NN
import Pipeline
import Schedules
import Tensor
import ViTDiffusion

/// Options shared by `pretrain`, `finetune` and `train`: flags override the config file.
struct StageOptions: ParsableArguments {
    @Option(help: "Training images: a folder of PNG/JPEG (recursive) or emoji, emoji-faces, emoji-others, fashion-mnist, mnist5k, lfw.")
    var data: String
    @Option(help: "Run folder (created; re-running the same command resumes it).") var out: String
    @Option(help: "A reference YAML config (e.g. configs/transfer/celebahq_small_90p.yml); flags override it.") var config: String?
    @Option(help: "Network preset: tiny, small or base (default: the config's, else for finetune --init's network, else tiny).") var model: String?
    @Option(parsing: .unconditional, help: "Image size in pixels (default: the config's or --init's, else 32 for tiny, 64 small, 256 base).") var size: Int?
    @Option(help: "Pretrain only (finetune and train are unmasked). Mask: none, patch, blockB (e.g. block4; B must divide the patch grid), crop (side from --ratio) or cropC (e.g. crop8).") var mask: String?
    @Option(parsing: .unconditional, help: "Pretrain only. Mask ratio (default 0.9 with a mask).") var ratio: Double?
    @Option(parsing: .unconditional, help: "Optimisation steps (default 1000, or the config's).") var steps: Int?
    @Option(parsing: .unconditional, help: "Batch size, images per optimisation step (default: 128 for pretrain, 64 for finetune and train, or the config's).") var batch: Int?
    @Option(parsing: .unconditional, help: "Gradient accumulation: run each step's batch as N micro-batches in turn (same training, a micro-batch's memory).")
    var accumulate: Int?
    @Option(parsing: .unconditional, help: "Learning rate (default: 2e-4 for pretrain, 5e-5 for finetune and train, or the config's).") var lr: Float?
    @Option(parsing: .unconditional, help: "Seed of every random draw (default 0; finetune: the --init run's seed + 1, or 1).") var seed: UInt64?
    @Option(parsing: .unconditional, help: "Checkpoint every K steps (0 = only at the end and when stopped; the latest is always kept, plus --keep numbered ones).") var checkpointEvery: Int = 500
    @Option(parsing: .unconditional, help: "Write an EMA sample grid every K steps (0 = never).") var sampleEvery: Int = 0
    @Option(parsing: .unconditional, help: "Images per sample grid.") var sampleCount: Int = 16
    @Option(parsing: .unconditional, help: "Score FID and KID of EMA samples every K steps and at the last step (0 = never); keeps checkpoint-best.safetensors. Needs scripts/fetch-fid-weights.sh.")
    var fidEvery: Int = 0
    @Option(parsing: .unconditional, help: "Samples drawn for each FID score (default 400).") var fidSamples: Int?
    @Option(help: "FID reference images, a folder (default: the training data as the network sees it, up to --fid-reference-limit images, written once under .cache/fid-reference).")
    var fidReference: String?
    @Option(parsing: .unconditional, help: "Images of the default FID reference, evenly spaced through the data (default 10000).") var fidReferenceLimit: Int?
    @Option(help: "Sampler of the FID samples: dpm (DPM-Solver++ 2M), ddim or ddpm (default: dpm, 25 steps, as the sample grids).")
    var fidSampler: String?
    @Option(parsing: .unconditional, help: "Steps of --fid-sampler (default: 25 for dpm, 250 for ddim; DDIM's eta is 1).") var fidSamplerSteps: Int?
    @Option(parsing: .unconditional, help: "Numbered checkpoints kept.") var keep: Int = 3
    @Option(help: "Prediction target: eps, x0 or v (reference: pred_noise, pred_x0, pred_v; default eps, or --init's).") var objective: String?
    @Option(help: "Loss: l2 or l1 (default l2, or --init's).") var loss: String?
    @Option(help: "Beta schedule: linear or cosine (default linear, or --init's).") var schedule: String?
    @Option(parsing: .unconditional, help: "Linear warm-up steps (default 0).") var warmup: Int?
    @Option(parsing: .unconditional, help: "Horizontal flip probability (default: 0 for pretrain, 0.5 for finetune and train).") var flip: Double?
    @Option(parsing: .unconditional, help: "Gradient-norm clip (0 = none, the default; under --config its clip_grad, 1.0 when absent).") var clip: Float?
    @Option(parsing: .unconditional, help: "EMA decay ceiling (default 0.999).") var emaBeta: Float?
    @Option(parsing: .unconditional, help: "AdamW beta1 (default 0.99, as the reference).") var beta1: Float?
    @Option(parsing: .unconditional, help: "AdamW beta2 (default 0.99, as the reference).") var beta2: Float?
    @Option(parsing: .unconditional, help: "Print a plain progress line every K steps when not on a terminal.") var logEvery: Int = 50
    @Option(help: "Matrix-product precision: fp32, or bf16 (bf16 operands, fp32 sums and weights; needs AVX512_BF16). Default: the run's recorded one on resume, else MASKDM_GEMM_ISA's, else fp32.")
    var precision: String?
    @Flag(help: "Decode a folder's images per batch instead of holding them in memory (automatic above 2 GiB).") var stream = false
    @Flag(help: "Skip a step whose loss or gradient is not finite, instead of stopping with a checkpoint.") var skipNonFinite = false

    /// The run's config: the YAML (if any), then the preset, then the flags.
    /// `initModel`: the network of the `--init` checkpoint, used when neither --config nor --model is given.
    /// The objective, loss and schedule default to `initRecipe`'s (a network keeps what it predicts).
    func resolve(stage: Stage, initialization: String? = nil, initModel: MaskedUViTConfig? = nil,
                 initRecipe: TrainingRecipe? = nil) throws -> RunConfig {
        var modelConfig: MaskedUViTConfig
        var recipe: TrainingRecipe
        var configSeed: UInt64?
        if let config {
            let ref = try ReferenceConfig(contentsOf: URL(fileURLWithPath: config))
            modelConfig = ref.model
            recipe = ref.recipe
            configSeed = ref.seed
            if let weights = ref.pretrainedCheckpoint {
                // The reference trains on from these weights; here that is the fine-tuning's --init.
                guard stage == .finetune else {
                    throw ValidationError("--config \(config) sets pretrained_model_ckpt '\(weights)': the reference trains on from those weights, "
                                          + "which here is 'maskdm finetune --init \(weights) --config \(config)'")
                }
                let named = (try? WeightLoading.resolve(URL(fileURLWithPath: weights))) ?? URL(fileURLWithPath: weights)
                if let initialization, World.communicator.isWriter,
                   named.standardizedFileURL.path != URL(fileURLWithPath: initialization).standardizedFileURL.path {
                    print("note: --init \(initialization) is used, not the config's pretrained_model_ckpt '\(weights)'")
                }
            }
            if let size { modelConfig.imageHeight = size; modelConfig.imageWidth = size }
        } else if model == nil, var m = initModel {
            if let size { m.imageHeight = size; m.imageWidth = size }
            modelConfig = m
            recipe = .finetuning(batchSize: 64, steps: 1000)
        } else {
            let name = model ?? "tiny"
            guard let m = MaskedUViTConfig.named(name, imageSize: size) else {
                throw ValidationError("unknown --model '\(name)' (expected tiny, small or base)")
            }
            modelConfig = m
            recipe = stage == .pretrain ? .pretraining(batchSize: 128, steps: 1000) : .finetuning(batchSize: 64, steps: 1000)
            if stage == .train { recipe.seed = 0 }                        // the fine-tuning preset's 1 is for a second stage
        }
        if let model, config != nil {
            guard let m = MaskedUViTConfig.named(model, imageSize: modelConfig.imageHeight) else {
                throw ValidationError("unknown --model '\(model)' (expected tiny, small or base)")
            }
            modelConfig = m
        }
        if stage != .pretrain { recipe.mask = .none }
        if stage != .pretrain, let mask, mask.lowercased() != "none" {
            throw ValidationError("\(stage.rawValue) trains unmasked; --mask/--ratio are for pretrain")
        }
        if let r = initRecipe { recipe.objective = r.objective; recipe.loss = r.loss; recipe.schedule = r.schedule }
        if let mask { recipe.mask = try MaskSpec(name: mask, ratio: ratio ?? recipe.mask.ratio ?? 0.9) }
        else if let ratio { recipe.mask = try MaskSpec(name: recipe.mask == .none ? "block4" : recipe.mask.name, ratio: ratio) }
        if stage != .pretrain, recipe.mask != .none {
            throw ValidationError("\(stage.rawValue) trains unmasked; --mask/--ratio are for pretrain")
        }
        if let steps { recipe.steps = steps }
        if let batch { recipe.batchSize = batch }
        if let accumulate { recipe.accumulationSteps = accumulate }
        else if let recorded = Self.recordedRun(in: out) { recipe.accumulationSteps = recorded.recipe.accumulationSteps }   // a resumed run keeps its N
        if let lr { recipe.learningRate = lr }
        if let seed { recipe.seed = seed }
        else if stage == .finetune, configSeed == nil {
            // Not the pre-training's seed: with it every step would draw the same images,
            // timesteps and noise as the pre-training's step of that number.
            recipe.seed = initRecipe.map { $0.seed &+ 1 } ?? 1
        }
        if stage == .finetune, let pre = initRecipe, pre.seed == recipe.seed, World.communicator.isWriter {
            print("note: seed \(recipe.seed) is also the --init run's: each fine-tuning step draws the images, timesteps and noise "
                  + "of the pre-training's step of that number (another --seed avoids it)")
        }
        if let objective {
            guard let t = PredictionTarget(name: objective) else { throw ValidationError("unknown --objective '\(objective)' (eps, x0, v)") }
            recipe.objective = t
        }
        if let loss {
            guard let l = RegressionLoss(rawValue: loss) else { throw ValidationError("unknown --loss '\(loss)' (l2, l1)") }
            recipe.loss = l
        }
        if let schedule { recipe.schedule = try ScheduleKind(name: schedule) }
        if let warmup { recipe.warmupSteps = warmup }
        if let flip { recipe.flipProbability = flip }
        if let clip {
            guard clip >= 0 && clip.isFinite else { throw ValidationError("--clip must be >= 0 (0: no clipping), got \(clip)") }
            recipe.gradientClip = clip > 0 ? clip : nil
        }
        if let emaBeta { recipe.emaBeta = emaBeta }
        if let beta1 { recipe.beta1 = beta1 }
        if let beta2 { recipe.beta2 = beta2 }
        if skipNonFinite { recipe.skipNonFiniteSteps = true }
        recipe.checkpointEvery = checkpointEvery
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must be at least 0 (0: only at the end), got \(checkpointEvery)") }
        guard recipe.batchSize <= 65_536 else { throw ValidationError("--batch \(recipe.batchSize) is above 65536 images a step") }
        guard logEvery >= 1 else { throw ValidationError("--log-every must be at least 1, got \(logEvery)") }
        var run = RunConfig(stage: stage, model: modelConfig, recipe: recipe, data: DataSource(argument: data).description,
                            initialization: initialization)
        run.sampleEvery = sampleEvery; run.sampleCount = sampleCount; run.keepCheckpoints = keep
        do { try run.validate() } catch let e as PipelineError {
            // Name the flags, not the config keys.
            let flags = ["sampleEvery": "--sample-every", "sampleCount": "--sample-count", "keepCheckpoints": "--keep"]
            if case .invalidOption(let name, let problem) = e, let flag = flags[name] { throw ValidationError("\(flag): \(problem)") }
            throw e
        }
        if fidEvery < 0 { throw ValidationError("--fid-every must be >= 0, got \(fidEvery)") }
        // The default reference is written by train(), on rank 0, once the data is known to load.
        if fidEvery > 0 {
            let sampler: SamplerKind?
            do {
                sampler = try (fidSampler ?? fidSamplerSteps.map { _ in "dpm" }).map { try SamplerKind(name: $0, steps: fidSamplerSteps) }
            } catch {
                throw ValidationError("--fid-sampler \(fidSampler ?? "dpm") with --fid-sampler-steps \(fidSamplerSteps.map(String.init) ?? "default"): expected dpm, ddim or ddpm and steps >= 1")
            }
            if sampler == .ddpm, fidSamplerSteps != nil {
                throw ValidationError("--fid-sampler ddpm runs all of the schedule's steps; drop --fid-sampler-steps")
            }
            if fidReference != nil, fidReferenceLimit != nil {
                throw ValidationError("--fid-reference-limit sizes the default reference; with --fid-reference DIR every image of DIR is used")
            }
            let schedule = EvaluationSchedule(every: fidEvery, samples: fidSamples ?? 400,
                                              reference: fidReference.map { URL(fileURLWithPath: $0).absoluteURL.path } ?? "",
                                              sampler: sampler)
            // Checked now, before the data loads: the counts, an explicit reference (and, in
            // train(), the weights).
            try schedule.validate(checkingReference: !schedule.reference.isEmpty)   // the default one is written later
            run.evaluation = schedule
        } else if fidSamples != nil || fidReference != nil || fidReferenceLimit != nil || fidSampler != nil || fidSamplerSteps != nil {
            throw ValidationError("--fid-samples, --fid-reference, --fid-reference-limit and --fid-sampler need --fid-every K")
        }
        // Applied now, before the data loads: a CPU that cannot run it is told at once.
        if let precision { run.precision = try Gemm.Precision.apply(argument: precision) }
        return run
    }

    /// What a run's network and recipe must pass before its data loads (a `--size` or a recorded
    /// config that no CPU can train, a mask that cannot train the network), checked in
    /// ``train(_:initialWeights:)`` for the stage commands and `resume` alike; the run checks the
    /// rest again when it opens.
    static func checkBeforeLoading(model: MaskedUViTConfig, recipe: TrainingRecipe) throws {
        // Beyond this a ViT's token count (and memory) is out of any CPU's reach.
        guard model.imageHeight <= 2048 && model.imageWidth <= 2048 else {
            throw ValidationError("image size \(model.imageHeight)x\(model.imageWidth) is above 2048 pixels a side")
        }
        try model.validate()
        try recipe.validate(ranks: World.communicator.size)
        if let problem = ModelDescription(model: model, recipe: recipe, source: "").maskProblem {
            throw ValidationError("--mask/--ratio: \(problem)")
        }
    }

    /// The run config recorded in the run folder `out`, if it has a readable one (a resumed run;
    /// an unreadable one is reported when the run opens).
    static func recordedRun(in out: String) -> RunConfig? {
        (try? RunConfig.recorded(in: URL(fileURLWithPath: out))) ?? nil
    }

    /// Loads the data, opens the run and trains with progress output; exits 130 on Ctrl-C.
    func train(_ config: RunConfig, initialWeights: ((MaskedUViT) throws -> Void)? = nil) throws {
        var config = config
        // Folders and the built-in datasets load as RGB images.
        guard config.model.inChannels == 3 else {
            throw ValidationError("the network takes \(config.model.inChannels)-channel images (in_chans: \(config.model.inChannels)), "
                                  + "but training images load as RGB: use in_chans: 3 (grey images are loaded as RGB)")
        }
        StopSignal.install()
        // Before the data loads, not after (a recorded config on resume has passed no other check).
        try TrainingRun.checkStrategyIsKnown(config, folder: URL(fileURLWithPath: out))
        try Self.checkBeforeLoading(model: config.model, recipe: config.recipe)
        if config.evaluation != nil, !FileManager.default.fileExists(atPath: FIDInceptionV3.defaultWeightsURL.path) {
            throw MetricsError.missingWeights(path: FIDInceptionV3.defaultWeightsURL.path)     // a missing file: status 1
        }
        var checked = config
        if let e = checked.evaluation, e.reference.isEmpty {              // the default reference is written below
            try e.validate(checkingReference: false)
            try e.sampler?.validate(trainingSteps: config.recipe.schedule.schedule().timesteps)
            checked.evaluation = nil
        }
        try checked.validate()
        try TrainingRun.checkFolder(URL(fileURLWithPath: out), communicator: World.communicator)
        let source = DataSource(argument: data)
        try TrainingRun.checkFolder(URL(fileURLWithPath: out), isOutside: source)
        if let note = source.shadowedFolderNote { print(note) }
        let t0 = Date()
        let loaded = try source.trainingData(size: config.model.imageHeight, memoryLimit: stream ? 0 : 2 << 30)
        print("data: \(loaded.images.count) images from \(source) at \(config.model.imageHeight) px"
              + (loaded.images is FolderImages ? " (decoded per batch)" : "")
              + (loaded.skipped > 0 ? " (\(loaded.skipped) unreadable files skipped)" : "")
              + " in \(ProgressPrinter.duration(Date().timeIntervalSince(t0)))")
        for failure in loaded.firstFailures { print("  skipped \(failure)") }
        if loaded.skipped > loaded.firstFailures.count, !loaded.firstFailures.isEmpty {
            print("  ... and \(loaded.skipped - loaded.firstFailures.count) more (maskdm check \(data) names every one)")
        }
        let world = World.communicator
        if var e = config.evaluation, e.reference.isEmpty {
            let t1 = Date()
            let limit = fidReferenceLimit ?? 10_000
            let written = world.isWriter ? try source.fidReference(size: config.model.imageHeight, limit: limit) : nil
            try world.barrier()                                          // the other ranks find it written
            e.reference = try (written ?? source.fidReference(size: config.model.imageHeight, limit: limit)).absoluteURL.path
            config.evaluation = e
            print("FID reference: \(e.reference) (\(ProgressPrinter.duration(Date().timeIntervalSince(t1))))")
        }
        let run = try TrainingRun(folder: URL(fileURLWithPath: out), config: config, initialWeights: initialWeights, communicator: world)
        for warning in run.warnings where world.isWriter { print("warning: \(warning)") }
        print("\(config.stage.rawValue): \(config.model), \(run.trainer.model.parameterCount) parameters, mask \(config.recipe.mask), "
              + "objective \(config.recipe.objective), batch \(config.recipe.batchSize)"
              + (world.size > 1 ? " (\(run.trainer.localBatchSize) on each of \(world.size) ranks)" : "")
              + (config.recipe.accumulationSteps > 1 ? " in \(config.recipe.accumulationSteps) micro-batches" : "")
              + ", lr \(config.recipe.learningRate)"
              + ", precision \(Gemm.precision.rawValue)"   // what the products run in
              + (run.resumedFrom.map { ", resuming at step \($0)" } ?? ""))
        let c = config.model, masking = run.trainer.masking
        let masked = masking.maskedCount(gridHeight: c.gridHeight, gridWidth: c.gridWidth)
        if config.recipe.mask != .none {
            print("mask: \(masked) of \(c.gridHeight * c.gridWidth) patches masked in each image")
            if masked == 0 {
                print("warning: mask \(config.recipe.mask) masks none of the \(c.gridHeight * c.gridWidth) patches at "
                      + "\(c.imageHeight) px in patches of \(c.patchSize), so this \(config.stage.rawValue) is unmasked: "
                      + "use smaller blocks (e.g. --mask block2), a higher --ratio or a larger --size")
            }
        }
        if config.recipe.warmupSteps > config.recipe.steps {
            print("warning: the warm-up (\(config.recipe.warmupSteps) steps) is longer than the run (\(config.recipe.steps) steps): "
                  + "the learning rate never reaches \(config.recipe.learningRate)")
        }
        fflush(nil)   // the start lines reach a log file now, not when the buffer fills (a kill would lose them)
        let printer = ProgressPrinter(label: config.stage.rawValue, total: config.recipe.steps, every: logEvery)
        let summary: TrainingRun.Summary
        do {
            summary = try run.train(on: loaded.images) { printer.handle($0) }
        } catch let e as PipelineError {
            printer.finish()
            try e.endCommand()
        }
        printer.finish()
        if summary.stepsRun == 0 {
            print("done: step \(summary.step), nothing left to train (the run's --steps is \(config.recipe.steps))")
        } else {
            print("done: step \(summary.step), \(ProgressPrinter.duration(summary.trainSeconds)) of training (\(ProgressPrinter.duration(summary.wallSeconds)) wall), "
                  + String(format: "loss %.4f (mean of the last %d steps), %.1f images/s",
                           summary.finalLoss, min(20, summary.step), summary.imagesPerSecond))
        }
        let hasBest = FileManager.default.fileExists(atPath: run.bestCheckpointURL.path)
        print("run folder: \(run.folder.path) (checkpoint.safetensors, log.jsonl, loss.png\(config.sampleEvery > 0 ? ", samples/" : "")"
              + (config.evaluation != nil ? ", fid.jsonl, fid.png" + (hasBest ? ", checkpoint-best.safetensors)" : ")") : ")"))
        if config.evaluation != nil, let best = EvaluationRecord.best(of: run.comparableEvaluations) {
            print(String(format: "best FID %.2f (KID %.4f) at step %d", best.fid, best.kid, best.step))
        }
    }
}

/// `maskdm pretrain`: masked pre-training (default block-4 masking at 90%).
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Masked pre-training in a resumable run folder.")
    @OptionGroup var options: StageOptions

    func run() throws {
        var o = options
        if o.config == nil && o.mask == nil { o.mask = "block4" }
        try o.train(try o.resolve(stage: .pretrain))
    }
}

/// `maskdm finetune`: unmasked fine-tuning from pre-trained online weights.
struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unmasked fine-tuning from a pre-trained checkpoint (run folder, .safetensors or reference .pt): online weights, fresh AdamW and EMA.")
    @OptionGroup var options: StageOptions
    @Option(name: .customLong("init"), help: "Pre-trained weights: a run folder, a project checkpoint or a reference .pt training state.")
    var initFrom: String

    func run() throws {
        let initURL = try WeightLoading.resolve(URL(fileURLWithPath: initFrom))
        // The network of a project checkpoint is known; a reference .pt needs --config or --model.
        let recorded = WeightLoading.isTorchFile(initURL) ? nil : try? DiffusionTrainer.describe(checkpoint: initURL)
        let config = try options.resolve(stage: .finetune, initialization: initURL.path, initModel: recorded?.config,
                                         initRecipe: recorded?.recipe)
        try options.train(config) { model in try WeightLoading.loadOnline(from: initURL, into: model) }
    }
}

/// `maskdm train`: unmasked training from scratch (the baseline).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unmasked training from scratch in a resumable run folder.")
    @OptionGroup var options: StageOptions

    func run() throws { try options.train(try options.resolve(stage: .train)) }
}

extension Gemm.Precision {
    /// A `--precision` value: fp32 or bf16 (any case).
    init(argument: String) throws {
        guard let p = Gemm.Precision(rawValue: argument.lowercased()) else {
            throw ValidationError("unknown --precision '\(argument)' (fp32, bf16)")
        }
        self = p
    }

    /// Parses a `--precision` value and switches the process's products to it, as a
    /// `--precision` error if it cannot; returns it.
    @discardableResult
    static func apply(argument: String) throws -> Gemm.Precision {
        let precision = try Gemm.Precision(argument: argument)
        do { try Gemm.setPrecision(precision) } catch let e as Gemm.InstructionSetError {
            throw ValidationError("--precision \(precision.rawValue): \(e)")
        }
        if precision == .bf16, let warning = Gemm.bf16SlowdownWarning() {
            writeToStandardError("maskdm: warning: \(warning) (--precision fp32 to train in fp32)\n")
        }
        return precision
    }
}
