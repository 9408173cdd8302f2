import Foundation
import ImageIO
import Tensor

/// The Inception features of the readable images of a folder.
public struct FolderFeatures: Sendable {
    /// The folder path.
    public let folder: String
    /// (N, 2048): one row per readable image, in sorted file order.
    public let features: Tensor
    /// One message per unreadable file (empty when loaded from the cache).
    public let failures: [String]
    /// Number of unreadable files skipped.
    public let skipped: Int
    /// The cache file read or written, if any.
    public let cacheFile: String?
    /// True when the features came from the cache.
    public let fromCache: Bool
    /// Why the features could not be written to the cache (they are returned all the same), or nil.
    public var cacheProblem: String? = nil
    /// The features' mean and covariance, when computed ahead (``withStatistics()``):
    /// ``FIDEvaluator/compare(_:_:)`` uses them instead of fitting the features again.
    public internal(set) var statistics: GaussianStatistics? = nil

    /// N, the number of images with features.
    public var count: Int { features.shape.dims[0] }

    /// These features with their ``statistics`` computed, for a set compared many times (the
    /// reference of FID during training: fitting 10,000 features takes 1-2 s on 2 cores). The
    /// statistics hold a 2048 x 2048 Float64 covariance: 32 MiB more while the value lives.
    /// - Throws: ``MetricsError/tooFewSamples(what:count:needed:)``, naming the folder, for fewer
    ///   than 2 images.
    public func withStatistics() throws -> FolderFeatures {
        var copy = self
        guard copy.statistics == nil else { return copy }
        guard count >= 2 else {
            throw MetricsError.tooFewSamples(what: "FID statistics of \"\(folder)\" (its readable images)", count: count, needed: 2)
        }
        copy.statistics = try GaussianStatistics(features: features)
        return copy
    }
}

/// FID and KID between two sets of features, as `maskdm fid --json` prints them.
public struct FIDResult: Sendable, Equatable, Codable {
    /// The Frechet Inception Distance.
    public let fid: Double
    /// The mean KID over the subsets.
    public let kid: Double
    /// The standard deviation of KID over the subsets.
    public let kidStd: Double
    /// Images with features in the first set.
    public let nA: Int
    /// Images with features in the second set.
    public let nB: Int

    /// JSON keys: `fid`, `kid`, `kid_std`, `n_a`, `n_b`.
    enum CodingKeys: String, CodingKey {
        case fid, kid
        case kidStd = "kid_std"
        case nA = "n_a"
        case nB = "n_b"
    }

    /// FID and KID of feature sets `a` (N_a, 2048) and `b` (N_b, 2048). `statistics` gives
    /// either set's ``GaussianStatistics`` when already at hand (they must be that set's); the
    /// others are fitted here.
    public init(_ a: Tensor, _ b: Tensor, statistics: (a: GaussianStatistics?, b: GaussianStatistics?) = (nil, nil),
                kidSubsets: Int = 100, kidSubsetSize: Int = 1000, seed: UInt64 = 0) throws {
        for (name, given, set) in [("a", statistics.a, a), ("b", statistics.b, b)] {
            if let given {
                precondition(given.count == set.shape.dims[0] && given.dimension == set.shape.dims[1],
                             "FIDResult: statistics of \(given.count) x \(given.dimension) given for features \(name) \(set.shape)")
            }
        }
        fid = frechetDistance(try statistics.a ?? GaussianStatistics(features: a), try statistics.b ?? GaussianStatistics(features: b))
        let k = try KernelInceptionDistance(a, b, subsets: kidSubsets, subsetSize: kidSubsetSize, seed: seed)
        kid = k.mean
        kidStd = k.std
        nA = a.shape.dims[0]
        nB = b.shape.dims[0]
    }
}

/// Computes folder features with the FID Inception-v3 (through an optional cache) and compares folders.
///
/// ```swift
/// let evaluator = FIDEvaluator(network: try FIDInceptionV3(contentsOf: FIDInceptionV3.defaultWeightsURL),
///                              cache: FIDFeatureCache())
/// let result = try evaluator.compare(try evaluator.features(ofFolder: URL(fileURLWithPath: "real")),
///                                    try evaluator.features(ofFolder: URL(fileURLWithPath: "samples")))
/// print(result.fid, result.kid)
/// ```
public struct FIDEvaluator: Sendable {
    /// Progress of one folder: images processed so far and the total.
    public typealias Progress = (_ folder: String, _ done: Int, _ total: Int) -> Void

    /// The feature network.
    public let network: FIDInceptionV3
    /// Images per network batch.
    public var batchSize: Int
    /// The feature cache, or nil for none.
    public var cache: FIDFeatureCache?
    /// KID subsets.
    public var kidSubsets = 100
    /// KID subset size (at most; capped by the smaller set).
    public var kidSubsetSize = 1000
    /// Seed of the KID subset draws.
    public var seed: UInt64 = 0

    /// An evaluator over `network` with batches of `batchSize` images.
    public init(network: FIDInceptionV3, batchSize: Int = 32, cache: FIDFeatureCache? = nil) {
        precondition(batchSize > 0, "FIDEvaluator: batch size \(batchSize) must be positive")
        self.network = network
        self.batchSize = batchSize
        self.cache = cache
    }

    /// The features of the readable images under `url` (recursively), from the cache when it
    /// holds them, else computed (and stored).
    ///
    /// With a `communicator` of N ranks the batches are dealt round-robin (batch j to rank
    /// j mod N) and rank 0 gathers the rows in file order: rank 0's result is the whole folder's
    /// (and only rank 0 writes the cache); the other ranks' results hold only their own share.
    /// - Throws: ``MetricsError/notADirectory(path:)``, ``MetricsError/noImages(path:skipped:firstFailures:)``,
    ///   ``MetricsError/cacheFailed(path:reason:)``.
    public func features(ofFolder url: URL, progress: Progress? = nil,
                         communicator: any Communicator = SingleProcessCommunicator()) throws -> FolderFeatures {
        let folder: ImageFolder
        do { folder = try ImageFolder(url) } catch { throw MetricsError.notADirectory(path: url.path) }
        if let cache, let cached = cache.load(folder, network: network) {
            guard cached.count > 0 else { throw MetricsError.noImages(path: url.path, skipped: cached.skipped) }
            return cached
        }
        let d = FIDInceptionV3.featureDimension
        var rows: [Float] = []
        rows.reserveCapacity(folder.count * d)
        var failures: [String] = []
        var rowsPerBatch: [Float] = []                   // readable images of each of this rank's batches
        let starts = Array(stride(from: 0, to: folder.count, by: batchSize))
        for (j, start) in starts.enumerated() where j % communicator.size == communicator.rank {
            let end = Swift.min(folder.count, start + batchSize)
            // Each image is reduced to the network's 299 x 299 planes as it is decoded: a batch of
            // large photos never holds more than one full-size image per thread.
            let (planes, failed) = ImageFolder.partition(folder.loadReporting(Array(start..<end), transform: FIDPreprocessing.planes))
            failures += failed
            if !planes.isEmpty { rows += network.features(ofPlanes: planes).scalars }
            rowsPerBatch.append(Float(planes.count))
            progress?(url.path, end, folder.count)
        }
        var skipped = failures.count
        if communicator.size > 1 {
            let allRows = try communicator.gather(rows, root: 0)
            let allCounts = try communicator.gather(rowsPerBatch, root: 0)
            var unreadable = [Double(failures.count)]
            try communicator.allReduceSum(&unreadable)
            skipped = Int(unreadable[0])
            if communicator.rank == 0 {
                // Re-interleave: batch j came from rank j mod N, as that rank's (j / N)-th batch.
                var offsets = [Int](repeating: 0, count: communicator.size)
                rows = []
                rows.reserveCapacity(allRows.reduce(0) { $0 + $1.count })
                for j in starts.indices {
                    let r = j % communicator.size, n = Int(allCounts[r][j / communicator.size]) * d
                    rows += allRows[r][offsets[r]..<(offsets[r] + n)]
                    offsets[r] += n
                }
                if skipped > failures.count { failures.append("(\(skipped - failures.count) more unreadable on other ranks)") }
            } else {
                return FolderFeatures(folder: url.path, features: Tensor(rows, shape: [rows.count / d, d]),
                                      failures: failures, skipped: skipped, cacheFile: nil, fromCache: false)
            }
        }
        guard !rows.isEmpty else { throw MetricsError.noImages(path: url.path, skipped: skipped, firstFailures: failures) }
        var result = FolderFeatures(folder: url.path, features: Tensor(rows, shape: [rows.count / d, d]),
                                    failures: failures, skipped: skipped, cacheFile: nil, fromCache: false)
        if let cache {
            // A cache that cannot be written costs the next run the features, not this one its result.
            do {
                let file = try cache.store(result, of: folder, network: network)
                result = FolderFeatures(folder: result.folder, features: result.features, failures: failures,
                                        skipped: skipped, cacheFile: file.path, fromCache: false)
            } catch {
                result.cacheProblem = "\(error)"
            }
        }
        return result
    }

    /// FID and KID between the images of two folders (using their ``FolderFeatures/statistics``
    /// where computed).
    public func compare(_ a: FolderFeatures, _ b: FolderFeatures) throws -> FIDResult {
        try FIDResult(a.features, b.features, statistics: (a.statistics, b.statistics),
                      kidSubsets: kidSubsets, kidSubsetSize: kidSubsetSize, seed: seed)
    }
}
