import Foundation
import Tensor

/// One bitmap of an emoji font with what `emoji-test.txt` says about it.
public struct EmojiEntry: Sendable {
    /// The glyph id in the font.
    public let glyphID: Int
    /// The code point sequence: the `emoji-test.txt` one when the glyph was matched, else the
    /// `cmap` code point, else nil (glyphs reached only through unlisted ligatures).
    public let codePoints: [UInt32]?
    /// The CLDR name, when the glyph was matched in `emoji-test.txt`.
    public let name: String?
    /// The group, e.g. "Smileys & Emotion", when matched.
    public let group: String?
    /// The subgroup, e.g. "face-smiling", when matched.
    public let subgroup: String?
}

/// The emoji of a colour bitmap font, labelled with Unicode groups and subgroups, as images.
///
/// Every bitmap of the font's largest strike is one ``EmojiEntry``. Each `emoji-test.txt` line
/// (fully-qualified first, then components, minimally-qualified and unqualified) is resolved to
/// a glyph with ``EmojiFont/glyphID(forSequence:)``; the first line that reaches a glyph labels it.
///
/// ```swift
/// let emoji = try EmojiDataset()
/// let faces = emoji.entries(group: "Smileys & Emotion", subgroups: ["face-*"])      // 115
/// let others = emoji.entries(notInGroup: "Smileys & Emotion", subgroups: ["face-*"]) // the rest
/// let images = try emoji.images(of: faces, size: 32)   // RGB on white, 32 x 32
/// ```
public struct EmojiDataset: Sendable {
    /// The font.
    public let font: EmojiFont
    /// One entry per bitmap, in glyph order.
    public let entries: [EmojiEntry]
    /// The `emoji-test.txt` lines.
    public let testEntries: [EmojiTestEntry]

    /// Reads the font and `emoji-test.txt` and labels every bitmap.
    /// - Throws: ``ImageIOError`` naming the file (and table or line) that could not be read.
    public init(fontPath: String = EmojiFont.defaultPath,
                emojiTestPath: String = EmojiTestEntry.defaultPath) throws(ImageIOError) {
        try self.init(font: EmojiFont(path: fontPath), testEntries: EmojiTestEntry.load(path: emojiTestPath))
    }

    /// Labels the bitmaps of `font` with `testEntries`.
    public init(font: EmojiFont, testEntries: [EmojiTestEntry]) {
        self.font = font
        self.testEntries = testEntries
        let order: [EmojiStatus] = [.fullyQualified, .component, .minimallyQualified, .unqualified]
        var label: [Int: EmojiTestEntry] = [:]
        for status in order {
            for entry in testEntries where entry.status == status {
                guard let glyph = font.glyphID(forSequence: entry.codePoints),
                      font.bitmap(forGlyph: glyph) != nil, label[glyph] == nil else { continue }
                label[glyph] = entry
            }
        }
        var scalarByGlyph: [Int: UInt32] = [:]
        for (scalar, glyph) in font.glyphsByScalar where scalar < scalarByGlyph[glyph] ?? .max {
            scalarByGlyph[glyph] = scalar
        }
        entries = font.bitmaps.map { bitmap in
            let test = label[bitmap.glyphID]
            return EmojiEntry(glyphID: bitmap.glyphID,
                              codePoints: test?.codePoints ?? scalarByGlyph[bitmap.glyphID].map { [$0] },
                              name: test?.name, group: test?.group, subgroup: test?.subgroup)
        }
    }

    /// The entries in `group` (any, when nil) whose subgroup matches one of `subgroups` (any, when
    /// nil). A pattern ending in `*` matches by prefix (`"face-*"`), otherwise exactly.
    public func entries(group: String? = nil, subgroups: [String]? = nil) -> [EmojiEntry] {
        entries.filter { EmojiDataset.matches($0, group: group, subgroups: subgroups) }
    }

    /// Every entry not selected by ``entries(group:subgroups:)`` with the same arguments,
    /// including unlabelled glyphs.
    public func entries(notInGroup group: String?, subgroups: [String]? = nil) -> [EmojiEntry] {
        entries.filter { !EmojiDataset.matches($0, group: group, subgroups: subgroups) }
    }

    /// The fully-qualified `emoji-test.txt` lines of `group` / `subgroups` that resolve to no
    /// bitmap of the font. (Several lines may share one bitmap: Noto draws some flags alike.)
    public func unresolved(group: String? = nil, subgroups: [String]? = nil) -> [EmojiTestEntry] {
        testEntries.filter { test in
            guard test.status == .fullyQualified, group == nil || test.group == group else { return false }
            if let subgroups, !subgroups.contains(where: { EmojiDataset.matches(test.subgroup, pattern: $0) }) {
                return false
            }
            guard let glyph = font.glyphID(forSequence: test.codePoints) else { return true }
            return font.bitmap(forGlyph: glyph) == nil
        }
    }

    /// The entry's bitmap as an RGB image: composited on `background`, centred on a square of
    /// `background`, then area-averaged to `size` x `size` (kept at full size when nil).
    public func image(of entry: EmojiEntry, size: Int? = 32,
                      background: RGBColor = (255, 255, 255)) throws(ImageIOError) -> Image {
        if let size, size < 1 { throw .malformedDataset(path: font.path, problem: "cannot draw its emoji at \(size) px (the side must be positive)") }
        guard let bitmap = font.bitmap(forGlyph: entry.glyphID) else {
            throw .malformedFont(path: font.path, table: "CBDT", problem: "no bitmap for glyph \(entry.glyphID)")
        }
        let decoded = try Image.decode(data: Data(bitmap.png), name: "\(font.path) glyph \(entry.glyphID)")
        let square = decoded.composited(on: background)
            .paddedToSquare(fill: [background.r, background.g, background.b])
        guard let size else { return square }
        return square.resized(width: size, height: size, filter: .area)
    }

    /// ``image(of:size:background:)`` for each entry, decoded on ``Parallel/threads`` threads.
    public func images(of entries: [EmojiEntry], size: Int? = 32,
                       background: RGBColor = (255, 255, 255)) throws(ImageIOError) -> [Image] {
        if let size, size < 1 { throw .malformedDataset(path: font.path, problem: "cannot draw its emoji at \(size) px (the side must be positive)") }
        var results = [Result<Image, ImageIOError>?](repeating: nil, count: entries.count)
        results.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let out = SendablePointer(base)
            parallelFor(entries.count, grain: 8) { range in
                for i in range {
                    do throws(ImageIOError) {
                        out[i] = .success(try image(of: entries[i], size: size, background: background))
                    } catch {
                        out[i] = .failure(error)
                    }
                }
            }
        }
        var images: [Image] = []
        images.reserveCapacity(entries.count)
        for case let result? in results { images.append(try result.get()) }
        return images
    }

    /// Images of the entries selected by ``entries(group:subgroups:)``.
    public func images(group: String? = nil, subgroups: [String]? = nil, size: Int? = 32,
                       background: RGBColor = (255, 255, 255)) throws(ImageIOError) -> [Image] {
        try images(of: entries(group: group, subgroups: subgroups), size: size, background: background)
    }

    static func matches(_ entry: EmojiEntry, group: String?, subgroups: [String]?) -> Bool {
        if let group, entry.group != group { return false }
        guard let subgroups else { return true }
        guard let subgroup = entry.subgroup else { return false }
        return subgroups.contains { matches(subgroup, pattern: $0) }
    }

    static func matches(_ subgroup: String, pattern: String) -> Bool {
        pattern.hasSuffix("*") ? subgroup.hasPrefix(pattern.dropLast()) : subgroup == pattern
    }
}
