import Foundation
import ImageIO
import Pipeline
import Schedules
import Tensor
import Testing
import ViTDiffusion

/// `SampleWriter.write` continues the numbering of the files already in the folder.
@Suite struct SampleWriterTests {
    static func model() -> MaskedUViT {
        var rng = RandomGenerator(seed: 8)
        return MaskedUViT(config: MaskedUViTConfig(imageSize: 8, patchSize: 2, embedDim: 16, depth: 3, heads: 2), rng: &rng)
    }

    static func numbered(_ folder: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".png") }.sorted()
    }

    @Test func continuesNumberingAndDrawsOnlyMissingImages() throws {
        let model = Self.model()
        try withTemporaryFolder("samples") { dir in
            let folder = dir.appendingPathComponent("s")
            func write(_ count: Int, grid: URL? = nil) throws -> Int {
                try SampleWriter.write(model: model, objective: .noise, schedule: .linear(), sampler: .ddim(steps: 3, eta: 0),
                                       count: count, batchSize: 2, seed: 4, to: folder, gridURL: grid)
            }
            #expect(try write(3) == 3)
            #expect(try Self.numbered(folder) == ["00000.png", "00001.png", "00002.png"])
            #expect(SampleWriter.existingCount(in: folder) == 3)
            let firstThree = try (0..<3).map { try Data(contentsOf: folder.appendingPathComponent(SampleWriter.fileName($0))) }

            let grid = dir.appendingPathComponent("grid.png")
            #expect(try write(5, grid: grid) == 2)
            #expect(try Self.numbered(folder) == (0..<5).map(SampleWriter.fileName))
            #expect(try (0..<3).map { try Data(contentsOf: folder.appendingPathComponent(SampleWriter.fileName($0))) } == firstThree)
            for i in 0..<5 {
                let img = try Image(contentsOf: folder.appendingPathComponent(SampleWriter.fileName(i)))
                #expect(img.width == 8 && img.height == 8 && img.channels == 3)
            }
            #expect(FileManager.default.fileExists(atPath: grid.path))

            // Already complete (or fewer asked for): nothing is drawn.
            #expect(try write(5) == 0)
            #expect(try write(2) == 0)
            #expect(try Self.numbered(folder).count == 5)
        }
    }

    @Test func resumedSamplingEqualsOneSitting() throws {
        // Image i's noise derives from (seed, i) alone: 2 + 3 images in two sittings with other
        // batch sizes give the files of 5 in one, with a stochastic sampler (DDIM, eta 1) too.
        let model = Self.model()
        try withTemporaryFolder("samples") { dir in
            let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b"), c = dir.appendingPathComponent("c")
            func write(_ count: Int, _ folder: URL, batch: Int, seed: UInt64 = 4) throws {
                try SampleWriter.write(model: model, objective: .noise, schedule: .linear(), sampler: .ddim(steps: 3, eta: 1),
                                       count: count, batchSize: batch, seed: seed, to: folder)
            }
            try write(5, a, batch: 2)
            try write(2, b, batch: 2)
            try write(5, b, batch: 3)
            try write(5, c, batch: 5, seed: 5)
            var differs = 0
            for i in 0..<5 {
                let name = SampleWriter.fileName(i)
                let x = try Image(contentsOf: a.appendingPathComponent(name)), y = try Image(contentsOf: b.appendingPathComponent(name))
                // Batches of 2 and 3 run the network on other row counts: equal up to its rounding.
                let gap = zip(x.pixels, y.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
                #expect(gap <= 1, "\(name): pixels differ by \(gap)")
                let z = try Image(contentsOf: c.appendingPathComponent(name))
                differs += zip(x.pixels, z.pixels).filter { abs(Int($0) - Int($1)) > 8 }.count
            }
            #expect(differs > 0)        // another seed draws other images
        }
    }

    @Test func badCountsAreRefused() throws {
        let model = Self.model()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("never-\(UUID().uuidString)")
        #expect(throws: PipelineError.self) {
            try SampleWriter.write(model: model, objective: .noise, schedule: .linear(), sampler: .ddpm, count: -1, to: folder)
        }
        #expect(throws: PipelineError.self) {
            try SampleWriter.write(model: model, objective: .noise, schedule: .linear(), sampler: .ddpm, count: 1, batchSize: 0, to: folder)
        }
        #expect(!FileManager.default.fileExists(atPath: folder.path))
    }

    /// A folder records what drew its images: another model or sampler is refused (or, when
    /// asked, replaces them); a folder without the record is continued.
    @Test func samplesOfDifferentModelsDoNotMix() throws {
        let model = Self.model()
        var rng = RandomGenerator(seed: 99)
        let other = MaskedUViT(config: model.config, rng: &rng)
        try withTemporaryFolder("mixing") { dir in
            let folder = dir.appendingPathComponent("s")
            func write(_ net: MaskedUViT, _ count: Int, sampler: SamplerKind = .ddim(steps: 2, eta: 0), seed: UInt64 = 4,
                       replacing: Bool = false) throws -> Int {
                try SampleWriter.write(model: net, objective: .noise, schedule: .linear(), sampler: sampler,
                                       count: count, batchSize: 2, seed: seed, to: folder, replacingOtherSamples: replacing)
            }
            #expect(try write(model, 2) == 2)
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(".samples.json").path))
            let first = try Data(contentsOf: folder.appendingPathComponent("00000.png"))
            for (what, attempt) in [("other weights", { try write(other, 3) }), ("sampler", { try write(model, 3, sampler: .ddpm) }),
                                    ("seed", { try write(model, 3, seed: 5) })] as [(String, () throws -> Int)] {
                #expect(throws: PipelineError.self, "\(what)") { _ = try attempt() }
            }
            #expect(SampleWriter.existingCount(in: folder) == 2)
            #expect(try write(model, 3) == 1)                         // the same settings continue
            #expect(try write(other, 3, replacing: true) == 3)        // or every image is drawn again
            #expect(try Data(contentsOf: folder.appendingPathComponent("00000.png")) != first)
            // Without the record (an older folder) the images are continued, and it is written.
            try FileManager.default.removeItem(at: folder.appendingPathComponent(".samples.json"))
            #expect(try write(model, 4) == 1)
            #expect(throws: PipelineError.self) { _ = try write(other, 5) }
            // The folder's images are what FID reads: the record is hidden from it.
            #expect(try ImageFolder(folder).count == 4)
        }
        #expect(throws: PipelineError.self) {
            try SampleWriter.write(model: model, objective: .noise, schedule: .linear(), sampler: .ddpm,
                                   count: SampleWriter.maximumCount + 1, to: URL(fileURLWithPath: "/nonexistent/never"))
        }
    }

    /// A hole in a sample folder (a deleted or cut file) is filled; the images after it are kept.
    @Test func onlyMissingImagesAreDrawn() throws {
        let model = Self.model()
        try withTemporaryFolder("holes") { dir in
            let folder = dir.appendingPathComponent("s")
            func write(_ count: Int) throws -> Int {
                try SampleWriter.write(model: model, objective: .noise, schedule: .linear(), sampler: .ddim(steps: 2, eta: 1),
                                       count: count, batchSize: 2, seed: 3, to: folder)
            }
            #expect(try write(6) == 6)
            let url = { (i: Int) in folder.appendingPathComponent(SampleWriter.fileName(i)) }
            let original = try Image(contentsOf: url(2)).pixels
            let later = try FileManager.default.attributesOfItem(atPath: url(4).path)[.modificationDate] as? Date
            try FileManager.default.removeItem(at: url(2))
            try Data([0x89, 0x50]).write(to: url(5))                      // a cut file
            #expect(try write(6) == 2)
            // Image 2 drawn again alone (rounding may differ by a level from its batch of 2), 4 untouched.
            let redrawn = try Image(contentsOf: url(2)).pixels
            #expect(zip(original, redrawn).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
            #expect((try FileManager.default.attributesOfItem(atPath: url(4).path)[.modificationDate] as? Date) == later)
            #expect(SampleWriter.existingCount(in: folder) == 6)
        }
    }
}
