import Foundation
import Tensor

/// Where a run folder stands, read from its files without opening the run (no lock is taken and
/// no weights are loaded, so it can be read while the run trains): the step of its checkpoint
/// against the step count it records, the training time, the recent loss, the FID scores and
/// the checkpoints kept. `maskdm describe RUN` prints it.
///
/// ```swift
/// let progress = try RunProgress(folder: URL(fileURLWithPath: "runs/pre"))
/// print(progress.step, progress.steps ?? 0, progress.best?.fid ?? .nan)
/// ```
public struct RunProgress: Sendable, Equatable {
    /// The stage (`pretrain`, `finetune`, `train`), from `config.json` or the checkpoint.
    public var stage: String?
    /// The training data, as the run records it.
    public var data: String?
    /// The step of `checkpoint.safetensors` (0 without one).
    public var step: Int
    /// What is wrong with `checkpoint.safetensors` that resuming the run would refuse: it
    /// cannot be read, records no valid step, or is missing while numbered checkpoints or the
    /// log show the run got further (see ``TrainingRun``). nil when none of these is found (the
    /// weights themselves are checked when they load) or the run has not yet written one.
    public var checkpointProblem: String?
    /// The step count the run trains to (`config.json`'s), nil when the folder has no config.
    public var steps: Int?
    /// Summed step seconds up to the checkpoint, when the checkpoint records them.
    public var trainSeconds: Double?
    /// The mean loss of the last (up to) 20 logged steps up to the checkpoint's step, and how
    /// many steps that mean covers; nil when none is logged.
    public var recentLoss: (loss: Float, steps: Int)?
    /// The FID scores in `fid.jsonl`, oldest first.
    public var evaluations: [EvaluationRecord]
    /// The steps of the numbered checkpoints kept, oldest first.
    public var numberedCheckpoints: [Int]
    /// Whether the folder holds `checkpoint-best.safetensors`.
    public var hasBestCheckpoint: Bool
    /// The lowest FID among the scores that compare with the run's current schedule (the one
    /// `checkpoint-best.safetensors` holds; of all scores when the folder records no schedule).
    public var best: EvaluationRecord?

    /// Reads `folder`'s `config.json`, checkpoint metadata, `log.jsonl` and `fid.jsonl`; a file
    /// that is missing or unreadable leaves its part empty. Throws
    /// ``PipelineError/missingFile(path:hint:)`` when `folder` is not a folder, or holds neither a
    /// config nor a checkpoint.
    public init(folder: URL) throws {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: folder.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw PipelineError.missingFile(path: folder.path, hint: "expected a run folder")
        }
        let config = try? RunConfig.recorded(in: folder)
        let checkpoint = folder.appendingPathComponent("checkpoint.safetensors")
        // The log and the numbered checkpoints are read before the checkpoint is looked for: a
        // run writes its checkpoint before either shows it got past it, so a run that writes its
        // first checkpoint meanwhile is never taken for one whose checkpoint went missing.
        let logged = StepRecord.parseLog(lenientText(of: folder.appendingPathComponent("log.jsonl")))
        let numbered = (try? TrainingRun.numberedCheckpoints(in: folder)) ?? []
        let missing = TrainingRun.missingCheckpointProblem(numbered: numbered, checkpointEvery: config?.recipe.checkpointEvery ?? 0,
                                                           loggedSteps: logged)
        var metadata: [String: String]? = nil
        if fm.fileExists(atPath: checkpoint.path) {
            do { metadata = try SafetensorsFile(contentsOf: checkpoint).metadata } catch {
                checkpointProblem = "unreadable: \(error)"
            }
        } else {
            checkpointProblem = missing
        }
        guard config != nil || metadata != nil else {
            throw PipelineError.missingFile(path: folder.appendingPathComponent("config.json").path,
                                            hint: "the folder holds no run (no config.json and no readable checkpoint.safetensors)")
        }
        // Metadata is shown on a terminal: its control characters are not passed through.
        func printable(_ s: String?) -> String? { s.map(withoutControlCharacters) }
        stage = config?.stage.rawValue ?? printable(metadata?["stage"])
        data = config?.data ?? printable(metadata?["data"])
        let recordedStep = metadata.map { $0["step"].flatMap { Int($0) } ?? -1 }
        if let recordedStep, recordedStep < 0 {
            checkpointProblem = "records no valid step (its metadata's step is "
                + (metadata?["step"].map { "'\(printable($0) ?? "")'" } ?? "missing") + ")"
        }
        let step = max(0, recordedStep ?? 0)
        self.step = step
        steps = config?.recipe.steps
        trainSeconds = metadata?["train_seconds"].flatMap { Double($0) }.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
        let recent = logged.filter { $0.step <= step && $0.loss.isFinite }.suffix(20)
        let mean = recent.map { Double($0.loss) }.reduce(0, +) / Double(max(1, recent.count))     // in Double: no overflow
        recentLoss = recent.isEmpty || !Float(mean).isFinite ? nil : (Float(mean), recent.count)
        evaluations = EvaluationRecord.parseLog(lenientText(of: folder.appendingPathComponent("fid.jsonl")))
        // The best among the scores taken as the run now scores (as checkpoint-best.safetensors is).
        if let e = config?.evaluation, let config {
            best = EvaluationRecord.best(of: evaluations.filter { $0.isScored(like: e, sampler: e.sampler ?? config.sampler) })
        } else {
            best = EvaluationRecord.best(of: evaluations)
        }
        numberedCheckpoints = numbered.map(\.step)
        hasBestCheckpoint = fm.fileExists(atPath: folder.appendingPathComponent("checkpoint-best.safetensors").path)
    }

    /// Lines for `maskdm describe`: the run, its scores and its checkpoints.
    public var text: String {
        var run = "\(stage ?? "run")\(data.map { " on \($0)" } ?? ""): step \(step)"
        if let steps { run += " of \(steps)" + (step >= steps ? " (done)" : "") }
        if let trainSeconds {
            run += ", \(ProgressPrinter.duration(trainSeconds)) of training"
        }
        if let (loss, n) = recentLoss { run += String(format: "; loss %.4f (mean of the last %d steps)", loss, n) }
        var lines = ["  run         " + run]
        if let best, let last = evaluations.last {
            lines.append("  scores      \(evaluations.count) FID score\(evaluations.count == 1 ? "" : "s")"
                         + String(format: "; latest %.2f at step ", last.fid) + "\(last.step)"
                         + String(format: "; best %.2f (KID %.4f) at step ", best.fid, best.kid) + "\(best.step)"
                         + (hasBestCheckpoint ? " (checkpoint-best.safetensors)" : ""))
        }
        let numbered = numberedCheckpoints.isEmpty ? "none numbered" : "numbered at steps " + numberedCheckpoints.map(String.init).joined(separator: ", ")
        let latest = checkpointProblem.map { "checkpoint.safetensors \($0); " }
            ?? (step > 0 ? "checkpoint.safetensors at step \(step); " : "none yet; ")
        lines.append("  checkpoints " + latest + numbered)
        return lines.joined(separator: "\n")
    }

    /// One JSON object (keys sorted, snake_case): `best_fid`, `best_step`, `checkpoint_problem`, `checkpoints`,
    /// `data`, `loss`, `scores`, `stage`, `step`, `steps`, `train_seconds` (`null` for what the
    /// folder does not record).
    public var json: String {
        func text(_ s: String?) -> String {
            guard let s, let d = try? JSONEncoder().encode(s) else { return "null" }
            return String(decoding: d, as: UTF8.self)
        }
        func number(_ x: Int?) -> String { x.map { "\($0)" } ?? "null" }
        func number(_ x: Double?) -> String { x.flatMap { $0.isFinite ? "\($0)" : nil } ?? "null" }
        return "{\"best_fid\": \(number(best?.fid)), \"best_step\": \(number(best?.step)), "
            + "\"checkpoint_problem\": \(text(checkpointProblem)), "
            + "\"checkpoints\": [\(numberedCheckpoints.map(String.init).joined(separator: ", "))], \"data\": \(text(data)), "
            + "\"loss\": \(number(recentLoss.map { Double("\($0.loss)") ?? Double($0.loss) })), \"scores\": \(evaluations.count), \"stage\": \(text(stage)), "
            + "\"step\": \(step), \"steps\": \(number(steps)), \"train_seconds\": \(number(trainSeconds))}"
    }

    /// Field-wise equality.
    public static func == (a: RunProgress, b: RunProgress) -> Bool {
        a.stage == b.stage && a.data == b.data && a.step == b.step && a.checkpointProblem == b.checkpointProblem && a.steps == b.steps && a.trainSeconds == b.trainSeconds
            && a.recentLoss?.loss == b.recentLoss?.loss && a.recentLoss?.steps == b.recentLoss?.steps
            && a.evaluations == b.evaluations && a.numberedCheckpoints == b.numberedCheckpoints && a.hasBestCheckpoint == b.hasBestCheckpoint
            && a.best == b.best
    }
}
