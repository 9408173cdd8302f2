import ArgumentParser
import Foundation
import ImageIO

/// `maskdm dataset`: writes one of the offline datasets as a folder of PNGs at a chosen size.
struct Dataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Materialise a bundled dataset as PNGs: emoji, emoji-faces, emoji-others, fashion-mnist, mnist5k, lfw.")

    @Argument(help: "emoji | emoji-faces (the 115 face-* emoji) | emoji-others (the rest) | fashion-mnist | mnist5k | lfw")
    var name: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Square size in pixels (area-resized; emoji composited on white).") var size = 32
    @Option(help: "Write at most this many images.") var limit: Int?
    @Option(help: "Source file for mnist5k (mnist_5k.csv.gz) or lfw (lfw_subset.npy); see scripts/fetch-datasets.sh.") var source: String?

    func run() throws {
        let images: [Image]
        switch name {
        case "emoji", "emoji-faces", "emoji-others":
            let d = try EmojiDataset()
            let isFace = { (e: EmojiEntry) in e.group == "Smileys & Emotion" && (e.subgroup?.hasPrefix("face-") ?? false) }
            let entries = name == "emoji" ? d.entries : d.entries.filter { isFace($0) == (name == "emoji-faces") }
            images = try d.images(of: entries, size: size)
        case "fashion-mnist":
            images = try GreyDatasets.fashionMNIST(train: true) + GreyDatasets.fashionMNIST(train: false)
        case "mnist5k", "lfw":
            guard let source else { throw ValidationError("--source is required for \(name) (run scripts/fetch-datasets.sh)") }
            let url = URL(fileURLWithPath: source)
            images = name == "lfw" ? try GreyDatasets.npyImages(contentsOf: url) : try GreyDatasets.mnist5k(contentsOf: url).images
        default:
            throw ValidationError("unknown dataset \(name)")
        }
        let dir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let chosen = images.prefix(limit ?? images.count)
        for (i, img) in chosen.enumerated() {
            let sized = img.width == size && img.height == size ? img : img.resized(width: size, height: size)
            try sized.write(to: dir.appendingPathComponent(String(format: "%06d.png", i)))
        }
        print("wrote \(chosen.count) images of \(size)x\(size) to \(dir.path)")
    }
}
