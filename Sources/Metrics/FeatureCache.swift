import Foundation
import ImageIO
import Tensor

/// A folder's Inception features stored as safetensors in a cache directory
/// (default `.cache/fid-stats/`), so a fixed reference folder is processed once.
///
/// The file name is `<folder name>-<key>.safetensors`, where the key is a 64-bit FNV-1a hash of
/// the cache format version, the weights file's name and size, the preprocessing, and the folder's
/// ``ImageFolder/fingerprint`` (relative paths, sizes and modification times of its image files:
/// file bytes are not hashed, so touching a file invalidates its folder's entry). The file holds
/// `features` (N, 2048) F32 for the N readable images; its metadata holds the folder path, the
/// number of unreadable files, and the key. Mean and covariance are recomputed from the features
/// in Float64 (about 1-2 s for 10k images on 2 cores), and KID needs the features themselves.
public struct FIDFeatureCache: Sendable {
    /// The default directory, relative to the current directory.
    public static let defaultDirectory = ".cache/fid-stats"
    /// Bumped when the features or their file layout change.
    static let formatVersion = "maskdm-fid-features-1"

    /// Where the files are written.
    public let directory: URL

    /// A cache in `directory` (created on the first store).
    public init(directory: URL = URL(fileURLWithPath: FIDFeatureCache.defaultDirectory)) {
        self.directory = directory
    }

    /// The cache key of `folder` for features computed by `network`.
    public func key(for folder: ImageFolder, network: FIDInceptionV3) -> String {
        var hash = FNV1a()
        let weights = URL(fileURLWithPath: network.source)
        let size = (try? FileManager.default.attributesOfItem(atPath: network.source)[.size] as? Int) ?? nil
        hash.add("\(FIDFeatureCache.formatVersion)\n\(weights.lastPathComponent)\n\(size ?? -1)\n")
        hash.add("rgb-on-white bilinear-299 align_corners=False range [-1,1]\n")
        hash.add(String(folder.fingerprint, radix: 16))
        return String(format: "%016llx", hash.value)
    }

    /// The cache file of `folder` for `network`.
    public func url(for folder: ImageFolder, network: FIDInceptionV3) -> URL {
        let name = folder.root.standardizedFileURL.lastPathComponent
        let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        return directory.appendingPathComponent("\(safe.isEmpty ? "folder" : safe)-\(key(for: folder, network: network)).safetensors")
    }

    /// The cached features of `folder`, or nil when there is no valid entry (a missing, unreadable
    /// or mismatching file is a miss, never an error).
    public func load(_ folder: ImageFolder, network: FIDInceptionV3) -> FolderFeatures? {
        let url = url(for: folder, network: network)
        guard FileManager.default.fileExists(atPath: url.path),
              let file = try? SafetensorsFile(contentsOf: url),
              file.metadata["key"] == key(for: folder, network: network),
              let features = try? file.tensor("features"),
              features.rank == 2, features.shape.dims[1] == FIDInceptionV3.featureDimension
        else { return nil }
        let skipped = Int(file.metadata["skipped"] ?? "") ?? 0
        return FolderFeatures(folder: folder.root.path, features: features, failures: [],
                              skipped: skipped, cacheFile: url.path, fromCache: true)
    }

    /// Writes `features` of `folder` (atomically).
    /// - Throws: ``MetricsError/cacheFailed(path:reason:)``.
    public func store(_ features: FolderFeatures, of folder: ImageFolder, network: FIDInceptionV3) throws -> URL {
        let url = url(for: folder, network: network)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw MetricsError.cacheFailed(path: directory.path, reason: "cannot create the cache folder: \(fileProblem(error, at: directory.path))")
        }
        do {
            Safetensors.removeStaleTemporaries(of: url)   // left by a process killed mid-write
            try Safetensors.write(["features": features.features],
                                  metadata: ["key": key(for: folder, network: network), "folder": folder.root.path,
                                             "skipped": String(features.skipped), "format": FIDFeatureCache.formatVersion],
                                  to: url)
        } catch {
            throw MetricsError.cacheFailed(path: url.path, reason: "\(error)")
        }
        return url
    }
}
