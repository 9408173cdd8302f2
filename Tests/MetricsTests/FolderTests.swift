import Foundation
import ImageIO
import Tensor
import Testing
@testable import Metrics

@Suite struct FolderTests {
    /// Recursive listing of png / jpg / jpeg (any case), sorted; other files and hidden ones ignored;
    /// unreadable images are reported, not fatal.
    @Test func listsRecursivelyAndSkipsUnreadable() throws {
        let dir = try temporaryDirectory("folder")
        defer { try? FileManager.default.removeItem(at: dir) }
        let sub = dir.appendingPathComponent("sub/deeper")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let red = Image(width: 4, height: 3, color: [255, 0, 0])
        try red.write(to: dir.appendingPathComponent("b.png"))
        try red.write(to: sub.appendingPathComponent("a.JPG"))
        try red.write(to: dir.appendingPathComponent("sub/c.jpeg"))
        try Data("not an image".utf8).write(to: dir.appendingPathComponent("broken.png"))
        try Data("notes".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        try red.write(to: dir.appendingPathComponent(".hidden.png"))
        let folder = try ImageFolder(dir)
        #expect(folder.entries.map(\.path) == ["b.png", "broken.png", "sub/c.jpeg", "sub/deeper/a.JPG"])
        let (images, failures) = folder.loadImages(0..<folder.count)
        #expect(images.count == 3 && images.allSatisfy { $0.width == 4 && $0.height == 3 })
        #expect(failures.count == 1 && failures[0].contains("broken.png"))
        // The fingerprint follows the listing.
        let before = folder.fingerprint
        #expect(try ImageFolder(dir).fingerprint == before)
        try red.write(to: dir.appendingPathComponent("d.png"))
        #expect(try ImageFolder(dir).fingerprint != before)
    }

    @Test func notAFolder() {
        #expect { try ImageFolder(URL(fileURLWithPath: "/nonexistent/folder")) } throws: { "\($0)".contains("/nonexistent/folder") }
    }

    @Test func resultJSONKeys() throws {
        var rng = RandomGenerator(seed: 4)
        let a = Tensor.randomNormal([6, 5], using: &rng), b = Tensor.randomNormal([6, 5], mean: 0.5, using: &rng)
        let result = try FIDResult(a, b)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(result)) as? [String: Double]
        #expect(Set(json?.keys.map { $0 } ?? []) == ["fid", "kid", "kid_std", "n_a", "n_b"])
        #expect(json?["n_a"] == 6 && result.kidStd == 0 && result.fid > 0)
    }

    /// Statistics computed ahead are used in place of fitting the features again, and give the
    /// same result, bit for bit.
    @Test func statisticsComputedAhead() throws {
        var rng = RandomGenerator(seed: 5)
        let a = Tensor.randomNormal([9, 5], using: &rng), b = Tensor.randomNormal([7, 5], mean: 0.5, using: &rng)
        let other = Tensor.randomNormal([7, 5], mean: 2, using: &rng)
        let fitted = try FIDResult(a, b, kidSubsets: 3, kidSubsetSize: 5)
        #expect(try FIDResult(a, b, statistics: (nil, GaussianStatistics(features: b)), kidSubsets: 3, kidSubsetSize: 5) == fitted)
        #expect(try FIDResult(a, b, statistics: (GaussianStatistics(features: a), nil), kidSubsets: 3, kidSubsetSize: 5) == fitted)
        // Another set's statistics change the FID (they are used) but not KID (it reads the features).
        let swapped = try FIDResult(a, b, statistics: (nil, GaussianStatistics(features: other)), kidSubsets: 3, kidSubsetSize: 5)
        #expect(swapped.fid != fitted.fid && swapped.kid == fitted.kid)

        let folderA = FolderFeatures(folder: "a", features: a, failures: [], skipped: 0, cacheFile: nil, fromCache: false)
        let folderB = FolderFeatures(folder: "b", features: b, failures: [], skipped: 0, cacheFile: nil, fromCache: false)
        #expect(folderB.statistics == nil)
        let ahead = try folderB.withStatistics()
        #expect(ahead.statistics == (try GaussianStatistics(features: b)))
        #expect(try FIDResult(folderA.features, ahead.features, statistics: (folderA.statistics, ahead.statistics),
                              kidSubsets: 3, kidSubsetSize: 5) == fitted)
        let one = FolderFeatures(folder: "one", features: Tensor.randomNormal([1, 5], using: &rng), failures: [], skipped: 0,
                                 cacheFile: nil, fromCache: false)
        #expect { try one.withStatistics() } throws: { "\($0)".contains("\"one\"") && "\($0)".contains("1 samples, at least 2") }
    }

    /// End to end through the cache: the second pass reads the features back.
    @Test(.enabled(if: FIDWeights.available, FIDWeights.skipMessage))
    func evaluatorCachesFeatures() throws {
        let network = try #require(FIDWeights.network, "MASKDM_REQUIRE_FID=1 but the FID weights are missing").get()
        let cacheDir = try temporaryDirectory("cache")
        defer { try? FileManager.default.removeItem(at: cacheDir) }
        let evaluator = FIDEvaluator(network: network, batchSize: 2, cache: FIDFeatureCache(directory: cacheDir))
        let first = try evaluator.features(ofFolder: Fixtures.url("images"))
        #expect(!first.fromCache && first.count == 4 && first.skipped == 0)
        let file = try #require(first.cacheFile)
        #expect(FileManager.default.fileExists(atPath: file))
        let second = try evaluator.features(ofFolder: Fixtures.url("images"))
        #expect(second.fromCache && second.cacheFile == file)
        #expect(second.features.maxAbsDifference(first.features) == 0)
        let result = try evaluator.compare(first, second)
        #expect(abs(result.fid) < 1e-6 && result.nA == 4, "\(result)")
        #expect(try evaluator.compare(first, second.withStatistics()) == result)   // fitted ahead: the same
        var forged = second                                                       // and compare uses them
        var rng = RandomGenerator(seed: 9)
        forged.statistics = try GaussianStatistics(features: Tensor.randomNormal(second.features.shape, using: &rng))
        let withForged = try evaluator.compare(first, forged)
        #expect(withForged.fid != result.fid && withForged.kid == result.kid)

        // A process killed while writing this entry left its temporary file; the next write removes it.
        // Int32.max is above every PID Linux hands out (at most 2^22): no such process.
        let entry = URL(fileURLWithPath: file)
        let leftover = entry.deletingLastPathComponent().appendingPathComponent(".\(entry.lastPathComponent).tmp-\(Int32.max)-x1")
        try Data(count: 64).write(to: leftover)
        try FileManager.default.removeItem(at: entry)
        let third = try evaluator.features(ofFolder: Fixtures.url("images"))
        #expect(!third.fromCache && FileManager.default.fileExists(atPath: file))
        #expect(!FileManager.default.fileExists(atPath: leftover.path))
    }
}
