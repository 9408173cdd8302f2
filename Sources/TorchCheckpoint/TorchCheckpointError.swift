import Foundation

/// Why a PyTorch checkpoint could not be read, or why one of its values cannot be returned.
///
/// The message names the file, the zip entry the problem is in (`archive/data.pkl`,
/// `archive/data/3`, ...) when there is one, the dotted key when the problem concerns one value,
/// and what is wrong:
///
///     torch checkpoint 'ckpt.pt', entry 'ckpt/data.pkl', key 'model.w': tensor needs 12 elements ...
public struct TorchCheckpointError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    /// The file path (or the name given for in-memory bytes).
    public let file: String
    /// The zip entry the problem is in, if any.
    public let entry: String?
    /// The dotted key the problem concerns, if any.
    public let key: String?
    /// What is wrong.
    public let problem: String

    /// Creates an error about `file` (and the zip `entry` and dotted `key` it concerns, if any).
    public init(file: String, entry: String? = nil, key: String? = nil, _ problem: String) {
        self.file = file
        self.entry = entry
        self.key = key
        self.problem = problem
    }

    /// The full message: file, entry, key and problem.
    public var description: String {
        var s = "torch checkpoint '\(file)'"
        if let entry { s += ", entry '\(entry)'" }
        if let key { s += ", key '\(key)'" }
        return s + ": " + problem
    }

    /// Same as ``description``.
    public var errorDescription: String? { description }
}
