import ArgumentParser
import Foundation
import ImageIO
import Pipeline

/// `maskdm check`: decodes every image of a folder and names every file that cannot be read.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode every image of a folder (recursive) before training on it: every unreadable file is named, with the sizes and kinds of the rest. Exit status 1 when any file is unreadable.")

    @Argument(help: "Image folder.") var folder: String
    @Option(parsing: .unconditional, help: "The training size to check against: images smaller than it are enlarged when they load.")
    var size: Int?

    func run() throws {
        if let size, size < 1 { throw ValidationError("--size must be at least 1, got \(size)") }
        var isFolder: ObjCBool = false
        if case .bundled(let name) = DataSource(argument: folder),
           !(FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) && isFolder.boolValue) {
            throw ValidationError("'\(name.rawValue)' names a built-in dataset, not a folder; check a folder of images "
                                  + "(`maskdm dataset \(name.rawValue) --out DIR` writes this one as files)")
        }
        let files = try ImageFolder(URL(fileURLWithPath: folder))
        guard files.count > 0 else { throw ImageIOError.unreadableFile(path: folder, reason: "no .png/.jpg/.jpeg files found (recursively)") }
        let terminal = ProgressPrinter.isTerminal(STDOUT_FILENO)
        let t0 = Date()
        let survey = files.survey { done, total in
            if terminal { print("\rdecoded \(done)/\(total)", terminator: ""); fflush(nil) }
        }
        if terminal { print("\r\u{1B}[K", terminator: "") }
        for failure in survey.failures { print("unreadable: \(failure)") }
        let kinds = [1: "grey", 3: "RGB", 4: "RGBA"]
        print("\(survey.files) image files in \(folder): \(survey.readable) readable, \(survey.failures.count) unreadable"
              + " (\(ProgressPrinter.duration(Date().timeIntervalSince(t0))))")
        let shapes = survey.shapes.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        for (shape, n) in shapes.prefix(8) {
            print("  \(n) x \(shape.width)x\(shape.height) \(kinds[shape.channels] ?? "\(shape.channels)-channel")")
        }
        if shapes.count > 8 { print("  ... and \(shapes.dropFirst(8).map(\.value).reduce(0, +)) images of \(shapes.count - 8) other sizes and kinds") }
        if let size, let smallest = survey.smallestSide {
            let small = survey.shapes.filter { min($0.key.width, $0.key.height) < size }.map(\.value).reduce(0, +)
            print("at --size \(size): short side resized to \(size), then centre-cropped to \(size)x\(size)"
                  + (small > 0 ? "; \(small) images are smaller (short side down to \(smallest) px) and are enlarged" : ""))
        }
        if survey.readable == 0 || !survey.failures.isEmpty { throw ExitCode.failure }
    }
}
