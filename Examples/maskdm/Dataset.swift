import ArgumentParser
import Foundation
import Pipeline

/// `maskdm dataset`: writes one of the offline datasets as a folder of PNGs at a chosen size.
struct Dataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Materialise a bundled dataset as PNGs: emoji, emoji-faces, emoji-others, fashion-mnist, mnist5k, lfw.")

    @Argument(help: "emoji | emoji-faces (the 115 face-* emoji) | emoji-others (the rest) | fashion-mnist | mnist5k | lfw")
    var name: String
    @Option(help: "Output folder.") var out: String
    @Option(parsing: .unconditional, help: "Square size in pixels (area-resized; emoji composited on white).") var size = 32
    @Option(parsing: .unconditional, help: "Write at most this many images.") var limit: Int?
    @Option(parsing: .unconditional, help: "Skip this many images first.") var skip = 0
    @Option(help: "File format: png or jpg.") var format = "png"

    func run() throws {
        guard let dataset = BundledDataset(rawValue: name) else {
            throw ValidationError("unknown dataset '\(name)' (\(BundledDataset.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard ["png", "jpg"].contains(format) else { throw ValidationError("--format must be png or jpg") }
        guard (1...4096).contains(size) else { throw ValidationError("--size must be from 1 to 4096 pixels, got \(size)") }
        guard skip >= 0 else { throw ValidationError("--skip must be >= 0, got \(skip)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        let all = try dataset.images(size: size)
        guard skip < all.count else { throw ValidationError("--skip \(skip) skips every image: \(name) has \(all.count)") }
        let images = all.dropFirst(skip)
        let n = try ImageWriting.writeNumbered(Array(images.prefix(limit ?? images.count)), to: URL(fileURLWithPath: out),
                                               fileExtension: format)
        print("wrote \(n) images of \(size)x\(size) to \(out)")
    }
}
