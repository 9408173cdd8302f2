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
        // Batch noise derives from (seed, index of the batch's first image): 2 + 2 in two sittings
        // gives the files of 4 in one.
        let model = Self.model()
        try withTemporaryFolder("samples") { dir in
            let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
            func write(_ count: Int, _ folder: URL) throws {
                try SampleWriter.write(model: model, objective: .noise, schedule: .linear(), sampler: .ddim(steps: 3, eta: 0),
                                       count: count, batchSize: 2, seed: 4, to: folder)
            }
            try write(4, a)
            try write(2, b)
            try write(4, b)
            for i in 0..<4 {
                let name = SampleWriter.fileName(i)
                #expect(try Data(contentsOf: a.appendingPathComponent(name)) == Data(contentsOf: b.appendingPathComponent(name)), "\(name)")
            }
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
}
