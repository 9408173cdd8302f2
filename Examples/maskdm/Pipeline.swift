import ArgumentParser
import Foundation
import Pipeline
import Tensor
import ViTDiffusion

/// `maskdm pipeline`: the calibrated two-stage demo on the embedded emoji (resumable).
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "MaskDM's two stages on the emoji: masked pre-training on the 3,811 non-face emoji, fine-tuning on the 115 faces, then samples and FID/KID.")

    @Option(help: "Job folder (re-running resumes it).") var out = "runs/demo"
    @Option(help: "Pre-training data (bundled name or folder).") var source = "emoji-others"
    @Option(help: "Fine-tuning data and FID reference (bundled name or folder).") var target = "emoji-faces"
    @Flag(help: "Tiny budgets: the whole pipeline in a couple of minutes (a smoke test).") var quick = false
    @Option(parsing: .unconditional, help: "Pre-training steps (default: \(ExperimentRecipe.calibrated.pretrain.steps); --quick: \(ExperimentRecipe.quick.pretrain.steps)).")
    var pretrainSteps: Int?
    @Option(parsing: .unconditional, help: "Fine-tuning steps (default: \(ExperimentRecipe.calibrated.finetune.steps); --quick: \(ExperimentRecipe.quick.finetune.steps)).")
    var finetuneSteps: Int?
    @Option(parsing: .unconditional, help: "Number of final samples (default: \(ExperimentRecipe.calibrated.sampleCount); --quick: \(ExperimentRecipe.quick.sampleCount)).")
    var samples: Int?
    @Flag(help: "Skip FID/KID.") var noFid = false
    @Option(help: "Matrix-product precision of both stages: fp32, or bf16 (needs AVX512_BF16). Default: as `pretrain`'s --precision.")
    var precision: String?

    func run() throws {
        StopSignal.install()
        var recipe = quick ? ExperimentRecipe.quick : .calibrated
        for (flag, value) in [("--pretrain-steps", pretrainSteps), ("--finetune-steps", finetuneSteps)] {
            if let value, value < 1 { throw ValidationError("\(flag) must be at least 1, got \(value)") }
        }
        if let pretrainSteps { recipe.pretrain.steps = pretrainSteps }
        if let finetuneSteps { recipe.finetune.steps = finetuneSteps }
        if let samples { recipe.sampleCount = samples }
        if let precision { recipe.precision = try Gemm.Precision.apply(argument: precision) }
        print("two-stage demo: \(recipe.model); pre-train \(recipe.pretrain.steps) steps (\(recipe.pretrain.mask), batch \(recipe.pretrain.batchSize)) "
              + "on \(source), fine-tune \(recipe.finetune.steps) steps (batch \(recipe.finetune.batchSize)) on \(target), "
              + "\(recipe.sampleCount) samples with \(recipe.sampler)")
        var printers: [String: ProgressPrinter] = [:]
        let demo = TwoStageDemo(folder: URL(fileURLWithPath: out), recipe: recipe)
        let report: TwoStageDemo.Report
        do {
            report = try demo.run(source: DataSource(argument: source), target: DataSource(argument: target), evaluateFID: !noFid) { stage, event in
                if printers[stage] == nil {
                    printers.values.forEach { $0.finish() }
                    printers[stage] = ProgressPrinter(label: stage, total: stage == "pretrain" ? recipe.pretrain.steps : recipe.finetune.steps)
                }
                printers[stage]?.handle(event)
            }
        } catch let e as PipelineError {
            printers.values.forEach { $0.finish() }
            try e.endCommand()
        }
        printers.values.forEach { $0.finish() }
        print(report.table)
    }
}

/// `maskdm compare`: masked pre-training vs scratch vs unmasked pre-training at equal time.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The paper's comparison in miniature: (A) masked pre-train + fine-tune, (B) scratch, (C) unmasked pre-train + fine-tune, equal training time per arm; FID/KID along each arm.")

    @Option(help: "Job folder (re-running resumes it).") var out = "runs/compare"
    @Option(help: "Pre-training data.") var source = "emoji-others"
    @Option(help: "Target data (fine-tuning, scratch training and FID reference).") var target = "emoji-faces"
    @Option(parsing: .unconditional, help: "Training minutes per arm (summed step time).") var minutes: Double = 30
    @Option(parsing: .unconditional, help: "Share of A's and C's budget spent pre-training.") var pretrainShare = 0.5
    @Option(parsing: .unconditional, help: "Scored points per arm.") var points = 5
    @Option(parsing: .unconditional, help: "Samples at intermediate points.") var pointSamples = 100
    @Option(parsing: .unconditional, help: "Samples at the final point.") var finalSamples = 400
    @Option(help: "Arms to run (subset of ABC).") var arms = "ABC"
    @Flag(help: "Tiny budgets and network (a smoke test).") var quick = false
    @Option(help: "Matrix-product precision of every arm: fp32, or bf16 (needs AVX512_BF16). Default: as `pretrain`'s --precision.")
    var precision: String?

    func run() throws {
        StopSignal.install()
        guard minutes > 0 && minutes.isFinite else { throw ValidationError("--minutes must be a positive number, got \(minutes)") }
        guard pretrainShare > 0 && pretrainShare < 1 else {
            throw ValidationError("--pretrain-share must be between 0 and 1 (exclusive), got \(pretrainShare)")
        }
        guard points >= 1 else { throw ValidationError("--points must be at least 1, got \(points)") }
        for (flag, value) in [("--point-samples", pointSamples), ("--final-samples", finalSamples)] where value < 2 {
            throw ValidationError("\(flag) must be at least 2 (FID needs 2 samples), got \(value)")
        }
        guard !arms.isEmpty else { throw ValidationError("--arms is empty: name at least one of A, B and C") }
        guard Set(arms).count == arms.count else { throw ValidationError("--arms lists an arm twice: '\(arms)'") }
        var recipe = quick ? ExperimentRecipe.quick : .calibrated
        if let precision { recipe.precision = try Gemm.Precision.apply(argument: precision) }
        if quick { print("--quick: at most 0.25 minutes, 2 points, 16 and 32 samples an arm") }
        var experiment = CompareExperiment(folder: URL(fileURLWithPath: out), recipe: recipe,
                                           budgetSeconds: (quick ? min(minutes, 0.25) : minutes) * 60)
        experiment.pretrainShare = pretrainShare
        experiment.points = quick ? min(points, 2) : points
        experiment.pointSamples = quick ? min(pointSamples, 16) : pointSamples
        experiment.finalSamples = quick ? min(finalSamples, 32) : finalSamples
        experiment.arms = try arms.map { c in
            guard let a = CompareExperiment.Arm(rawValue: String(c)) else { throw ValidationError("--arms: unknown arm '\(c)' (A, B, C)") }
            return a
        }
        do {
            try experiment.run(source: DataSource(argument: source), target: DataSource(argument: target)) { event in
                switch event {
                case .training(let arm, let stage, .checkpoint(_, let step)):
                    print("arm \(arm.rawValue) \(stage): step \(step)"); fflush(nil)
                case .scored(let p):
                    print("arm \(p.arm.rawValue) point \(p.index): \(CompareExperiment.minutes(p.trainSeconds)) min, \(p.steps) steps (\(p.stage)), "
                          + String(format: "FID %.1f, KID %.4f (%d samples)", p.fid, p.kid, p.samples))
                    fflush(nil)
                default: break
                }
            }
        } catch let e as PipelineError {
            try e.endCommand()
        }
        print("report: \(out)/report.md, plot: \(out)/fid_vs_time.png, grids: \(out)/grids/")
    }
}

extension PipelineError {
    /// How a command ends on this error: a stop prints its message and exits with the signal's
    /// status (an `ExitCode` that `MaskDM.main` turns into an orderly exit, MPI included);
    /// anything else is rethrown.
    func endCommand() throws -> Never {
        if case .interrupted = self { print(description); fflush(nil); throw ExitCode(StopSignal.exitStatus) }
        throw self
    }
}
