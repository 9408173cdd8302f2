import Foundation
import Tensor

/// How an `emoji-test.txt` line's code point sequence relates to the RGI emoji set (UTS #51).
public enum EmojiStatus: String, Sendable {
    /// An emoji component such as a skin-tone modifier.
    case component
    /// A fully-qualified emoji (the RGI set).
    case fullyQualified = "fully-qualified"
    /// Missing some, but not the first, emoji presentation selector.
    case minimallyQualified = "minimally-qualified"
    /// Missing the first emoji presentation selector.
    case unqualified
}

/// One line of Unicode's `emoji-test.txt`:
/// `1F600 ; fully-qualified # 😀 E1.0 grinning face`, under `# group:` and `# subgroup:` headers.
public struct EmojiTestEntry: Sendable, Equatable {
    /// The code point sequence.
    public let codePoints: [UInt32]
    /// The qualification status.
    public let status: EmojiStatus
    /// The CLDR short name, e.g. "grinning face".
    public let name: String
    /// The emoji version that introduced it, e.g. "E1.0".
    public let version: String
    /// The group, e.g. "Smileys & Emotion".
    public let group: String
    /// The subgroup, e.g. "face-smiling".
    public let subgroup: String

    /// Where Debian's `unicode-data` installs the file.
    public static let defaultPath = "/usr/share/unicode/emoji/emoji-test.txt"

    /// Reads and parses an `emoji-test.txt` file.
    /// - Throws: ``ImageIOError`` naming the file (and the line, for a malformed one).
    public static func load(path: String = defaultPath) throws(ImageIOError) -> [EmojiTestEntry] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadableFile(path: path, reason: fileProblem(error, at: path))
        }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    /// Parses the text of an `emoji-test.txt` file; `path` is used in error messages.
    public static func parse(_ text: String, path: String) throws(ImageIOError) -> [EmojiTestEntry] {
        var group: String?, subgroup: String?
        var entries: [EmojiTestEntry] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            func fail(_ problem: String) -> ImageIOError {
                .malformedEmojiTest(path: path, line: index + 1, problem: problem)
            }
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                if line.hasPrefix("# group:") {
                    group = line.dropFirst("# group:".count).trimmingCharacters(in: .whitespaces)
                    subgroup = nil
                } else if line.hasPrefix("# subgroup:") {
                    subgroup = line.dropFirst("# subgroup:".count).trimmingCharacters(in: .whitespaces)
                }
                continue
            }
            guard let semicolon = line.firstIndex(of: ";"), let hash = line.firstIndex(of: "#"),
                  semicolon < hash else { throw fail("expected 'code points ; status # emoji version name'") }
            var codePoints: [UInt32] = []
            for field in line[..<semicolon].split(separator: " ") {
                guard let value = UInt32(field, radix: 16), value <= 0x10FFFF else {
                    throw fail("'\(field)' is not a hexadecimal code point")
                }
                codePoints.append(value)
            }
            let statusText = line[line.index(after: semicolon)..<hash].trimmingCharacters(in: .whitespaces)
            guard !codePoints.isEmpty else { throw fail("no code points") }
            guard let status = EmojiStatus(rawValue: statusText) else { throw fail("unknown status '\(statusText)'") }
            guard let group, let subgroup else { throw fail("emoji line before any '# group:' / '# subgroup:' header") }
            // The comment is "<emoji> E<version> <name>".
            var words = line[line.index(after: hash)...].split(separator: " ").dropFirst()
            var version = ""
            if let first = words.first, first.hasPrefix("E"), first.dropFirst().allSatisfy({ $0.isNumber || $0 == "." }) {
                version = String(first)
                words = words.dropFirst()
            }
            entries.append(EmojiTestEntry(codePoints: codePoints, status: status, name: words.joined(separator: " "),
                                          version: version, group: group, subgroup: subgroup))
        }
        return entries
    }
}
