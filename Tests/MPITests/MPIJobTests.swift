import Foundation
import ImageIO
import MPI
import Metrics
import Pipeline
import Tensor
import Testing
import ViTDiffusion

/// Runs `maskdm` under `mpirun` (the MPI build: `make test` builds with `--traits MPI`).
enum MPIJob {
    /// The `maskdm` built beside this test bundle (or `$MASKDM_BIN`).
    static var maskdm: URL {
        if let b = ProcessInfo.processInfo.environment["MASKDM_BIN"], !b.isEmpty { return URL(fileURLWithPath: b) }
        return URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("maskdm")
    }

    static var mpirun: URL? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let url = URL(fileURLWithPath: String(dir)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }

    /// Whether the MPI tests can run: an MPI build, `mpirun` on the PATH and the `maskdm` binary.
    /// `MASKDM_REQUIRE_MPI=1` (set by `make test`) turns a missing piece into a failure.
    static var available: Bool {
        let ok = MPICommunicator.isAvailable && mpirun != nil && FileManager.default.isExecutableFile(atPath: maskdm.path)
        if !ok && ProcessInfo.processInfo.environment["MASKDM_REQUIRE_MPI"] == "1" {
            Issue.record("MPI tests required but unavailable: MPI build \(MPICommunicator.isAvailable), mpirun \(mpirun?.path ?? "missing"), maskdm at \(maskdm.path)")
        }
        return ok
    }

    /// A started `mpirun -np ranks maskdm ARGS` (one thread per rank, root allowed, oversubscribed).
    static func start(ranks: Int, _ args: [String], output: URL) throws -> Process {
        try start(perRank: [(ranks, [], args)], output: output)
    }

    /// A started `mpirun` of several `-np N OPTIONS maskdm ARGS` groups (ranks numbered in order;
    /// OPTIONS are mpirun's for the group, e.g. `-wdir DIR`), as ``start(ranks:_:output:)``.
    static func start(perRank groups: [(ranks: Int, options: [String], args: [String])], output: URL) throws -> Process {
        let p = Process()
        p.executableURL = mpirun!
        let apps = groups.enumerated().flatMap { i, group in
            (i > 0 ? [":"] : []) + ["-np", String(group.ranks)] + group.options + [maskdm.path] + group.args
        }
        p.arguments = ["--oversubscribe", "--bind-to", "none", "-x", "MASKDM_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1"] + apps
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        // Containers often forbid the cross-process memory copy (CMA) that Open MPI's shared-memory
        // transport uses by default; copying through the shared segment works everywhere.
        if env["OMPI_MCA_btl_vader_single_copy_mechanism"] == nil { env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none" }
        // Under `make sanitize` the ranks are AddressSanitizer builds: keep the memory-error
        // checks but not LeakSanitizer's exit report, which lists Open MPI's own allocations in
        // components it has already unloaded (frames that no suppression can name). The
        // library's leaks are checked by the in-process tests.
        if let asan = env["ASAN_OPTIONS"] { env["ASAN_OPTIONS"] = asan + ":detect_leaks=0" }
        p.environment = env
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return p
    }

    /// Runs `maskdm ARGS` to the end in one process (no `mpirun`; one thread), in `folder` if given: status and everything printed (stdout and stderr).
    static func runAlone(_ args: [String], in folder: URL? = nil, environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = MPIJob.maskdm
        p.arguments = args
        if let folder { p.currentDirectoryURL = folder }
        p.environment = ProcessInfo.processInfo.environment.merging(["MASKDM_THREADS": "1"].merging(environment) { $1 }) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    /// Runs to the end; returns the exit status and everything printed.
    @discardableResult
    static func run(ranks: Int, _ args: [String], in folder: URL) throws -> (status: Int32, output: String) {
        try run(perRank: [(ranks, [], args)], in: folder)
    }

    /// Runs groups of ranks with their own arguments to the end (see ``start(perRank:output:)``).
    @discardableResult
    static func run(perRank groups: [(ranks: Int, options: [String], args: [String])], in folder: URL) throws -> (status: Int32, output: String) {
        let out = folder.appendingPathComponent("mpirun-\(UUID().uuidString).txt")
        let p = try start(perRank: groups, output: out)
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }

    /// A folder of `count` small, distinct PNGs (16 x 16).
    static func writeImages(count: Int, to folder: URL, seed: UInt64 = 7) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var rng = RandomGenerator(seed: seed)
        for i in 0..<count {
            let pixels = (0..<(16 * 16 * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 56) }
            try Image(width: 16, height: 16, channels: 3, pixels: pixels).write(to: folder.appendingPathComponent("img\(i).png"))
        }
    }

    /// Two working folders under `dir`, `a/` and `b/`, each with an `images/` folder of `counts`
    /// PNGs: run with `-wdir`, the one path `/proc/self/cwd/images` names each rank's own images
    /// (as node-local data on a cluster would).
    static func perRankImages(in dir: URL, counts: (a: Int, b: Int)) throws -> (a: URL, b: URL) {
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
        try writeImages(count: counts.a, to: a.appendingPathComponent("images"))
        try writeImages(count: counts.b, to: b.appendingPathComponent("images"))
        return (a, b)
    }

    /// Pre-training arguments of a tiny 16 px network, masked, checkpointing every step.
    static func pretrain(data: URL, out: URL, steps: Int, batch: Int = 8) -> [String] {
        pretrain(data: data.path, out: out, steps: steps, batch: batch)
    }

    /// The same on a bundled dataset (real images: random pixels give near-zero gradients whose
    /// summation-order noise AdamW's division by sqrt(v) amplifies to lr-sized steps).
    static func pretrain(data: String, out: URL, steps: Int, batch: Int = 8) -> [String] {
        ["pretrain", "--data", data, "--out", out.path, "--model", "tiny", "--size", "16", "--mask", "block2",
         "--ratio", "0.5", "--steps", String(steps), "--batch", String(batch), "--checkpoint-every", "1", "--log-every", "1000"]
    }

    /// How far a 2-rank run may end from the 1-rank run, relative to each tensor's largest
    /// magnitude. The runs sum the same gradients in another order, and AdamW divides each update
    /// by the root of its second moment, which magnifies those roundings where a gradient is tiny
    /// (the attention projections' biases). Measured after 5 steps: 6.8e-5 with the AVX2 kernel,
    /// 1.2e-4 with the AVX-512 kernel's blocking (`MASKDM_GEMM_ISA=avx512-emulated`, the AVX-512
    /// kernel's operations in the same order).
    static let tolerance: Float = 5e-4

    /// Expects the final checkpoint of the run folder `got` within ``tolerance`` of `want`'s
    /// (see ``maxRelativeDifference(_:_:)``); returns the largest difference.
    @discardableResult
    static func expectCheckpointsClose(_ got: URL, _ want: URL) throws -> (key: String, error: Float) {
        let diff = try maxRelativeDifference(got.appendingPathComponent("checkpoint.safetensors"),
                                             want.appendingPathComponent("checkpoint.safetensors"))
        #expect(diff.error <= tolerance, "largest difference \(diff.error) in \(diff.key)")
        return diff
    }

    /// The largest per-tensor difference between two checkpoints, relative to each tensor's
    /// largest magnitude in `want` (every key of `want` must be in `got` with its shape).
    static func maxRelativeDifference(_ got: URL, _ want: URL) throws -> (key: String, error: Float) {
        let a = try SafetensorsFile(contentsOf: got), b = try SafetensorsFile(contentsOf: want)
        var worst = (key: "", error: Float(0))
        for key in b.keys.sorted() {
            let w = try b.tensor(key), g = try a.tensor(key)
            #expect(g.shape == w.shape, "\(key): \(g.shape) vs \(w.shape)")
            let e = g.maxAbsDifference(w) / max(w.maxAbs(), 1e-12)
            if e > worst.error || worst.key.isEmpty { worst = (key, e) }
        }
        return worst
    }
}

/// Data-parallel training over Open MPI, 2 ranks x 1 thread on one machine (issue 14's tests).
@Suite(.serialized, .enabled(if: MPIJob.available))
struct MPIJobTests {
    /// `accumulate`: the 2 ranks run their shares as that many micro-batches (`--accumulate`).
    @Test("2 ranks x 5 masked steps, also in 2 micro-batches each, equal 1 rank with the same global batch (5e-4 of each tensor's largest magnitude)",
          arguments: [1, 2])
    func twoRanksMatchOne(accumulate: Int) throws {
        try withTemporaryFolder("mpi-equal") { dir in
            let data = "emoji-faces"
            let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
            let r1 = try MPIJob.run(ranks: 1, MPIJob.pretrain(data: data, out: one, steps: 5), in: dir)
            #expect(r1.status == 0, "1 rank: \(r1.output)")
            let r2 = try MPIJob.run(ranks: 2, MPIJob.pretrain(data: data, out: two, steps: 5) + ["--accumulate", String(accumulate)],
                                    in: dir)
            #expect(r2.status == 0, "2 ranks: \(r2.output)")
            let banner = "4 on each of 2 ranks)" + (accumulate > 1 ? " in \(accumulate) micro-batches" : ", lr")
            #expect(r2.output.contains(banner), "\(r2.output)")
            // mpirun gives each rank a pseudo-terminal even when its output goes to a file: the
            // ranks print plain lines, not a redrawn bar's control characters.
            #expect(!r1.output.contains("\u{1B}") && !r2.output.contains("\u{1B}") && !r2.output.contains("\r"), "\(r2.output)")
            #expect(r2.output.contains("pretrain 5/5  loss"), "\(r2.output)")
            let diff = try MPIJob.expectCheckpointsClose(two, one)
            print("MPI: 2 ranks (\(accumulate) micro-batches) vs 1 after 5 masked steps: largest relative difference \(diff.error) (\(diff.key))")
            // Rank 0 alone wrote the log: five lines, the same losses to float precision.
            let l1 = try String(contentsOf: one.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n")
            let l2 = try String(contentsOf: two.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n")
            #expect(l1.count == 5 && l2.count == 5)
        }
    }

    @Test("A run of 2 ranks resumed with 1 rank continues and matches an uninterrupted 1-rank run")
    func resumeUnderAnotherRankCount() throws {
        try withTemporaryFolder("mpi-resume") { dir in
            let data = "emoji-faces"
            let straight = dir.appendingPathComponent("straight"), mixed = dir.appendingPathComponent("mixed")
            #expect(try MPIJob.run(ranks: 1, MPIJob.pretrain(data: data, out: straight, steps: 6), in: dir).status == 0)
            let first = try MPIJob.run(ranks: 2, MPIJob.pretrain(data: data, out: mixed, steps: 3), in: dir)
            #expect(first.status == 0, "\(first.output)")
            let second = try MPIJob.run(ranks: 1, MPIJob.pretrain(data: data, out: mixed, steps: 6), in: dir)
            #expect(second.status == 0, "\(second.output)")
            #expect(second.output.contains("resuming at step 3"), "\(second.output)")
            try MPIJob.expectCheckpointsClose(mixed, straight)
        }
    }

    @Test("Killing one rank mid-run ends the job with an error within seconds; the checkpoint loads", arguments: [1, 0])
    func killedRankEndsTheJob(rank: Int) throws {
        try withTemporaryFolder("mpi-kill") { dir in
            let data = dir.appendingPathComponent("data")
            try MPIJob.writeImages(count: 24, to: data)
            let run = dir.appendingPathComponent("run")
            let output = dir.appendingPathComponent("kill.txt")
            let job = try MPIJob.start(ranks: 2, MPIJob.pretrain(data: data, out: run, steps: 100_000), output: output)
            defer { if job.isRunning { kill(job.processIdentifier, SIGKILL) } }
            // Wait until a few steps are logged (checkpoints are written every step).
            let log = run.appendingPathComponent("log.jsonl")
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                let lines = (try? String(contentsOf: log, encoding: .utf8))?.split(separator: "\n").count ?? 0
                if lines >= 3 { break }
                Thread.sleep(forTimeInterval: 0.1)
            }
            let victim = try #require(Self.rankProcess(rank, under: job.processIdentifier), "no rank \(rank) process found")
            let killedAt = Date()
            kill(victim, SIGKILL)
            // The other rank must not hang: mpirun ends within seconds, with an error.
            while job.isRunning && Date().timeIntervalSince(killedAt) < 30 { Thread.sleep(forTimeInterval: 0.05) }
            let seconds = Date().timeIntervalSince(killedAt)
            #expect(!job.isRunning, "the job still runs \(Int(seconds)) s after a rank was killed")
            if job.isRunning { kill(job.processIdentifier, SIGKILL) }
            job.waitUntilExit()                 // also lets Process release itself (else LeakSanitizer reports it)
            #expect(job.terminationStatus != 0)
            #expect(seconds < 10, "the job took \(seconds) s to end")
            print(String(format: "MPI: rank %d killed; the job ended %.2f s later with status %d", rank, seconds, job.terminationStatus))
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            #expect(text.lowercased().contains("signal") || text.lowercased().contains("exited") || text.contains("abort"),
                    "no error message: \(text)")
            // Whatever step it died at, the checkpoint is whole and resumes.
            let trainer = try DiffusionTrainer(checkpoint: run.appendingPathComponent("checkpoint.safetensors"))
            #expect(trainer.step >= 2)
        }
    }

    @Test("A global batch that does not divide over the ranks, or gives a rank fewer images than micro-batches, is refused at once, naming the key",
          arguments: [(7, 1, "batch_size", "does not divide evenly over 2 ranks"), (8, 5, "accumulationSteps", "gives 4 on each of 2 ranks")])
    func indivisibleBatch(batch: Int, accumulate: Int, key: String, problem: String) throws {
        try withTemporaryFolder("mpi-batch") { dir in
            let data = dir.appendingPathComponent("data")
            try MPIJob.writeImages(count: 8, to: data)
            let started = Date()
            let r = try MPIJob.run(ranks: 2, MPIJob.pretrain(data: data, out: dir.appendingPathComponent("run"), steps: 2, batch: batch)
                                   + ["--accumulate", String(accumulate)], in: dir)
            #expect(r.status != 0)
            #expect(r.output.contains(key) && r.output.contains(problem), "\(r.output)")
            #expect(Date().timeIntervalSince(started) < 60)
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("run/checkpoint.safetensors").path))
        }
    }

    @Test("Ranks started with other settings or other data are refused at the start, naming what differs")
    func ranksThatDisagreeAreRefused() throws {
        try withTemporaryFolder("mpi-disagree") { dir in
            // One path that names 8 images for rank 0 and 6 for rank 1.
            let (a, b) = try MPIJob.perRankImages(in: dir, counts: (8, 6))
            let out = dir.appendingPathComponent("run")
            let base = MPIJob.pretrain(data: "/proc/self/cwd/images", out: out, steps: 2, batch: 4)
            let lr = try MPIJob.run(perRank: [(1, ["-wdir", a.path], base + ["--lr", "1e-3"]), (1, ["-wdir", a.path], base + ["--lr", "5e-2"])], in: dir)
            #expect(lr.status == 64, "\(lr.output)")
            #expect(lr.output.contains("different settings (rank 1: recipe.learningRate 0.05 (rank 0: 0.001))"), "\(lr.output)")
            let steps = try MPIJob.run(perRank: [(1, ["-wdir", a.path], base),
                                                 (1, ["-wdir", a.path], MPIJob.pretrain(data: "/proc/self/cwd/images", out: out, steps: 3, batch: 4))], in: dir)
            #expect(steps.status == 64 && steps.output.contains("recipe.steps 3 (rank 0: 2)"), "\(steps.output)")
            // Settings the start-up collectives depend on (the network's size) are compared before them.
            for sizes in [("32", "16"), ("16", "32")] {
                let size = try MPIJob.run(perRank: [(1, ["-wdir", a.path], base + ["--size", sizes.0]),
                                                    (1, ["-wdir", a.path], base + ["--size", sizes.1])], in: dir)
                #expect(size.status == 64 && size.output.contains("different settings (rank 1: model.img_size \(sizes.1) (rank 0: \(sizes.0))"),
                        "\(size.output)")
            }
            // A rank that would resume beside one that would start afresh (a node-local --out).
            let done = dir.appendingPathComponent("done")
            #expect(try MPIJob.run(perRank: [(1, ["-wdir", a.path], MPIJob.pretrain(data: "/proc/self/cwd/images", out: done, steps: 2, batch: 4))],
                                   in: dir).status == 0)
            let mixed = try MPIJob.run(perRank: [(1, ["-wdir", a.path], MPIJob.pretrain(data: "/proc/self/cwd/images", out: done, steps: 4, batch: 4)),
                                                 (1, ["-wdir", a.path], MPIJob.pretrain(data: "/proc/self/cwd/images", out: dir.appendingPathComponent("fresh"), steps: 4, batch: 4))],
                                       in: dir)
            #expect(mixed.status == 64 && mixed.output.contains("run folder has no checkpoint (rank 0: has a checkpoint)"), "\(mixed.output)")
            let images = try MPIJob.run(perRank: [(1, ["-wdir", a.path], base), (1, ["-wdir", b.path], base)], in: dir)
            #expect(images.status == 64, "\(images.output)")
            #expect(images.output.contains("different numbers of training images (rank 0: 8, rank 1: 6)"), "\(images.output)")
            #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint.safetensors").path))
            // Settings only rank 0 acts on may differ: rank 0's are recorded.
            let own = dir.appendingPathComponent("writer-only")
            let writerOnly = MPIJob.pretrain(data: "/proc/self/cwd/images", out: own, steps: 2, batch: 4)
            let mixedFiles = try MPIJob.run(perRank: [(1, ["-wdir", a.path], writerOnly + ["--keep", "1"]),
                                                      (1, ["-wdir", a.path], writerOnly + ["--keep", "5", "--sample-every", "1", "--sample-count", "4"])],
                                            in: dir)
            #expect(mixedFiles.status == 0, "\(mixedFiles.output)")
            let recorded = try String(contentsOf: own.appendingPathComponent("config.json"), encoding: .utf8)
            #expect(recorded.contains("\"keepCheckpoints\" : 1") && recorded.contains("\"sampleEvery\" : 0"), "\(recorded)")
        }
    }

    @Test("Images that become unreadable on one rank end the job with that rank's error, the last step's checkpoint kept")
    func imagesFailingOnOneRank() throws {
        try withTemporaryFolder("mpi-unreadable") { dir in
            // The same 8 images for both ranks under one path, decoded per batch; rank 1's become
            // empty files while the job trains.
            let (a, b) = try MPIJob.perRankImages(in: dir, counts: (8, 8))
            let out = dir.appendingPathComponent("run")
            let args = MPIJob.pretrain(data: "/proc/self/cwd/images", out: out, steps: 100_000, batch: 4)
                + ["--stream", "--checkpoint-every", "100000"]
            let log = dir.appendingPathComponent("job.txt")
            let job = try MPIJob.start(perRank: [(1, ["-wdir", a.path], args), (1, ["-wdir", b.path], args)], output: log)
            defer { if job.isRunning { kill(job.processIdentifier, SIGKILL) } }
            let steps = out.appendingPathComponent("log.jsonl")
            func logged() -> [Int] {
                let text = (try? String(contentsOf: steps, encoding: .utf8)) ?? ""
                return text.split(separator: "\n").compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["step"] as? Int
                }
            }
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, logged().count < 2, job.isRunning { Thread.sleep(forTimeInterval: 0.05) }
            for i in 0..<8 { try Data().write(to: b.appendingPathComponent("images/img\(i).png")) }
            job.waitUntilExit()
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(job.terminationStatus == 1, "\(output)")
            #expect(output.contains("became unreadable during training"), "\(output)")
            #expect(output.contains("rank 1 could not take its part"), "\(output)")
            // Nothing lost: rank 0 wrote the checkpoint of the last step every rank finished.
            let last = try #require(logged().last)
            let checkpoint = out.appendingPathComponent("checkpoint.safetensors")
            let saved = try SafetensorsFile(contentsOf: checkpoint).metadata["step"]
            #expect(last >= 2 && saved == String(last), "\(output)")
        }
    }

    @Test("Re-running a finished 2-rank run, again and again, says there is nothing left (no lock race, no crash)")
    func rerunsOfAFinishedRun() throws {
        try withTemporaryFolder("mpi-rerun") { dir in
            let args = MPIJob.pretrain(data: "emoji-faces", out: dir.appendingPathComponent("run"), steps: 2, batch: 4)
            let first = try MPIJob.run(ranks: 2, args, in: dir)
            #expect(first.status == 0, "\(first.output)")
            for _ in 0..<4 {
                let again = try MPIJob.run(ranks: 2, args, in: dir)
                #expect(again.status == 0 && again.output.contains("nothing left to train"), "\(again.output)")
                let resumed = try MPIJob.run(ranks: 2, ["resume", dir.appendingPathComponent("run").path], in: dir)
                #expect(resumed.status == 0 && resumed.output.contains("nothing left to train"), "\(resumed.output)")
            }
        }
    }

    @Test("A command that runs in one process is refused under mpirun, by its name")
    func oneProcessCommandsNameThemselves() throws {
        try withTemporaryFolder("mpi-one") { dir in
            for command in ["describe", "check"] {
                let r = try MPIJob.run(ranks: 2, [command, dir.path], in: dir)
                #expect(r.status == 64, "\(r.output)")
                #expect(r.output.contains("'\(command)' runs in one process; under mpirun use"), "\(r.output)")
            }
        }
    }

    @Test("Sampling over 2 ranks writes the same images as 1 rank")
    func samplingSplitsOverRanks() throws {
        try withTemporaryFolder("mpi-sample") { dir in
            let data = dir.appendingPathComponent("data")
            try MPIJob.writeImages(count: 8, to: data)
            let run = dir.appendingPathComponent("run")
            #expect(try MPIJob.run(ranks: 1, MPIJob.pretrain(data: data, out: run, steps: 1), in: dir).status == 0)
            let args = { (out: URL) in ["sample", "--checkpoint", run.path, "--count", "10", "--batch", "3", "--sampler", "ddim",
                                        "--steps", "3", "--out", out.path] }
            let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
            let r1 = try MPIJob.run(ranks: 1, args(a), in: dir)
            #expect(r1.status == 0, "\(r1.output)")
            let r2 = try MPIJob.run(ranks: 2, args(b), in: dir)
            #expect(r2.status == 0, "\(r2.output)")
            for i in 0..<10 {
                let name = String(format: "%05d.png", i)
                let x = try Image(contentsOf: a.appendingPathComponent(name)), y = try Image(contentsOf: b.appendingPathComponent(name))
                #expect(x.pixels == y.pixels, "\(name) differs")
            }
            #expect(FileManager.default.fileExists(atPath: b.appendingPathExtension("png").path))
        }
    }

    @Test("A signal to one rank stops 2-rank sampling on every rank after the round under way; the re-run draws the rest")
    func samplingStopsOnEveryRank() throws {
        try withTemporaryFolder("mpi-sample-stop") { dir in
            let run = dir.appendingPathComponent("run")
            #expect(try MPIJob.run(ranks: 1, MPIJob.pretrain(data: "emoji-faces", out: run, steps: 1), in: dir).status == 0)
            let out = dir.appendingPathComponent("s")
            let args = ["sample", "--checkpoint", run.path, "--count", "400", "--batch", "2", "--sampler", "ddim", "--steps", "10", "--out", out.path]
            let log = dir.appendingPathComponent("stop.txt")
            let job = try MPIJob.start(ranks: 2, args, output: log)
            defer { if job.isRunning { kill(job.processIdentifier, SIGKILL) } }
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, !FileManager.default.fileExists(atPath: out.appendingPathComponent("00001.png").path) {
                Thread.sleep(forTimeInterval: 0.05)
            }
            let victim = try #require(Self.rankProcess(1, under: job.processIdentifier), "no rank 1 process found")
            kill(victim, SIGTERM)
            job.waitUntilExit()
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(job.terminationStatus == 143, "\(output)")                 // 128 + SIGTERM, on every rank
            #expect(output.contains("stopped with") && output.contains("of 400 samples"), "\(output)")
            let written = SampleWriter.existingCount(in: out)
            #expect(written >= 2 && written < 400, "\(written) samples")
            let rest = try MPIJob.run(ranks: 2, args, in: dir)
            #expect(rest.status == 0 && rest.output.contains("\(400 - written) new samples (\(written) were there)"), "\(rest.output)")
            #expect(SampleWriter.existingCount(in: out) == 400)
        }
    }

    @Test("FID over 2 ranks (Inception batches dealt round-robin, gathered on rank 0) equals 1 rank")
    func fidSplitsOverRanks() throws {
        let weights = FIDInceptionV3.defaultWeightsURL
        guard FileManager.default.fileExists(atPath: weights.path) else {
            if ProcessInfo.processInfo.environment["MASKDM_REQUIRE_FID"] == "1" {
                Issue.record("FID weights missing at \(weights.path) (scripts/fetch-fid-weights.sh)")
            }
            return
        }
        try withTemporaryFolder("mpi-fid") { dir in
            let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
            try MPIJob.writeImages(count: 10, to: a, seed: 1)
            try MPIJob.writeImages(count: 9, to: b, seed: 2)
            let args = ["fid", a.path, b.path, "--json", "--no-cache", "--batch-size", "3", "--weights", weights.path]
            func result(_ ranks: Int) throws -> [String: Double] {
                let r = try MPIJob.run(ranks: ranks, args, in: dir)
                #expect(r.status == 0, "\(ranks) ranks: \(r.output)")
                let line = try #require(r.output.split(separator: "\n").first { $0.hasPrefix("{") }, "no JSON in \(r.output)")
                return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Double])
            }
            let one = try result(1), two = try result(2)
            #expect(one["n_a"] == 10 && one["n_b"] == 9 && two["n_a"] == 10 && two["n_b"] == 9)
            // The text line (--batch is --batch-size) prints the JSON's numbers.
            let text = try MPIJob.run(ranks: 1, args.filter { $0 != "--json" }.map { $0 == "--batch-size" ? "--batch" : $0 }, in: dir)
            let expected = String(format: "FID %.4f  KID %.6f +- %.6f  (10 vs 9 images)", one["fid"] ?? 0, one["kid"] ?? 0, one["kid_std"] ?? 0)
            #expect(text.status == 0 && text.output.contains(expected), "\(text.output) lacks \(expected)")
            for key in ["fid", "kid"] {
                let x = try #require(one[key]), y = try #require(two[key])
                #expect(abs(x - y) <= 1e-9 * max(abs(x), 1), "\(key): 1 rank \(x), 2 ranks \(y)")
            }
        }
    }

    @Test("FID during training on 2 ranks: every rank samples and scores, rank 0 writes fid.jsonl and the best checkpoint")
    func fidDuringTrainingOverRanks() throws {
        guard FileManager.default.fileExists(atPath: FIDInceptionV3.defaultWeightsURL.path) else {
            if ProcessInfo.processInfo.environment["MASKDM_REQUIRE_FID"] == "1" {
                Issue.record("FID weights missing at \(FIDInceptionV3.defaultWeightsURL.path) (scripts/fetch-fid-weights.sh)")
            }
            return
        }
        try withTemporaryFolder("mpi-fid-train") { dir in
            let data = dir.appendingPathComponent("data")
            try MPIJob.writeImages(count: 8, to: data)
            let out = dir.appendingPathComponent("run")
            let args = MPIJob.pretrain(data: data, out: out, steps: 2, batch: 4)
                + ["--fid-every", "1", "--fid-samples", "70", "--fid-reference", data.path]   // 2 sampling batches, 3 Inception batches
            let r = try MPIJob.run(ranks: 2, args, in: dir)
            #expect(r.status == 0, "\(r.output)")
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint-best.safetensors").path))
            let text = try String(contentsOf: out.appendingPathComponent("fid.jsonl"), encoding: .utf8)
            let lines = try text.split(separator: "\n").map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect(lines.map { $0["step"] as? Int } == [1, 2])
            #expect(lines.allSatisfy { ($0["samples"] as? Int) == 70 && ($0["references"] as? Int) == 8 })
            #expect(lines.allSatisfy { (($0["fid"] as? Double) ?? -1) > 0 }, "\(lines)")
        }
    }

    /// The pid of the `maskdm` child of `mpirun` (pid `parent`) whose environment says it is `rank`.
    static func rankProcess(_ rank: Int, under parent: Int32) -> Int32? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries {
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")"),
                  stat[stat.index(close, offsetBy: 2)...].split(separator: " ").dropFirst().first == Substring(String(parent)),
                  let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ"),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  String(decoding: cmdline, as: UTF8.self).contains("maskdm") else { continue }
            let vars = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if vars.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }
}

/// A fresh temporary folder, removed by `body`'s end.
func withTemporaryFolder<R>(_ label: String, _ body: (URL) throws -> R) throws -> R {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}
