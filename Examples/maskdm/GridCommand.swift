import ArgumentParser
import Foundation
import ImageIO

/// `maskdm grid`: a sample sheet of the first images of a folder (to look at samples).
struct Grid: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a grid of the first readable images of a folder (sorted by name; unreadable files are named and skipped); images below 64 px are enlarged.")

    @Argument(help: "Image folder.") var folder: String
    @Option(help: "Output PNG.") var out: String
    @Option(parsing: .unconditional, help: "Number of images.") var count = 64
    @Option(parsing: .unconditional, help: "Columns.") var columns = 8
    @Option(parsing: .unconditional, help: "Integer enlargement of each tile, nearest neighbour (default: enough to show tiles at least 64 px a side; images of another size than the first are resized to it first).")
    var scale: Int?

    func run() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1, got \(count)") }
        guard columns >= 1 else { throw ValidationError("--columns must be at least 1, got \(columns)") }
        if let scale, !(1...64).contains(scale) { throw ValidationError("--scale must be from 1 to 64, got \(scale)") }
        let files = try ImageFolder(URL(fileURLWithPath: folder))
        guard files.count > 0 else { throw ImageIOError.unreadableFile(path: folder, reason: "no .png/.jpg/.jpeg files found (recursively)") }
        // The first `count` readable images: unreadable files are named and the next ones taken.
        var loaded: [Image] = [], failures: [String] = [], next = 0
        while loaded.count < count && next < files.count {
            let ids = Array(next..<min(files.count, next + count - loaded.count))
            next += ids.count
            let (images, failed) = ImageFolder.partition(files.loadReporting(ids, size: nil))
            loaded += images
            failures += failed
        }
        guard let first = loaded.first else {
            throw ImageIOError.unreadableFile(path: folder, reason: ImageFolder.noneDecoded(count: failures.count, failures: failures))
        }
        for failure in failures.prefix(5) { writeToStandardError("skipped \(failure)\n") }
        if failures.count > 5 { writeToStandardError("... and \(failures.count - 5) more unreadable files skipped\n") }
        // Tiles share the first image's size: a folder of mixed sizes is resized to it.
        let scale = self.scale ?? Image.sheetScale(width: first.width, height: first.height)
        guard Image.sheetSize(count: loaded.count, columns: columns, tileWidth: first.width, tileHeight: first.height, scale: scale) != nil else {
            throw ValidationError("the grid of \(loaded.count) images of \(first.width)x\(first.height) px in \(columns) columns at scale \(scale) "
                                  + "would be over 32768 pixels a side: lower --scale, --count or --columns")
        }
        let images = loaded.map { img in img.width == first.width && img.height == first.height ? img : img.resized(width: first.width, height: first.height) }
        try Image.writeGrid(images, columns: columns, to: URL(fileURLWithPath: out), scale: scale)
        print("wrote \(out) (\(images.count) images)")
    }
}
