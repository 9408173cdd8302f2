import Foundation
import ImageIO
import Masking
import Metrics
import NN
import Schedules
import Tensor
import ViTDiffusion

/// A training stage that lives in a run folder and resumes from it.
///
/// Layout of `RUN/`: `config.json` (the resolved ``RunConfig``), `log.jsonl` (one ``StepRecord``
/// per step), `checkpoint.safetensors` (latest, written atomically) and `checkpoint-N.safetensors`
/// (the last few), `samples/step-N.png` (EMA sample grids) and `loss.png` (the loss curve). With
/// an ``RunConfig/evaluation`` schedule also `fid.jsonl` (one ``EvaluationRecord`` per score),
/// `fid.png`, `fid-samples/` (the latest scored images) and `checkpoint-best.safetensors` (the
/// checkpoint of the lowest FID).
///
/// Constructing a run on a folder that already holds a checkpoint of the same config resumes
/// it: weights, EMA, AdamW moments, step and the summed step time are restored, the log is cut
/// back to the checkpoint's step, and because every random draw of step k derives from
/// (seed, k) the resumed run ends bit-identical to an uninterrupted one (same thread count).
///
/// In a job of several ranks (an `MPICommunicator`), every rank opens the same folder (a shared
/// file system) and trains its share of each batch; rank 0 alone writes `config.json`, the log,
/// checkpoints, grids and plots. The ranks agree each step on stopping and on the time spent, so
/// a Ctrl-C or a time budget ends them all at the same step. A run resumes under any rank count
/// that divides the batch.
///
/// ```swift
/// var recipe = TrainingRecipe.pretraining(batchSize: 64, steps: 500)
/// recipe.checkpointEvery = 100
/// let config = RunConfig(stage: .pretrain, model: .tiny(), recipe: recipe, data: "emoji-others")
/// let run = try TrainingRun(folder: URL(fileURLWithPath: "runs/pre"), config: config)
/// let summary = try run.train(on: dataset)
/// ```
public final class TrainingRun {
    /// The run folder.
    public let folder: URL
    /// The resolved configuration (as in `config.json`).
    public let config: RunConfig
    /// The trainer (online and EMA networks, optimizer, step).
    public let trainer: DiffusionTrainer
    /// The log so far (restored on resume).
    public private(set) var records: [StepRecord] = []
    /// Summed step seconds so far.
    public private(set) var trainSeconds: Double = 0
    /// The FID scores so far (restored on resume; see ``RunConfig/evaluation``).
    public private(set) var evaluations: [EvaluationRecord] = []
    /// The scores of ``evaluations`` taken the way the current schedule scores (same sample
    /// count, sampler and reference; ``EvaluationRecord/isScored(like:sampler:)``): the FIDs that
    /// compare, among which `checkpoint-best.safetensors` is the best. All of them unless the
    /// schedule changed between sittings.
    public var comparableEvaluations: [EvaluationRecord] {
        guard let e = config.evaluation else { return [] }
        return evaluations.filter { $0.isScored(like: e, sampler: e.sampler ?? config.sampler) }
    }
    /// The run folder's lock while this run is open (the writer's; see ``RunFolderLock``).
    private var folderLock: RunFolderLock?
    /// The FID scorer and the reference's features (rank 0's; loaded when the config has an
    /// evaluation schedule).
    private let scoring: (scorer: SampleEvaluator, reference: FolderFeatures?)?
    /// The step of the checkpoint on disk (the writer's).
    private var savedStep: Int
    /// The step the run resumed from (nil for a fresh run).
    public let resumedFrom: Int?
    /// What opening the folder found amiss but could go on with (a damaged `log.jsonl`), one
    /// message each, for the caller to show.
    public private(set) var warnings: [String] = []
    /// The job's processes (the trainer's).
    public var communicator: any Communicator { trainer.communicator }

    /// `RUN/checkpoint.safetensors`.
    public var checkpointURL: URL { folder.appendingPathComponent("checkpoint.safetensors") }
    /// `RUN/log.jsonl`.
    public var logURL: URL { folder.appendingPathComponent("log.jsonl") }
    /// `RUN/config.json`.
    public var configURL: URL { folder.appendingPathComponent("config.json") }
    /// `RUN/samples`.
    public var samplesFolder: URL { folder.appendingPathComponent("samples") }
    /// `RUN/loss.png`.
    public var lossPlotURL: URL { folder.appendingPathComponent("loss.png") }
    /// `RUN/fid.jsonl`: one ``EvaluationRecord`` per score.
    public var evaluationLogURL: URL { folder.appendingPathComponent("fid.jsonl") }
    /// `RUN/checkpoint-best.safetensors`: the checkpoint of the lowest FID so far.
    public var bestCheckpointURL: URL { folder.appendingPathComponent("checkpoint-best.safetensors") }
    /// `RUN/fid-samples`: the images of the latest score.
    public var evaluationSamplesFolder: URL { folder.appendingPathComponent("fid-samples") }
    /// `RUN/fid.png`: FID against the step.
    public var fidPlotURL: URL { folder.appendingPathComponent("fid.png") }
    /// Polled before each step (and, in a single process, before and between the sampling
    /// batches of an FID score, which it abandons): when it returns true, ``train(on:trainSecondsLimit:events:)``
    /// writes a checkpoint and throws ``PipelineError/interrupted(step:checkpoint:)``. By default
    /// the process-wide ``StopSignal`` (SIGINT / SIGTERM). Give a run a flag of its own to stop it
    /// from elsewhere without stopping every other run of the process (as tests do).
    public var stopRequested: @Sendable () -> Bool = { StopSignal.isRequested }

    /// Opens (or creates) the run in `folder`.
    ///
    /// - Parameters:
    ///   - masking: a custom strategy (the config's mask is then recorded as custom).
    ///   - initialWeights: called on a fresh run's new network before the trainer copies it into
    ///     the EMA, e.g. to load pre-trained online weights (fine-tuning). Not called on resume.
    /// - Throws: ``PipelineError/runMismatch(folder:key:existing:requested:)`` when the folder
    ///   holds another run; checkpoint errors naming the file and key;
    ///   ``PipelineError/invalidOption(name:problem:)`` (`precision`) when the requested precision
    ///   cannot run here or the ranks disagree on it, `mask` when the config names a custom
    ///   strategy and `masking` is nil (``checkStrategyIsKnown(_:folder:)``), `settings` when the
    ///   ranks were started with different settings, ``PipelineError/badConfig(path:key:problem:)``
    ///   (`precision`) when the precision `config.json` records cannot; with an evaluation
    ///   schedule, its ``EvaluationSchedule/validate(checkingReference:)`` errors, a missing Inception network
    ///   (``PipelineError/missingFile(path:hint:)``) and the reference folder's errors (its
    ///   features are computed, or read from the cache, and fitted here:
    ///   ``Metrics/MetricsError/tooFewSamples(what:count:needed:)`` naming the folder when it has
    ///   fewer than 2 readable images).
    /// - Parameter communicator: the job's processes (default: this one alone); see the type's notes.
    /// - Parameter memoryLimit: bytes this process can have (default: ``MachineMemory/processLimitBytes``,
    ///   the machine's memory divided among the processes of an `mpirun` job on it);
    ///   a batch whose ``DiffusionTrainer/memoryLowerBound`` exceeds it is refused with
    ///   ``PipelineError/invalidOption(name:problem:)`` (`batchSize (--batch)`) before anything is written.
    public init(folder: URL, config: RunConfig, masking: (any MaskingStrategy)? = nil,
                initialWeights: ((MaskedUViT) throws -> Void)? = nil,
                communicator: any Communicator = SingleProcessCommunicator(),
                memoryLimit: Int? = MachineMemory.processLimitBytes) throws {
        self.folder = folder
        var config = config
        if let masking { config.recipe.mask = MaskSpec(describing: masking) }   // config.json names what runs
        if masking == nil { try Self.checkStrategyIsKnown(config, folder: folder) }
        try config.validate()
        try Self.checkFolder(folder, isOutside: DataSource(argument: config.data))
        let fm = FileManager.default
        let configURL = folder.appendingPathComponent("config.json")
        var recordedPrecision: Gemm.Precision?
        let existing = try RunConfig.recorded(in: folder)
        if let existing {
            if let c = existing.conflict(with: config) {
                throw PipelineError.runMismatch(folder: folder.path, key: c.key, existing: c.existing, requested: c.requested)
            }
            recordedPrecision = existing.precision
        }
        // The kernel is process-wide: a run that fails to start puts back the one it found.
        let kernelBefore = Gemm.instructionSet
        var started = false
        defer { if !started && Gemm.instructionSet != kernelBefore { try? Gemm.select(kernelBefore) } }
        config.precision = try TrainingRun.applyPrecision(requested: config.precision, recorded: recordedPrecision,
                                                          configPath: configURL.path)
        self.config = config
        let checkpoint = folder.appendingPathComponent("checkpoint.safetensors")
        let resuming = fm.fileExists(atPath: checkpoint.path)
        if communicator.size > 1 {
            // Every rank trains in the same precision (each could have its own MASKDM_GEMM_ISA).
            let precisions = try communicator.allGather([config.precision == .bf16 ? 1 : 0]).map { $0.first ?? 0 }
            if Set(precisions).count > 1 {
                throw PipelineError.invalidOption(name: "precision", problem: "the ranks would train in different precisions "
                                                  + "(bf16 on ranks \(precisions.indices.filter { precisions[$0] == 1 }), fp32 on the others): "
                                                  + "give every rank the same precision (--precision) or MASKDM_GEMM_ISA")
            }
            // And with the same settings, from the same folder state, before any collective that
            // depends on them: ranks started with other flags, configs or environments would
            // train apart silently, fail in a collective, or wait forever for each other.
            var settings = Self.settings(of: config)
            settings["recipe.accumulationSteps"] = nil                  // each rank's micro-batches are its own
            for key in ["keepCheckpoints", "sampleEvery", "sampleCount"] { settings[key] = nil }   // rank 0's files alone
            settings["run folder"] = resuming ? "has a checkpoint" : "has no checkpoint"
            try Self.checkRanksAgree(on: settings, communicator: communicator)
        }
        var rng = RandomGenerator(seed: config.recipe.seed)
        let model = MaskedUViT(config: config.model, rng: &rng)
        let loggedSteps = StepRecord.parseLog(lenientText(of: folder.appendingPathComponent("log.jsonl")))
        if !resuming {
            // A run killed before (or while writing) its first checkpoint starts again; one whose checkpoint is gone
            // (numbered ones left, or a log past a checkpoint step) would silently start over.
            if let problem = Self.missingCheckpointProblem(numbered: (try? Self.numberedCheckpoints(in: folder)) ?? [],
                                                           checkpointEvery: config.recipe.checkpointEvery, loggedSteps: loggedSteps) {
                throw PipelineError.badCheckpoint(path: checkpoint.path, problem: problem)
            }
        } else {
            // The checkpoint's own record says what the run was: it must be this run's (not one
            // copied in from another folder, nor resumed under an edited config.json), or its
            // state would go on under other settings and replace the folder's checkpoints.
            let metadata: [String: String]
            do { metadata = try SafetensorsFile(contentsOf: checkpoint).metadata } catch {
                throw CheckpointError(file: checkpoint.path, "\(error)")
            }
            let (model, recipe) = try DiffusionTrainer.describe(metadata: metadata, file: checkpoint.path)
            var recorded = config
            recorded.model = model
            recorded.recipe = recipe
            // Run folders' checkpoints also record the stage and the data (two default runs on
            // other data have the same recipe).
            if let stage = metadata["stage"].flatMap(Stage.init(rawValue:)) { recorded.stage = stage }
            if let data = metadata["data"] { recorded.data = data }
            if let c = recorded.conflict(with: config) {
                guard existing != nil else {
                    throw PipelineError.runMismatch(folder: folder.path, key: c.key, existing: c.existing, requested: c.requested)
                }
                throw PipelineError.badCheckpoint(
                    path: checkpoint.path, problem: "records \(c.key) = \(c.existing), but the run's config.json says \(c.requested): "
                        + "a checkpoint of another run, or an edited config.json; put the run's own checkpoint back "
                        + "(a numbered checkpoint-N.safetensors of this folder) or train elsewhere")
            }
        }
        if !resuming, let initialWeights { try initialWeights(model) }
        trainer = try DiffusionTrainer(model: model, recipe: config.recipe, masking: masking, communicator: communicator)
        try trainer.validateMasking()                                    // before the folder is touched
        try MachineMemory.validate(trainer, limit: memoryLimit)
        if resuming {
            let meta = try trainer.resume(from: checkpoint)
            trainSeconds = meta["train_seconds"].flatMap(Double.init) ?? 0
            resumedFrom = trainer.step
        } else {
            resumedFrom = nil
        }
        if communicator.size > 1 { try Self.checkRanksAgree(on: ["checkpoint step": String(trainer.step)], communicator: communicator) }
        if let schedule = config.evaluation {
            let scorer = try SampleEvaluator()
            // The reference's features now (cached per folder content), kept for every score: a bad
            // reference fails here, not after the first hour of training.
            scoring = (scorer, try scorer.referenceFeatures(of: URL(fileURLWithPath: schedule.reference), communicator: communicator))
        } else {
            scoring = nil
        }
        savedStep = trainer.step
        // The log keeps exactly the steps the checkpoint holds (a kill can leave later lines).
        records = loggedSteps.filter { $0.step <= trainer.step }
        let missing = Set(1...Swift.max(trainer.step, 1)).subtracting(records.map(\.step))
        if trainer.step > 0, !missing.isEmpty, FileManager.default.fileExists(atPath: logURL.path) {
            let shown = missing.sorted().prefix(5).map(String.init).joined(separator: ", ")
            warnings.append("\(logURL.path) lacks \(missing.count) of the \(trainer.step) steps the checkpoint has seen "
                            + "(steps \(shown)\(missing.count > 5 ? ", ..." : "")): damaged or removed lines; their losses are lost")
        }
        // So do the scores: a later one is scored again when training reaches its step.
        let evalText = lenientText(of: evaluationLogURL)
        evaluations = EvaluationRecord.parseLog(evalText).filter { $0.step <= trainer.step }
        // Every rank has read the folder before rank 0 changes it.
        try communicator.barrier()
        if communicator.isWriter {
            // The folder is created only now: a run that fails to start (bad --init weights, a
            // config mismatch) leaves nothing behind.
            try createFolder(folder)
            folderLock = try RunFolderLock(folder: folder)              // no other process trains here now
            // A run killed while writing its checkpoint left the temporary file behind, and one
            // killed while redrawing a plot or a grid left Foundation's (`.dat.nosync...`).
            Safetensors.removeStaleTemporaries(of: checkpoint)
            for sub in [folder, samplesFolder] { removeFoundationTemporaries(in: sub) }
            // (A full disk or a folder in the way: the file named, not Foundation's error code.)
            func write(_ text: String, to url: URL) throws {
                do { try Data(text.utf8).write(to: url, options: .atomic) } catch {
                    throw PipelineError.writeFailed(path: url.path, problem: fileProblem(error, at: url.path))
                }
            }
            try write(config.json, to: configURL)
            try write(records.map { $0.jsonLine + "\n" }.joined(), to: logURL)
            if !evaluations.isEmpty || fm.fileExists(atPath: evaluationLogURL.path) {
                try write(evaluations.map { $0.jsonLine + "\n" }.joined(), to: evaluationLogURL)
            }
            // A kill between a best score's checkpoint and its link left the link behind.
            if resuming, EvaluationRecord.best(of: comparableEvaluations)?.step == trainer.step { try linkBestCheckpoint() }
        }
        started = true
    }

    /// The JSON key path a decoding error points at (`recipe.seed`), or "" for the file as a whole.
    static func decodingKey(of error: Error) -> String {
        let path: [any CodingKey]
        switch error as? DecodingError {
        case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?, .dataCorrupted(let c)?: path = c.codingPath
        case .keyNotFound(let key, let c)?: path = c.codingPath + [key]
        default: path = []
        }
        return path.isEmpty ? "" : path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }

    /// Sets the process's GEMM precision for a run: the requested one, else the one `config.json`
    /// recorded (resume), else the current one; returns it for `config.json`. `current` and
    /// `set` are the process's (``Gemm/precision``, ``Gemm/setPrecision(_:)``) except in tests.
    static func applyPrecision(requested: Gemm.Precision?, recorded: Gemm.Precision?, configPath: String,
                               current: Gemm.Precision = Gemm.precision,
                               set: (Gemm.Precision) throws -> Void = Gemm.setPrecision) throws -> Gemm.Precision {
        let precision = requested ?? recorded ?? current
        guard precision != current else { return precision }
        do {
            try set(precision)
        } catch {
            if requested == nil {
                throw PipelineError.badConfig(path: configPath, key: "precision",
                                              problem: "the run was trained in \(precision.rawValue), but \(error); "
                                                + "set the precision to fp32 (maskdm: --precision fp32) to go on in fp32")
            }
            throw PipelineError.invalidOption(name: "precision", problem: "\(error)")
        }
        return precision
    }

    /// Whether the run has reached its step count or time budget.
    public var isComplete: Bool {
        trainer.step >= config.recipe.steps || (config.timeBudget.map { trainSeconds >= $0 } ?? false)
    }

    /// Something the training loop did, for progress output.
    public enum Event {
        /// A step finished.
        case step(StepRecord)
        /// A checkpoint was written at this step.
        case checkpoint(URL, step: Int)
        /// A sample grid was written at this step.
        case samples(URL, step: Int)
        /// A score (``evaluate(events:)``) is under way at this step: `done` of its `total` images
        /// drawn, or read by the Inception network.
        case scoring(step: Int, phase: ScoringPhase, done: Int, total: Int)
        /// Samples were scored (``evaluate(events:)``); `best`: the lowest FID so far among the
        /// scores that compare (``comparableEvaluations``).
        case evaluation(EvaluationRecord, best: Bool)
    }

    /// The two parts of an FID score.
    public enum ScoringPhase: String, Sendable {
        /// The EMA network draws the samples.
        case sampling
        /// The Inception network reads them.
        case features
    }

    /// What ``train(on:trainSecondsLimit:events:)`` did.
    public struct Summary: Sendable {
        /// Steps completed in total.
        public var step: Int
        /// Steps run in this call.
        public var stepsRun: Int
        /// Summed step seconds of the whole run.
        public var trainSeconds: Double
        /// Wall-clock seconds of this call.
        public var wallSeconds: Double
        /// Mean loss of the last (up to) 20 steps.
        public var finalLoss: Float
        /// Mean training images per second of this call's steps.
        public var imagesPerSecond: Double
    }

    /// Trains until the step count or time budget (or, when given, until the summed step time
    /// reaches `trainSecondsLimit`), checkpointing every `recipe.checkpointEvery` steps and at the
    /// end, sampling every `sampleEvery` steps, scoring FID as ``RunConfig/evaluation`` says (every
    /// `every` steps and at the run's last step; see ``evaluate(events:)``). A stop request (``stopRequested``; by default a
    /// SIGINT/SIGTERM, see ``StopSignal``) finishes the current step, writes a checkpoint and throws
    /// ``PipelineError/interrupted(step:checkpoint:)``.
    @discardableResult
    public func train(on dataset: any TrainingImages, trainSecondsLimit: Double? = nil,
                      events: ((Event) -> Void)? = nil) throws -> Summary {
        let start = Date()
        // The run's precision, again: the process may have switched since init (another run).
        _ = try TrainingRun.applyPrecision(requested: config.precision, recorded: nil, configPath: configURL.path)
        let first = trainer.step
        let writer = communicator.isWriter
        let ranks = communicator.size
        if ranks > 1 {                                                   // one data set: the same images on every rank
            let counts = try communicator.allGather([Int64(dataset.count)]).map { Int($0.first ?? 0) }
            if Set(counts).count > 1 {
                throw PipelineError.invalidOption(
                    name: "data", problem: "the ranks loaded different numbers of training images (\(counts.enumerated().map { "rank \($0): \($1)" }.joined(separator: ", "))): "
                        + "every rank must read the same images (--data, MASKDM_DATA)")
            }
        }
        let log = writer ? try FileHandle(forWritingTo: logURL) : nil
        defer { try? log?.close() }
        try log?.seekToEnd()
        var ran = 0.0
        // A score due at this step that is not on record: a stop or a kill came between the
        // step's checkpoint and its score (or after the last step).
        if trainer.step > 0, scoreIsDue, !evaluations.contains(where: { $0.step == trainer.step }) {
            if try evaluate(events: events) == nil { try stopHere(events: events) }
        }
        // So can a sample grid: a kill between the step's checkpoint and its grid.
        if writer, trainer.step > 0, config.sampleEvery > 0, trainer.step % config.sampleEvery == 0,
           !FileManager.default.fileExists(atPath: sampleGridURL(step: trainer.step).path),
           let grid = try writeSampleGrid() {
            events?(.samples(grid, step: trainer.step))
        }
        let prefetcher = BatchPrefetcher(trainer: trainer, dataset: dataset)
        defer { prefetcher.stop() }
        var stopAgreed = false                                           // several ranks agree after each step
        while !isComplete && trainSeconds < (trainSecondsLimit ?? .infinity) {
            if ranks == 1 ? stopRequested() : stopAgreed { try stopHere(events: events) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let loss: Float
            do {
                // A rank whose images fail stops the step on every rank (all keep their progress).
                let batch: DiffusionTrainer.PreparedBatch
                do { batch = try prefetcher.batch(trainer.step) } catch { try trainer.abandonStep(because: error) }
                prefetcher.prefetch(trainer.step + 1)                    // decoded while this step trains
                loss = try trainer.trainStep(batch: batch)
            } catch {
                // A step's every error comes before its update (its data, its mask, a non-finite
                // loss or gradient), and in a job of several ranks every rank throws at that step.
                try keepProgress(before: error, events: events)
            }
            var seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if ranks > 1 {
                // All ranks stop at the same step and count the same time (the mean).
                var agreed = [stopRequested() ? 1 : 0, seconds]
                try communicator.allReduceSum(&agreed)
                stopAgreed = agreed[0] > 0
                seconds = agreed[1] / Double(ranks)
                if stopAgreed { try StopSignal.shareSignal(over: communicator) }   // one exit status on every rank
            }
            trainSeconds += seconds
            ran += seconds
            let record = StepRecord(step: trainer.step, loss: loss, learningRate: trainer.optimizer.learningRate,
                                    gradientNorm: trainer.lastGradientNorm, seconds: seconds,
                                    imagesPerSecond: Double(config.recipe.batchSize) / seconds, trainSeconds: trainSeconds,
                                    communicationSeconds: ranks > 1 ? trainer.lastStepTimings.communicate : nil)
            records.append(record)
            try folderLock?.confirm()                                     // still this run's folder
            do { try log?.write(contentsOf: Data((record.jsonLine + "\n").utf8)) } catch {
                // A full disk, say: keep this step in a checkpoint if it can be written (rank 0
                // alone writes the log, so the others are not waiting for it).
                try keepProgress(before: PipelineError.writeFailed(path: logURL.path, problem: fileProblem(error, at: logURL.path)),
                                 events: events, everyRank: false)
            }
            events?(.step(record))
            let every = config.recipe.checkpointEvery
            if every > 0, trainer.step % every == 0, !isComplete {
                if writer { try saveCheckpoint(events: events) }
            }
            if writer, config.sampleEvery > 0, trainer.step % config.sampleEvery == 0, let grid = try writeSampleGrid() {
                events?(.samples(grid, step: trainer.step))
            }
            if scoreIsDue, try evaluate(events: events) == nil {
                try stopHere(events: events)                               // a stop abandoned the score
            }
        }
        if writer, !checkpointIsCurrent { try saveCheckpoint(events: events) }
        if writer { try writeLossPlot() }
        let tail = records.suffix(20).map(\.loss).filter(\.isFinite)
        let done = trainer.step - first
        return Summary(step: trainer.step, stepsRun: done, trainSeconds: trainSeconds,
                       wallSeconds: Date().timeIntervalSince(start),
                       finalLoss: tail.isEmpty ? .nan : tail.reduce(0, +) / Float(tail.count),
                       imagesPerSecond: ran > 0 ? Double(done * config.recipe.batchSize) / ran : 0)
    }

    /// Whether the checkpoint on disk is this step's (the writer's view).
    private var checkpointIsCurrent: Bool {
        savedStep == trainer.step && FileManager.default.fileExists(atPath: checkpointURL.path)
    }

    /// Whether ``RunConfig/evaluation`` asks for a score at this step: every `every` steps and at
    /// the run's last step.
    private var scoreIsDue: Bool {
        guard let e = config.evaluation else { return false }
        return trainer.step % e.every == 0 || isComplete
    }

    /// The end of a run whose step failed without touching the training state (unreadable data,
    /// a non-finite loss): the last finished step's checkpoint (unless it is on disk), so the
    /// steps since the previous one are not lost, then `error`.
    /// `everyRank`: whether every rank of a job stops here at this step (false: rank 0 alone, and
    /// its error then ends the job).
    private func keepProgress(before error: Error, events: ((Event) -> Void)?, everyRank: Bool = true) throws -> Never {
        var saveError: Error?
        do { if trainer.step > 0 { try checkpointNow(events: events) } } catch { saveError = error }
        // Every rank comes here at the same step (the trainer agrees on failures); the others
        // wait for the checkpoint (or rank 0's failure to write it), as in a stop: a rank whose
        // error ended the job first would abort rank 0 in the middle of writing it.
        if communicator.size > 1, everyRank { try communicator.barrier() }
        throw saveError ?? error
    }

    /// The writer's end-of-run files: this step's checkpoint unless it is on disk (saving redraws
    /// `loss.png`), else `loss.png` alone.
    private func checkpointNow(events: ((Event) -> Void)?) throws {
        guard communicator.isWriter else { return }
        if checkpointIsCurrent { try? writeLossPlot() } else { try saveCheckpoint(events: events) }
    }

    /// The end of a stopped run: this step's checkpoint (unless it is on disk) and the loss plot,
    /// then ``PipelineError/interrupted(step:checkpoint:)``.
    private func stopHere(events: ((Event) -> Void)?) throws -> Never {
        var saveError: Error?
        do { try checkpointNow(events: events) } catch { saveError = error }
        // The other ranks wait for the checkpoint (or rank 0's failure to write it): a rank that
        // exits first makes mpirun end the job, which would kill rank 0 in the middle of writing it.
        if communicator.size > 1 { try communicator.barrier() }
        if let saveError { throw saveError }
        throw PipelineError.interrupted(step: trainer.step, checkpoint: checkpointURL.path)
    }

    /// Scores the EMA network now: draws ``EvaluationSchedule/samples`` images into
    /// `fid-samples/` (replacing the previous score's), scores them against the reference, appends
    /// the ``EvaluationRecord`` to `fid.jsonl` and redraws `fid.png`. When the FID is the lowest so
    /// far, the checkpoint of this step is written (if it is not on disk yet) and linked as
    /// `checkpoint-best.safetensors`. In a job of several ranks every rank calls it (they share the
    /// sampling and the samples' features) and every rank returns the record. In a single
    /// process a stop request (``stopRequested``) before the sampling or between two of its batches abandons the score:
    /// nothing is recorded and nil is returned (``train(on:trainSecondsLimit:events:)`` scores that
    /// step when the run resumes).
    /// - Throws: ``PipelineError/invalidOption(name:problem:)`` when the config has no
    ///   evaluation schedule; sampling, image and FID errors.
    @discardableResult
    public func evaluate(events: ((Event) -> Void)? = nil) throws -> EvaluationRecord? {
        guard let schedule = config.evaluation, let scoring else {
            throw PipelineError.invalidOption(name: "evaluation", problem: "the run's config has no evaluation schedule")
        }
        if communicator.size == 1, stopRequested() { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        let samples = evaluationSamplesFolder
        let step = trainer.step, sampler = schedule.sampler ?? config.sampler
        try folderLock?.confirm()                                        // (the writer's) still this run's folder
        // The previous score's images must go: SampleWriter would count them as drawn.
        if communicator.isWriter, FileManager.default.fileExists(atPath: samples.path) { try FileManager.default.removeItem(at: samples) }
        try communicator.barrier()                                       // nobody counts the old images
        events?(.scoring(step: step, phase: .sampling, done: 0, total: schedule.samples))
        let stopScore: (() -> Bool)? = communicator.size == 1 ? { [stopRequested] in stopRequested() } : nil   // under mpirun the score finishes first
        try SampleWriter.write(model: trainer.emaModel, objective: config.recipe.objective, schedule: trainer.schedule,
                               sampler: sampler, count: schedule.samples,
                               batchSize: schedule.batchSize, seed: schedule.seed, to: samples, communicator: communicator,
                               progress: { events?(.scoring(step: step, phase: .sampling, done: $0, total: $1)) },
                               stop: stopScore)
        if communicator.size == 1, SampleWriter.existingCount(in: samples) < schedule.samples { return nil }   // stopped
        events?(.scoring(step: step, phase: .features, done: 0, total: schedule.samples))
        let score = try scoring.scorer.score(samples: samples, referenceFeatures: scoring.reference, communicator: communicator,
                                             progress: { _, done, total in events?(.scoring(step: step, phase: .features, done: done, total: total)) })
        // Rank 0 has the score; every rank keeps the same records.
        var shared: [Double] = score.map { r in [r.fid, r.kid, r.kidStd, Double(r.nA), Double(r.nB)] } ?? [0, 0, 0, 0, 0]
        if communicator.size > 1 { try communicator.allReduceSum(&shared) }
        let record = EvaluationRecord(step: trainer.step, fid: shared[0], kid: shared[1], kidStd: shared[2],
                                      samples: Int(shared[3]), references: Int(shared[4]),
                                      seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                                      trainSeconds: trainSeconds, sampler: sampler.description, reference: schedule.absoluteReference)
        let best = record.fid.isFinite && comparableEvaluations.allSatisfy { !($0.fid <= record.fid) }
        evaluations.append(record)
        if communicator.isWriter {
            try folderLock?.confirm()                                    // still, after minutes of scoring
            try appendLine(record.jsonLine, to: evaluationLogURL)
            if best {
                if !checkpointIsCurrent { try saveCheckpoint(events: events) }
                try linkBestCheckpoint()
            }
            try? FIDCurve.write(records: evaluations, title: "FID of EMA samples: \(config.stage.rawValue) on \(URL(fileURLWithPath: config.data).lastPathComponent)",
                                 to: fidPlotURL)
        }
        events?(.evaluation(record, best: best))
        return record
    }

    /// Links `checkpoint.safetensors` (this step's) as `checkpoint-best.safetensors`.
    private func linkBestCheckpoint() throws {
        let fm = FileManager.default
        try? fm.removeItem(at: bestCheckpointURL)
        do { try fm.linkItem(at: checkpointURL, to: bestCheckpointURL) } catch {
            try fm.copyItem(at: checkpointURL, to: bestCheckpointURL)      // a file system without hard links
        }
    }

    /// Writes `checkpoint.safetensors` atomically, links it as `checkpoint-N.safetensors` and
    /// removes numbered checkpoints beyond `keepCheckpoints`; redraws `loss.png`. (In a job of
    /// several ranks only rank 0 calls it.)
    public func saveCheckpoint(events: ((Event) -> Void)? = nil) throws {
        try folderLock?.confirm()
        try trainer.save(to: checkpointURL, extraMetadata: ["train_seconds": String(trainSeconds),
                                                            "stage": config.stage.rawValue, "data": config.data])
        let fm = FileManager.default
        let numbered = folder.appendingPathComponent("checkpoint-\(trainer.step).safetensors")
        try? fm.removeItem(at: numbered)
        if config.keepCheckpoints > 0 {
            try fm.linkItem(at: checkpointURL, to: numbered)
            let old = try numberedCheckpoints().dropLast(config.keepCheckpoints)
            for (_, url) in old { try? fm.removeItem(at: url) }
        }
        try? writeLossPlot()
        savedStep = trainer.step
        events?(.checkpoint(checkpointURL, step: trainer.step))
    }

    /// `config` as (key path, value) pairs: `recipe.learningRate` -> `0.001` (its `config.json`).
    static func settings(of config: RunConfig) -> [String: String] {
        var out: [String: String] = [:]
        func walk(_ value: Any, _ path: String) {
            if let d = value as? [String: Any] {
                for (k, v) in d { walk(v, path.isEmpty ? k : path + "." + k) }
            } else {
                out[path] = oneLineJSON(value)
            }
        }
        if let object = try? JSONSerialization.jsonObject(with: Data(config.json.utf8)) { walk(object, "") }
        return out
    }

    /// Throws ``PipelineError/invalidOption(name:problem:)`` naming the settings in which a rank's
    /// differ from rank 0's (every rank's `settings`, gathered; every rank must call it).
    static func checkRanksAgree(on settings: [String: String], communicator: any Communicator) throws {
        func text(_ d: [String: String]) -> String { d.keys.sorted().map { "\($0)\t\(d[$0]!)\n" }.joined() }
        func parse(_ t: String) -> [String: String] {
            var d: [String: String] = [:]
            for line in t.split(separator: "\n") {
                let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
                d[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            return d
        }
        let texts = try communicator.allGather(text: text(settings))
        guard Set(texts).count > 1 else { return }
        let base = parse(texts[0])
        var differences: [String] = []
        for (rank, t) in texts.enumerated().dropFirst() where t != texts[0] {
            let mine = parse(t)
            let keys = Set(base.keys).union(mine.keys).filter { base[$0] != mine[$0] }.sorted()
            let shown = keys.prefix(4).map { "\($0) \(mine[$0] ?? "absent") (rank 0: \(base[$0] ?? "absent"))" }
            differences.append("rank \(rank): " + shown.joined(separator: ", ") + (keys.count > 4 ? ", ..." : ""))
        }
        throw PipelineError.invalidOption(
            name: "settings", problem: "the ranks were started with different settings (\(differences.joined(separator: "; "))): "
                + "give every rank the same flags, config file, environment and run folder")
    }

    /// Throws ``PipelineError/invalidOption(name:problem:)`` (`mask`) naming the folder and the
    /// strategy when `config` records a custom masking strategy (``MaskSpec/custom(name:)``):
    /// only its code can make it, so the run must be opened with it (`masking:`). A front end
    /// checks a recorded config with it before it loads data.
    public static func checkStrategyIsKnown(_ config: RunConfig, folder: URL) throws {
        guard case .custom(let name) = config.recipe.mask else { return }
        throw PipelineError.invalidOption(
            name: "mask", problem: "the run config for '\(folder.path)' names the custom masking strategy '\(name)', which only its "
                + "code can make: open it with TrainingRun(folder:config:masking:) and that strategy (the maskdm commands cannot train it)")
    }

    /// Throws the error that opening a run at `folder` would give for the path itself (a file at
    /// it or at a parent, a parent folder that cannot be written, another process training into
    /// it), without changing anything: a front end checks `--out` with it before it spends time
    /// loading data.
    /// In a job of several ranks only the writer (rank 0, which takes the lock) probes it: probes
    /// of two ranks at one moment would each see the other's.
    public static func checkFolder(_ folder: URL, communicator: any Communicator = SingleProcessCommunicator()) throws {
        try checkFolderCanBeMade(folder)
        if communicator.isWriter { try RunFolderLock.checkNotHeldElsewhere(folder: folder) }
    }

    /// Throws ``PipelineError/invalidOption(name:problem:)`` (`out`) when the run folder `folder`
    /// is the data folder of `data` or inside it: the run's own files (`loss.png`, sample grids)
    /// would become training images, and the image count would change between sittings.
    public static func checkFolder(_ folder: URL, isOutside data: DataSource) throws {
        guard case .folder(let images) = data else { return }
        // Links resolved in the part of the path that exists (a new run folder does not yet),
        // the rest appended: a run under a linked data folder is caught from its first sitting.
        func path(_ url: URL) -> String {
            var existing = url.standardizedFileURL, rest: [String] = []
            while !FileManager.default.fileExists(atPath: existing.path), existing.path != "/" {
                rest.insert(existing.lastPathComponent, at: 0)
                existing = existing.deletingLastPathComponent()
            }
            return rest.reduce(existing.resolvingSymlinksInPath()) { $0.appendingPathComponent($1) }.path
        }
        let run = path(folder), root = path(images)
        guard run == root || run.hasPrefix(root.hasSuffix("/") ? root : root + "/") else { return }
        throw PipelineError.invalidOption(
            name: "out", problem: "the run folder '\(folder.path)' is inside the data folder '\(images.path)': its own files "
                + "(loss.png, sample grids) would become training images; put the run outside the data")
    }

    /// Why a folder without `checkpoint.safetensors` cannot start its run afresh, or nil when it
    /// can: numbered checkpoints are left (`numbered`, as ``numberedCheckpoints(in:)`` lists
    /// them), or `log.jsonl` goes past the first checkpoint step (`checkpointEvery`), so its
    /// checkpoint went missing and starting over would silently lose the run. Says how to resume
    /// from the newest numbered checkpoint.
    static func missingCheckpointProblem(numbered checkpoints: [(step: Int, url: URL)], checkpointEvery every: Int,
                                         loggedSteps: [StepRecord]) -> String? {
        let numbered = checkpoints.map(\.url.lastPathComponent)
        let lastLogged = loggedSteps.map(\.step).max() ?? 0
        guard let newest = numbered.last ?? (every > 0 && lastLogged > every ? "" : nil) else { return nil }
        return "missing, but the run folder holds a run (log.jsonl to step \(lastLogged)"
            + (newest.isEmpty ? "" : ", \(numbered.joined(separator: ", "))") + "): "
            + (newest.isEmpty ? "" : "to resume from the newest, copy \(newest) to checkpoint.safetensors; ")
            + "to start over, empty the folder or choose another"
    }

    /// The numbered checkpoints in the folder, oldest first.
    public func numberedCheckpoints() throws -> [(step: Int, url: URL)] { try Self.numberedCheckpoints(in: folder) }

    /// The numbered checkpoints (`checkpoint-N.safetensors`) in `folder`, oldest first.
    static func numberedCheckpoints(in folder: URL) throws -> [(step: Int, url: URL)] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).compactMap { name -> (Int, URL)? in
            guard name.hasPrefix("checkpoint-"), name.hasSuffix(".safetensors"),
                  let n = Int(name.dropFirst("checkpoint-".count).dropLast(".safetensors".count)) else { return nil }
            return (n, folder.appendingPathComponent(name))
        }.sorted { $0.0 < $1.0 }
    }

    /// Samples `config.sampleCount` images with the EMA weights (fixed noise, so grids of
    /// successive steps are comparable) and writes `samples/step-N.png`. In a single process, a
    /// stop request (``stopRequested``) between two batches of 64 abandons the grid (nil), so a
    /// large grid does not hold up the checkpoint a stop writes.
    @discardableResult
    public func writeSampleGrid() throws -> URL? {
        try folderLock?.confirm()
        try FileManager.default.createDirectory(at: samplesFolder, withIntermediateDirectories: true)
        var rng = RandomGenerator(seed: config.recipe.seed ^ 0x5A4D_504C_4553)
        let sampler = try config.sampler.sampler(schedule: trainer.schedule)
        // A single process yields to a stop between batches (ranks would disagree on when).
        let stop: (() -> Bool)? = communicator.size == 1 ? { [stopRequested] in stopRequested() } : nil
        let x = try Sampling.sample(model: trainer.emaModel, objective: trainer.recipe.objective, count: config.sampleCount,
                                    batchSize: 64, sampler: sampler, using: &rng, stop: stop)
        guard x.shape[0] == config.sampleCount else { return nil }
        let url = sampleGridURL(step: trainer.step)
        let columns = config.sampleGridColumns
        try folderLock?.confirm()
        try Image.writeGrid(Image.images(fromBatch: x), columns: columns, to: url)
        return url
    }

    /// `RUN/samples/step-N.png`.
    func sampleGridURL(step: Int) -> URL { samplesFolder.appendingPathComponent("step-\(step).png") }

    /// Draws `loss.png`: raw and smoothed loss against the step.
    public func writeLossPlot() throws {
        try folderLock?.confirm()
        try LossPlot.write(records: records, title: "\(config.stage.rawValue) on \(URL(fileURLWithPath: config.data).lastPathComponent)",
                           to: lossPlotURL)
    }
}
