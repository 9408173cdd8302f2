import Foundation

/// Every error the ViTDiffusion module throws. Each case carries what a user needs to find the
/// problem: the file, the key or field, the shape found and the shape expected.
public enum ViTDiffusionError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// A model config field is invalid; `file` is set when the config came from one.
    case invalidConfig(file: String?, field: String, problem: String)
    /// A config file cannot be read or decoded.
    case unreadableConfig(file: String, problem: String)
    /// A training recipe field is invalid.
    case invalidRecipe(field: String, problem: String)
    /// A step produced a non-finite loss or gradient norm; the weights were not updated.
    case nonFinite(step: Int, what: String)
    /// A checkpoint lacks a metadata key the trainer needs.
    case missingMetadata(file: String, key: String)
    /// A fresh run would overwrite an existing checkpoint.
    case checkpointExists(file: String)
    /// An inputs file lacks a tensor.
    case missingTensor(file: String, key: String)
    /// A tensor of an inputs file has the wrong shape.
    case wrongShape(file: String, key: String, found: [Int], expected: String)
    /// An inputs file cannot be read or one of its tensors is invalid.
    case invalidInput(file: String, key: String?, problem: String)
    /// An argument of a call is out of range (for instance a sampling batch size of 0).
    case invalidArgument(name: String, problem: String)
    /// In a job of several ranks, another rank could not take its part of step `step` (its images
    /// failed to load, its mask could not be drawn); `problem` is that rank's own error. No rank
    /// updated its weights.
    case rankFailed(rank: Int, step: Int, problem: String)

    /// One line naming the file, key or field and the problem.
    public var description: String {
        switch self {
        case .invalidConfig(let file, let field, let problem):
            return (file.map { "config '\($0)': " } ?? "config: ") + "\(field) \(problem)"
        case .unreadableConfig(let file, let problem):
            return "config '\(file)': \(problem)"
        case .invalidRecipe(let field, let problem):
            return "recipe: \(field) \(problem)"
        case .nonFinite(let step, let what):
            return "training stopped at step \(step): \(what); weights were not updated (the recipe's skipNonFiniteSteps, maskdm's --skip-non-finite, skips such steps)"
        case .missingMetadata(let file, let key):
            return "checkpoint '\(file)': metadata has no '\(key)'"
        case .checkpointExists(let file):
            return "checkpoint '\(file)' exists; pass resume: true to continue from it, or choose another file"
        case .missingTensor(let file, let key):
            return "\(file): missing key '\(key)'"
        case .wrongShape(let file, let key, let found, let expected):
            return "\(file): '\(key)' has shape \(found), expected \(expected)"
        case .invalidInput(let file, let key, let problem):
            return "\(file)" + (key.map { " '\($0)'" } ?? "") + ": \(problem)"
        case .invalidArgument(let name, let problem):
            return "\(name) \(problem)"
        case .rankFailed(let rank, let step, let problem):
            return "training stopped at step \(step): rank \(rank) could not take its part (\(problem)); weights were not updated"
        }
    }

    /// Whether the step that threw this left the trainer's state as it was before the step
    /// (a non-finite loss or gradient: nothing was updated; a mask the strategy could not draw or
    /// that breaks its contract: drawn before the forward pass; another rank's failure: agreed
    /// before any update), so that state may be checkpointed.
    public var leavesWeightsUntouched: Bool {
        switch self {
        case .nonFinite, .rankFailed: return true
        case .invalidRecipe(let field, _): return field == "mask"
        default: return false
        }
    }

    /// ``description``, for `localizedDescription`.
    public var errorDescription: String? { description }
}
