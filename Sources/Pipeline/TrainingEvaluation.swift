import Foundation
import ImageIO
import Metrics
import Schedules
import Tensor

/// FID and KID of EMA samples during training (``RunConfig/evaluation``).
///
/// Every `every` steps, and at the run's last step, ``TrainingRun`` draws `samples` images with
/// the EMA weights (the same noise each time, so successive scores differ by the network alone),
/// scores them against the images under `reference` and appends an ``EvaluationRecord`` to
/// `RUN/fid.jsonl`. The checkpoint of the lowest FID so far is kept as
/// `RUN/checkpoint-best.safetensors`.
///
/// ```swift
/// var config = RunConfig(stage: .finetune, model: .tiny(), recipe: .finetuning(batchSize: 64, steps: 800),
///                        data: "emoji-faces")
/// let reference = try DataSource.bundled(.emojiFaces).fidReference(size: 32)
/// config.evaluation = EvaluationSchedule(every: 200, samples: 400, reference: reference.path)
/// ```
public struct EvaluationSchedule: Codable, Sendable, Equatable {
    /// Score every this many steps (and at the run's last step).
    public var every: Int
    /// Images drawn for each score.
    public var samples: Int
    /// The folder of reference images (read recursively; features cached per folder content).
    public var reference: String
    /// The sampler of the scored images (nil: the run's ``RunConfig/sampler``).
    public var sampler: SamplerKind?
    /// Images per sampling batch.
    public var batchSize: Int
    /// Seed of the samples' noise (the same at every score).
    public var seed: UInt64

    /// A schedule scoring `samples` images against `reference` every `every` steps.
    public init(every: Int, samples: Int = 400, reference: String, sampler: SamplerKind? = nil,
                batchSize: Int = 64, seed: UInt64 = 77) {
        self.every = every; self.samples = samples; self.reference = reference
        self.sampler = sampler; self.batchSize = batchSize; self.seed = seed
    }

    /// ``reference`` as an absolute, standardized path (as ``EvaluationRecord/reference`` records it).
    public var absoluteReference: String { URL(fileURLWithPath: reference).standardizedFileURL.path }

    /// Checks the counts and (unless `checkingReference` is false) that the reference folder
    /// exists and holds at least 2 image files.
    /// - Throws: ``PipelineError/invalidOption(name:problem:)`` naming `evaluation.every`,
    ///   `evaluation.samples`, `evaluation.batchSize` or `evaluation.reference` (empty), with the
    ///   `maskdm` flag beside each (`--fid-every`, ...);
    ///   ``PipelineError/missingFile(path:hint:)`` for a missing reference;
    ///   ``PipelineError/badData(path:problem:)`` when it is a file or holds fewer than 2 image files.
    public func validate(checkingReference: Bool = true) throws {
        guard every >= 1 else { throw PipelineError.invalidOption(name: "evaluation.every (--fid-every)", problem: "must be >= 1, got \(every)") }
        guard samples >= 2 else {
            throw PipelineError.invalidOption(name: "evaluation.samples (--fid-samples)", problem: "FID needs at least 2 samples, got \(samples)")
        }
        guard batchSize >= 1 else {
            throw PipelineError.invalidOption(name: "evaluation.batchSize", problem: "must be >= 1, got \(batchSize)")
        }
        guard checkingReference else { return }
        guard !reference.isEmpty else { throw PipelineError.invalidOption(name: "evaluation.reference (--fid-reference)", problem: "no reference folder given") }
        let url = URL(fileURLWithPath: reference)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else {
            throw PipelineError.missingFile(path: url.path, hint: "the FID reference (--fid-reference) must be a folder of PNG/JPEG images")
        }
        guard isFolder.boolValue else { throw PipelineError.badData(path: url.path, problem: "is a file; an FID reference is a folder of images") }
        let folder = try DataSource.openFolder(url)
        guard folder.count >= 2 else {
            throw PipelineError.badData(path: reference, problem: "an FID reference needs at least 2 images, found \(folder.count) image files")
        }
    }
}

/// One line of `RUN/fid.jsonl`: a score of EMA samples during training.
public struct EvaluationRecord: Codable, Sendable, Equatable {
    /// Steps completed when the samples were drawn.
    public var step: Int
    /// Fréchet Inception distance to the reference images.
    public var fid: Double
    /// Kernel Inception distance (mean over subsets) and its standard deviation.
    public var kid: Double, kidStd: Double
    /// Images scored on each side.
    public var samples: Int, references: Int
    /// Wall-clock seconds of the sampling and scoring.
    public var seconds: Double
    /// Summed step seconds of the run at this step.
    public var trainSeconds: Double
    /// The sampler of the scored images (`SamplerKind`'s description; nil in records written
    /// before records named it).
    public var sampler: String?
    /// The reference folder, as an absolute path (nil in records written before records named it).
    public var reference: String?

    /// A record of the values above.
    public init(step: Int, fid: Double, kid: Double, kidStd: Double, samples: Int, references: Int,
                seconds: Double, trainSeconds: Double, sampler: String? = nil, reference: String? = nil) {
        self.step = step; self.fid = fid; self.kid = kid; self.kidStd = kidStd
        self.samples = samples; self.references = references; self.seconds = seconds; self.trainSeconds = trainSeconds
        self.sampler = sampler; self.reference = reference
    }

    enum CodingKeys: String, CodingKey {
        case step, fid, kid, kidStd = "kid_std", samples, references, seconds, trainSeconds = "train_seconds", sampler, reference
    }

    /// Whether this score was taken the way `schedule` scores with `sampler` (the schedule's, or
    /// the run's when the schedule names none): the same number of samples, sampler and
    /// reference folder, so the FIDs compare. A record that does not name its sampler or
    /// reference (an older `fid.jsonl`) is compared on what it names.
    public func isScored(like schedule: EvaluationSchedule, sampler: SamplerKind) -> Bool {
        samples == schedule.samples
            && (self.sampler ?? sampler.description) == sampler.description
            && (reference ?? schedule.absoluteReference) == schedule.absoluteReference
    }

    /// The records grouped by how they were scored (sample count, sampler and reference), in
    /// order of first appearance.
    static func settings(of records: [EvaluationRecord]) -> [[EvaluationRecord]] {
        var groups: [[EvaluationRecord]] = []
        for r in records {
            if let i = groups.firstIndex(where: { g in
                g[0].samples == r.samples && g[0].sampler == r.sampler && g[0].reference == r.reference
            }) { groups[i].append(r) } else { groups.append([r]) }
        }
        return groups
    }

    /// The record as one JSON line (no newline); a NaN score is written as `"nan"`.
    public var jsonLine: String {
        (try? StepRecord.encoder.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }

    /// Parses `fid.jsonl` text; a torn last line (a kill during a write) is ignored.
    public static func parseLog(_ text: String) -> [EvaluationRecord] {
        text.split(separator: "\n").compactMap { try? StepRecord.decoder.decode(EvaluationRecord.self, from: Data($0.utf8)) }
    }

    /// The record of the lowest finite FID (the earliest of equal ones), if any.
    public static func best(of records: [EvaluationRecord]) -> EvaluationRecord? {
        records.filter(\.fid.isFinite).min { $0.fid < $1.fid }
    }
}

extension DataSource {
    /// Where ``fidReference(size:limit:cacheDirectory:)`` writes reference folders:
    /// `.cache/fid-reference` under the current directory.
    public static let referenceCacheDirectory = URL(fileURLWithPath: ".cache/fid-reference")

    /// The end of a cached reference folder's name: `-SIZEpx-LIMIT`.
    static func referenceSuffix(size: Int, limit: Int) -> String { "-\(size)px-\(limit)" }

    /// The image limit of a reference folder ``fidReference(size:limit:cacheDirectory:)`` wrote
    /// at `size` px (`.../fid-reference/KEY-SIZEpx-LIMIT`), read from its path; nil for a folder
    /// it did not name (one the user gave). A run that finds its cached reference deleted writes
    /// it again with this limit.
    public static func cachedReferenceLimit(_ path: String, size: Int) -> Int? {
        let url = URL(fileURLWithPath: path), marker = referenceSuffix(size: size, limit: 0).dropLast()   // "-SIZEpx-"
        guard url.deletingLastPathComponent().lastPathComponent == referenceCacheDirectory.lastPathComponent,
              let range = url.lastPathComponent.range(of: marker, options: .backwards) else { return nil }
        return Int(url.lastPathComponent[range.upperBound...])
    }

    /// A folder of FID reference images for this data: all of its images, or `limit` of them
    /// evenly spaced through the listing when it has more, at `size` x `size` pixels (as training
    /// sees them: short side resized, centre-cropped, on white), written once as PNGs under
    /// `cacheDirectory` and reused while the data is unchanged (a folder is keyed by its
    /// listing's fingerprint). The folder appears whole or not at all.
    /// - Throws: the data's errors (missing folder, no decodable image); file-system errors.
    public func fidReference(size: Int, limit: Int = 10_000, cacheDirectory: URL = DataSource.referenceCacheDirectory) throws -> URL {
        guard size >= 1, limit >= 2 else {
            throw PipelineError.invalidOption(name: "fidReference", problem: "need a size >= 1 and a limit >= 2, got \(size) and \(limit)")
        }
        let key: String
        var folder: ImageFolder? = nil
        switch self {
        case .bundled(let b): key = b.rawValue
        case .folder(let url):
            let f = try Self.openFolder(url)
            folder = f
            key = url.lastPathComponent + "-" + String(f.fingerprint, radix: 16)
        }
        let target = cacheDirectory.appendingPathComponent("\(key)\(Self.referenceSuffix(size: size, limit: limit))", isDirectory: true)
        let fm = FileManager.default
        if fm.fileExists(atPath: target.path) { return target }
        // Evenly spaced, so a folder sorted into class subfolders gives every class its share.
        func spaced(_ count: Int) -> [Int] { count <= limit ? Array(0..<count) : (0..<limit).map { $0 * count / limit } }
        try fm.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
        let partial = cacheDirectory.appendingPathComponent(".partial-\(key)-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: partial) }
        try fm.createDirectory(at: partial, withIntermediateDirectories: true)
        var written = 0
        func write(_ images: [Image]) throws {
            for image in images {
                try image.write(to: partial.appendingPathComponent(SampleWriter.fileName(written)))
                written += 1
            }
        }
        if let folder {
            guard folder.count > 0 else { throw PipelineError.badData(path: folder.root.path, problem: "no .png/.jpg/.jpeg files found") }
            let chosen = spaced(folder.count)
            var failures: [String] = []
            for start in stride(from: 0, to: chosen.count, by: 256) {      // decoded a chunk at a time
                let (images, failed) = ImageFolder.partition(folder.loadReporting(Array(chosen[start..<min(start + 256, chosen.count)]), size: size))
                try write(images)
                if failures.count < 3 { failures += failed.prefix(3) }
            }
            guard written > 0 else {
                throw PipelineError.badData(path: folder.root.path, problem: ImageFolder.noneDecoded(count: chosen.count, failures: failures))
            }
        } else {
            let all = try load(size: size).images
            try write(spaced(all.count).map { all[$0] })
        }
        do { try fm.moveItem(at: partial, to: target) } catch where fm.fileExists(atPath: target.path) {
            // Another process wrote the same folder meanwhile: theirs is as good.
        }
        return target
    }
}

extension SampleEvaluator {
    /// The features of `reference` on rank 0 (nil on the other ranks), with their statistics
    /// (``FolderFeatures/withStatistics()``, so each score does not fit them again): from the
    /// cache when it holds them, else computed by all the `communicator`'s ranks together and
    /// cached by rank 0. Every rank calls it.
    @discardableResult
    public func referenceFeatures(of reference: URL, communicator: any Communicator = SingleProcessCommunicator()) throws -> FolderFeatures? {
        var e = evaluator
        if communicator.size == 1 { return try e.features(ofFolder: reference).withStatistics() }
        // Rank 0 alone may see the cache (it alone writes it): it says whether to share the work.
        var hit: FolderFeatures? = nil
        if communicator.rank == 0, let cache = e.cache, let folder = try? ImageFolder(reference) {
            hit = cache.load(folder, network: e.network)
        }
        var cached = [hit == nil ? 0.0 : 1]
        try communicator.allReduceSum(&cached)
        if cached[0] > 0 { return try hit?.withStatistics() }
        if communicator.rank != 0 { e.cache = nil }
        let features = try e.features(ofFolder: reference, communicator: communicator)
        return communicator.rank == 0 ? try features.withStatistics() : nil
    }

    /// FID and KID of `samples` against `reference`, the samples' features shared among the
    /// `communicator`'s ranks. Every rank calls it; rank 0 returns the result, the others nil.
    /// The reference's features are computed (or read from the cache) by rank 0 alone.
    public func score(samples: URL, reference: URL, communicator: any Communicator = SingleProcessCommunicator()) throws -> FIDResult? {
        let ref = communicator.rank == 0 ? try evaluator.features(ofFolder: reference) : nil
        return try score(samples: samples, referenceFeatures: ref, communicator: communicator)
    }

    /// FID and KID of `samples` against reference features already at hand (rank 0's, from
    /// ``referenceFeatures(of:communicator:)``; nil on the other ranks), the samples' features
    /// shared among the ranks. Every rank calls it; rank 0 returns the result, the others nil.
    /// `progress` reports this rank's images read.
    public func score(samples: URL, referenceFeatures: FolderFeatures?,
                      communicator: any Communicator = SingleProcessCommunicator(),
                      progress: FIDEvaluator.Progress? = nil) throws -> FIDResult? {
        var e = evaluator
        e.cache = nil                                   // samples change between calls
        let own = try e.features(ofFolder: samples, progress: progress, communicator: communicator)
        guard let referenceFeatures else { return nil }
        return try e.compare(own, referenceFeatures)
    }
}

/// `RUN/fid.png`: the FID during training against the step.
public enum FIDCurve {
    /// Draws the FID of `records` against the step (one dot per score) to `url`.
    /// Scores taken in different ways (another sampler, sample count or reference, after a
    /// schedule changed between sittings) are drawn as separate curves, each named by its way.
    public static func write(records: [EvaluationRecord], title: String, to url: URL) throws {
        let groups = EvaluationRecord.settings(of: records)
        let namesReference = Set(groups.map { $0[0].reference }).count > 1
        let series = groups.enumerated().map { i, g -> LinePlot.Series in
            var name = "FID"
            if groups.count > 1 {
                name = "\(g[0].sampler ?? "sampler not recorded"), \(g[0].samples) samples"
                if namesReference {
                    name += ", " + (g[0].reference.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "reference not recorded")
                }
            }
            return .init(name: name, x: g.map { Double($0.step) }, y: g.map(\.fid),
                         color: LinePlot.palette[(i + 1) % LinePlot.palette.count], lineWidth: 2)
        }
        try LinePlot(title: title, xLabel: "step", yLabel: "FID", series: series).write(to: url)
    }
}
