import Foundation
import ImageIO
import Masking
import NN
import Synchronization
import Tensor
import Testing
import ViTDiffusion
@testable import Pipeline

/// Run folders: resumption bit for bit, stopping, the log, config mismatches and checkpoint
/// rotation. The stop tests raise flags of their own (`stopRequested`), never the process-wide
/// ``StopSignal``, which would stop other suites' runs; `CLISignalTests` sends a real SIGINT.
@Suite(.serialized) struct TrainingRunTests {
    static let model = MaskedUViTConfig(imageSize: 8, patchSize: 2, embedDim: 16, depth: 3, heads: 2)

    static func config(steps: Int, model: MaskedUViTConfig = model) -> RunConfig {
        var r = TrainingRecipe.pretraining(batchSize: 4, steps: steps, mask: .patch(ratio: 0.5))
        r.checkpointEvery = 2
        r.learningRate = 1e-3
        r.warmupSteps = 2
        r.gradientClip = 1
        r.flipProbability = 0.5
        r.seed = 11
        return RunConfig(stage: .pretrain, model: model, recipe: r, data: "test-images")
    }

    static let dataset: TensorDataset = {
        var rng = RandomGenerator(seed: 5)
        return TensorDataset(images: .randomUniform([8, 3, 8, 8], low: -1, high: 1, using: &rng))
    }()

    /// Opens the run; the EMA starts averaging after 2 updates (ema-pytorch's default waits 100,
    /// which would make the EMA a copy of the online weights over these few steps).
    static func open(_ folder: URL, steps: Int) throws -> TrainingRun {
        let run = try TrainingRun(folder: folder, config: config(steps: steps))
        run.trainer.ema.updateAfterStep = 2
        return run
    }

    /// Every tensor of a checkpoint (online, `ema.*`, `optimizer.*`) as bit patterns.
    static func tensors(_ url: URL) throws -> [String: [UInt32]] {
        let f = try SafetensorsFile(contentsOf: url)
        var out: [String: [UInt32]] = [:]
        for k in f.keys { out[k] = try f.tensor(k).scalars.map(\.bitPattern) }
        return out
    }

    static func bits(_ store: ParameterStore) -> [String: [UInt32]] {
        Dictionary(uniqueKeysWithValues: store.parameters.map { ($0.name, store.value($0).scalars.map(\.bitPattern)) })
    }

    static func logRecords(_ run: TrainingRun) throws -> [StepRecord] {
        try String(contentsOf: run.logURL, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(StepRecord.self, from: Data($0.utf8))
        }
    }

    /// An uninterrupted 8-step run: final weights, EMA and the log.
    struct Reference {
        let online: [String: [UInt32]]
        let ema: [String: [UInt32]]
        let checkpoint: [String: [UInt32]]
        let losses: [UInt32]
    }

    static func uninterrupted(in folder: URL) throws -> Reference {
        let run = try open(folder, steps: 8)
        #expect(run.resumedFrom == nil)
        let summary = try run.train(on: dataset)
        #expect(summary.step == 8 && summary.stepsRun == 8)
        return Reference(online: bits(run.trainer.model.store), ema: bits(run.trainer.emaModel.store),
                         checkpoint: try tensors(run.checkpointURL),
                         losses: try logRecords(run).map(\.loss.bitPattern))
    }

    @Test func aRunThatFailsToStartLeavesNoFolder() throws {
        struct BadWeights: Error {}
        try withTemporaryFolder("run") { tmp in
            let folder = tmp.appendingPathComponent("never")
            #expect(throws: BadWeights.self) {
                _ = try TrainingRun(folder: folder, config: Self.config(steps: 2)) { _ in throw BadWeights() }
            }
            #expect(!FileManager.default.fileExists(atPath: folder.path))
        }
    }

    /// A batch whose step cannot fit the machine's memory is refused before anything is written,
    /// naming the batch and the way out; the bound shrinks with micro-batches and with the mask.
    @Test func aBatchThatCannotFitIsRefusedUpFront() throws {
        try withTemporaryFolder("run") { tmp in
            let folder = tmp.appendingPathComponent("never")
            let probe = try TrainingRun(folder: tmp.appendingPathComponent("probe"), config: Self.config(steps: 1), memoryLimit: nil)
            let needed = probe.trainer.memoryLowerBound
            // The weights, gradient, two moments and EMA, and per image (8 visible of 16 patches
            // + the time token) 9 tokens x 3 blocks x (8 x 16 + 2 x 9) floats.
            #expect(needed == 5 * probe.trainer.model.parameterCount * 4 + 4 * (9 * 3 * (8 * 16 + 2 * 9) * 4))
            #expect { _ = try TrainingRun(folder: folder, config: Self.config(steps: 1), memoryLimit: needed - 1) } throws: { error in
                guard case PipelineError.invalidOption("batchSize (--batch)", let problem) = error else { return false }
                return problem.contains("for a batch of 4") && problem.contains("--accumulate")
            }
            #expect(!FileManager.default.fileExists(atPath: folder.path))
            _ = try TrainingRun(folder: folder, config: Self.config(steps: 1), memoryLimit: needed)
            var micro = Self.config(steps: 1)
            micro.recipe.accumulationSteps = 2
            let halves = try TrainingRun(folder: tmp.appendingPathComponent("micro"), config: micro, memoryLimit: nil)
            var unmasked = Self.config(steps: 1)
            unmasked.recipe.mask = .none
            let whole = try TrainingRun(folder: tmp.appendingPathComponent("whole"), config: unmasked, memoryLimit: nil)
            #expect(halves.trainer.memoryLowerBound < needed && whole.trainer.memoryLowerBound > needed)
            // The same check for a trainer used without a run folder.
            #expect(throws: PipelineError.self) { try MachineMemory.validate(probe.trainer, limit: needed - 1) }
            try MachineMemory.validate(probe.trainer, limit: needed)
            try MachineMemory.validate(probe.trainer, limit: nil)
        }
        // /proc/meminfo's lines as bytes; this machine's limit, where it can be read, is positive.
        let fields = MachineMemory.meminfo("MemTotal:       16384 kB\nSwapTotal:          0 kB\nHugePages_Total:       0\n")
        #expect(fields == ["MemTotal": 16_777_216, "SwapTotal": 0, "HugePages_Total": 0])
        #expect(MachineMemory.limitBytes.map { $0 > 0 } ?? true)
        // Ranks of one job on one machine share it: Open MPI's and MPICH's local sizes, else 1.
        #expect(MachineMemory.processesOnThisMachine(environment: [:]) == 1)
        #expect(MachineMemory.processesOnThisMachine(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "4"]) == 4)
        #expect(MachineMemory.processesOnThisMachine(environment: ["MPI_LOCALNRANKS": "2"]) == 2)
        #expect(MachineMemory.processesOnThisMachine(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "x"]) == 1)
        if ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"] == nil,
           ProcessInfo.processInfo.environment["MPI_LOCALNRANKS"] == nil {
            #expect(MachineMemory.processLimitBytes == MachineMemory.limitBytes)
        }
    }

    /// A run that fails to start after switching to bf16 puts back the precision it found. It
    /// switches the process's GEMM kernel, which would disturb the tests running beside it, so it
    /// runs only when asked (`MASKDM_TEST_PRECISION_SWITCH=1`, set by `.ci/run`, which runs it
    /// alone) on a CPU with AVX512_BF16.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MASKDM_TEST_PRECISION_SWITCH"] == "1"
                   && Gemm.isaSupported(.avx512BF16), "opt-in, and only where the CPU has AVX512_BF16"))
    func aRunThatFailsToStartPutsBackThePrecision() throws {
        struct BadWeights: Error {}
        try Gemm.setPrecision(.fp32)
        try withTemporaryFolder("run") { tmp in
            var config = Self.config(steps: 2)
            config.precision = .bf16
            #expect(throws: BadWeights.self) {
                _ = try TrainingRun(folder: tmp.appendingPathComponent("never"), config: config) { _ in
                    #expect(Gemm.precision == .bf16)             // switched before the weights load
                    throw BadWeights()
                }
            }
            #expect(Gemm.precision == .fp32)
            // A run that starts keeps its precision.
            let run = try TrainingRun(folder: tmp.appendingPathComponent("started"), config: config)
            #expect(Gemm.precision == .bf16 && run.config.precision == .bf16)
        }
        try Gemm.setPrecision(.fp32)
    }

    /// A run killed while writing its checkpoint leaves a temporary file as large as the
    /// checkpoint; opening the folder again removes it (here: one named for a process that cannot exist).
    @Test func reopeningARunRemovesAKilledWritersTemporaryFile() throws {
        try withTemporaryFolder("run") { tmp in
            let folder = tmp.appendingPathComponent("r")
            _ = try Self.open(folder, steps: 2).train(on: Self.dataset)
            // Int32.max is above every PID Linux hands out (at most 2^22): no such process.
            let leftover = folder.appendingPathComponent(".checkpoint.safetensors.tmp-\(Int32.max)-x1")
            try FileManager.default.copyItem(at: folder.appendingPathComponent("checkpoint.safetensors"), to: leftover)
            let again = try Self.open(folder, steps: 2)
            #expect(again.resumedFrom == 2)
            #expect(!FileManager.default.fileExists(atPath: leftover.path))
        }
    }

    @Test func resumedRunIsBitIdenticalToUninterruptedRun() throws {
        try withTemporaryFolder("run") { tmp in
            let ref = try Self.uninterrupted(in: tmp.appendingPathComponent("a"))
            #expect(ref.online != ref.ema, "the EMA must differ from the online weights for this test to mean anything")

            let folder = tmp.appendingPathComponent("b")
            let first = try Self.open(folder, steps: 4)
            let s1 = try first.train(on: Self.dataset)
            #expect(s1.step == 4 && s1.stepsRun == 4)
            let second = try Self.open(folder, steps: 8)
            #expect(second.resumedFrom == 4)
            #expect(second.records.map(\.step) == [1, 2, 3, 4])
            let s2 = try second.train(on: Self.dataset)
            #expect(s2.step == 8 && s2.stepsRun == 4)
            #expect(Self.bits(second.trainer.model.store) == ref.online)
            #expect(Self.bits(second.trainer.emaModel.store) == ref.ema)
            #expect(try Self.tensors(second.checkpointURL) == ref.checkpoint)      // incl. AdamW moments
            let records = try Self.logRecords(second)
            #expect(records.map(\.step) == Array(1...8))
            #expect(records.map(\.loss.bitPattern) == ref.losses)
            #expect(second.records.map(\.loss.bitPattern) == ref.losses)
            // A finished run re-opened trains nothing more.
            let third = try Self.open(folder, steps: 8)
            #expect(third.isComplete)
            #expect(try third.train(on: Self.dataset).stepsRun == 0)
        }
    }

    @Test func logCheckpointsAndPlotOfARun() throws {
        try withTemporaryFolder("run") { tmp in
            let folder = tmp.appendingPathComponent("r")
            let run = try Self.open(folder, steps: 8)
            var events: [String] = []
            try run.train(on: Self.dataset) { e in
                switch e {
                case .step(let r): events.append("s\(r.step)")
                case .checkpoint(_, let step): events.append("c\(step)")
                case .samples: events.append("x")
                case .scoring, .evaluation: events.append("f")
                }
            }
            #expect(events == ["s1", "s2", "c2", "s3", "s4", "c4", "s5", "s6", "c6", "s7", "s8", "c8"])
            // keepCheckpoints 3: checkpoint-2 was removed; the latest is step 8.
            #expect(run.config.keepCheckpoints == 3)
            #expect(try run.numberedCheckpoints().map(\.step) == [4, 6, 8])
            #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("checkpoint-2.safetensors").path))
            #expect(try SafetensorsFile(contentsOf: run.checkpointURL).metadata["step"] == "8")
            #expect(try SafetensorsFile(contentsOf: folder.appendingPathComponent("checkpoint-4.safetensors")).metadata["step"] == "4")
            // log.jsonl: one JSON object per step with these keys.
            let lines = try String(contentsOf: run.logURL, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 8)
            let keys: Set<String> = ["step", "loss", "learning_rate", "grad_norm", "seconds", "images_per_second", "train_seconds"]
            for (i, line) in lines.enumerated() {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(Set(object.keys) == keys, "\(line)")
                #expect(object["step"] as? Int == i + 1)
            }
            let records = try Self.logRecords(run)
            #expect(records.allSatisfy { $0.loss.isFinite && $0.loss > 0 && $0.gradientNorm > 0 && $0.seconds > 0 && $0.imagesPerSecond > 0 })
            // Warm-up over 2 steps.
            #expect(records[0].learningRate == 0 && records[1].learningRate == Float(1e-3) / 2 && records[2].learningRate == Float(1e-3))
            #expect(zip(records, records.dropFirst()).allSatisfy { $0.trainSeconds < $1.trainSeconds })
            // config.json holds the run config; loss.png decodes.
            let saved = try JSONDecoder().decode(RunConfig.self, from: Data(contentsOf: run.configURL))
            var expected = Self.config(steps: 8)
            expected.precision = Gemm.precision                     // resolved: the one it ran in
            #expect(saved == expected && saved == run.config)
            let plot = try Image(contentsOf: run.lossPlotURL)
            #expect(plot.width > 100 && plot.height > 100)
        }
    }

    /// `checkpointEvery` 0 (`--checkpoint-every 0`): one checkpoint, at the end, and no numbered ones
    /// before it.
    @Test func checkpointEveryZeroWritesOnlyAtTheEnd() throws {
        try withTemporaryFolder("run") { tmp in
            var config = Self.config(steps: 5)
            config.recipe.checkpointEvery = 0
            let run = try TrainingRun(folder: tmp.appendingPathComponent("r"), config: config)
            var saved: [Int] = []
            try run.train(on: Self.dataset) { if case .checkpoint(_, let step) = $0 { saved.append(step) } }
            #expect(saved == [5])
            #expect(try run.numberedCheckpoints().map(\.step) == [5])
            #expect(try SafetensorsFile(contentsOf: run.checkpointURL).metadata["step"] == "5")
        }
    }

    /// A step that fails, whatever its error (a custom data source's own type, images of another
    /// shape), keeps the steps since the last checkpoint: the run writes the last finished step's.
    @Test func anyFailedStepKeepsTheRunsProgress() throws {
        struct Gone: Error {}
        /// The images until batch `failAt`, then an error or images of another shape.
        final class Faltering: TrainingImages, @unchecked Sendable {
            let failAt: Int, wrongShape: Bool
            var batches = 0
            init(failAt: Int, wrongShape: Bool) { self.failAt = failAt; self.wrongShape = wrongShape }
            var count: Int { TrainingRunTests.dataset.count }
            func batch(_ picks: [ImagePick]) throws -> Tensor {
                batches += 1
                guard batches >= failAt else { return TrainingRunTests.dataset.batch(picks) }
                if wrongShape { return Tensor.zeros([picks.count, 1, 8, 8]) }
                throw Gone()
            }
        }
        for wrongShape in [false, true] {
            try withTemporaryFolder("run") { tmp in
                var config = Self.config(steps: 8)
                config.recipe.checkpointEvery = 0
                let run = try TrainingRun(folder: tmp.appendingPathComponent("r"), config: config)
                #expect(throws: (any Error).self) { try run.train(on: Faltering(failAt: 4, wrongShape: wrongShape)) }
                #expect(run.trainer.step == 3)
                #expect(try SafetensorsFile(contentsOf: run.checkpointURL).metadata["step"] == "3", "wrong shape: \(wrongShape)")
            }
        }
    }

    /// A log that cannot be written (a full disk: /dev/full) stops the run with an error naming
    /// it, after a checkpoint of the step; a log line that is not UTF-8 costs only that line; a
    /// checkpoint of another run (copied in, or under an edited config.json) is refused.
    @Test func damagedLogsAndForeignCheckpoints() throws {
        try withTemporaryFolder("run") { tmp in
            var config = Self.config(steps: 4)
            config.recipe.checkpointEvery = 0
            let folder = tmp.appendingPathComponent("r")
            let run = try TrainingRun(folder: folder, config: config)
            try FileManager.default.removeItem(at: run.logURL)
            try FileManager.default.createSymbolicLink(atPath: run.logURL.path, withDestinationPath: "/dev/full")
            #expect { try run.train(on: Self.dataset) } throws: { error in
                guard case PipelineError.writeFailed(let path, _)? = error as? PipelineError else { return false }
                return path == run.logURL.path
            }
            #expect(try SafetensorsFile(contentsOf: run.checkpointURL).metadata["step"] == "1")
            try FileManager.default.removeItem(at: run.logURL)
            // A folder where the log goes: named, with what is wrong.
            let blocked = tmp.appendingPathComponent("b")
            try FileManager.default.createDirectory(at: blocked.appendingPathComponent("log.jsonl"), withIntermediateDirectories: true)
            #expect(throws: PipelineError.writeFailed(path: blocked.appendingPathComponent("log.jsonl").path, problem: "it is a folder")) {
                _ = try TrainingRun(folder: blocked, config: config)
            }
            // Bytes that are not UTF-8 after a good log: the good lines stay.
            let good = try TrainingRun(folder: tmp.appendingPathComponent("g"), config: Self.config(steps: 4))
            try good.train(on: Self.dataset)
            let handle = try FileHandle(forWritingTo: good.logURL)
            try handle.seekToEnd()
            try handle.write(contentsOf: Data([0xFF, 0x0A]))
            try handle.close()
            var more = Self.config(steps: 6)
            let reopened = try TrainingRun(folder: good.folder, config: more)
            #expect(reopened.warnings.isEmpty, "\(reopened.warnings)")
            #expect(try Self.logRecords(reopened).map(\.step) == [1, 2, 3, 4])
            // Another run's checkpoint copied in (or an edited config.json): refused, naming the
            // setting, also when only the data differs (two default runs have the same recipe).
            func copiedIn(from config: RunConfig, name: String) throws -> String {
                let other = try TrainingRun(folder: tmp.appendingPathComponent(name), config: config)
                try other.train(on: Self.dataset)
                try FileManager.default.removeItem(at: good.checkpointURL)
                try FileManager.default.copyItem(at: other.checkpointURL, to: good.checkpointURL)
                do { _ = try TrainingRun(folder: good.folder, config: Self.config(steps: 6)) } catch { return "\(error)" }
                return "accepted"
            }
            more.recipe.learningRate = 5e-4
            let lr = try copiedIn(from: more, name: "o")
            #expect(lr.contains("records recipe.learningRate = 0.0005, but the run's config.json says 0.001"), "\(lr)")
            var elsewhere = Self.config(steps: 4)
            elsewhere.data = "other-images"
            let data = try copiedIn(from: elsewhere, name: "t")
            #expect(data.contains("records data = other-images, but the run's config.json says test-images"), "\(data)")
        }
    }

    @Test("A run folder inside its data folder is refused")
    func runInsideItsData() throws {
        try withTemporaryFolder("run") { tmp in
            var config = Self.config(steps: 1)
            config.data = tmp.path
            #expect { _ = try TrainingRun(folder: tmp.appendingPathComponent("runs/a"), config: config) } throws: {
                "\($0)".contains("is inside the data folder")
            }
            #expect(!FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs").path))
            // Through a link to the data folder, from the first sitting on (the run folder does
            // not exist yet), whichever of the two paths names the data.
            let real = tmp.appendingPathComponent("real"), link = tmp.appendingPathComponent("link")
            try FileManager.default.createDirectory(at: real, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(at: link, withDestinationURL: real)
            for data in [real, link] {
                config.data = data.path
                #expect { _ = try TrainingRun(folder: link.appendingPathComponent("runs/a"), config: config) } throws: {
                    "\($0)".contains("is inside the data folder")
                }
            }
            // A folder beside the data whose name starts with the data's is not inside it.
            config.data = real.path
            _ = try TrainingRun(folder: tmp.appendingPathComponent("real2"), config: config)
        }
    }

    /// `RunProgress` (and `describe` of a run folder) reads where a run stands from its files:
    /// before the first checkpoint, from `config.json`; after, the checkpoint's step and time,
    /// the logged loss and the numbered checkpoints; and what is wrong with a checkpoint that
    /// `resume` would refuse.
    @Test func runProgressReadsTheFolder() throws {
        try withTemporaryFolder("run") { tmp in
            let folder = tmp.appendingPathComponent("r")
            #expect(throws: PipelineError.self) { try RunProgress(folder: folder) }          // no folder
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            #expect(throws: PipelineError.self) { try RunProgress(folder: folder) }          // no run in it
            var config = Self.config(steps: 6)
            config.keepCheckpoints = 2
            let run = try TrainingRun(folder: folder, config: config)
            let before = try ModelDescription(describing: folder)                          // config.json, no checkpoint yet
            #expect(before.model == config.model && before.source.hasSuffix("config.json"))
            #expect(before.run?.step == 0 && before.run?.steps == 6 && before.run?.recentLoss == nil)
            #expect(before.text.contains("checkpoints none yet; none numbered"))
            try run.train(on: Self.dataset)
            let progress = try RunProgress(folder: folder)
            let losses = try Self.logRecords(run).map(\.loss)
            #expect(progress.stage == "pretrain" && progress.data == "test-images")
            #expect(progress.step == 6 && progress.steps == 6 && progress.numberedCheckpoints == [4, 6])
            #expect(progress.trainSeconds == run.trainSeconds)
            #expect(progress.recentLoss?.steps == 6 && progress.recentLoss?.loss == Float(losses.map { Double($0) }.reduce(0, +) / 6))
            #expect(progress.evaluations.isEmpty && progress.best == nil && !progress.hasBestCheckpoint)
            let described = try ModelDescription(describing: folder)
            #expect(described.run == progress)
            #expect(described.text.contains("run         pretrain on test-images: step 6 of 6 (done)"))
            let json = try #require(try JSONSerialization.jsonObject(with: Data(described.json.utf8)) as? [String: Any])
            let fields = try #require(json["run"] as? [String: Any])
            #expect(fields["step"] as? Int == 6 && fields["steps"] as? Int == 6 && fields["checkpoints"] as? [Int] == [4, 6])
            #expect(fields["best_fid"] is NSNull && fields["scores"] as? Int == 0)
            #expect(progress.checkpointProblem == nil && fields["checkpoint_problem"] is NSNull)
            // A checkpoint `resume` would refuse is named: a step that is no step, a file cut
            // short, a file gone while numbered ones remain.
            let fm = FileManager.default
            let original = try Data(contentsOf: run.checkpointURL)
            let stepText = Data("\"step\":\"6\"".utf8)
            let at = try #require(original.range(of: stepText))
            var badStep = original
            badStep.replaceSubrange(at, with: Data("\"step\":\"x\"".utf8))
            try fm.removeItem(at: run.checkpointURL)                           // numbered ones are hard links of it
            try badStep.write(to: run.checkpointURL)
            let damaged = try RunProgress(folder: folder)
            #expect(damaged.checkpointProblem == "records no valid step (its metadata's step is 'x')")
            #expect(damaged.text.contains("checkpoints checkpoint.safetensors records no valid step"))
            try original.prefix(100).write(to: run.checkpointURL)
            #expect(try RunProgress(folder: folder).checkpointProblem?.hasPrefix("unreadable: ") == true)
            let cut = try ModelDescription(describing: folder)                    // described from config.json
            #expect(cut.source.hasSuffix("config.json") && cut.model == config.model)
            #expect(cut.text.contains("checkpoints checkpoint.safetensors unreadable: "), "\(cut.text)")
            try fm.removeItem(at: run.checkpointURL)
            let missing = try RunProgress(folder: folder)
            #expect(missing.step == 0 && missing.checkpointProblem?.contains("copy checkpoint-6.safetensors to checkpoint.safetensors") == true)
            #expect(missing.text.contains("checkpoints checkpoint.safetensors missing, but the run folder holds a run"))
            #expect((try ModelDescription(describing: folder)).run?.checkpointProblem == missing.checkpointProblem)
            // A folder holding runs below it (a pipeline's or compare's) names them.
            #expect { try ModelDescription(describing: tmp) } throws: { error in
                guard case .missingFile(_, let hint) = error as? PipelineError else { return false }
                return hint.contains("runs in r ") && hint.contains(folder.path)
            }
        }
    }

    /// `RunProgress` on damaged or odd folders: a config no run could train is an error (not a
    /// crash), losses whose sum overflows give no loss (the JSON stays valid), and the best score
    /// is among those taken as the run now scores, as `checkpoint-best.safetensors` is.
    @Test func runProgressOfOddFolders() throws {
        try withTemporaryFolder("run") { tmp in
            let fm = FileManager.default
            var config = Self.config(steps: 6)
            let odd = tmp.appendingPathComponent("odd")
            try fm.createDirectory(at: odd, withIntermediateDirectories: true)
            try config.json.replacingOccurrences(of: "\"patch_size\" : 2", with: "\"patch_size\" : 0")
                .write(to: odd.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
            #expect(throws: PipelineError.self) { try ModelDescription(describing: odd) }

            let folder = tmp.appendingPathComponent("r")
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
            config.evaluation = EvaluationSchedule(every: 2, samples: 4, reference: tmp.path)
            try config.json.write(to: folder.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
            let huge = (1...3).map { StepRecord(step: $0, loss: 3e38, learningRate: 1e-3, gradientNorm: 1, seconds: 1,
                                                imagesPerSecond: 4, trainSeconds: Double($0)).jsonLine }
            try (huge.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent("log.jsonl"), atomically: true, encoding: .utf8)
            let sampler = config.sampler.description
            let scores = [(2, 4, 50.0), (4, 2, 10.0), (6, 4, 40.0)].map { step, samples, fid in
                EvaluationRecord(step: step, fid: fid, kid: 0.1, kidStd: 0.01, samples: samples, references: 8, seconds: 1,
                                 trainSeconds: Double(step), sampler: sampler, reference: tmp.path).jsonLine
            }
            try (scores.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent("fid.jsonl"), atomically: true, encoding: .utf8)
            let progress = try RunProgress(folder: folder)
            #expect(progress.recentLoss == nil)
            #expect(progress.evaluations.count == 3)
            #expect(progress.best?.step == 6 && progress.best?.fid == 40)        // not step 4's 10.0 of 2 samples
            let json = try #require(try JSONSerialization.jsonObject(with: Data(progress.json.utf8)) as? [String: Any])
            #expect(json["loss"] is NSNull && json["best_step"] as? Int == 6)
        }
    }

    /// A prefetcher dropped at once (a run with no steps left) ends its thread without touching
    /// it, however late the thread starts; one in use hands out each step's own batch.
    @Test func batchPrefetcherOutlivesNothing() throws {
        try withTemporaryFolder("prefetch") { tmp in
            let run = try TrainingRun(folder: tmp.appendingPathComponent("r"), config: Self.config(steps: 2))
            for _ in 0..<200 {
                let dropped = BatchPrefetcher(trainer: run.trainer, dataset: Self.dataset)
                dropped.stop()
            }
            for _ in 0..<50 { _ = BatchPrefetcher(trainer: run.trainer, dataset: Self.dataset) }   // not even stopped
            let prefetcher = BatchPrefetcher(trainer: run.trainer, dataset: Self.dataset)
            prefetcher.prefetch(3)
            for step in [3, 1, 2] {
                let got = try prefetcher.batch(step), want = try run.trainer.prepareBatch(forStep: step, from: Self.dataset)
                #expect(got.step == step && got.images.scalars == want.images.scalars)
            }
            Thread.sleep(forTimeInterval: 0.2)                                 // late threads find their state alive
        }
    }

    /// A run of a custom strategy: described without a false alarm, refused (naming the folder)
    /// when reopened without its strategy, resumed with it.
    @Test func customStrategyRunFolders() throws {
        struct KeepFirstRow: MaskingStrategy, CustomStringConvertible {
            var description: String { "keep-first-row" }
            func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { (gridHeight - 1) * gridWidth }
            func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) throws -> Mask {
                try Mask(checkedVisible: Array(repeating: Array(0..<gridWidth), count: batchSize), patchCount: gridHeight * gridWidth)
            }
        }
        try withTemporaryFolder("custom") { tmp in
            let folder = tmp.appendingPathComponent("r")
            _ = try TrainingRun(folder: folder, config: Self.config(steps: 2), masking: KeepFirstRow()).train(on: Self.dataset)
            let d = try ModelDescription(describing: folder)
            #expect(d.maskProblem == nil && d.visibleTokens == nil)
            #expect(d.text.contains("custom(keep-first-row): a custom strategy") && !d.text.contains("unusable"), "\(d.text)")
            #expect(d.json.contains("\"name\": \"keep-first-row\"") && d.json.contains("\"type\": \"custom\""), "\(d.json)")
            let recorded = try #require(try RunConfig.recorded(in: folder))
            #expect { try TrainingRun(folder: folder, config: recorded) } throws: { error in
                guard case .invalidOption("mask", let problem) = error as? PipelineError else { return false }
                return problem.contains(folder.path) && problem.contains("names the custom masking strategy 'keep-first-row'")
            }
            var longer = recorded
            longer.recipe.steps = 3
            let resumed = try TrainingRun(folder: folder, config: longer, masking: KeepFirstRow())
            #expect(resumed.trainer.step == 2)
            #expect(try resumed.train(on: Self.dataset).step == 3)
        }
    }

    /// Folders of runs are told apart by what wrote them, so describe and resume can say what to do.
    @Test func jobFoldersAreToldApart() throws {
        try withTemporaryFolder("jobs") { tmp in
            let fm = FileManager.default
            func run(_ path: String) throws {
                let url = tmp.appendingPathComponent(path)
                try fm.createDirectory(at: url, withIntermediateDirectories: true)
                try Self.config(steps: 2).json.write(to: url.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
            }
            try run("p/pretrain"); try run("p/finetune")
            try run("c/arm-A/pretrain"); try run("c/arm-A/finetune"); try run("c/arm-C/train")
            try "".write(to: tmp.appendingPathComponent("c/arm-A/evals.jsonl"), atomically: true, encoding: .utf8)
            try run("o/x")
            try fm.createDirectory(at: tmp.appendingPathComponent("empty"), withIntermediateDirectories: true)

            let pipeline = try #require(JobFolder(tmp.appendingPathComponent("p")))
            #expect(pipeline.kind == .pipeline && pipeline.runs.map(\.lastPathComponent) == ["pretrain", "finetune"])
            #expect(pipeline.resumeHint.contains("maskdm pipeline --out \(tmp.appendingPathComponent("p").path)"))
            let compare = try #require(JobFolder(tmp.appendingPathComponent("c")))
            #expect(compare.kind == .compare && compare.runs.count == 3)
            let arm = try #require(JobFolder(tmp.appendingPathComponent("c/arm-A")))
            #expect(arm.kind == .compareArm && arm.resumeHint.contains("maskdm compare --out \(tmp.appendingPathComponent("c").path)` with its flags"))
            #expect(JobFolder(tmp.appendingPathComponent("o"))?.kind == .other)
            #expect(JobFolder(tmp.appendingPathComponent("p/pretrain")) == nil)        // a run itself
            #expect(JobFolder(tmp.appendingPathComponent("empty")) == nil)
            #expect(compare.progress().map(\.name) == ["arm-A/pretrain", "arm-A/finetune", "arm-C/train"])
            #expect(compare.progress().allSatisfy { $0.progress?.steps == 2 && $0.progress?.checkpointProblem == nil })
            #expect(compare.text.hasPrefix("\(tmp.appendingPathComponent("c").path): a `maskdm compare` folder, 3 runs\narm-A/pretrain\n  run "))
            let json = try #require(try JSONSerialization.jsonObject(with: Data(compare.json.utf8)) as? [String: Any])
            #expect(json["kind"] as? String == "compare" && (json["runs"] as? [String: Any])?.keys.sorted() == ["arm-A/finetune", "arm-A/pretrain", "arm-C/train"])
            #expect { try ModelDescription(describing: tmp.appendingPathComponent("c")) } throws: { error in
                guard case .missingFile(_, let hint) = error as? PipelineError else { return false }
                return hint.contains("runs in arm-A/pretrain, arm-A/finetune, arm-C/train (a `maskdm compare` folder)")
            }
        }
    }

    /// A sample grid too large to write is refused when the run is configured, not at its first grid.
    @Test func sampleGridsTooLargeAreRefusedUpFront() throws {
        var config = Self.config(steps: 2)
        config.sampleEvery = 1
        config.sampleCount = 4096
        config.model = MaskedUViTConfig(imageSize: 1024, patchSize: 32, embedDim: 16, depth: 1, heads: 2)
        #expect { try config.validate() } throws: { "\($0)".contains("would be over 32768 pixels a side") }
        config.sampleCount = 16                                              // 4 x (1026) + 2 px
        try config.validate()
    }

    /// A deleted `.lock` is made again while the run goes on (so a second process is still kept
    /// out); one that another process has made meanwhile stops the run before its next write.
    @Test func aDeletedLockFileIsNoticed() throws {
        try withTemporaryFolder("run") { tmp in
            let folder = tmp.appendingPathComponent("r")
            let lock = folder.appendingPathComponent(".lock")
            let run = try TrainingRun(folder: folder, config: Self.config(steps: 4))
            try run.train(on: Self.dataset) { event in
                if case .step(let record) = event, record.step == 1 { try? FileManager.default.removeItem(at: lock) }
            }
            #expect(run.trainer.step == 4)
            #expect(FileManager.default.fileExists(atPath: lock.path), "the lock file was not made again")

            var more = Self.config(steps: 8)
            more.recipe.checkpointEvery = 1
            let again = try TrainingRun(folder: folder, config: more)
            #expect {
                try again.train(on: Self.dataset) { event in
                    guard case .step(let record) = event, record.step == 6 else { return }
                    // Deleted, then made by "another process" (a new file at the path).
                    try? FileManager.default.removeItem(at: lock)
                    _ = FileManager.default.createFile(atPath: lock.path, contents: nil)
                }
            } throws: { error in
                guard case .folderInUse(let f, let problem) = error as? PipelineError else { return false }
                return f == folder.path && problem.contains("was deleted while this run trained, and another process has since made a new one")
            }
            // Step 6 was logged before the replacement; its checkpoint and step 7 wrote nothing.
            #expect(try Self.logRecords(again).map(\.step) == [1, 2, 3, 4, 5, 6])
            #expect(try SafetensorsFile(contentsOf: again.checkpointURL).metadata["step"] == "5")
        }
    }

    /// A stop flag of a test's own: the process-wide ``StopSignal`` would also stop the runs that
    /// other suites train at the same time.
    final class StopFlag: Sendable {
        private let raised = Atomic<Bool>(false)
        func raise() { raised.store(true, ordering: .relaxed) }
        func clear() { raised.store(false, ordering: .relaxed) }
        var isRaised: Bool { raised.load(ordering: .relaxed) }
    }

    /// The run at `folder` for `steps` steps, stopping when `flag` is raised.
    static func open(_ folder: URL, steps: Int, stoppingOn flag: StopFlag) throws -> TrainingRun {
        let run = try open(folder, steps: steps)
        run.stopRequested = { flag.isRaised }
        return run
    }

    @Test func stopSignalWhileTrainingCheckpointsAndResumes() throws {
        let flag = StopFlag()
        try withTemporaryFolder("stop") { tmp in
            let ref = try Self.uninterrupted(in: tmp.appendingPathComponent("a"))
            let folder = tmp.appendingPathComponent("b")
            let run = try Self.open(folder, steps: 8, stoppingOn: flag)
            let error = #expect(throws: PipelineError.self) {
                try run.train(on: Self.dataset) { e in
                    if case .step(let r) = e, r.step == 3 { flag.raise() }
                }
            }
            #expect(error == .interrupted(step: 3, checkpoint: run.checkpointURL.path))
            #expect(try SafetensorsFile(contentsOf: run.checkpointURL).metadata["step"] == "3")
            #expect(FileManager.default.fileExists(atPath: run.lossPlotURL.path))
            // Still requested: a re-opened run stops again at once, at the same step.
            let again = try Self.open(folder, steps: 8, stoppingOn: flag)
            #expect(again.resumedFrom == 3)
            #expect(throws: PipelineError.interrupted(step: 3, checkpoint: again.checkpointURL.path)) {
                try again.train(on: Self.dataset)
            }
            flag.clear()
            let resumed = try Self.open(folder, steps: 8, stoppingOn: flag)
            #expect(resumed.resumedFrom == 3 && resumed.records.count == 3)
            #expect(try resumed.train(on: Self.dataset).stepsRun == 5)
            #expect(Self.bits(resumed.trainer.model.store) == ref.online)
            #expect(Self.bits(resumed.trainer.emaModel.store) == ref.ema)
            #expect(try Self.logRecords(resumed).map(\.loss.bitPattern) == ref.losses)
        }
    }

    @Test func stopSignalBeforeTrainingStopsAtOnceAndResumes() throws {
        let flag = StopFlag()
        try withTemporaryFolder("stop0") { tmp in
            let ref = try Self.uninterrupted(in: tmp.appendingPathComponent("a"))
            // A run with a checkpoint at step 2, re-opened for 8 steps with a stop already requested.
            let folder = tmp.appendingPathComponent("b")
            try Self.open(folder, steps: 2).train(on: Self.dataset)
            let run = try Self.open(folder, steps: 8, stoppingOn: flag)
            flag.raise()
            #expect(run.stopRequested())
            #expect(throws: PipelineError.interrupted(step: 2, checkpoint: run.checkpointURL.path)) {
                try run.train(on: Self.dataset)
            }
            #expect(try SafetensorsFile(contentsOf: run.checkpointURL).metadata["step"] == "2")
            #expect(try Self.logRecords(run).map(\.step) == [1, 2])
            // A fresh run stops before its first step.
            let fresh = tmp.appendingPathComponent("c")
            #expect(throws: PipelineError.interrupted(step: 0, checkpoint: fresh.appendingPathComponent("checkpoint.safetensors").path)) {
                try Self.open(fresh, steps: 8, stoppingOn: flag).train(on: Self.dataset)
            }
            flag.clear()
            for f in [folder, fresh] {
                let resumed = try Self.open(f, steps: 8, stoppingOn: flag)
                try resumed.train(on: Self.dataset)
                #expect(Self.bits(resumed.trainer.model.store) == ref.online)
                #expect(Self.bits(resumed.trainer.emaModel.store) == ref.ema)
                #expect(try Self.logRecords(resumed).map(\.loss.bitPattern) == ref.losses)
            }
        }
    }

    @Test func logLinesBeyondTheCheckpointAreDroppedOnReopen() throws {
        try withTemporaryFolder("torn") { tmp in
            let folder = tmp.appendingPathComponent("r")
            let run = try Self.open(folder, steps: 4)
            try run.train(on: Self.dataset)
            let kept = try String(contentsOf: run.logURL, encoding: .utf8)
            // A step the checkpoint does not hold, then a line torn by a kill.
            let extra = StepRecord(step: 5, loss: 0.5, learningRate: 1e-3, gradientNorm: 1, seconds: 0.1,
                                   imagesPerSecond: 40, trainSeconds: 9).jsonLine
            let handle = try FileHandle(forWritingTo: run.logURL)
            try handle.seekToEnd()
            try handle.write(contentsOf: Data((extra + "\n{\"step\": 6, \"lo").utf8))
            try handle.close()
            let reopened = try Self.open(folder, steps: 8)
            #expect(reopened.resumedFrom == 4)
            #expect(reopened.records.map(\.step) == [1, 2, 3, 4])
            #expect(try String(contentsOf: reopened.logURL, encoding: .utf8) == kept)
            try reopened.train(on: Self.dataset)
            #expect(try Self.logRecords(reopened).map(\.step) == Array(1...8))
        }
    }

    @Test func folderOfAnotherRunIsRefusedAndLeftUntouched() throws {
        try withTemporaryFolder("mismatch") { tmp in
            let folder = tmp.appendingPathComponent("r")
            let run = try Self.open(folder, steps: 2)
            try run.train(on: Self.dataset)
            let before = try snapshot(folder)
            #expect(before.keys.contains("/config.json") && before.keys.contains("/checkpoint.safetensors"))

            var other = Self.model
            other.embedDim = 32
            let error = #expect(throws: PipelineError.self) { try TrainingRun(folder: folder, config: Self.config(steps: 2, model: other)) }
            guard case .runMismatch(let f, let key, let existing, let requested)? = error else {
                Issue.record("expected runMismatch, got \(String(describing: error))"); return
            }
            #expect(f == folder.path && key == "model")
            #expect(existing.contains("D 16") && requested.contains("D 32"))
            #expect(error?.description.contains("model") == true)
            #expect(try snapshot(folder) == before)

            // Another recipe (seed) and another stage are refused too; more steps are not.
            var seeded = Self.config(steps: 2)
            seeded.recipe.seed = 12
            #expect { try TrainingRun(folder: folder, config: seeded) } throws: {
                if case .runMismatch(_, "recipe.seed", "11", "12")? = $0 as? PipelineError { true } else { false }
            }
            var stage = Self.config(steps: 2)
            stage.stage = .train
            #expect { try TrainingRun(folder: folder, config: stage) } throws: {
                if case .runMismatch(_, "stage", _, _)? = $0 as? PipelineError { true } else { false }
            }
            #expect(try snapshot(folder) == before)
            #expect(try Self.open(folder, steps: 3).resumedFrom == 2)
        }
    }

    /// `RunConfig.recorded(in:)`: nil for a folder without a run, the run's config (with the
    /// settings that may change between sittings) for one, an error naming file and key for a
    /// damaged `config.json`.
    @Test func recordedConfigOfARunFolder() throws {
        try withTemporaryFolder("recorded") { tmp in
            let folder = tmp.appendingPathComponent("r")
            #expect(try RunConfig.recorded(in: folder) == nil)
            var config = Self.config(steps: 2)
            config.recipe.accumulationSteps = 2
            try TrainingRun(folder: folder, config: config).train(on: Self.dataset)
            let recorded = try #require(try RunConfig.recorded(in: folder))
            #expect(recorded.recipe.accumulationSteps == 2 && recorded.recipe.steps == 2)
            #expect(recorded.json == (try TrainingRun(folder: folder, config: config)).config.json)
            let url = folder.appendingPathComponent("config.json")
            var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
            object["recipe"] = nil
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            let error = #expect(throws: PipelineError.self) { try RunConfig.recorded(in: folder) }
            guard case .badConfig(let path, "recipe", _)? = error else {
                Issue.record("expected badConfig naming recipe, got \(String(describing: error))"); return
            }
            #expect(path == url.path)
        }
    }

    /// `config.json` records the precision the run trained in; a config written before the key
    /// existed still resumes; the precision is no conflict.
    @Test func precisionIsRecordedAndOldConfigsResume() throws {
        try withTemporaryFolder("precision") { tmp in
            let folder = tmp.appendingPathComponent("r")
            try Self.open(folder, steps: 2).train(on: Self.dataset)
            let url = folder.appendingPathComponent("config.json")
            func recorded() throws -> [String: Any] {
                try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
            }
            #expect(try recorded()["precision"] as? String == Gemm.precision.rawValue)
            // An older config.json, without the key.
            var object = try recorded()
            object["precision"] = nil
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            #expect(try JSONDecoder().decode(RunConfig.self, from: Data(contentsOf: url)).precision == nil)
            let run = try Self.open(folder, steps: 3)
            #expect(run.resumedFrom == 2 && run.config.precision == Gemm.precision)
            #expect(try recorded()["precision"] as? String == Gemm.precision.rawValue)
            var other = Self.config(steps: 2)
            other.precision = Gemm.precision == .fp32 ? .bf16 : .fp32
            #expect(Self.config(steps: 2).conflict(with: other) == nil)
            // A value that is no precision is refused, naming the key.
            object = try recorded()
            object["precision"] = "fp16"
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            let error = #expect(throws: PipelineError.self) { try Self.open(folder, steps: 3) }
            guard case .badConfig(let path, "precision", _)? = error else {
                Issue.record("expected badConfig naming precision, got \(String(describing: error))"); return
            }
            #expect(path == url.path)
        }
    }

    /// Which precision a run uses (requested, else recorded, else current), and the errors
    /// that name their cause when the CPU cannot run it.
    @Test func precisionResolutionAndErrors() throws {
        struct NoBF16: Error, CustomStringConvertible { var description: String { "no AVX512_BF16 here" } }
        var calls: [Gemm.Precision] = []
        func resolve(_ requested: Gemm.Precision?, _ recorded: Gemm.Precision?, current: Gemm.Precision,
                     cpuHasBF16: Bool = true) throws -> Gemm.Precision {
            try TrainingRun.applyPrecision(requested: requested, recorded: recorded, configPath: "R/config.json",
                                           current: current) {
                calls.append($0)
                if $0 == .bf16 && !cpuHasBF16 { throw NoBF16() }
            }
        }
        #expect(try resolve(nil, nil, current: .fp32) == .fp32)
        #expect(try resolve(nil, nil, current: .bf16) == .bf16)
        #expect(try resolve(nil, .bf16, current: .fp32) == .bf16)
        #expect(try resolve(.fp32, .bf16, current: .fp32) == .fp32)
        #expect(try resolve(.bf16, nil, current: .bf16) == .bf16)
        #expect(calls == [.bf16])                                   // only a change is applied
        calls = []
        #expect(try resolve(.fp32, .bf16, current: .bf16) == .fp32 && calls == [.fp32])

        let recordedError = #expect(throws: PipelineError.self) { try resolve(nil, .bf16, current: .fp32, cpuHasBF16: false) }
        guard case .badConfig(let path, let key, let problem)? = recordedError else {
            Issue.record("expected badConfig, got \(String(describing: recordedError))"); return
        }
        #expect(path == "R/config.json" && key == "precision")
        #expect(problem.contains("bf16") && problem.contains("no AVX512_BF16 here") && problem.contains("--precision fp32"))
        let requestedError = #expect(throws: PipelineError.self) { try resolve(.bf16, nil, current: .fp32, cpuHasBF16: false) }
        guard case .invalidOption("precision", let why)? = requestedError else {
            Issue.record("expected invalidOption, got \(String(describing: requestedError))"); return
        }
        #expect(why.contains("no AVX512_BF16 here"))
    }

    /// On a CPU without AVX512_BF16, asking for bf16 says why it cannot and changes nothing
    /// (the switch itself, where the CPU has it, is checked end to end by scripts/check-precision.sh).
    @Test func gemmPrecisionErrorsNameTheCPU() throws {
        guard !Gemm.isaSupported(.avx512BF16) else { return }   // switching is checked by scripts/check-precision.sh
        let error = #expect(throws: Gemm.InstructionSetError.self) { try Gemm.setPrecision(.bf16) }
        #expect(error?.description.contains("AVX512_BF16") == true && error?.description.contains("avx2") == true)
        try Gemm.setPrecision(.fp32)                                // a no-op on an fp32 kernel
        #expect(Gemm.precision == .fp32)
    }

    /// What a folder's leftovers say is honoured: a missing checkpoint is not a fresh start, a
    /// missing config.json is replaced by the checkpoint's record, a damaged log is reported, and
    /// a grid lost to a kill after its step's checkpoint is drawn on resume.
    @Test func damagedFoldersAreNotSilentlyRestartedOrMixed() throws {
        try withTemporaryFolder("leftovers") { tmp in
            let fm = FileManager.default
            // A run of 6 steps, checkpoints every 2 (4 and 6 kept, with the latest).
            let folder = tmp.appendingPathComponent("run")
            var six = Self.config(steps: 6)
            six.sampleEvery = 6
            six.sampleCount = 2
            try TrainingRun(folder: folder, config: six).train(on: Self.dataset)
            let checkpoint = folder.appendingPathComponent("checkpoint.safetensors")

            // config.json gone: the checkpoint's recipe refuses another learning rate.
            try fm.removeItem(at: folder.appendingPathComponent("config.json"))
            var other = six
            other.recipe.learningRate = 5e-4
            #expect { _ = try TrainingRun(folder: folder, config: other) } throws: { error in
                guard case PipelineError.runMismatch(_, let key, _, _) = error else { return false }
                return key.contains("learningRate")
            }
            _ = try TrainingRun(folder: folder, config: six)              // the same settings resume (and rewrite it)

            // The grid of step 6 lost (a kill after the step's checkpoint): a re-run draws it.
            let grid = folder.appendingPathComponent("samples/step-6.png")
            try fm.removeItem(at: grid)
            try TrainingRun(folder: folder, config: six).train(on: Self.dataset)
            #expect(fm.fileExists(atPath: grid.path))

            // A damaged log line: the run goes on, and says which step's record is lost.
            let log = folder.appendingPathComponent("log.jsonl")
            var lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map(String.init)
            lines[2] = String(lines[2].prefix(10))
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: log)
            let reopened = try TrainingRun(folder: folder, config: six)
            #expect(reopened.warnings.count == 1 && reopened.warnings[0].contains("steps 3)"), "\(reopened.warnings)")

            // The checkpoint gone but numbered ones left: refused, naming the newest.
            try fm.removeItem(at: checkpoint)
            #expect { _ = try TrainingRun(folder: folder, config: six) } throws: { error in
                "\(error)".contains("copy checkpoint-6.safetensors to checkpoint.safetensors")
            }
            // Every checkpoint gone, the log kept (past the first checkpoint step): refused too.
            for (_, url) in try reopened.numberedCheckpoints() { try fm.removeItem(at: url) }
            #expect { _ = try TrainingRun(folder: folder, config: six) } throws: { error in
                "\(error)".contains("log.jsonl to step 6") && "\(error)".contains("to start over")
            }
            // A run killed before its first checkpoint (its log at step 1) starts again quietly.
            let early = tmp.appendingPathComponent("early")
            try fm.createDirectory(at: early, withIntermediateDirectories: true)
            try Data((lines[0] + "\n").utf8).write(to: early.appendingPathComponent("log.jsonl"))
            let fresh = try TrainingRun(folder: early, config: six)
            #expect(fresh.resumedFrom == nil && fresh.warnings.isEmpty)
        }
    }
}
