import ArgumentParser
import Foundation
import Pipeline
import Schedules
import Tensor
import ViTDiffusion

/// `maskdm sample`: numbered PNGs and a grid from a checkpoint's EMA (or online) weights.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw samples from a checkpoint (EMA weights by default); re-running continues from the files already written.")

    @Option(help: "A run folder or a project checkpoint (.safetensors).") var checkpoint: String
    @Option(parsing: .unconditional, help: "Total number of samples in --out.") var count: Int
    @Option(help: "Output folder of numbered PNGs; a grid of the first 64 goes beside it (OUT.png).") var out: String
    @Option(help: "Sampler: ddim, ddpm or dpm (DPM-Solver++ 2M).") var sampler = "dpm"
    @Option(parsing: .unconditional, help: "Sampler steps (default: 250 for ddim, 25 for dpm).") var steps: Int?
    @Option(parsing: .unconditional, help: "DDIM eta (default 1).") var eta: Double?
    @Flag(help: "Use the EMA or the online weights of the checkpoint.") var weights: WeightChoice = .ema
    @Option(parsing: .unconditional, help: "Images per network batch.") var batch = 64
    @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Matrix-product precision: fp32, or bf16 (needs AVX512_BF16). Default: MASKDM_GEMM_ISA's, else fp32.")
    var precision: String?

    func run() throws {
        if let precision { try Gemm.Precision.apply(argument: precision) }
        let url = try WeightLoading.resolve(URL(fileURLWithPath: checkpoint))
        guard !WeightLoading.isTorchFile(url) else {
            throw ValidationError("'\(url.path)' is a PyTorch file: convert it first (maskdm convert REF.pt --config FILE.yml --out CKPT.safetensors)")
        }
        let (_, recipe) = try DiffusionTrainer.describe(checkpoint: url)
        let model = try MaskedUViT.load(checkpoint: url, ema: weights == .ema)
        guard count >= 1 else { throw ValidationError("--count must be at least 1, got \(count)") }
        let kind = try SamplerKind(name: sampler, steps: steps, eta: eta)
        if eta != nil {
            guard case .ddim = kind else { throw ValidationError("--eta is DDIM's; \(kind) has none (use --sampler ddim, or drop --eta)") }
        }
        if steps != nil, kind == .ddpm { throw ValidationError("--sampler ddpm runs all of the schedule's steps; drop --steps") }
        let folder = URL(fileURLWithPath: out)
        let t0 = Date()
        StopSignal.install()
        let terminal = ProgressPrinter.isTerminal(STDOUT_FILENO)
        let drawn = try SampleWriter.write(model: model, objective: recipe.objective, schedule: recipe.schedule.schedule(), sampler: kind,
                                           count: count, batchSize: batch, seed: seed, to: folder,
                                           gridURL: folder.appendingPathExtension("png"), communicator: World.communicator,
                                           progress: { done, total in
                                               print(terminal ? "\rsampled \(done)/\(total)" : "sampled \(done)/\(total)",
                                                     terminator: terminal ? "" : "\n")
                                               fflush(nil)
                                           }, stop: { StopSignal.isRequested })
        if drawn > 0, terminal { print("") }
        // Every rank stops at the same round, whichever received the signal, and exits with its status
        // (the collective on every rank, whatever each one sees on disk).
        if World.communicator.size > 1 { try StopSignal.shareSignal(over: World.communicator) }
        if StopSignal.signalNumber != 0 || StopSignal.isRequested, SampleWriter.existingCount(in: folder) < count {
            print("stopped with \(SampleWriter.existingCount(in: folder)) of \(count) samples in \(folder.path); "
                  + "re-run the same command to draw the rest")
            fflush(nil)
            throw ExitCode(StopSignal.exitStatus)
        }
        let secs = Date().timeIntervalSince(t0)
        print("\(drawn) new samples (\(max(0, count - drawn)) were there) with \(kind) in \(Gemm.precision.rawValue)"
              + " in \(ProgressPrinter.duration(secs))" + String(format: " (%.2f images/s)", drawn > 0 ? Double(drawn) / secs : 0)
              + " -> \(folder.path) (grid: \(folder.appendingPathExtension("png").path))")
    }
}

/// `--ema` or `--online`: which weights of a checkpoint a command uses (`sample` and `forward`
/// take the same pair, with their own defaults).
enum WeightChoice: String, EnumerableFlag {
    case ema, online
}

/// `maskdm describe`: what a config or checkpoint builds.
struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe what a reference YAML config or a checkpoint builds; for a run folder, also where the run stands (step, loss, FID scores, checkpoints); for the folder of a pipeline or compare job, where each of its runs stands. Exit status 1 when a run's checkpoint.safetensors is damaged or missing while the run got further, or a run of a job cannot be read.")

    @Argument(help: "A reference YAML config, a project checkpoint, a run folder or a job folder (pipeline, compare).") var file: String
    @Flag(help: "One JSON object: parameters, image_size, patch_size, tokens, mask, batch_size, learning_rate, schedule (and run, for a run folder); for a job folder: folder, kind and runs.") var json = false

    func run() throws {
        let url = URL(fileURLWithPath: file)
        // A job's folder (`maskdm pipeline`, `compare`): where each of its runs stands.
        if let job = JobFolder(url), !job.runs.isEmpty {
            let runs = job.progress()                      // read once: the report and the status agree
            print(json ? job.json(of: runs) : job.text(of: runs))
            if runs.contains(where: { $0.progress == nil || $0.progress?.checkpointProblem != nil }) { throw ExitCode.failure }
            return
        }
        let d = try ModelDescription(describing: url)
        print(json ? d.json : d.text)
        // A run folder whose checkpoint `resume` would refuse: said in the text, and in the status.
        if d.run?.checkpointProblem != nil { throw ExitCode.failure }
    }
}

/// `maskdm convert`: a reference training state into a project checkpoint.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a reference training state (.pt: {step, model, opt, ema, scaler}) into a project checkpoint with online and EMA weights.")

    @Argument(help: "The reference .pt file.") var reference: String
    @Option(help: "The reference YAML config the state was trained with.") var config: String
    @Option(help: "Output .safetensors.") var out: String

    func run() throws {
        let report = try ReferenceConversion.convert(reference: URL(fileURLWithPath: reference), config: URL(fileURLWithPath: config),
                                                     output: URL(fileURLWithPath: out))
        print("wrote \(out): \(report.parameters) parameters, step \(report.step.map(String.init) ?? "unknown"), "
              + (report.hasEMA ? "online + EMA weights" : "online weights (the file has no EMA; EMA = online)"))
    }
}
