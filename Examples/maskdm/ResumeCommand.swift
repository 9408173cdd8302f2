import ArgumentParser
import Foundation
import Pipeline
import ViTDiffusion

/// `maskdm resume RUN`: continues a run folder with the settings it records, so a stopped or
/// killed run needs none of its flags repeated.
struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a run folder (pretrain, finetune or train) with the settings its config.json records: the data, network, recipe, mask, precision, FID schedule and cadences.",
        discussion: "Re-running the original command does the same; this needs no flags. --steps trains further than the recorded step count.")

    @Argument(help: "Run folder.") var folder: String
    @Option(parsing: .unconditional, help: "Train to this many steps (default: the recorded count).") var steps: Int?
    @Option(parsing: .unconditional, help: "Print a plain progress line every K steps when not on a terminal.") var logEvery: Int = 50
    @Flag(help: "Decode a folder's images per batch instead of holding them in memory (automatic above 2 GiB).") var stream = false

    func run() throws {
        let url = URL(fileURLWithPath: folder)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw PipelineError.missingFile(path: url.path, hint: "expected a run folder written by pretrain, finetune or train")
        }
        guard var config = try RunConfig.recorded(in: url) else {
            throw PipelineError.missingFile(path: url.appendingPathComponent("config.json").path,
                                            hint: "this folder records no run settings; re-run the command that trained it, with its flags")
        }
        if let steps {
            guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
            config.recipe.steps = steps
        }
        print("resuming \(config.stage.rawValue) in \(url.path) on \(config.data) (\(config.recipe.steps) steps)")
        // The stage's own path, with the recorded settings in place of flags.
        let options = try StageOptions.parse(["--data", config.data, "--out", url.path, "--log-every", String(logEvery)]
                                             + (stream ? ["--stream"] : []))
        // A fine-tuning run stopped before its first checkpoint starts again from its --init weights.
        let initial = config.initialization.map { path -> (MaskedUViT) throws -> Void in
            { model in try WeightLoading.loadOnline(from: URL(fileURLWithPath: path), into: model) }
        }
        try options.train(config, initialWeights: initial)
    }
}
extension Resume: DataParallelCommand {}
