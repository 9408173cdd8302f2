import Foundation

/// An environmental error of the ImageIO module: a file that cannot be read, decoded or written.
///
/// Every case names the file (or, for encoding, the format) and the underlying problem, e.g.
/// `cannot decode "bad.png" as PNG: IDAT: CRC error`.
public enum ImageIOError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    /// The file could not be read from disk.
    case unreadableFile(path: String, reason: String)
    /// The bytes start with neither the PNG nor the JPEG signature.
    case unknownFormat(name: String, leadingBytes: String)
    /// libpng or libjpeg rejected the data; `message` is the library's text.
    case decodingFailed(name: String, format: ImageFormat, message: String)
    /// Encoding failed (invalid image or library error).
    case encodingFailed(format: ImageFormat, message: String)
    /// The file could not be written.
    case writeFailed(path: String, reason: String)
    /// A font table is missing, truncated or inconsistent.
    case malformedFont(path: String, table: String, problem: String)
    /// A line of `emoji-test.txt` could not be parsed.
    case malformedEmojiTest(path: String, line: Int, problem: String)
    /// A dataset file (IDX, CSV, NPY, gzip) is missing, truncated or inconsistent.
    case malformedDataset(path: String, problem: String)

    /// A one-line message naming the file and the problem.
    public var description: String {
        switch self {
        case let .unreadableFile(path, reason):
            return "cannot read \"\(path)\": \(reason)"
        case let .unknownFormat(name, leading):
            return "cannot decode \"\(name)\": not a PNG or JPEG file (starts with \(leading))"
        case let .decodingFailed(name, format, message):
            return "cannot decode \"\(name)\" as \(format): \(message)"
        case let .encodingFailed(format, message):
            return "cannot encode \(format): \(message)"
        case let .writeFailed(path, reason):
            return "cannot write \"\(path)\": \(reason)"
        case let .malformedFont(path, table, problem):
            return "malformed font \"\(path)\", table '\(table)': \(problem)"
        case let .malformedEmojiTest(path, line, problem):
            return "malformed emoji test file \"\(path)\", line \(line): \(problem)"
        case let .malformedDataset(path, problem):
            return "malformed dataset file \"\(path)\": \(problem)"
        }
    }

    /// Same as ``description`` (for `localizedDescription`).
    public var errorDescription: String? { description }
}
