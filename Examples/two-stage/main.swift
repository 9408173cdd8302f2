// The two-stage MaskDM pipeline in public API: masked pre-training on one image set, unmasked
// fine-tuning on another, then EMA samples and FID. Copy this file to start your own experiment.
//
//     swift run -c release two-stage [source] [target]     (bundled names or image folders)
import Foundation
import ImageIO
import Masking
import Metrics
import Pipeline
import Schedules
import Tensor
import ViTDiffusion

let arguments = CommandLine.arguments.dropFirst()
let source = DataSource(argument: arguments.first ?? "emoji-others")
let target = DataSource(argument: arguments.dropFirst().first ?? "emoji-faces")
let out = URL(fileURLWithPath: "runs/two-stage-example")
let steps = Int(ProcessInfo.processInfo.environment["STEPS"] ?? "") ?? 100

// 1. Data: every image resized (short side) and centre-cropped to 32 px, in [-1, 1].
let model = MaskedUViTConfig.tiny(imageSize: 32)
let sourceImages = try source.load(size: 32).images
let targetImages = try target.load(size: 32).images
print("source \(source): \(sourceImages.count) images, target \(target): \(targetImages.count) images")

// 2. Stage 1: masked pre-training (2x2 blocks, half of them dropped) predicting v.
var pre = TrainingRecipe.pretraining(batchSize: 64, steps: steps, mask: .block(size: 2, ratio: 0.5))
pre.objective = .velocity
pre.learningRate = 1e-3
pre.beta1 = 0.9
pre.warmupSteps = 20
pre.checkpointEvery = 50
let stage1 = try TrainingRun(folder: out.appendingPathComponent("pretrain"),
                             config: RunConfig(stage: .pretrain, model: model, recipe: pre, data: source.description))
let s1 = try stage1.train(on: TensorDataset(images: Image.batch(sourceImages)))
print(String(format: "pre-training: %d steps, loss %.4f, %.0f images/s", s1.step, s1.finalLoss, s1.imagesPerSecond))

// 3. Stage 2: unmasked fine-tuning from the pre-trained *online* weights (fresh AdamW and EMA).
var fine = pre
fine.mask = .none
fine.batchSize = 32
fine.flipProbability = 0.5
fine.seed = 1
let stage2 = try TrainingRun(folder: out.appendingPathComponent("finetune"),
                             config: RunConfig(stage: .finetune, model: model, recipe: fine, data: target.description,
                                               initialization: stage1.checkpointURL.path)) { network in
    try WeightLoading.loadOnline(from: stage1.checkpointURL, into: network)
}
let s2 = try stage2.train(on: TensorDataset(images: Image.batch(targetImages)))
print(String(format: "fine-tuning: %d steps, loss %.4f, %.0f images/s", s2.step, s2.finalLoss, s2.imagesPerSecond))

// 4. Samples from the EMA weights with DPM-Solver++ (25 network calls per image).
let samples = out.appendingPathComponent("samples")
try SampleWriter.write(model: stage2.trainer.emaModel, objective: fine.objective, schedule: stage2.trainer.schedule,
                       sampler: .dpmSolver(steps: 25), count: 64, to: samples,
                       gridURL: out.appendingPathComponent("samples.png"))
print("samples: \(samples.path), grid: \(out.path)/samples.png")

// 5. FID/KID against the target (needs scripts/fetch-fid-weights.sh once).
if FileManager.default.fileExists(atPath: FIDInceptionV3.defaultWeightsURL.path) {
    let targetFolder = out.appendingPathComponent("target")
    try ImageWriting.writeNumbered(targetImages, to: targetFolder)
    let score = try SampleEvaluator().compare(samples: samples, reference: targetFolder)
    print(String(format: "FID %.1f, KID %.4f (64 samples: compare runs, not papers)", score.fid, score.kid))
}
