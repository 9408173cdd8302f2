import Foundation
import Tensor
import Testing

/// Ctrl-C on a real `maskdm` process (one process, no `mpirun`): the run finishes its step,
/// writes a checkpoint, says where, exits non-zero, and the same command resumes it. In a child
/// process because ``StopSignal`` is process-wide: raising it in the test process would stop the
/// runs other suites train meanwhile. Needs the `maskdm` built beside the tests (`make test`).
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: MPIJob.maskdm.path)
                || ProcessInfo.processInfo.environment["MASKDM_REQUIRE_MPI"] == "1"))
struct CLISignalTests {
    @Test func sigintCheckpointsStopsAndResumes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sigint-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let out = folder.appendingPathComponent("run")
        let log = out.appendingPathComponent("log.jsonl")
        let args = MPIJob.pretrain(data: "emoji-others", out: out, steps: 100_000)
        let p = Process()
        p.executableURL = MPIJob.maskdm
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["MASKDM_THREADS": "1"]) { $1 }
        let printed = folder.appendingPathComponent("output.txt")
        _ = FileManager.default.createFile(atPath: printed.path, contents: nil)
        let handle = try FileHandle(forWritingTo: printed)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        // Interrupt once two steps are logged (or give up after two minutes).
        let deadline = Date().addingTimeInterval(120)
        func loggedSteps() -> Int {
            ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").count
        }
        while loggedSteps() < 2 && p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(p.isRunning, "maskdm ended before it was interrupted")
        // A second process training into the same folder meanwhile stops at once (the folder's
        // lock), naming the folder, and changes nothing.
        let (secondStatus, secondText) = try MPIJob.runAlone(args)
        #expect(secondStatus == 1 && secondText.contains("is in use by another process")
                && secondText.contains(out.path), "\(secondText)")
        #expect(!secondText.contains("data:"), "the lock was found only after the data loaded: \(secondText)")
        p.interrupt()
        let stopBy = Date().addingTimeInterval(60)
        while p.isRunning && Date() < stopBy { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning {                                   // the signal never arrived: do not hang
            kill(p.processIdentifier, SIGKILL)
            Issue.record("maskdm did not stop within 60 s of SIGINT")
        }
        p.waitUntilExit()
        try handle.close()
        let text = try String(contentsOf: printed, encoding: .utf8)
        #expect(p.terminationStatus == 130, "\(text)")      // 128 + SIGINT
        let stopped = try #require(text.range(of: #"stopped at step (\d+)"#, options: .regularExpression), "\(text)")
        let step = try #require(Int(text[stopped].split(separator: " ").last ?? ""))
        #expect(step >= 2 && step < 100_000)
        let checkpoint = out.appendingPathComponent("checkpoint.safetensors")
        #expect(try SafetensorsFile(contentsOf: checkpoint).metadata["step"] == String(step))
        #expect(loggedSteps() == step)
        // The same command, now for two more steps, resumes from the checkpoint.
        var more = args
        more[more.firstIndex(of: "--steps")! + 1] = String(step + 2)
        let resumed = Process()
        resumed.executableURL = MPIJob.maskdm
        resumed.arguments = more
        resumed.environment = p.environment
        resumed.standardOutput = FileHandle.nullDevice
        resumed.standardError = FileHandle.nullDevice
        try resumed.run()
        resumed.waitUntilExit()
        #expect(resumed.terminationStatus == 0)
        #expect(loggedSteps() == step + 2)
        #expect(try SafetensorsFile(contentsOf: checkpoint).metadata["step"] == String(step + 2))
    }

    /// `maskdm ARGS` with stdout into a pipe (stderr dropped), read until `steps` progress lines
    /// came; then the reading end is closed (or, with `keepReading`, drained until the process
    /// ends). Returns the process and what it printed.
    static func startPipedAndCloseAfter(steps: Int, _ args: [String], keepReading: Bool = false) throws -> (process: Process, printed: String) {
        let p = Process()
        p.executableURL = MPIJob.maskdm
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["MASKDM_THREADS": "1"]) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        var seen = ""
        let deadline = Date().addingTimeInterval(180)
        while seen.components(separatedBy: "pretrain ").count <= steps, Date() < deadline {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        if keepReading {
            // Drained on a thread until the process ends: the pipe stays open, so no SIGPIPE comes.
            let reader = pipe.fileHandleForReading
            Thread.detachNewThread { while !reader.availableData.isEmpty {} }
        } else {
            try pipe.fileHandleForReading.close()
        }
        return (p, seen)
    }

    /// Waits (a minute at most) for `p` to end; then expects the run folder's checkpoint to hold
    /// every logged step (at least `minimum`).
    static func expectEndsWithItsCheckpoint(_ p: Process, out: URL, minimum: Int) throws {
        let stopBy = Date().addingTimeInterval(120)
        while p.isRunning && Date() < stopBy { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!p.isRunning, "maskdm went on after its stdout closed")
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        let logged = try String(contentsOf: out.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n").count
        let saved = try SafetensorsFile(contentsOf: out.appendingPathComponent("checkpoint.safetensors")).metadata["step"]
        #expect(logged >= minimum && saved == String(logged))
    }

    /// stdout's reader going away (`maskdm ... | head`, a `| tee` whose session dropped) stops the
    /// run as a signal does: a checkpoint of the last step, status 141 (128 + SIGPIPE).
    @Test func closedStdoutStopsWithACheckpoint() throws {
        try withTemporaryFolder("sigpipe") { folder in
            let out = folder.appendingPathComponent("run")
            let (p, seen) = try Self.startPipedAndCloseAfter(
                steps: 2, MPIJob.pretrain(data: "emoji-faces", out: out, steps: 100_000, batch: 4) + ["--checkpoint-every", "0", "--log-every", "1"])
            try Self.expectEndsWithItsCheckpoint(p, out: out, minimum: 2)
            #expect(p.terminationStatus == 141, "printed: \(seen)")
        }
    }

    /// A second Ctrl-C while the first one's step and checkpoint are under way ends the process
    /// at once, killed by SIGINT (not the clean stop's exit status 130), without a checkpoint.
    @Test func secondCtrlCKillsAtOnce() throws {
        try withTemporaryFolder("sigint-twice") { folder in
            let out = folder.appendingPathComponent("run")
            // Steps of about half a second and a 700 MB checkpoint: the second signal comes long before the stop is done.
            let (p, seen) = try Self.startPipedAndCloseAfter(
                steps: 1, ["pretrain", "--data", "emoji-faces", "--out", out.path, "--model", "small", "--size", "32", "--steps", "100000",
                           "--batch", "8", "--checkpoint-every", "0", "--log-every", "1"], keepReading: true)
            // Signals until it ends: two sent before the first is delivered would merge into one,
            // and every one after the first delivered is a second.
            let stopBy = Date().addingTimeInterval(60)
            while p.isRunning && Date() < stopBy {
                p.interrupt()
                Thread.sleep(forTimeInterval: 0.05)
            }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGINT,
                    "reason \(p.terminationReason.rawValue), status \(p.terminationStatus), printed: \(seen)")
            #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint.safetensors").path))
        }
    }

    /// A Ctrl-C soon after stdout's reader went away is still a first signal: the run keeps its
    /// checkpoint (a closed pipe does not count as the first of two).
    @Test func ctrlCAfterAClosedPipeStillCheckpoints() throws {
        try withTemporaryFolder("sigpipe-int") { folder in
            let out = folder.appendingPathComponent("run")
            // Steps of about half a second, so that the signal comes while a step or the checkpoint runs.
            let (p, seen) = try Self.startPipedAndCloseAfter(
                steps: 1, ["pretrain", "--data", "emoji-faces", "--out", out.path, "--model", "small", "--size", "32", "--steps", "100000",
                           "--batch", "8", "--checkpoint-every", "0", "--log-every", "1"])
            Thread.sleep(forTimeInterval: 0.3)
            if p.isRunning { p.interrupt() }
            try Self.expectEndsWithItsCheckpoint(p, out: out, minimum: 1)
            #expect([130, 141].contains(p.terminationStatus), "status \(p.terminationStatus), printed: \(seen)")
        }
    }
}
