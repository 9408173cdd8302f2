import ArgumentParser
import Foundation
import ImageIO

/// `maskdm export-emoji DIR`: the embedded emoji data as a folder of PNGs (e.g. an FID reference).
struct ExportEmoji: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-emoji",
        abstract: "Write Noto emoji (RGB on white) as PNG files: the face emoji, the others, or all.")

    @Argument(help: "Output folder.") var out: String
    @Option(help: "faces (the 115 face-* emoji), others (the rest) or all.") var set = "faces"
    @Option(help: "Image size in pixels.") var size = 32
    @Option(help: "Write at most this many (0: all).") var limit = 0

    func run() throws {
        let emoji = try EmojiDataset()
        let isFace: (EmojiEntry) -> Bool = { $0.group == "Smileys & Emotion" && ($0.subgroup?.hasPrefix("face-") ?? false) }
        var entries: [EmojiEntry]
        switch set {
        case "faces": entries = emoji.entries.filter(isFace)
        case "others": entries = emoji.entries.filter { !isFace($0) }
        case "all": entries = emoji.entries
        default: throw ValidationError("--set must be faces, others or all")
        }
        if limit > 0 { entries = Array(entries.prefix(limit)) }
        let dir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let images = try emoji.images(of: entries, size: size)
        for (i, (entry, image)) in zip(entries, images).enumerated() {
            try image.write(to: dir.appendingPathComponent(String(format: "%04d_glyph%d.png", i, entry.glyphID)))
        }
        print("wrote \(images.count) \(set) emoji at \(size) px to \(out)")
    }
}
