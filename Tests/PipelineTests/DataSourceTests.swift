import Foundation
import ImageIO
import Pipeline
import Testing

/// `DataSource.folder`: errors name the folder; undecodable files are skipped and counted.
@Suite struct DataSourceTests {
    /// A deterministic image with varied content.
    static func image(width: Int, height: Int, channels: Int) -> Image {
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels { pixels.append(UInt8((x * 29 + y * 47 + c * 71 + x * y) % 256)) }
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Whether every pixel of an RGB image has equal channels.
    static func isGrey(_ img: Image) -> Bool {
        let p = img.pixels
        for i in stride(from: 0, to: p.count, by: 3) where p[i] != p[i + 1] || p[i] != p[i + 2] { return false }
        return true
    }

    @Test func argumentNamesBundledDatasetOrFolder() {
        #expect(DataSource(argument: "emoji-faces") == .bundled(.emojiFaces))
        #expect(DataSource(argument: "/data/faces") == .folder(URL(fileURLWithPath: "/data/faces")))
        #expect(DataSource(argument: "/data/faces").description == "/data/faces")
    }

    /// A side below 1 px is an error naming the setting, before any image is decoded (it used to
    /// trap in a worker thread); so are grids that cannot be drawn.
    @Test func unusableSizesAreErrors() throws {
        for size in [0, -1] {
            #expect(throws: PipelineError.invalidOption(name: "size", problem: "an image side of \(size) px: must be from 1 to 16384")) {
                try DataSource(argument: "emoji-faces").load(size: size)
            }
            #expect(throws: PipelineError.self) { try DataSource(argument: "/nonexistent").trainingData(size: size) }
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("grid-\(UUID().uuidString).png")
        #expect(throws: ImageIOError.self) { try Image.writeGrid([], columns: 4, to: out) }
        #expect(throws: ImageIOError.self) { try Image.writeGrid([Self.image(width: 2, height: 2, channels: 3)], columns: 0, to: out) }
        #expect(throws: ImageIOError.self) {
            try Image.writeGrid([Self.image(width: 2, height: 2, channels: 3), Self.image(width: 3, height: 2, channels: 3)], columns: 2, to: out)
        }
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func missingFolderIsNamed() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-folder-\(UUID().uuidString)")
        let error = #expect(throws: PipelineError.self) { try DataSource.folder(url).load(size: 8) }
        guard case .missingFile(let path, _)? = error else { Issue.record("expected missingFile, got \(String(describing: error))"); return }
        #expect(path == url.path)
        #expect(error?.description.contains(url.path) == true)
    }

    @Test func fileInsteadOfFolderIsNamed() throws {
        try withTemporaryFolder("ds") { dir in
            let file = dir.appendingPathComponent("a.png")
            try Self.image(width: 4, height: 4, channels: 3).write(to: file)
            #expect(throws: PipelineError.badData(path: file.path, problem: "is a file, not a folder of images")) {
                try DataSource.folder(file).load(size: 8)
            }
        }
    }

    @Test func emptyFolderIsNamed() throws {
        try withTemporaryFolder("ds") { dir in
            try Data("not an image".utf8).write(to: dir.appendingPathComponent("notes.txt"))
            #expect { try DataSource.folder(dir).load(size: 8) } throws: {
                "\($0)".contains(dir.path) && "\($0)".contains("no .png/.jpg/.jpeg files")
            }
        }
    }

    @Test func folderOfOnlyCorruptImagesIsNamed() throws {
        try withTemporaryFolder("ds") { dir in
            var png = try Self.image(width: 6, height: 6, channels: 3).encodePNG()
            png = png.prefix(40)                                       // truncated inside IHDR/IDAT
            try png.write(to: dir.appendingPathComponent("broken.png"))
            #expect { try DataSource.folder(dir).load(size: 8) } throws: {
                "\($0)".contains(dir.path) && "\($0)".contains("could be decoded")
            }
        }
    }

    @Test func mixedFolderLoadsGoodImagesAndCountsSkipped() throws {
        try withTemporaryFolder("ds") { dir in
            try Self.image(width: 10, height: 6, channels: 3).write(to: dir.appendingPathComponent("wide.png"))
            try Self.image(width: 7, height: 12, channels: 3).write(to: dir.appendingPathComponent("tall.jpg"))
            try Self.image(width: 9, height: 9, channels: 1).write(to: dir.appendingPathComponent("grey.png"))
            let sub = dir.appendingPathComponent("sub")
            try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
            try Self.image(width: 16, height: 16, channels: 4).write(to: sub.appendingPathComponent("alpha.PNG"))
            try Self.image(width: 5, height: 5, channels: 3).write(to: sub.appendingPathComponent("small.jpeg"))
            try Data("GIF89a, not a png".utf8).write(to: dir.appendingPathComponent("corrupt.png"))
            try Data("ignored".utf8).write(to: dir.appendingPathComponent("readme.txt"))

            let (images, skipped) = try DataSource.folder(dir).load(size: 8)
            #expect(skipped == 1)
            #expect(images.count == 5)
            for img in images { #expect(img.width == 8 && img.height == 8 && img.channels == 3) }
            // Grey is replicated to RGB.
            let grey = try #require(images.first(where: Self.isGrey))
            #expect(grey.pixels.contains { $0 != grey.pixels[0] })
        }
    }
}
