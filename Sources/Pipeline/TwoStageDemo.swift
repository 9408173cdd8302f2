import Foundation
import ImageIO
import Masking
import Metrics
import Schedules
import Tensor
import ViTDiffusion

/// Source and target images of an experiment, loaded once; the target is also written as a
/// folder of PNGs (the FID reference).
public struct ExperimentData {
    /// Pre-training images (N, 3, S, S) in [-1, 1].
    public let source: TensorDataset
    /// Fine-tuning / evaluation images.
    public let target: TensorDataset
    /// Descriptions (dataset name or folder).
    public let sourceName: String, targetName: String
    /// `folder/target`: the target images as PNGs.
    public let targetFolder: URL
    /// Undecodable files skipped.
    public let skipped: Int

    /// Loads `source` and `target` at `size` px and writes the target PNGs under `folder`.
    public init(source: DataSource, target: DataSource, size: Int, folder: URL) throws {
        let s = try source.load(size: size), t = try target.load(size: size)
        self.source = TensorDataset(images: Image.batch(s.images))
        self.target = TensorDataset(images: Image.batch(t.images))
        sourceName = source.description; targetName = target.description
        skipped = s.skipped + t.skipped
        targetFolder = folder.appendingPathComponent("target")
        if SampleWriter.existingCount(in: targetFolder) != t.images.count {
            try? FileManager.default.removeItem(at: targetFolder)
            try ImageWriting.writeNumbered(t.images, to: targetFolder)
        }
    }
}

/// MaskDM's two stages as one resumable job: masked pre-training on a source set, unmasked
/// fine-tuning on a target set, then samples with the EMA weights scored against the target.
///
/// Layout of its folder: `pretrain/` and `finetune/` (``TrainingRun`` folders), `target/` (the
/// target images), `samples/` (numbered PNGs), `samples.png` (a grid of the first 64),
/// `report.json`. Re-running resumes wherever it stopped.
///
/// ```swift
/// let demo = TwoStageDemo(folder: URL(fileURLWithPath: "runs/demo"), recipe: .calibrated)
/// let report = try demo.run(source: .bundled(.emojiOthers), target: .bundled(.emojiFaces))
/// print(report.table)
/// ```
public struct TwoStageDemo {
    /// The job's folder.
    public let folder: URL
    /// Networks, stage recipes and sampling.
    public let recipe: ExperimentRecipe

    /// A job in `folder` with `recipe`.
    public init(folder: URL, recipe: ExperimentRecipe) { self.folder = folder; self.recipe = recipe }

    /// One row of the summary table.
    public struct StageRow: Codable, Sendable {
        /// The stage name (`pretrain` or `finetune`).
        public var stage: String
        /// Steps completed.
        public var steps: Int
        /// Summed step seconds.
        public var trainSeconds: Double
        /// Training images per second of step time.
        public var imagesPerSecond: Double
        /// Mean loss of the last (up to) 20 steps.
        public var finalLoss: Float
    }

    /// What the job measured.
    public struct Report: Codable, Sendable {
        /// One row per stage: pre-training, then fine-tuning.
        public var stages: [StageRow]
        /// Wall-clock seconds spent sampling.
        public var samplingSeconds: Double
        /// Number of samples drawn.
        public var samples: Int
        /// FID of the samples against the target, nil when not evaluated.
        public var fid: Double?
        /// Mean KID of the samples against the target, nil when not evaluated.
        public var kid: Double?
        /// Standard deviation of KID over its subsets, nil when not evaluated.
        public var kidStd: Double? = nil
        /// Path of the folder of sample PNGs.
        public var samplesFolder: String
        /// Path of the sample grid PNG.
        public var grid: String

        /// A plain-text table (stage, steps, time, images/s, final loss) and the scores.
        public var table: String {
            func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
            var lines = [pad("stage", 10) + "   steps  train time   images/s  final loss"]
            for r in stages {
                let time = ProgressPrinter.duration(r.trainSeconds)
                lines.append(pad(r.stage, 10) + String(format: " %7d ", r.steps) + String(repeating: " ", count: max(0, 14 - time.count)) + time
                             + String(format: " %9.1f %11.4f", r.imagesPerSecond, r.finalLoss))
            }
            lines.append("sampling   \(samples) images in \(ProgressPrinter.duration(samplingSeconds))")
            if let fid, let kid {
                let spread = kidStd.map { String(format: " ± %.4f", $0) } ?? ""
                lines.append(String(format: "FID %.1f  KID %.4f", fid, kid) + spread + "  (\(samples) samples vs the target)")
            }
            lines.append("samples: \(samplesFolder)   grid: \(grid)")
            return lines.joined(separator: "\n")
        }
    }

    /// Runs (or resumes) both stages, samples and scores. `events` sees each stage's progress.
    public func run(source: DataSource, target: DataSource, evaluateFID: Bool = true,
                    events: ((_ stage: String, _ event: TrainingRun.Event) -> Void)? = nil) throws -> Report {
        // A stage of no steps has no loss to report: refuse it before anything runs.
        for (name, steps) in [("pretrain.steps", recipe.pretrain.steps), ("finetune.steps", recipe.finetune.steps), ("sampleCount", recipe.sampleCount)]
        where steps < 1 {
            throw PipelineError.invalidOption(name: name, problem: "must be at least 1, got \(steps)")
        }
        let data = try ExperimentData(source: source, target: target, size: recipe.model.imageHeight, folder: folder)
        var preConfig = RunConfig(stage: .pretrain, model: recipe.model, recipe: recipe.pretrain, data: data.sourceName)
        preConfig.precision = recipe.precision
        let pre = try TrainingRun(folder: folder.appendingPathComponent("pretrain"), config: preConfig)
        let preSummary = try pre.train(on: data.source) { events?("pretrain", $0) }
        var fineConfig = RunConfig(stage: .finetune, model: recipe.model, recipe: recipe.finetune, data: data.targetName,
                                   initialization: pre.checkpointURL.path)
        fineConfig.precision = recipe.precision
        let fine = try TrainingRun(folder: folder.appendingPathComponent("finetune"), config: fineConfig) { model in
            try WeightLoading.loadOnline(from: pre.checkpointURL, into: model)
        }
        let fineSummary = try fine.train(on: data.target) { events?("finetune", $0) }
        let samples = folder.appendingPathComponent("samples"), grid = folder.appendingPathComponent("samples.png")
        let t0 = Date()
        try SampleWriter.write(model: fine.trainer.emaModel, objective: recipe.finetune.objective, schedule: fine.trainer.schedule,
                               sampler: recipe.sampler, count: recipe.sampleCount, seed: recipe.finetune.seed &+ 2,
                               to: samples, gridURL: grid, replacingOtherSamples: true)
        let sampling = Date().timeIntervalSince(t0)
        var score: FIDResult? = nil
        if evaluateFID { score = try SampleEvaluator().compare(samples: samples, reference: data.targetFolder) }
        let rows = [("pretrain", preSummary, pre), ("finetune", fineSummary, fine)].map { name, s, run in
            StageRow(stage: name, steps: s.step, trainSeconds: s.trainSeconds,
                     imagesPerSecond: s.trainSeconds > 0 ? Double(s.step * run.config.recipe.batchSize) / s.trainSeconds : 0,
                     finalLoss: s.finalLoss)
        }
        let report = Report(stages: rows, samplingSeconds: sampling, samples: recipe.sampleCount, fid: score?.fid, kid: score?.kid,
                            kidStd: score?.kidStd, samplesFolder: samples.path, grid: grid.path)
        try recordEncoder(pretty: true).encode(report).write(to: folder.appendingPathComponent("report.json"), options: .atomic)
        return report
    }
}
