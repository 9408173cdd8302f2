import ArgumentParser
import Foundation
import Metrics
import Pipeline

/// `maskdm fid DIR_A DIR_B`: FID and KID between two image folders.
struct FID: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fid",
        abstract: "FID and KID between two image folders (TF-FID Inception-v3, pytorch-fid preprocessing).",
        discussion: "Folders are read recursively (png, jpg, jpeg); unreadable files are skipped with a warning. "
            + "Features are cached per folder in --cache-dir. Weights: scripts/fetch-fid-weights.sh.")

    @Argument(help: "First image folder.") var dirA: String
    @Argument(help: "Second image folder.") var dirB: String
    @Flag(help: "Print {\"fid\", \"kid\", \"kid_std\", \"n_a\", \"n_b\"} as JSON.") var json = false
    @Option(name: [.customLong("batch-size"), .customLong("batch")], parsing: .unconditional,
            help: "Images per network batch (--batch is the same).") var batchSize = 32
    @Option(help: "Inception weights (default: $MASKDM_FID_PT, else \(FIDInceptionV3.defaultWeightsPath) under the current folder if it exists, else $XDG_CACHE_HOME or ~/.cache, then maskdm/fid/default_1.pt).") var weights: String?
    @Option(help: "Feature cache folder.") var cacheDir = FIDFeatureCache.defaultDirectory
    @Flag(help: "Neither read nor write the feature cache.") var noCache = false
    @Option(parsing: .unconditional, help: "KID subsets.") var kidSubsets = 100
    @Option(parsing: .unconditional, help: "KID subset size (capped by the smaller folder).") var kidSubsetSize = 1000
    @Option(parsing: .unconditional, help: "Seed of the KID subsets.") var seed: UInt64 = 0

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        var isFolder: ObjCBool = false
        if !noCache, FileManager.default.fileExists(atPath: cacheDir, isDirectory: &isFolder), !isFolder.boolValue {
            throw ValidationError("--cache-dir '\(cacheDir)' is a file, not a folder")
        }
        guard kidSubsets > 0 && kidSubsetSize > 1 else { throw ValidationError("need --kid-subsets > 0 and --kid-subset-size > 1") }
    }

    func run() throws {
        let network = try FIDInceptionV3(contentsOf: weights.map { URL(fileURLWithPath: $0) } ?? FIDInceptionV3.defaultWeightsURL)
        var evaluator = FIDEvaluator(network: network, batchSize: batchSize,
                                     cache: noCache ? nil : FIDFeatureCache(directory: URL(fileURLWithPath: cacheDir)))
        evaluator.kidSubsets = kidSubsets
        evaluator.kidSubsetSize = kidSubsetSize
        evaluator.seed = seed
        var features: [FolderFeatures] = []
        for dir in [dirA, dirB] {
            let start = Date()
            // A self-overwriting count on a terminal only: in a file it would leave control characters.
            let live = World.communicator.isWriter && ProgressPrinter.isTerminal(STDERR_FILENO)
            let f: FolderFeatures
            do {
                f = try evaluator.features(ofFolder: URL(fileURLWithPath: dir), progress: { folder, done, total in
                    if live { log(String(format: "\r%@: %d/%d images", folder, done, total), newline: false) }
                }, communicator: World.communicator)
            } catch {
                if live { log("") }                                          // the error on a line of its own
                throw error
            }
            guard World.communicator.isWriter else { continue }            // rank 0 has every rank's features
            let seconds = Date().timeIntervalSince(start)
            log(f.fromCache ? "\(dir): \(f.count) images, features from \(f.cacheFile ?? "cache")"
                            : (live ? "\r" : "") + "\(dir): \(f.count) images, \(ProgressPrinter.duration(seconds))"
                                + String(format: " (%.1f images/s)", Double(f.count) / seconds))
            if let problem = f.cacheProblem { log("warning: features not cached: \(problem)") }
            if f.skipped > 0 {
                log("warning: \(f.skipped) unreadable files skipped in \(dir)")
                for message in f.failures.prefix(5) { log("  \(message)") }
            }
            guard f.count >= 2 else {
                throw ValidationError("\(dir): \(f.count) readable image\(f.count == 1 ? "" : "s"); FID and KID need at least 2 in each folder")
            }
            features.append(f)
        }
        guard World.communicator.isWriter else { return }
        let result = try evaluator.compare(features[0], features[1])
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            // A rounding error below the printed digits is not shown as -0.0000.
            print(String(format: "FID %.4f  KID %.6f +- %.6f  (%d vs %d images)",
                         abs(result.fid) < 5e-5 ? Double(0) : result.fid, result.kid, result.kidStd, result.nA, result.nB))
        }
    }

    /// Progress and warnings go to standard error, so `--json` output stays clean.
    func log(_ text: String, newline: Bool = true) {
        writeToStandardError(text + (newline ? "\n" : ""))
    }
}
