import Foundation
import Testing
@testable import ImageIO

private let fontInstalled = FileManager.default.fileExists(atPath: EmojiFont.defaultPath)
    && FileManager.default.fileExists(atPath: EmojiTestEntry.defaultPath)

@Suite(.enabled(if: fontInstalled, """
    skipped: \(EmojiFont.defaultPath) or \(EmojiTestEntry.defaultPath) is absent \
    (apt-get install fonts-noto-color-emoji unicode-data)
    """))
struct EmojiTests {
    static let faceGroup = "Smileys & Emotion"

    @Test func fontHas3926PNGStrikesOf136x128() throws {
        let font = try EmojiFont()
        #expect(font.strikes.count == 1)
        #expect(font.strikes.first?.bitDepth == 32)
        #expect(font.bitmaps.count == 3926)
        #expect(font.bitmaps.allSatisfy { $0.width == 136 && $0.height == 128 })
        // The PNGs' own headers agree with the CBDT metrics (IHDR width/height at bytes 16...23).
        for bitmap in font.bitmaps {
            let p = bitmap.png
            #expect(ImageFormat.detect(p) == .png)
            let w = Int(p[16]) << 24 | Int(p[17]) << 16 | Int(p[18]) << 8 | Int(p[19])
            let h = Int(p[20]) << 24 | Int(p[21]) << 16 | Int(p[22]) << 8 | Int(p[23])
            if w != 136 || h != 128 { Issue.record("glyph \(bitmap.glyphID) PNG is \(w)x\(h)") }
        }
        for bitmap in [font.bitmaps[0], font.bitmaps[1963], font.bitmaps[3925]] {
            let image = try Image.decode(data: Data(bitmap.png), name: "glyph \(bitmap.glyphID)")
            #expect(image.width == 136 && image.height == 128 && image.channels == 4)
        }
    }

    @Test func codePointsAndSequencesResolve() throws {
        let font = try EmojiFont()
        let grinning = try #require(font.glyphID(forSequence: [0x1F600]))
        #expect(font.glyphsByScalar[0x1F600] == grinning)
        #expect(font.bitmap(forGlyph: grinning) != nil)
        // ZWJ sequence, flag, skin tone and keycap come from GSUB ligatures.
        let sequences: [[UInt32]] = [[0x1F62E, 0x200D, 0x1F4A8], [0x1F1EB, 0x1F1F7], [0x1F44B, 0x1F3FB],
                                     [0x0023, 0xFE0F, 0x20E3]]
        for sequence in sequences {
            let glyph = try #require(font.glyphID(forSequence: sequence), "\(sequence)")
            #expect(font.bitmap(forGlyph: glyph) != nil)
            #expect(glyph != font.glyphsByScalar[sequence[0]])
        }
        #expect(font.glyphID(forSequence: [0x263A, 0xFE0F]) == font.glyphsByScalar[0x263A])
        #expect(font.glyphID(forSequence: [0x41]) == nil)
        #expect(font.glyphID(forSequence: [0x1F600, 0x1F600]) == nil)
    }

    @Test func faceSubgroupsHold115EmojiAnd3811Others() throws {
        let emoji = try EmojiDataset()
        #expect(emoji.testEntries.count == 3655 + 827 + 242 + 9)
        let faces = emoji.entries(group: Self.faceGroup, subgroups: ["face-*"])
        #expect(faces.count == 115)
        #expect(Set(faces.map(\.glyphID)).count == 115)
        #expect(faces.allSatisfy { $0.subgroup?.hasPrefix("face-") == true && $0.group == Self.faceGroup })
        // 112 are one code point (with an optional U+FE0F) and come from cmap; 3 ZWJ faces
        // (in clouds, exhaling, spiral eyes) need GSUB.
        let single = faces.filter { ($0.codePoints ?? []).filter { $0 != 0xFE0F }.count == 1 }
        #expect(single.count == 112)
        #expect(Set(faces.filter { !single.map(\.glyphID).contains($0.glyphID) }.compactMap(\.name))
                == ["face in clouds", "face exhaling", "face with spiral eyes"])
        #expect(emoji.entries(notInGroup: Self.faceGroup, subgroups: ["face-*"]).count == 3811)
        #expect(emoji.unresolved().isEmpty)
        #expect(emoji.entries(group: Self.faceGroup, subgroups: ["face-smiling"]).count == 14)
        #expect(emoji.entries(group: "Flags").count > 250)
    }

    @Test func faceImagesAre32PixelRGBOnWhite() throws {
        let emoji = try EmojiDataset()
        let faces = emoji.entries(group: Self.faceGroup, subgroups: ["face-smiling"])
        let images = try emoji.images(of: faces, size: 32)
        #expect(images.count == faces.count)
        for image in images {
            #expect(image.width == 32 && image.height == 32 && image.channels == 3)
            #expect(image[x: 0, y: 0] == [255, 255, 255] && image[x: 31, y: 31] == [255, 255, 255])
        }
        let grinning = try #require(emoji.entries.first { $0.codePoints == [0x1F600] })
        let image = try emoji.image(of: grinning, size: 32)
        let middle = image[x: 16, y: 8]    // the yellow forehead
        #expect(middle[0] > 230 && middle[1] > 190 && middle[2] < 90, "\(middle)")
        let full = try emoji.image(of: grinning, size: nil, background: (0, 0, 0))
        #expect(full.width == 136 && full.height == 136 && full[x: 0, y: 0] == [0, 0, 0])
    }

    @Test func malformedFontsThrowErrorsNamingTheTable() throws {
        let path = EmojiFont.defaultPath
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let directory = try FontDirectory(bytes: bytes, path: path)
        func table(of bytes: [UInt8]) -> String? {
            do { _ = try EmojiFont(bytes: bytes, path: "bad.ttf"); return nil } catch {
                guard case .malformedFont(let file, let table, _) = error else { return "wrong error \(error)" }
                #expect(file == "bad.ttf" && error.description.contains("'\(table)'"))
                return table
            }
        }
        func corrupt(_ tag: String, at offset: Int, with values: [UInt8]) throws -> [UInt8] {
            let t = try #require(directory.tables[tag])
            var copy = bytes
            for (i, v) in values.enumerated() { copy[t.offset + offset + i] = v }
            return copy
        }
        #expect(table(of: [UInt8](repeating: 0, count: 64)) == "table directory")
        #expect(table(of: []) == "table directory")
        #expect(table(of: Array(bytes.prefix(4096))) != nil)
        #expect(table(of: try corrupt("CBLC", at: 4, with: [0x7F, 0xFF, 0xFF, 0xFF])) == "CBLC")   // numSizes
        #expect(table(of: try corrupt("CBLC", at: 8, with: [0x7F, 0xFF, 0xFF, 0xFF])) == "CBLC")   // index array offset
        #expect(table(of: try corrupt("cmap", at: 2, with: [0xFF, 0xFF])) == "cmap")               // numTables
        #expect(table(of: try corrupt("GSUB", at: 8, with: [0xFF, 0xF0])) == "GSUB")               // lookup list
        var noCBDT = bytes
        let index = try #require(Array(directory.tables.keys).sorted().firstIndex(of: "CBDT"))
        let record = 12 + 16 * index
        // Table records are sorted by tag in sfnt files: rename CBDT's record so it is missing.
        #expect(String(decoding: noCBDT[record..<(record + 4)], as: UTF8.self) == "CBDT")
        noCBDT[record + 3] = UInt8(ascii: "X")
        #expect(table(of: noCBDT) == "CBDT")
    }

    @Test func emojiTestParserReportsTheLine() {
        let good = """
            # group: Smileys & Emotion

            # subgroup: face-smiling
            1F600   ; fully-qualified     # 😀 E1.0 grinning face
            263A FE0F ; fully-qualified # ☺️ E0.6 smiling face
            """
        let entries = try? EmojiTestEntry.parse(good, path: "t.txt")
        #expect(entries?.count == 2)
        #expect(entries?.last == EmojiTestEntry(codePoints: [0x263A, 0xFE0F], status: .fullyQualified,
                                                name: "smiling face", version: "E0.6",
                                                group: "Smileys & Emotion", subgroup: "face-smiling"))
        func failingLine(_ text: String) -> Int? {
            do { _ = try EmojiTestEntry.parse(text, path: "t.txt"); return nil } catch {
                guard case .malformedEmojiTest(let path, let line, _) = error, path == "t.txt" else { return -1 }
                return line
            }
        }
        #expect(failingLine("# group: A\n# subgroup: b\n1F60Z ; fully-qualified # x E1.0 y") == 3)
        #expect(failingLine("1F600 ; fully-qualified # x E1.0 y") == 1)
        #expect(failingLine("# group: A\n# subgroup: b\n\n1F600 ; sort-of # x E1.0 y") == 4)
        #expect(failingLine("# group: A\n# subgroup: b\n1F600 fully-qualified") == 3)
        #expect(failingLine(good) == nil)
    }
}
