import ArgumentParser
import Foundation
import ImageIO
import NN
import Metrics
import Schedules
import Tensor
import ViTDiffusion

/// `maskdm pipeline`: MaskDM's two stages on the embedded default data (Noto Color Emoji):
/// masked pre-training on the 3,811 non-face emoji, then unmasked fine-tuning on the 115 faces.
struct Pipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Masked pre-training then unmasked fine-tuning on emoji (resumable), then EMA samples.")

    @Option(help: "Output folder (checkpoints, sample grids).") var out = "runs/emoji"
    @Option(help: "Model config: tiny, small or base.") var model = "tiny"
    @Option(help: "Image size in pixels.") var size = 32
    @Option(help: "Pre-training steps.") var pretrainSteps = 400
    @Option(help: "Pre-training batch size.") var pretrainBatch = 128
    @Option(help: "Pre-training mask (none, patch, blockB, cropC).") var mask = "block2"
    @Option(help: "Pre-training mask ratio.") var ratio = 0.9
    @Option(help: "Fine-tuning steps.") var finetuneSteps = 400
    @Option(help: "Fine-tuning batch size.") var finetuneBatch = 64
    @Option(help: "Fine-tuning learning rate.") var finetuneLR: Float = 5e-5
    @Option(help: "Samples to draw with the EMA weights.") var samples = 64
    @Option(help: "Sampler: ddim (eta 1) or dpm (DPM-Solver++ 2M).") var sampler = "ddim"
    @Option(help: "Sampling steps.") var samplingSteps = 100
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Prediction target: eps, x0 or v.") var objective = "eps"
    @Option(help: "Loss: l2 or l1.") var loss = "l2"
    @Option(help: "Beta schedule: linear or cosine.") var schedule = "linear"
    @Option(help: "Pre-training learning rate.") var pretrainLR: Float = 2e-4
    @Option(help: "AdamW beta1 (both stages).") var beta1: Float = 0.99
    @Option(help: "AdamW beta2 (both stages).") var beta2: Float = 0.99
    @Option(help: "Linear warm-up steps (both stages).") var warmup = 0
    @Option(help: "EMA decay ceiling.") var emaBeta: Float = 0.999
    @Option(help: "Gradient-norm clip (0 = none).") var clip: Float = 0
    @Option(help: "Horizontal flip probability (both stages).") var flip = 0.5
    @Option(help: "Override the network width.") var embedDim: Int?
    @Option(help: "Override the network depth.") var depth: Int?
    @Option(help: "Override the number of heads.") var heads: Int?
    @Option(help: "Override the patch size.") var patch: Int?

    func run() throws {
        let dir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        guard var config = MaskedUViTConfig.named(model, imageSize: size) else { throw ValidationError("unknown model \(model)") }
        if let embedDim { config.embedDim = embedDim }
        if let depth { config.depth = depth }
        if let heads { config.heads = heads }
        if let patch { config.patchSize = patch }
        guard let target = PredictionTarget(name: objective) else { throw ValidationError("unknown objective \(objective)") }
        guard let lossKind = RegressionLoss(rawValue: loss) else { throw ValidationError("unknown loss \(loss)") }
        func tune(_ r: inout TrainingRecipe) {
            r.objective = target; r.loss = lossKind; r.schedule = schedule; r.beta1 = beta1; r.beta2 = beta2
            r.warmupSteps = warmup; r.emaBeta = emaBeta; r.gradientClip = clip > 0 ? clip : nil; r.flipProbability = flip
        }
        print("loading emoji at \(size) px ...")
        let emoji = try EmojiDataset()
        let faces = try emoji.images(group: "Smileys & Emotion", subgroups: ["face-*"], size: size)
        let others = try emoji.images(of: emoji.entries.filter { !faceSubgroup($0.subgroup) }, size: size)
        print("source (pre-training): \(others.count) emoji; target (fine-tuning): \(faces.count) face emoji")
        try Image.writeGrid(Array(faces.prefix(64)), columns: 8, to: dir.appendingPathComponent("target.png"))
        try writeFolder(faces, to: dir.appendingPathComponent("target"))

        var rng = RandomGenerator(seed: seed)
        var pre = TrainingRecipe.pretraining(batchSize: pretrainBatch, steps: pretrainSteps, mask: mask, ratio: ratio)
        pre.seed = seed; pre.checkpointEvery = 50; pre.learningRate = pretrainLR; tune(&pre)
        let stage1 = try DiffusionTrainer(model: MaskedUViT(config: config, rng: &rng), recipe: pre)
        print("stage 1: \(config), \(stage1.model.parameterCount) parameters, mask \(stage1.masking), batch \(pretrainBatch)")
        try stage1.run(dataset: TensorDataset(images: Image.batch(others)),
                       checkpoint: dir.appendingPathComponent("pretrain.safetensors"), progress: report("pre-train"))

        var fine = TrainingRecipe.finetuning(batchSize: finetuneBatch, steps: finetuneSteps, learningRate: finetuneLR)
        fine.seed = seed &+ 1; fine.checkpointEvery = 50; tune(&fine)
        let stage2 = try stage1.transferred(to: fine)
        print("stage 2: unmasked fine-tuning from the pre-trained online weights, batch \(finetuneBatch), lr \(finetuneLR)")
        try stage2.run(dataset: TensorDataset(images: Image.batch(faces)),
                       checkpoint: dir.appendingPathComponent("finetune.safetensors"), progress: report("fine-tune"))

        let s: any DiffusionSampler = sampler == "dpm"
            ? DPMSolverPlusPlus2M(schedule: stage2.schedule, steps: samplingSteps)
            : DDIMSampler(schedule: stage2.schedule, steps: samplingSteps, eta: 1)
        let t0 = Date()
        var srng = RandomGenerator(seed: seed &+ 2)
        let x = try stage2.sample(count: samples, sampler: s, using: &srng)
        let grid = dir.appendingPathComponent("samples.png")
        try Image.writeGrid(Image.images(fromBatch: x), columns: 8, to: grid)
        print(String(format: "sampled %d images (%@, %d steps) in %.1f s -> %@", samples, sampler, samplingSteps,
                     Date().timeIntervalSince(t0), grid.path))
        let sampleDir = dir.appendingPathComponent("samples")
        try writeFolder(Image.images(fromBatch: x), to: sampleDir)
        guard FileManager.default.fileExists(atPath: FIDInceptionV3.defaultWeightsURL.path) else {
            print("FID skipped: Inception weights not cached (run scripts/fetch-fid-weights.sh)")
            return
        }
        let evaluator = FIDEvaluator(network: try FIDInceptionV3(contentsOf: FIDInceptionV3.defaultWeightsURL), batchSize: 32, cache: nil)
        let result = try evaluator.compare(try evaluator.features(ofFolder: sampleDir), try evaluator.features(ofFolder: dir.appendingPathComponent("target")))
        print(String(format: "FID %.1f  KID %.4f (%d samples vs %d face emoji; few samples: compare runs, not papers)",
                     result.fid, result.kid, result.nA, result.nB))
    }

    func writeFolder(_ images: [Image], to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (i, img) in images.enumerated() { try img.write(to: folder.appendingPathComponent(String(format: "%05d.png", i))) }
    }

    func faceSubgroup(_ s: String?) -> Bool { s?.hasPrefix("face-") ?? false }

    func report(_ stage: String) -> (DiffusionTrainer.Progress) -> Void {
        { p in
            if p.step % 10 == 0 || p.step == p.totalSteps {
                print(String(format: "%@ step %d/%d  loss %.4f  %.2f s/step", stage, p.step, p.totalSteps, p.loss, p.secondsPerStep))
                fflush(nil)
            }
        }
    }
}
