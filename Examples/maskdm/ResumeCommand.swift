import ArgumentParser
import Foundation
import Pipeline
import Tensor
import ViTDiffusion

/// `maskdm resume RUN`: continues a run folder with the settings it records, so a stopped or
/// killed run needs none of its flags repeated.
struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a run folder (pretrain, finetune or train) with the settings its config.json records: the data, network, recipe, mask, precision, FID schedule and cadences.",
        discussion: "Re-running the original command does the same; this needs no flags. --steps trains further than the recorded step count.")

    @Argument(help: "Run folder.") var folder: String
    @Option(parsing: .unconditional, help: "Train to this many steps (default: the recorded count).") var steps: Int?
    @Option(parsing: .unconditional, help: "Gradient accumulation: each rank's share of a step's batch as N micro-batches (default: the recorded N; the training is the same for any N).")
    var accumulate: Int?
    @Option(parsing: .unconditional, help: "Print a plain progress line every K steps when not on a terminal.") var logEvery: Int = 50
    @Flag(help: "Decode a folder's images per batch instead of holding them in memory (automatic above 2 GiB).") var stream = false
    @Flag(help: "Skip a step whose loss or gradient is not finite, instead of stopping with a checkpoint (default: as recorded).")
    var skipNonFinite = false
    @Option(help: "Matrix-product precision: fp32, or bf16 (needs AVX512_BF16). Default: the run's recorded one.")
    var precision: String?

    func run() throws {
        let url = URL(fileURLWithPath: folder)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw PipelineError.missingFile(path: url.path, hint: "expected a run folder written by pretrain, finetune or train")
        }
        guard var config = try RunConfig.recorded(in: url) else {
            let hint = JobFolder(url)?.resumeHint ?? "this folder records no run settings; re-run the command that trained it, with its flags"
            throw PipelineError.missingFile(path: url.appendingPathComponent("config.json").path, hint: hint)
        }
        // An arm of `maskdm compare` trains to a time budget between the comparison's scored
        // points: trained on here, it would run to the end and spoil the FID-against-time curve.
        if config.timeBudget != nil {
            throw ValidationError("\(url.path) is a stage of `maskdm compare` (it trains to a time budget): "
                                  + "re-run `maskdm compare --out \(url.deletingLastPathComponent().deletingLastPathComponent().path)` with its flags to resume it")
        }
        if let steps {
            guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
            config.recipe.steps = steps
        }
        if let accumulate {
            guard accumulate >= 1 else { throw ValidationError("--accumulate must be at least 1, got \(accumulate)") }
            config.recipe.accumulationSteps = accumulate
        }
        if skipNonFinite { config.recipe.skipNonFiniteSteps = true }     // past a step that stopped the run
        // As a re-run without --precision: the recorded precision applies when the run opens
        // (with its own message on a CPU that cannot run it); --precision overrides it now.
        config.precision = try precision.map { try Gemm.Precision.apply(argument: $0) }
        // The default FID reference is a cache: written again, with the limit it was written
        // with, if it has been deleted (as the original command would).
        var referenceLimit: [String] = []
        if var e = config.evaluation, !FileManager.default.fileExists(atPath: e.reference),
           let limit = DataSource.cachedReferenceLimit(e.reference, size: config.model.imageHeight) {
            e.reference = ""
            config.evaluation = e
            referenceLimit = ["--fid-reference-limit", String(limit)]
        }
        print("resuming \(config.stage.rawValue) in \(url.path) on \(config.data) (\(config.recipe.steps) steps)")
        // The stage's own path, with the recorded settings in place of flags.
        let options = try StageOptions.parse(["--data", config.data, "--out", url.path, "--log-every", String(logEvery)]
                                             + (stream ? ["--stream"] : []) + referenceLimit)
        // A fine-tuning run stopped before its first checkpoint starts again from its --init weights.
        let initial = config.initialization.map { path -> (MaskedUViT) throws -> Void in
            { model in try WeightLoading.loadOnline(from: URL(fileURLWithPath: path), into: model) }
        }
        do { try options.train(config, initialWeights: initial) } catch PipelineError.invalidOption(let name, let problem)
            where ["folder (--out)", "out"].contains(name) {
            throw PipelineError.invalidOption(name: "run folder", problem: problem)      // resume has no --out
        }
    }
}
extension Resume: DataParallelCommand {}
