import ArgumentParser
import Foundation
import ImageIO

/// `maskdm grid`: a sample sheet of the first images of a folder (to look at samples).
struct Grid: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a grid of the first images of a folder (sorted by name), optionally enlarged.")

    @Argument(help: "Image folder.") var folder: String
    @Option(help: "Output PNG.") var out: String
    @Option(help: "Number of images.") var count = 64
    @Option(help: "Columns.") var columns = 8
    @Option(help: "Integer enlargement of each tile.") var scale = 1

    func run() throws {
        let files = try ImageFolder(URL(fileURLWithPath: folder))
        let images = files.load(Array(0..<min(count, files.count)), size: nil).compactMap { $0 }.map { img in
            scale > 1 ? img.resized(width: img.width * scale, height: img.height * scale) : img
        }
        guard !images.isEmpty else { throw ValidationError("no readable images in \(folder)") }
        try Image.writeGrid(images, columns: columns, to: URL(fileURLWithPath: out))
        print("wrote \(out) (\(images.count) images)")
    }
}
