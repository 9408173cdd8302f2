import Foundation
import ImageIO
import Masking
import Metrics
import Schedules
import Tensor
import ViTDiffusion

/// The paper's comparison in miniature, at equal training time per arm:
/// (A) masked pre-training on the source, then fine-tuning on the target; (B) training from
/// scratch on the target; (C) unmasked pre-training on the source, then fine-tuning.
///
/// Each arm gets `budgetSeconds` of summed step time (pauses and resumption do not count); A and
/// C spend `pretrainShare` of it pre-training. At `points` evenly spaced times along each arm the
/// current EMA network draws samples (``finalSamples`` at the last point, ``pointSamples``
/// before) scored with FID/KID against the target. Each arm is a set of ``TrainingRun`` folders
/// and every score is recorded in `ARM/evals.jsonl`, so an interrupted comparison resumes
/// where it stopped. Writes `report.md`, `report.json`, `fid_vs_time.png`, `grids/arm-X.png`
/// and `grids/arms.png` (the arms side by side).
public struct CompareExperiment {
    /// One arm of the comparison.
    public enum Arm: String, Codable, Sendable, CaseIterable {
        /// A: masked pre-training on the source, then fine-tuning on the target.
        case maskedPretrain = "A"
        /// B: training from scratch on the target.
        case scratch = "B"
        /// C: unmasked pre-training on the source, then fine-tuning on the target.
        case unmaskedPretrain = "C"

        /// A one-line label.
        public var label: String {
            switch self {
            case .maskedPretrain: "A: masked pre-train + fine-tune"
            case .scratch: "B: from scratch"
            case .unmaskedPretrain: "C: unmasked pre-train + fine-tune"
            }
        }
    }

    /// One scored point of an arm.
    public struct Point: Codable, Sendable, Equatable {
        /// The arm scored.
        public var arm: Arm
        /// Point number along the arm, from 1.
        public var index: Int
        /// Summed step seconds of the arm's stages so far.
        public var trainSeconds: Double
        /// Stage being trained at this point (`pretrain`, `finetune` or `train`).
        public var stage: String
        /// Optimisation steps so far, over all of the arm's stages.
        public var steps: Int
        /// Training images processed so far (steps times batch size).
        public var imagesSeen: Int
        /// Estimated training FLOPs so far (``MaskedUViTConfig/trainingFLOPs(batch:visiblePatches:)``).
        public var flops: Double
        /// Number of samples scored.
        public var samples: Int
        /// FID of the samples against the target images.
        public var fid: Double
        /// Mean KID of the samples against the target images.
        public var kid: Double
        /// Standard deviation of KID over its subsets (nil in points scored before it was kept).
        public var kidStd: Double? = nil
    }

    /// The comparison's folder.
    public var folder: URL
    /// Network, stage recipes and sampler.
    public var recipe: ExperimentRecipe
    /// Summed step seconds per arm.
    public var budgetSeconds: Double
    /// Share of A's and C's budget spent pre-training.
    public var pretrainShare: Double = 0.5
    /// Scored points per arm (evenly spaced; the last at the full budget).
    public var points: Int = 5
    /// Samples scored at the intermediate points.
    public var pointSamples: Int = 100
    /// Samples scored at the final point.
    public var finalSamples: Int = 400
    /// Arms to run.
    public var arms: [Arm] = Arm.allCases

    /// A comparison in `folder`.
    public init(folder: URL, recipe: ExperimentRecipe, budgetSeconds: Double) {
        self.folder = folder; self.recipe = recipe; self.budgetSeconds = budgetSeconds
    }

    /// Progress of the comparison, for printing.
    public enum Event {
        /// Training progress of an arm's stage.
        case training(arm: Arm, stage: String, TrainingRun.Event)
        /// A point was scored.
        case scored(Point)
    }

    /// Runs (or resumes) every arm and writes the report. Returns every scored point.
    @discardableResult
    public func run(source: DataSource, target: DataSource, events: ((Event) -> Void)? = nil) throws -> [Point] {
        guard budgetSeconds > 0, points >= 1, (0..<1).contains(pretrainShare) else {
            throw PipelineError.invalidOption(name: "budgetSeconds, points, pretrainShare (--minutes, --points, --pretrain-share)",
                                              problem: "need a positive budget, points >= 1 and a pre-train share in [0, 1)")
        }
        guard !arms.isEmpty else { throw PipelineError.invalidOption(name: "arms (--arms)", problem: "no arm to run: name at least one") }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let data = try ExperimentData(source: source, target: target, size: recipe.model.imageHeight, folder: folder)
        let evaluator = try SampleEvaluator()
        var all: [Point] = []
        for arm in arms {
            all += try runArm(arm, data: data, evaluator: evaluator, events: events)
        }
        try writeReport(all)
        return all
    }

    private func stageRecipe(_ r: TrainingRecipe) -> TrainingRecipe {
        var r = r
        r.steps = 100_000_000           // the time budget ends the stage
        r.checkpointEvery = max(r.checkpointEvery, 50)
        return r
    }

    private func runArm(_ arm: Arm, data: ExperimentData, evaluator: SampleEvaluator,
                        events: ((Event) -> Void)?) throws -> [Point] {
        let armFolder = folder.appendingPathComponent("arm-\(arm.rawValue)")
        try FileManager.default.createDirectory(at: armFolder, withIntermediateDirectories: true)
        let evalLog = armFolder.appendingPathComponent("evals.jsonl")
        var done = lenientText(of: evalLog).split(separator: "\n")
            .compactMap { try? recordDecoder().decode(Point.self, from: Data($0.utf8)) }
        let preBudget = arm == .scratch ? 0 : budgetSeconds * pretrainShare
        var pre: TrainingRun? = nil
        if arm != .scratch {
            var r = stageRecipe(recipe.pretrain)
            if arm == .unmaskedPretrain { r.mask = .none }
            var config = RunConfig(stage: .pretrain, model: recipe.model, recipe: r, data: data.sourceName)
            config.timeBudget = preBudget
            config.precision = recipe.precision
            pre = try TrainingRun(folder: armFolder.appendingPathComponent("pretrain"), config: config)
        }
        var fine: TrainingRun? = nil
        func fineRun() throws -> TrainingRun {
            if let fine { return fine }
            var config = RunConfig(stage: pre == nil ? .train : .finetune, model: recipe.model, recipe: stageRecipe(recipe.finetune),
                                   data: data.targetName, initialization: pre?.checkpointURL.path)
            config.timeBudget = budgetSeconds - preBudget
            config.precision = recipe.precision
            let run = try TrainingRun(folder: armFolder.appendingPathComponent(pre == nil ? "train" : "finetune"), config: config) { model in
                if let pre { try WeightLoading.loadOnline(from: pre.checkpointURL, into: model) }
            }
            fine = run
            return run
        }
        for k in 1...points {
            if done.contains(where: { $0.index == k }) { continue }
            let t = budgetSeconds * Double(k) / Double(points)
            let run: TrainingRun
            if let pre, t <= preBudget + 1e-9 {
                try pre.train(on: data.source, trainSecondsLimit: t) { events?(.training(arm: arm, stage: "pretrain", $0)) }
                run = pre
            } else {
                if let pre { try pre.train(on: data.source) { events?(.training(arm: arm, stage: "pretrain", $0)) } }
                run = try fineRun()
                try run.train(on: data.target, trainSecondsLimit: t - preBudget) { events?(.training(arm: arm, stage: run.config.stage.rawValue, $0)) }
            }
            let count = k == points ? finalSamples : pointSamples
            let sampleDir = armFolder.appendingPathComponent("samples-\(k)")
            // A stop (Ctrl-C) between two sampling batches ends the job here; the checkpoint is the
            // point's, and a re-run draws the missing samples and scores the point.
            try SampleWriter.write(model: run.trainer.emaModel, objective: run.config.recipe.objective, schedule: run.trainer.schedule,
                                   sampler: recipe.sampler, count: count, seed: 77, to: sampleDir,
                                   gridURL: k == points ? folder.appendingPathComponent("grids/arm-\(arm.rawValue).png") : nil,
                                   replacingOtherSamples: true,
                                   stop: { StopSignal.isRequested })
            if StopSignal.isRequested {
                throw PipelineError.interrupted(step: run.trainer.step, checkpoint: run.checkpointURL.path)
            }
            let score = try evaluator.compare(samples: sampleDir, reference: data.targetFolder)
            var steps = 0, images = 0, flops = 0.0
            for r in [pre, run === pre ? nil : run].compactMap({ $0 }) {
                let s = r.trainer.step, b = r.config.recipe.batchSize
                steps += s; images += s * b
                let visible = try r.config.recipe.mask.strategy().visibleCount(gridHeight: recipe.model.gridHeight, gridWidth: recipe.model.gridWidth)
                flops += Double(s) * recipe.model.trainingFLOPs(batch: b, visiblePatches: visible)
            }
            let trained = (pre?.trainSeconds ?? 0) + (run === pre ? 0 : run.trainSeconds)
            let point = Point(arm: arm, index: k, trainSeconds: trained, stage: run.config.stage.rawValue, steps: steps,
                              imagesSeen: images, flops: flops, samples: count, fid: score.fid, kid: score.kid, kidStd: score.kidStd)
            try appendLine(String(decoding: try recordEncoder(pretty: false).encode(point), as: UTF8.self), to: evalLog)
            done.append(point)
            events?(.scored(point))
            if k != points { try? FileManager.default.removeItem(at: sampleDir) }   // keep only the final samples
        }
        return done.sorted { $0.index < $1.index }
    }

    /// `grid` (RGB) under a white band holding `title`, shortened to fit the grid's width.
    static func titled(_ grid: Image, _ title: String) -> Image {
        let band = BitmapFont.height() + 8
        // Whole words that fit (a dangling "+" dropped), else as many letters as fit.
        var words = title.split(separator: " ").map(String.init)
        while words.count > 1, BitmapFont.width(of: words.joined(separator: " ")) > grid.width - 8 || words.last == "+" {
            words.removeLast()
        }
        var text = words.joined(separator: " ")
        while text.count > 1, BitmapFont.width(of: text) > grid.width - 8 { text.removeLast() }
        var pixels = [UInt8](repeating: 255, count: grid.width * band * 3)
        pixels += grid.pixels
        var out = Image(width: grid.width, height: grid.height + band, channels: 3, pixels: pixels)
        BitmapFont.draw(text, into: &out, x: 4, y: 4, color: (0, 0, 0))
        return out
    }

    /// `seconds` in minutes as the report writes them: two decimals below ten minutes (a quick
    /// run's 0.25-minute budget is not "0.2" beside arms of "0.3"), else one.
    public static func minutes(_ seconds: Double) -> String { String(format: seconds < 600 ? "%.2f" : "%.1f", seconds / 60) }

    /// Writes `report.md`, `report.json`, `fid_vs_time.png` and `grids/arms.png` from `points`.
    public func writeReport(_ points: [Point]) throws {
        try recordEncoder(pretty: true).encode(points).write(to: folder.appendingPathComponent("report.json"), options: .atomic)
        func kid(_ p: Point) -> String { String(format: "%.4f", p.kid) + (p.kidStd.map { String(format: " ± %.4f", $0) } ?? "") }
        var md = "# MaskDM compare\n\nBudget per arm: \(Self.minutes(budgetSeconds)) minutes of summed step time; "
        md += "A and C pre-train for \(Int(pretrainShare * 100))% of it.\n\n"
        md += "| arm | train time (min) | steps | images seen | TFLOPs | FID | KID |\n|---|---|---|---|---|---|---|\n"
        let finals = arms.compactMap { a in points.filter { $0.arm == a }.max { $0.index < $1.index } }
        for p in finals {
            md += "| \(p.arm.label) | \(Self.minutes(p.trainSeconds)) | \(p.steps) | \(p.imagesSeen) | "
                + String(format: "%.0f | %.1f | ", p.flops / 1e12, p.fid) + kid(p) + " |\n"
        }
        md += "\nAll points (FID from \(pointSamples) samples before the last point, \(finalSamples) at the last):\n\n"
        md += "| arm | point | stage | train time (min) | steps | FID | KID |\n|---|---|---|---|---|---|---|\n"
        for p in points.sorted(by: { ($0.arm.rawValue, $0.index) < ($1.arm.rawValue, $1.index) }) {
            md += "| \(p.arm.rawValue) | \(p.index) | \(p.stage) | \(Self.minutes(p.trainSeconds)) | \(p.steps) | "
                + String(format: "%.1f | ", p.fid) + kid(p) + " |\n"
        }
        try Data(md.utf8).write(to: folder.appendingPathComponent("report.md"), options: .atomic)
        let colours: [Arm: (UInt8, UInt8, UInt8)] = [.maskedPretrain: (214, 39, 40), .scratch: (31, 119, 180), .unmaskedPretrain: (44, 160, 44)]
        let series = arms.map { a in
            let ps = points.filter { $0.arm == a }.sorted { $0.index < $1.index }
            return (name: a.label, x: ps.map { $0.trainSeconds / 60 }, y: ps.map(\.fid), colour: colours[a] ?? (0, 0, 0))
        }
        try FIDPlot.write(series: series, to: folder.appendingPathComponent("fid_vs_time.png"))
        let grids = arms.compactMap { try? Image(contentsOf: folder.appendingPathComponent("grids/arm-\($0.rawValue).png")) }
        if grids.count == arms.count, let first = grids.first, grids.allSatisfy({ $0.width == first.width && $0.height == first.height }) {
            // Each arm's grid under its name (cut to the grid's width).
            let labelled = zip(arms, grids).map { arm, grid in Self.titled(grid.rgb(), arm.label) }
            try Image.writeGrid(labelled, columns: labelled.count, to: folder.appendingPathComponent("grids/arms.png"), padding: 8, scale: 1)
        }
    }
}
