import Foundation
import Tensor

/// The colour bitmaps of a CBDT/CBLC emoji font such as Noto Color Emoji, with its code points.
///
/// Reads the table directory, `cmap` (formats 4 and 12), `CBLC` (index subtables 1 to 5),
/// `CBDT` (PNG image formats 17, 18, 19) and the ligatures of `GSUB` (so multi-code-point emoji
/// such as ZWJ sequences, flags and skin tones resolve too). Every read is bounds checked; a
/// malformed font throws ``ImageIOError/malformedFont(path:table:problem:)`` naming the table.
///
/// ```swift
/// let font = try EmojiFont()
/// let grinning = font.glyphID(forSequence: [0x1F600])!          // cmap
/// let exhaling = font.glyphID(forSequence: [0x1F62E, 0x200D, 0x1F4A8])!   // GSUB ligature
/// let image = try Image.decode(data: Data(font.bitmap(forGlyph: exhaling)!.png), name: "exhaling")
/// ```
public struct EmojiFont: Sendable {
    /// Where Debian's `fonts-noto-color-emoji` installs the font.
    public static let defaultPath = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"

    /// The font's path.
    public let path: String
    /// All strikes (bitmap sizes) in `CBLC`.
    public let strikes: [EmojiStrike]
    /// The bitmaps of the largest strike (by ppem), in glyph order.
    public let bitmaps: [EmojiBitmap]
    /// Code point -> glyph id, from `cmap`.
    public let glyphsByScalar: [UInt32: Int]
    /// Component glyph sequence -> ligature glyph, from `GSUB` (empty without that table).
    public let ligatures: [[Int]: Int]
    private let bitmapIndex: [Int: Int]

    /// Reads the font at `path`.
    /// - Throws: ``ImageIOError`` naming the file, or the table that is malformed.
    public init(path: String = EmojiFont.defaultPath) throws(ImageIOError) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadableFile(path: path, reason: fileProblem(error, at: path))
        }
        try self.init(bytes: [UInt8](data), path: path)
    }

    /// Parses a font held in memory; `path` is used in error messages.
    public init(bytes: [UInt8], path: String) throws(ImageIOError) {
        let directory = try FontDirectory(bytes: bytes, path: path)
        let cblc = try directory.require("CBLC"), cbdt = try directory.require("CBDT")
        self.path = path
        let strikes = try FontColorBitmaps.strikes(cblc)
        self.strikes = strikes
        guard let largest = strikes.indices.max(by: { strikes[$0].ppemY < strikes[$1].ppemY }) else {
            throw cblc.error("no bitmap strikes")
        }
        bitmaps = try FontColorBitmaps.bitmaps(cblc: cblc, cbdt: cbdt, strike: largest)
        glyphsByScalar = try FontCmap.parse(try directory.require("cmap"))
        if let gsub = directory.tables["GSUB"] { ligatures = try FontLigatures.parse(gsub) } else { ligatures = [:] }
        var index: [Int: Int] = [:]
        for (i, bitmap) in bitmaps.enumerated() { index[bitmap.glyphID] = i }
        bitmapIndex = index
    }

    /// The bitmap of `glyph` in the largest strike, or nil.
    public func bitmap(forGlyph glyph: Int) -> EmojiBitmap? {
        bitmapIndex[glyph].map { bitmaps[$0] }
    }

    /// The glyph of a code point sequence: one code point through `cmap`, several through the
    /// `GSUB` ligatures. Variation selectors (U+FE0E, U+FE0F) are tried both kept and dropped.
    /// Nil when a code point is unmapped or no ligature forms the whole sequence.
    public func glyphID(forSequence scalars: [UInt32]) -> Int? {
        let stripped = scalars.filter { $0 != 0xFE0F && $0 != 0xFE0E }
        for candidate in [scalars, stripped] where !candidate.isEmpty {
            var glyphs: [Int] = []
            for scalar in candidate {
                guard let g = glyphsByScalar[scalar] else { break }
                glyphs.append(g)
            }
            guard glyphs.count == candidate.count else { continue }
            if glyphs.count == 1 { return glyphs[0] }
            if let ligature = ligatures[glyphs] { return ligature }
        }
        return nil
    }
}
