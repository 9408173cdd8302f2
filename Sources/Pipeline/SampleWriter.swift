import Foundation
import ImageIO
import Metrics
import Schedules
import Tensor
import ViTDiffusion

/// Writes samples as numbered PNGs (`00000.png`, ...) plus `grid.png`, continuing from the files
/// already in the folder, as the reference's `eval.py` does: a killed sampling job re-run with the
/// same arguments only draws the missing images.
///
/// ```swift
/// let model = try MaskedUViT.load(checkpoint: url, ema: true)
/// try SampleWriter.write(model: model, objective: .velocity, schedule: .linear(), sampler: .dpmSolver(steps: 25),
///                        count: 400, to: URL(fileURLWithPath: "samples"))
/// ```
public enum SampleWriter {
    /// The file name of sample `index`.
    public static func fileName(_ index: Int) -> String { String(format: "%05d.png", index) }

    /// Number of consecutive numbered samples already in `folder` (00000.png, 00001.png, ...)
    /// that are whole PNG files (ending in the IEND chunk): an empty or cut file (a disk filled up,
    /// a copy interrupted) ends the count, so it is drawn again.
    public static func existingCount(in folder: URL) -> Int {
        var n = 0
        while isWholePNG(folder.appendingPathComponent(fileName(n))) { n += 1 }
        return n
    }

    /// Whether `name` is a sample's file name (five digits, `.png`).
    static func isNumbered(_ name: String) -> Bool {
        name.count == 9 && name.hasSuffix(".png") && name.prefix(5).allSatisfy(\.isASCII) && Int(name.prefix(5)) != nil
    }

    /// Whether `url` is a file whose last 12 bytes are a PNG's IEND chunk (length 0, type, CRC).
    static func isWholePNG(_ url: URL) -> Bool {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? handle.close() }
        guard let end = try? handle.seekToEnd(), end >= 8 + 12 else { return false }
        guard (try? handle.seek(toOffset: end - 12)) != nil, let tail = try? handle.readToEnd() else { return false }
        return Array(tail) == [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]
    }

    /// Samples until `folder` holds `count` numbered images, in batches of `batchSize`, drawing
    /// only the ones that are not there as whole PNGs (a gap is filled, the images after it kept). Image i's
    /// noise (x_T and any noise the sampler adds) comes from its own generator, derived from
    /// (`seed`, i), so the images do not depend on `batchSize`, on the number of ranks or on where
    /// an earlier run stopped (up to the network's rounding, which can differ with the batch
    /// size; the same command gives the same bits). When `gridURL` is given, a grid of
    /// the first 64 is written there (keep it outside `folder`, which FID reads whole).
    /// Returns how many images were drawn now (by all ranks).
    ///
    /// With a `communicator` of N ranks, the batches are dealt round-robin (batch j to rank
    /// j mod N); each rank writes its own images (a shared file system) and rank 0 the grid.
    ///
    /// `stop` is polled after each batch (with N ranks, after each round of N batches, one a rank;
    /// the ranks stop together if any rank's `stop` returns true): the call then returns with the
    /// images drawn so far (a re-run draws the rest, as after a kill).
    ///
    /// What drew the images (a fingerprint of the weights, the network, objective, schedule,
    /// sampler and seed) is recorded in `folder/.samples.json` (hidden, so image readers skip
    /// it). A folder whose images came from anything else is refused with
    /// ``PipelineError/invalidOption(name:problem:)`` (`folder (--out)`), so that two models' samples
    /// never mix in one FID, unless `replacingOtherSamples` is true: then its images are deleted
    /// and drawn again. A folder of images without the record (written by hand, or by an
    /// earlier version) is continued, and gets it.
    @discardableResult
    public static func write(model: MaskedUViT, objective: PredictionTarget, schedule: NoiseSchedule, sampler: SamplerKind,
                             count: Int, batchSize: Int = 64, seed: UInt64 = 0, to folder: URL, gridURL: URL? = nil,
                             replacingOtherSamples: Bool = false,
                             communicator: any Communicator = SingleProcessCommunicator(),
                             progress: ((_ done: Int, _ total: Int) -> Void)? = nil,
                             stop: (() -> Bool)? = nil) throws -> Int {
        guard count >= 0 else { throw PipelineError.invalidOption(name: "count (--count)", problem: "must be >= 0, got \(count)") }
        guard count <= maximumCount else {
            throw PipelineError.invalidOption(name: "count (--count)", problem: "at most \(maximumCount) samples a folder, got \(count)")
        }
        guard batchSize >= 1 else { throw PipelineError.invalidOption(name: "batchSize (--batch)", problem: "must be >= 1, got \(batchSize)") }
        try sampler.validate(trainingSteps: schedule.timesteps)
        try createFolder(folder)
        if communicator.isWriter {
            removeFoundationTemporaries(in: folder)   // a kill while a PNG was being written
        }
        let record = SampleFolderRecord(model: model, objective: objective, schedule: schedule, sampler: sampler, seed: seed)
        let recordURL = folder.appendingPathComponent(SampleFolderRecord.fileName)
        if let existing = SampleFolderRecord.read(recordURL), let (key, was, now) = existing.difference(from: record) {
            if !replacingOtherSamples {
                let what = key == "weights"
                    ? "from other weights (another checkpoint, or the online rather than the EMA weights; hash \(was), not \(now))"
                    : "with \(key) \(was), not \(now)"
                throw PipelineError.invalidOption(
                    name: "folder (--out)",
                    problem: "'\(folder.path)' holds \(existingCount(in: folder)) samples drawn \(what); samples of different "
                        + "models or settings must not mix (an FID of the folder would score both): choose another folder, or empty this one")
            }
            try communicator.barrier()                   // every rank read the record before it goes
            if communicator.isWriter {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where isNumbered(name) {
                    try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
                }
                try? FileManager.default.removeItem(at: recordURL)
            }
        }
        try communicator.barrier()                       // every rank checked the record
        if communicator.isWriter, SampleFolderRecord.read(recordURL) == nil { try record.write(to: recordURL) }
        // Only the images that are not there (a hole left by a kill or a deleted file is filled,
        // the images after it kept): image i depends on (seed, i) alone.
        let missing = (0..<count).filter { !isWholePNG(folder.appendingPathComponent(fileName($0))) }
        try communicator.barrier()                       // every rank counted before any writes
        let s = try sampler.sampler(schedule: schedule)
        let batches = stride(from: 0, to: missing.count, by: batchSize).map { Array(missing[$0..<min($0 + batchSize, missing.count)]) }
        let ranks = communicator.size
        let rounds = (batches.count + ranks - 1) / ranks                 // round r: batch r * ranks + rank on each rank
        var mine = 0, drawn = missing.count, stopped = false
        // One packing of the weights for every batch (each Sampling.sample call would pack again).
        try model.store.withPackedWeights {
            for round in 0..<rounds {
                let j = round * ranks + communicator.rank
                if j < batches.count {
                    let indices = batches[j]
                    var generators = indices.map { RandomGenerator(seed: seed &+ UInt64($0) &* 0x9E37_79B9_7F4A_7C15) }
                    let x = try Sampling.sample(model: model, objective: objective, sampler: s, itemGenerators: &generators)
                    for (index, img) in zip(indices, Image.images(fromBatch: x)) {
                        try img.write(to: folder.appendingPathComponent(fileName(index)))
                    }
                    mine += indices.count
                    progress?(min(count, count - missing.count + mine * ranks), count)
                }
                guard round + 1 < rounds else { break }
                // Every rank takes part in the vote, whether or not it has a `stop` to ask.
                var vote = [stop?() == true ? 1.0 : 0.0]
                if ranks > 1 { try communicator.allReduceSum(&vote) }
                if vote[0] > 0 {
                    stopped = true
                    drawn = batches.prefix((round + 1) * ranks).reduce(0) { $0 + $1.count }
                    break
                }
            }
        }
        try communicator.barrier()                       // every image is on disk
        if communicator.isWriter, !stopped, let gridURL {
            try FileManager.default.createDirectory(at: gridURL.deletingLastPathComponent(), withIntermediateDirectories: true)
            let shown = (0..<min(64, count)).compactMap { try? Image(contentsOf: folder.appendingPathComponent(fileName($0))) }
            if !shown.isEmpty { try Image.writeGrid(shown, columns: 8, to: gridURL) }
        }
        return drawn
    }
}

extension SampleWriter {
    /// The most samples one folder holds: the file names have five digits.
    public static let maximumCount = 100_000
}

/// What drew the images of a sample folder (`.samples.json`).
struct SampleFolderRecord: Codable, Equatable {
    static let fileName = ".samples.json"

    /// A 64-bit hash of every weight's bits, in hex.
    var weights: String
    var network: String
    var objective: String
    var schedule: String
    var sampler: String
    var seed: UInt64

    init(model: MaskedUViT, objective: PredictionTarget, schedule: NoiseSchedule, sampler: SamplerKind, seed: UInt64) {
        let values = UnsafeBufferPointer(start: model.store.values.base, count: model.store.count)
        weights = Self.hash(values.lazy.map { UInt64($0.bitPattern) })
        network = model.config.description
        self.objective = objective.rawValue
        self.schedule = "\(schedule.name), \(schedule.timesteps) steps (betas \(Self.hash(schedule.betas.lazy.map(\.bitPattern))))"
        self.sampler = sampler.description
        self.seed = seed
    }

    /// FNV-1a taken a word at a time (each value's bit pattern, not its bytes: a pass over the
    /// weights stays cheap), in hex.
    static func hash(_ words: some Sequence<UInt64>) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for w in words { h = (h ^ w) &* 0x0000_0100_0000_01B3 }
        return String(h, radix: 16)
    }

    static func read(_ url: URL) -> SampleFolderRecord? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        return try? JSONDecoder().decode(SampleFolderRecord.self, from: data)
    }

    func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }

    /// The first setting that differs from `other`'s: (key, this one's value, other's value).
    func difference(from other: SampleFolderRecord) -> (String, String, String)? {
        let pairs: [(String, String, String)] = [
            ("weights", weights, other.weights),
            ("network", network, other.network), ("objective", objective, other.objective), ("schedule", schedule, other.schedule),
            ("sampler", sampler, other.sampler), ("seed", String(seed), String(other.seed)),
        ]
        return pairs.first { $0.1 != $0.2 }
    }
}

/// FID/KID of a folder of samples against a reference folder, with the reference's features
/// cached (computed once per folder content).
public struct SampleEvaluator: Sendable {
    /// The evaluator (Inception network and cache).
    public let evaluator: FIDEvaluator

    /// Loads the Inception weights from ``defaultWeightsURL`` (or `weights`).
    /// - Throws: ``PipelineError/missingFile(path:hint:)`` when they are not there.
    public init(weights: URL? = nil, cacheDirectory: URL? = nil) throws {
        let url = weights ?? FIDInceptionV3.defaultWeightsURL
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw PipelineError.missingFile(path: url.path, hint: "the FID Inception weights; " + FIDInceptionV3.weightsHint)
        }
        evaluator = FIDEvaluator(network: try FIDInceptionV3(contentsOf: url), batchSize: 32,
                                 cache: FIDFeatureCache(directory: cacheDirectory ?? URL(fileURLWithPath: FIDFeatureCache.defaultDirectory)))
    }

    /// FID and KID of `samples` against `reference`.
    public func compare(samples: URL, reference: URL) throws -> FIDResult {
        guard let result = try score(samples: samples, reference: reference) else {
            preconditionFailure("a single process is rank 0 and gets the result")
        }
        return result
    }
}
