import Foundation
import Metrics
import Testing

/// What a user meets when a `maskdm` command cannot run: the exit status (64 for a setting the
/// command cannot use, 1 for a file or data that failed), a message naming the flag or the file,
/// the subcommand's help hint only for settings, and checks that come before the data loads.
/// Runs the real binary (one process, no `mpirun`).
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: MPIJob.maskdm.path)
                || ProcessInfo.processInfo.environment["MASKDM_REQUIRE_MPI"] == "1"))
struct CLIErrorTests {
    @Test func versionIsPrinted() throws {
        let r = try MPIJob.runAlone(["--version"])
        #expect(r.status == 0)
        #expect(r.output.range(of: #"^maskdm \d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(r.output)")
    }

    @Test func settingsExit64AndFailuresExit1() throws {
        try withTemporaryFolder("cli") { tmp in
            let out = tmp.appendingPathComponent("run").path
            // A setting each layer refuses: the command itself, the recipe, the mask parser.
            for (args, says) in [
                (["pretrain", "--data", "emoji-faces", "--out", out, "--steps", "-5"], "steps must be >= 0, got -5"),
                (["train", "--data", "emoji-faces", "--out", out, "--mask", "block4"], "train trains unmasked"),
                (["pretrain", "--data", "emoji-faces", "--out", out, "--mask", "stripes"], "stripes"),
                (["pretrain", "--data", "emoji-faces", "--out", out, "--lr", "-1"], "learningRate"),
            ] {
                let r = try MPIJob.runAlone(args)
                #expect(r.status == 64, "\(args): \(r.output)")
                #expect(r.output.contains(says), "\(args): \(r.output)")
                #expect(r.output.contains("See 'maskdm \(args[0]) --help'"), "\(args): \(r.output)")
            }
            // A file that is missing or is not a checkpoint: status 1, the file named, no help hint.
            let notACheckpoint = tmp.appendingPathComponent("notes.txt")
            try Data("hello".utf8).write(to: notACheckpoint)
            for (args, says) in [
                (["sample", "--checkpoint", tmp.appendingPathComponent("missing.safetensors").path, "--count", "1",
                  "--out", tmp.appendingPathComponent("s").path], "missing.safetensors"),
                (["describe", notACheckpoint.path], "notes.txt"),
            ] {
                let r = try MPIJob.runAlone(args)
                #expect(r.status == 1, "\(args): \(r.output)")
                #expect(r.output.contains(says), "\(args): \(r.output)")
                #expect(!r.output.contains("--help"), "\(args): \(r.output)")
            }
        }
    }

    /// An empty argument (an unset shell variable) names no folder: refused, not read as the
    /// working folder. A run folder inside its data folder is refused before the data loads.
    @Test func emptyArgumentsAndRunsInsideTheirData() throws {
        try withTemporaryFolder("cli") { tmp in
            let empty = try MPIJob.runAlone(["pretrain", "--data", "", "--out", tmp.appendingPathComponent("r").path], in: tmp)
            #expect(empty.status == 64 && empty.output.contains("--data is given an empty value"), "\(empty.output)")
            let joined = try MPIJob.runAlone(["pretrain", "--data=", "--out", tmp.appendingPathComponent("r").path], in: tmp)
            #expect(joined.status == 64 && joined.output.contains("--data is given an empty value"), "\(joined.output)")
            // Free text may be empty.
            let log = tmp.appendingPathComponent("log.jsonl")
            try #"{"step":1,"loss":0.5,"learning_rate":0.001,"grad_norm":1,"seconds":0.1,"images_per_second":10,"train_seconds":0.1}"#
                .write(to: log, atomically: true, encoding: .utf8)
            let untitled = try MPIJob.runAlone(["plot-loss", log.path, "--out", tmp.appendingPathComponent("p.png").path, "--title", ""])
            #expect(untitled.status == 0, "\(untitled.output)")
            let checkAll = try MPIJob.runAlone(["check", ""], in: tmp)
            #expect(checkAll.status == 64 && checkAll.output.contains("argument 2 is empty"), "\(checkAll.output)")
            let data = tmp.appendingPathComponent("images")
            try MPIJob.writeImages(count: 4, to: data)
            let inside = try MPIJob.runAlone(["pretrain", "--data", data.path, "--out", data.appendingPathComponent("run").path, "--steps", "1"])
            #expect(inside.status == 64 && inside.output.contains("is inside the data folder") && !inside.output.contains("data: "),
                    "\(inside.output)")
        }
    }

    /// A run stopped by a non-finite step goes on with --skip-non-finite (the same command, or
    /// resume): the flag may change between sittings.
    @Test func skipNonFiniteContinuesAStoppedRun() throws {
        try withTemporaryFolder("cli") { tmp in
            let run = tmp.appendingPathComponent("run")
            let args = MPIJob.pretrain(data: "emoji-faces", out: run, steps: 3, batch: 4) + ["--lr", "1e30"]
            let stopped = try MPIJob.runAlone(args)
            #expect(stopped.status == 1 && stopped.output.contains("--skip-non-finite"), "\(stopped.output)")
            let again = try MPIJob.runAlone(args + ["--skip-non-finite"])
            #expect(again.status == 0 && again.output.contains("done: step 3"), "\(again.output)")
            let resumed = try MPIJob.runAlone(["resume", run.path, "--steps", "4", "--skip-non-finite"])
            #expect(resumed.status == 0 && resumed.output.contains("done: step 4"), "\(resumed.output)")
        }
    }

    /// `--out` naming a file, and a mask that cannot train the network, are refused before the
    /// data loads (a folder of thousands of images would be read first otherwise).
    @Test func outAndMaskAreCheckedBeforeTheDataLoads() throws {
        try withTemporaryFolder("cli") { tmp in
            let file = tmp.appendingPathComponent("taken")
            try Data("x".utf8).write(to: file)
            let missingData = tmp.appendingPathComponent("no-such-images").path
            let asFile = try MPIJob.runAlone(["pretrain", "--data", missingData, "--out", file.path, "--steps", "1"])
            #expect(asFile.status == 64 && asFile.output.contains("'\(file.path)' is a file, not a folder"), "\(asFile.output)")
            let below = try MPIJob.runAlone(["pretrain", "--data", missingData, "--out", file.appendingPathComponent("run").path, "--steps", "1"])
            #expect(below.status == 64 && below.output.contains("'\(file.path)' is a file, not a folder"), "\(below.output)")
            // block 3 does not divide the 8 x 8 patch grid of tiny at 32 px.
            let mask = try MPIJob.runAlone(["pretrain", "--data", missingData, "--out", tmp.appendingPathComponent("r").path,
                                        "--mask", "block3", "--steps", "1"])
            #expect(mask.status == 64 && mask.output.contains("--mask") && !mask.output.contains("no-such-images"), "\(mask.output)")
            #expect(!FileManager.default.fileExists(atPath: tmp.appendingPathComponent("r").path))
            // Missing FID weights are a missing file (status 1), reported before the data loads.
            let weights = try MPIJob.runAlone(["pretrain", "--data", missingData, "--out", tmp.appendingPathComponent("r").path,
                                           "--steps", "1", "--fid-every", "1"], environment: ["MASKDM_FID_PT": "/no/such/weights.pt"])
            #expect(weights.status == 1 && weights.output.contains("FID Inception weights not found at \"/no/such/weights.pt\"")
                    && !weights.output.contains("no-such-images") && !weights.output.contains("--help"), "\(weights.output)")
            // With a good --out and mask, the missing data is what is reported (status 1).
            let data = try MPIJob.runAlone(["pretrain", "--data", missingData, "--out", tmp.appendingPathComponent("r").path, "--steps", "1"])
            #expect(data.status == 1 && data.output.contains("no-such-images"), "\(data.output)")
        }
    }

    /// `maskdm check` names every unreadable file and exits 1 while there is one.
    @Test func checkNamesEveryUnreadableFile() throws {
        try withTemporaryFolder("cli") { tmp in
            let data = tmp.appendingPathComponent("data")
            try MPIJob.writeImages(count: 3, to: data)
            for i in 0..<7 { try Data("broken \(i)".utf8).write(to: data.appendingPathComponent("bad\(i).png")) }
            let bad = try MPIJob.runAlone(["check", data.path, "--size", "32"])
            #expect(bad.status == 1, "\(bad.output)")
            #expect((0..<7).allSatisfy { bad.output.contains("bad\($0).png") }, "\(bad.output)")     // all seven, not the first five
            #expect(bad.output.contains("10 image files in \(data.path): 3 readable, 7 unreadable"), "\(bad.output)")
            #expect(bad.output.contains("3 x 16x16 RGB") && bad.output.contains("3 images are smaller"), "\(bad.output)")
            #expect(!bad.output.contains("Error"), "\(bad.output)")
            for i in 0..<7 { try FileManager.default.removeItem(at: data.appendingPathComponent("bad\(i).png")) }
            let good = try MPIJob.runAlone(["check", data.path])
            #expect(good.status == 0 && good.output.contains("3 readable, 0 unreadable"), "\(good.output)")
            let bundled = try MPIJob.runAlone(["check", "emoji"], in: tmp)
            #expect(bundled.status == 64 && bundled.output.contains("names a built-in dataset"), "\(bundled.output)")
        }
    }

    /// `maskdm resume RUN` continues a run with its recorded settings (none repeated), and
    /// trains further with `--steps`; a folder without `config.json` is refused, naming it.
    /// The fine-tuning does not replay the pre-training's draws: without --seed it takes its
    /// --init run's seed + 1. A reference config that names pre-trained weights is the
    /// fine-tuning's --init: pretrain refuses it, finetune notes which weights it uses.
    @Test func finetuneSeedAndPretrainedWeights() throws {
        try withTemporaryFolder("cli") { tmp in
            let pre = tmp.appendingPathComponent("pre")
            #expect(try MPIJob.runAlone(MPIJob.pretrain(data: "emoji-faces", out: pre, steps: 1, batch: 4) + ["--seed", "5"]).status == 0)
            func seed(_ run: URL) throws -> Int? {
                let data = try Data(contentsOf: run.appendingPathComponent("config.json"))
                return ((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["recipe"] as? [String: Any])?["seed"] as? Int
            }
            let fine = tmp.appendingPathComponent("fine")
            let args = ["finetune", "--init", pre.path, "--data", "emoji-faces", "--out", fine.path, "--steps", "1", "--batch", "4"]
            let r = try MPIJob.runAlone(args)
            #expect(r.status == 0, "\(r.output)")
            #expect(try seed(fine) == 6)
            #expect(try MPIJob.runAlone(args).output.contains("nothing left to train"))      // the same command again agrees
            let chosen = tmp.appendingPathComponent("fine9")
            #expect(try MPIJob.runAlone(["finetune", "--init", pre.path, "--data", "emoji-faces", "--out", chosen.path, "--steps", "1",
                                         "--batch", "4", "--seed", "9"]).status == 0)
            #expect(try seed(chosen) == 9)
            // The pre-training's own seed is taken, with a note; train keeps seed 0.
            let same = try MPIJob.runAlone(["finetune", "--init", pre.path, "--data", "emoji-faces", "--out", tmp.appendingPathComponent("fine5").path,
                                            "--steps", "1", "--batch", "4", "--seed", "5"])
            #expect(same.status == 0 && same.output.contains("note: seed 5 is also the --init run's"), "\(same.output)")
            let scratch = tmp.appendingPathComponent("scratch")
            #expect(try MPIJob.runAlone(["train", "--data", "emoji-faces", "--out", scratch.path, "--model", "tiny", "--size", "16",
                                         "--steps", "1", "--batch", "4"]).status == 0)
            #expect(try seed(scratch) == 0)
            // A reference config naming pre-trained weights.
            let yml = tmp.appendingPathComponent("ref.yml")
            try """
            batch_size: 4
            pretrained_model_ckpt: "/elsewhere/model-100.pt"
            dataset:
              MASK_TYPE: block
              MASK_RATIO: 0.5
              MASK_BLOCK_SIZE: 2
            network:
              name: maskdm
              img_size: 16
              patch_size: 4
              encoder_embed_dim: 64
              encoder_depth: 3
              encoder_heads: 2
            """.write(to: yml, atomically: true, encoding: .utf8)
            let refused = try MPIJob.runAlone(["pretrain", "--config", yml.path, "--data", "emoji-faces", "--out", tmp.appendingPathComponent("p2").path])
            #expect(refused.status == 64 && refused.output.contains("maskdm finetune --init /elsewhere/model-100.pt --config \(yml.path)"),
                    "\(refused.output)")
            let noted = try MPIJob.runAlone(["finetune", "--config", yml.path, "--init", pre.path, "--data", "emoji-faces",
                                             "--out", tmp.appendingPathComponent("f2").path, "--steps", "1"])
            #expect(noted.output.contains("not the config's pretrained_model_ckpt '/elsewhere/model-100.pt'"), "\(noted.output)")
            // The same weights named as a run folder and as its checkpoint: no note.
            try String(contentsOf: yml, encoding: .utf8).replacingOccurrences(of: "/elsewhere/model-100.pt", with: pre.path)
                .write(to: yml, atomically: true, encoding: .utf8)
            let quiet = try MPIJob.runAlone(["finetune", "--config", yml.path, "--init", pre.appendingPathComponent("checkpoint.safetensors").path,
                                             "--data", "emoji-faces", "--out", tmp.appendingPathComponent("f3").path, "--steps", "1"])
            #expect(!quiet.output.contains("pretrained_model_ckpt"), "\(quiet.output)")
        }
    }

    @Test func resumeContinuesWithTheRecordedSettings() throws {
        try withTemporaryFolder("cli") { tmp in
            let run = tmp.appendingPathComponent("run")
            let first = try MPIJob.runAlone(MPIJob.pretrain(data: "emoji-faces", out: run, steps: 2, batch: 4) + ["--lr", "0.001", "--seed", "3"])
            #expect(first.status == 0, "\(first.output)")
            let config = try String(contentsOf: run.appendingPathComponent("config.json"), encoding: .utf8)
            let again = try MPIJob.runAlone(["resume", run.path, "--steps", "4"])
            #expect(again.status == 0, "\(again.output)")
            #expect(again.output.contains("resuming at step 2") && again.output.contains("done: step 4"), "\(again.output)")
            let lines = try String(contentsOf: run.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 4)
            // Only the step count changed in the recorded settings.
            let now = try String(contentsOf: run.appendingPathComponent("config.json"), encoding: .utf8)
            #expect(now.replacingOccurrences(of: "\"steps\" : 4", with: "\"steps\" : 2") == config)
            // A recorded config no CPU can train is refused before the data loads.
            let huge = tmp.appendingPathComponent("huge")
            try FileManager.default.createDirectory(at: huge, withIntermediateDirectories: true)
            try config.replacingOccurrences(of: "\"img_size\" : 16", with: "\"img_size\" : 100000")
                .write(to: huge.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
            let tooBig = try MPIJob.runAlone(["resume", huge.path])
            #expect(tooBig.status == 64 && tooBig.output.contains("above 2048 pixels a side") && !tooBig.output.contains("data:"),
                    "\(tooBig.output)")
            // A run of a custom masking strategy needs its code: refused before the data loads.
            let custom = tmp.appendingPathComponent("custom")
            try FileManager.default.createDirectory(at: custom, withIntermediateDirectories: true)
            let mask = try #require(config.range(of: #""mask" : \{[^}]*\}"#, options: .regularExpression))
            try config.replacingCharacters(in: mask, with: #""mask" : {"name" : "my-rows", "type" : "custom"}"#)
                .write(to: custom.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
            let customRun = try MPIJob.runAlone(["resume", custom.path])
            #expect(customRun.status == 64 && customRun.output.contains("names the custom masking strategy 'my-rows'")
                    && !customRun.output.contains("data:"), "\(customRun.output)")
            // A stage of `maskdm compare` (a time budget) is left to compare.
            let arm = tmp.appendingPathComponent("cmp/arm-A/pretrain")
            try FileManager.default.createDirectory(at: arm, withIntermediateDirectories: true)
            try config.replacingOccurrences(of: "{\n", with: "{\n  \"timeBudget\" : 60,\n", options: .anchored)
                .write(to: arm.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
            let budgeted = try MPIJob.runAlone(["resume", arm.path])
            #expect(budgeted.status == 64 && budgeted.output.contains("re-run `maskdm compare --out \(tmp.appendingPathComponent("cmp").path)`"),
                    "\(budgeted.output)")
            // `describe` of the job's folder says where each of its runs stands.
            let job = try MPIJob.runAlone(["describe", tmp.appendingPathComponent("cmp").path])
            #expect(job.status == 0 && job.output.contains("a `maskdm compare` folder, 1 run\narm-A/pretrain\n  run         pretrain on emoji-faces: step 0 of 2"),
                    "\(job.output)")
            let jobJSON = try MPIJob.runAlone(["describe", tmp.appendingPathComponent("cmp").path, "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(jobJSON.output.utf8)) as? [String: Any], "\(jobJSON.output)")
            let runs = try #require(object["runs"] as? [String: Any])
            #expect(object["kind"] as? String == "compare" && (runs["arm-A/pretrain"] as? [String: Any])?["steps"] as? Int == 2)
            let empty = tmp.appendingPathComponent("empty")
            try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
            let none = try MPIJob.runAlone(["resume", empty.path])
            #expect(none.status == 1 && none.output.contains(empty.appendingPathComponent("config.json").path), "\(none.output)")
        }
    }

    /// `--fid-every` with the default reference (the training data, written under
    /// `.cache/fid-reference` of the working folder) scores; `resume` writes a deleted default
    /// reference again, with its image limit, and scores on.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: FIDInceptionV3.defaultWeightsURL.path)
                   || ProcessInfo.processInfo.environment["MASKDM_REQUIRE_FID"] == "1"))
    func fidEveryWithTheDefaultReferenceAndResume() throws {
        try withTemporaryFolder("cli") { tmp in
            let weights = ["MASKDM_FID_PT": FIDInceptionV3.defaultWeightsURL.standardizedFileURL.path]
            let run = tmp.appendingPathComponent("run")
            let first = try MPIJob.runAlone(MPIJob.pretrain(data: "emoji-faces", out: run, steps: 2, batch: 4)
                                        + ["--fid-every", "2", "--fid-samples", "4", "--fid-reference-limit", "8", "--fid-sampler-steps", "2"],
                                        in: tmp, environment: weights)
            #expect(first.status == 0, "\(first.output)")
            let reference = tmp.appendingPathComponent(".cache/fid-reference/emoji-faces-16px-8")
            #expect(try FileManager.default.contentsOfDirectory(atPath: reference.path).count == 8)
            let log = run.appendingPathComponent("fid.jsonl")
            #expect(try String(contentsOf: log, encoding: .utf8).split(separator: "\n").count == 1)
            try FileManager.default.removeItem(at: reference)
            let again = try MPIJob.runAlone(["resume", run.path, "--steps", "4"], in: tmp, environment: weights)
            #expect(again.status == 0, "\(again.output)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: reference.path).count == 8)
            #expect(try String(contentsOf: log, encoding: .utf8).split(separator: "\n").count == 2)
        }
    }
}

