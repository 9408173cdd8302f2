import Foundation
import ImageIO
import Metrics
import Schedules
import Synchronization
import Tensor
import Testing
import ViTDiffusion
@testable import Pipeline

/// FID during training: the schedule's checks, the records, the reference folders, and a run
/// that scores, keeps its best checkpoint and resumes with the same scores.
@Suite struct EvaluationScheduleTests {
    @Test func badSchedulesNameTheirOption() throws {
        try withTemporaryFolder("eval") { tmp in
            let reference = tmp.appendingPathComponent("ref")
            try writeRandomImages(count: 3, size: 8, to: reference, seed: 1)
            func problem(_ s: EvaluationSchedule) -> PipelineError? {
                do { try s.validate(); return nil } catch { return error as? PipelineError }
            }
            #expect(problem(EvaluationSchedule(every: 2, samples: 4, reference: reference.path)) == nil)
            #expect(problem(EvaluationSchedule(every: 0, samples: 4, reference: reference.path))
                    == .invalidOption(name: "evaluation.every (--fid-every)", problem: "must be >= 1, got 0"))
            #expect(problem(EvaluationSchedule(every: 2, samples: 1, reference: reference.path))
                    == .invalidOption(name: "evaluation.samples (--fid-samples)", problem: "FID needs at least 2 samples, got 1"))
            guard case .missingFile(let path, _)? = problem(EvaluationSchedule(every: 2, reference: tmp.appendingPathComponent("nope").path)) else {
                Issue.record("a missing reference is not reported as missing"); return
            }
            #expect(path.hasSuffix("nope"))
            let file = reference.appendingPathComponent("00000.png")
            guard case .badData(let p, _)? = problem(EvaluationSchedule(every: 2, reference: file.path)) else {
                Issue.record("a file given as the reference is not reported"); return
            }
            #expect(p == file.path)
            let lonely = tmp.appendingPathComponent("one")
            try writeRandomImages(count: 1, size: 8, to: lonely, seed: 2)
            guard case .badData(let q, let why)? = problem(EvaluationSchedule(every: 2, reference: lonely.path)) else {
                Issue.record("a one-image reference is not reported"); return
            }
            #expect(q == lonely.path && why.contains("at least 2"))
            #expect(problem(EvaluationSchedule(every: 2, reference: "")) == .invalidOption(name: "evaluation.reference (--fid-reference)", problem: "no reference folder given"))
            // The counts alone (a default reference is written after the options are read).
            #expect(throws: Never.self) { try EvaluationSchedule(every: 2, reference: "").validate(checkingReference: false) }
            #expect(throws: PipelineError.self) { try EvaluationSchedule(every: 0, reference: "").validate(checkingReference: false) }
        }
    }

    @Test func recordsRoundTripAndTheBestIsTheLowestFiniteFID() throws {
        func record(_ step: Int, _ fid: Double) -> EvaluationRecord {
            EvaluationRecord(step: step, fid: fid, kid: 0.5, kidStd: 0.1, samples: 16, references: 8, seconds: 1.5, trainSeconds: 3)
        }
        let records = [record(2, 40), record(4, .nan), record(6, 31.5), record(8, 31.5), record(10, 35)]
        let text = records.map(\.jsonLine).joined(separator: "\n") + "\n{\"step\": 12, \"fi"   // a torn last line
        let parsed = EvaluationRecord.parseLog(text)
        #expect(parsed.count == 5)
        #expect(parsed.map(\.step) == [2, 4, 6, 8, 10])
        #expect(parsed[1].fid.isNaN && parsed[2] == records[2])
        #expect(records[0].jsonLine.contains("\"kid_std\":0.1") && records[0].jsonLine.contains("\"train_seconds\":3"))
        #expect(EvaluationRecord.best(of: parsed)?.step == 6)          // the earlier of two equal scores
        #expect(EvaluationRecord.best(of: [record(2, .nan)]) == nil)
    }

    @Test func recordsNameHowTheyWereScoredAndOnlyLikeScoresCompare() throws {
        let schedule = EvaluationSchedule(every: 2, samples: 16, reference: "/data/./ref/")
        #expect(schedule.absoluteReference == "/data/ref")
        let dpm = SamplerKind.dpmSolver(steps: 25)
        var r = EvaluationRecord(step: 2, fid: 40, kid: 0.5, kidStd: 0.1, samples: 16, references: 8, seconds: 1.5,
                                 trainSeconds: 3, sampler: dpm.description, reference: "/data/ref")
        #expect(r.jsonLine.contains("\"sampler\":\"DPM-Solver++(2M) (25 steps)\"") && r.jsonLine.contains("\"reference\":\"/data/ref\""))
        #expect(EvaluationRecord.parseLog(r.jsonLine) == [r])
        #expect(r.isScored(like: schedule, sampler: dpm))
        #expect(!r.isScored(like: schedule, sampler: .dpmSolver(steps: 20)))
        #expect(!r.isScored(like: EvaluationSchedule(every: 2, samples: 400, reference: "/data/ref"), sampler: dpm))
        #expect(!r.isScored(like: EvaluationSchedule(every: 2, samples: 16, reference: "/data/other"), sampler: dpm))
        // A line of an older fid.jsonl names neither: it compares on its sample count.
        let old = try #require(EvaluationRecord.parseLog(#"{"fid":40,"kid":0.5,"kid_std":0.1,"references":8,"samples":16,"seconds":1.5,"step":2,"train_seconds":3}"#).first)
        #expect(old.sampler == nil && old.reference == nil)
        #expect(old.isScored(like: schedule, sampler: .ddim(steps: 50, eta: 1)))
        #expect(!old.isScored(like: EvaluationSchedule(every: 2, samples: 17, reference: "/x"), sampler: dpm))
        // Grouped by way of scoring, in order of first appearance (fid.png draws a curve per group).
        var ddim = r
        ddim.sampler = SamplerKind.ddim(steps: 50, eta: 1).description
        ddim.step = 4
        r.step = 6
        let groups = EvaluationRecord.settings(of: [old, ddim, r, old])
        #expect(groups.map { $0.map(\.step) } == [[2, 2], [4], [6]])
    }

    @Test func aConfigWithoutAScheduleStillDecodesAndTheScheduleMayChange() throws {
        var config = TrainingRunTests.config(steps: 4)
        let old = try JSONSerialization.jsonObject(with: Data(config.json.utf8)) as! [String: Any]
        #expect(old["evaluation"] == nil)                               // nil is left out, as in older runs
        let decoded = try JSONDecoder().decode(RunConfig.self, from: JSONSerialization.data(withJSONObject: old))
        #expect(decoded == config)
        var scored = config
        scored.evaluation = EvaluationSchedule(every: 2, samples: 8, reference: "/data/ref")
        #expect(config.conflict(with: scored) == nil)
        config.evaluation = EvaluationSchedule(every: 5, reference: "/other")
        #expect(try JSONDecoder().decode(RunConfig.self, from: Data(config.json.utf8)) == config)
    }

    @Test func referenceFoldersAreWrittenOnceAndFollowTheData() throws {
        try withTemporaryFolder("eval") { tmp in
            let cache = tmp.appendingPathComponent("cache")
            let data = tmp.appendingPathComponent("data")
            try writeRandomImages(count: 5, size: 12, to: data, seed: 3)
            let source = DataSource.folder(data)
            let first = try source.fidReference(size: 8, limit: 4, cacheDirectory: cache)
            #expect(SampleWriter.existingCount(in: first) == 4)
            let image = try Image(contentsOf: first.appendingPathComponent("00003.png"))
            #expect(image.width == 8 && image.height == 8)
            let stamp = try FileManager.default.attributesOfItem(atPath: first.appendingPathComponent("00000.png").path)[.modificationDate] as? Date
            #expect(try source.fidReference(size: 8, limit: 4, cacheDirectory: cache) == first)
            #expect(try FileManager.default.attributesOfItem(atPath: first.appendingPathComponent("00000.png").path)[.modificationDate] as? Date == stamp)
            // Another size, limit or file list is another folder; nothing half-written is left.
            #expect(try source.fidReference(size: 6, limit: 4, cacheDirectory: cache) != first)
            try writeRandomImages(count: 1, size: 12, to: data.appendingPathComponent("more"), seed: 4)
            let grown = try source.fidReference(size: 8, limit: 10, cacheDirectory: cache)
            #expect(grown != first && SampleWriter.existingCount(in: grown) == 6)
            #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).allSatisfy { !$0.hasPrefix(".partial") })
            // Above the limit the images are evenly spaced through the listing: 10 files, limit 5
            // -> files 0, 2, 4, 6, 8.
            let ten = tmp.appendingPathComponent("ten")
            try writeRandomImages(count: 10, size: 12, to: ten, seed: 6)
            let spaced = try DataSource.folder(ten).fidReference(size: 8, limit: 5, cacheDirectory: cache)
            #expect(SampleWriter.existingCount(in: spaced) == 5)
            let listing = try ImageFolder(ten)
            for (i, source) in [0, 2, 4, 6, 8].enumerated() {
                let want = try #require(listing.load([source], size: 8).first ?? nil)
                #expect(try Image(contentsOf: spaced.appendingPathComponent(SampleWriter.fileName(i))).pixels == want.pixels, "image \(i)")
            }
            #expect(throws: PipelineError.self) {
                _ = try DataSource.folder(tmp.appendingPathComponent("missing")).fidReference(size: 8, cacheDirectory: cache)
            }
        }
    }
}

/// Runs that score FID need the Inception weights (`scripts/fetch-fid-weights.sh`; `make test`
/// fetches them and makes their absence a failure).
@Suite(.serialized) struct TrainingEvaluationRunTests {
    static var weightsPresent: Bool {
        if FileManager.default.fileExists(atPath: FIDInceptionV3.defaultWeightsURL.path) { return true }
        if ProcessInfo.processInfo.environment["MASKDM_REQUIRE_FID"] == "1" {
            Issue.record("FID Inception weights missing at \(FIDInceptionV3.defaultWeightsURL.path): run scripts/fetch-fid-weights.sh")
        }
        return false
    }

    /// TrainingRunTests' network and recipe, checkpointing every 5 steps, scoring 8 samples every 2.
    static func config(steps: Int, reference: URL) -> RunConfig {
        var config = TrainingRunTests.config(steps: steps)
        config.recipe.checkpointEvery = 5
        config.keepCheckpoints = 10
        config.evaluation = EvaluationSchedule(every: 2, samples: 8, reference: reference.path, sampler: .dpmSolver(steps: 4), batchSize: 4)
        return config
    }

    static func open(_ folder: URL, steps: Int, reference: URL) throws -> TrainingRun {
        let run = try TrainingRun(folder: folder, config: config(steps: steps, reference: reference))
        run.trainer.ema.updateAfterStep = 2
        return run
    }

    @Test func aRunScoresKeepsItsBestCheckpointAndResumesWithTheSameScores() throws {
        guard Self.weightsPresent else { return }
        try withTemporaryFolder("eval-run") { tmp in
            let reference = tmp.appendingPathComponent("reference")
            try writeRandomImages(count: 8, size: 8, to: reference, seed: 9)

            // Uninterrupted: scores at 2 and 4 (the last step), each a record in fid.jsonl, and an event.
            let a = try Self.open(tmp.appendingPathComponent("a"), steps: 4, reference: reference)
            var scored: [(Int, Bool)] = []
            var progress: [String] = []
            try a.train(on: TrainingRunTests.dataset) { e in
                switch e {
                case .evaluation(let r, let best): scored.append((r.step, best))
                case .scoring(let step, let phase, let done, let total): progress.append("\(step) \(phase.rawValue) \(done)/\(total)")
                default: break
                }
            }
            #expect(a.evaluations.map(\.step) == [2, 4])
            // The reference comes with its statistics, fitted once for every score.
            let referenceFeatures = try #require(try SampleEvaluator().referenceFeatures(of: reference))
            #expect(referenceFeatures.statistics == (try GaussianStatistics(features: referenceFeatures.features)))
            // Progress of each score: samples drawn in batches of 4, then read (in batches of 32).
            #expect(progress == [2, 4].flatMap { s in
                ["sampling 0/8", "sampling 4/8", "sampling 8/8", "features 0/8", "features 8/8"].map { "\(s) \($0)" }
            })
            #expect(a.evaluations.allSatisfy { $0.sampler == "DPM-Solver++(2M) (4 steps)" && $0.reference == reference.standardizedFileURL.path })
            #expect(a.comparableEvaluations == a.evaluations)
            #expect(scored.map(\.0) == [2, 4] && scored.first?.1 == true)
            #expect(a.evaluations.allSatisfy { $0.fid.isFinite && $0.fid > 0 && $0.samples == 8 && $0.references == 8 })
            #expect(EvaluationRecord.parseLog(try String(contentsOf: a.evaluationLogURL, encoding: .utf8)) == a.evaluations)
            #expect(SampleWriter.existingCount(in: a.evaluationSamplesFolder) == 8)
            #expect(FileManager.default.fileExists(atPath: a.fidPlotURL.path))
            // A best score off the checkpoint cadence (every 5) wrote its checkpoint; the best
            // file is the checkpoint of the best step.
            #expect(FileManager.default.fileExists(atPath: a.folder.appendingPathComponent("checkpoint-2.safetensors").path))
            let best = try #require(EvaluationRecord.best(of: a.evaluations))
            #expect(scored.last(where: \.1)?.0 == best.step)
            #expect(try SafetensorsFile(contentsOf: a.bestCheckpointURL).metadata["step"] == "\(best.step)")
            #expect(try Data(contentsOf: a.bestCheckpointURL)
                    == Data(contentsOf: a.folder.appendingPathComponent("checkpoint-\(best.step).safetensors")))

            // Stopped after step 2 with a score of step 3 on disk that the checkpoint does not
            // hold: that score is dropped, training resumes, and the scores are the uninterrupted ones.
            let bFolder = tmp.appendingPathComponent("b")
            _ = try Self.open(bFolder, steps: 2, reference: reference).train(on: TrainingRunTests.dataset)
            var stray = a.evaluations[0]
            stray.step = 3
            try appendLine(stray.jsonLine, to: bFolder.appendingPathComponent("fid.jsonl"))
            let b = try Self.open(bFolder, steps: 4, reference: reference)
            #expect(b.evaluations.map(\.step) == [2])
            try b.train(on: TrainingRunTests.dataset)
            #expect(b.evaluations.map(\.step) == [2, 4])
            #expect(b.evaluations.map(\.fid.bitPattern) == a.evaluations.map(\.fid.bitPattern))
            #expect(b.evaluations.map(\.kid.bitPattern) == a.evaluations.map(\.kid.bitPattern))
            #expect(try TrainingRunTests.tensors(b.checkpointURL) == TrainingRunTests.tensors(a.checkpointURL))
            #expect(EvaluationRecord.parseLog(try String(contentsOf: b.evaluationLogURL, encoding: .utf8)) == b.evaluations)

            // Ctrl-C while step 2's samples are drawn (after the first of two batches): the score
            // is abandoned, the run checkpoints step 2 and stops; resumed, it scores step 2 first.
            // The run polls before steps 1 and 2 and before the score; the fourth poll, after the
            // score's first batch, is the first to see the stop.
            let polls = PollCounter()
            let dFolder = tmp.appendingPathComponent("d")
            let d = try Self.open(dFolder, steps: 4, reference: reference)
            d.stopRequested = { polls.next() >= 4 }
            let error = #expect(throws: PipelineError.self) { try d.train(on: TrainingRunTests.dataset) }
            #expect(error == .interrupted(step: 2, checkpoint: d.checkpointURL.path))
            #expect(d.evaluations.isEmpty && SampleWriter.existingCount(in: d.evaluationSamplesFolder) == 4)
            let e = try Self.open(dFolder, steps: 4, reference: reference)
            #expect(e.resumedFrom == 2 && e.evaluations.isEmpty)
            try e.train(on: TrainingRunTests.dataset)
            #expect(e.evaluations.map(\.step) == [2, 4])
            #expect(e.evaluations.map(\.fid.bitPattern) == a.evaluations.map(\.fid.bitPattern))

            // Ctrl-C in the last step, before its score: the run stops (it does not report itself
            // done), and the re-run, complete, takes the missing score.
            let flag = TrainingRunTests.StopFlag()
            let lastFolder = tmp.appendingPathComponent("last")
            let last = try Self.open(lastFolder, steps: 2, reference: reference)
            last.stopRequested = { flag.isRaised }
            #expect(throws: PipelineError.interrupted(step: 2, checkpoint: last.checkpointURL.path)) {
                try last.train(on: TrainingRunTests.dataset) { e in if case .step(let r) = e, r.step == 2 { flag.raise() } }
            }
            #expect(SampleWriter.existingCount(in: last.evaluationSamplesFolder) == 0)
            flag.clear()
            let finished = try Self.open(lastFolder, steps: 2, reference: reference)
            #expect(finished.isComplete && finished.evaluations.isEmpty)
            #expect(try finished.train(on: TrainingRunTests.dataset).stepsRun == 0)
            #expect(finished.evaluations.map(\.step) == [2] && finished.evaluations[0].fid.bitPattern == a.evaluations[0].fid.bitPattern)

            // As if step 4 had scored best and the process died before linking it: reopening links it.
            var records = b.evaluations
            records[0].fid = records[1].fid + 100
            try Data(records.map { $0.jsonLine + "\n" }.joined().utf8).write(to: b.evaluationLogURL)
            try FileManager.default.removeItem(at: b.bestCheckpointURL)
            let c = try Self.open(bFolder, steps: 4, reference: reference)
            #expect(c.isComplete && EvaluationRecord.best(of: c.evaluations)?.step == 4)
            #expect(try Data(contentsOf: c.bestCheckpointURL) == Data(contentsOf: c.checkpointURL))
            // A complete run opened again scores nothing more.
            #expect(try c.train(on: TrainingRunTests.dataset).stepsRun == 0)
            #expect(c.evaluations.count == 2)
        }
    }

    @Test func aScheduleChangedBetweenSittingsKeepsTheBestOfItsOwnScores() throws {
        guard Self.weightsPresent else { return }
        try withTemporaryFolder("eval-change") { tmp in
            let reference = tmp.appendingPathComponent("reference")
            try writeRandomImages(count: 8, size: 8, to: reference, seed: 9)
            let folder = tmp.appendingPathComponent("r")
            let first = try Self.open(folder, steps: 2, reference: reference)
            try first.train(on: TrainingRunTests.dataset)
            // Lower every earlier score far below anything a run scores: were they compared, step 4 could not be the best.
            var records = first.evaluations
            records[0].fid = -1
            try Data(records.map { $0.jsonLine + "\n" }.joined().utf8).write(to: first.evaluationLogURL)
            // The next sitting scores 6 samples with 3 sampler steps.
            var config = Self.config(steps: 4, reference: reference)
            config.evaluation?.samples = 6
            config.evaluation?.sampler = .dpmSolver(steps: 3)
            let second = try TrainingRun(folder: folder, config: config)
            second.trainer.ema.updateAfterStep = 2
            #expect(second.evaluations.count == 1 && second.comparableEvaluations.isEmpty)
            var best: [Int] = []
            try second.train(on: TrainingRunTests.dataset) { if case .evaluation(let r, true) = $0 { best.append(r.step) } }
            #expect(second.evaluations.map(\.step) == [2, 4])
            #expect(second.comparableEvaluations.map(\.step) == [4] && best == [4])
            #expect(second.evaluations[1].samples == 6 && second.evaluations[1].sampler == "DPM-Solver++(2M) (3 steps)")
            #expect(try SafetensorsFile(contentsOf: second.bestCheckpointURL).metadata["step"] == "4")
        }
    }

    @Test func aRunWithoutAScheduleRefusesToScore() throws {
        try withTemporaryFolder("eval-run") { tmp in
            let run = try TrainingRun(folder: tmp.appendingPathComponent("r"), config: TrainingRunTests.config(steps: 2))
            #expect(throws: PipelineError.invalidOption(name: "evaluation", problem: "the run's config has no evaluation schedule")) {
                try run.evaluate()
            }
        }
    }
}

/// Counts a run's stop polls (the n-th poll returns n).
final class PollCounter: Sendable {
    private let count = Atomic<Int>(0)
    func next() -> Int { count.add(1, ordering: .relaxed).newValue }
}

/// Writes `count` random RGB images of `size` x `size` as numbered PNGs into `folder`.
func writeRandomImages(count: Int, size: Int, to folder: URL, seed: UInt64) throws {
    var rng = RandomGenerator(seed: seed)
    let batch = Tensor.randomUniform([count, 3, size, size], low: -1, high: 1, using: &rng)
    try ImageWriting.writeNumbered(Image.images(fromBatch: batch), to: folder)
}
