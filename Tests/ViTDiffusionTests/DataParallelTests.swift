import Masking
import Tensor
import Testing
@testable import ViTDiffusion

/// A stand-in for one rank of a job (collectives are the identity): enough to check how a rank
/// picks its share of the batch without starting MPI.
final class RankStandIn: Communicator, @unchecked Sendable {
    let rank: Int, size: Int
    init(rank: Int, size: Int) { self.rank = rank; self.size = size }
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    func allReduceSum(_ values: inout [Double]) throws {}
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {}
    func allGather(_ values: [Int64]) throws -> [[Int64]] { Array(repeating: values, count: size) }
    func gather(_ values: [Float], root: Int) throws -> [[Float]] { [values] }
    func barrier() throws {}
}

@Suite("Data-parallel batch split")
struct DataParallelTests {
    func trainer(rank: Int, size: Int, batch: Int = 8) throws -> DiffusionTrainer {
        var rng = RandomGenerator(seed: 1)
        var recipe = TrainingRecipe.pretraining(batchSize: batch, steps: 10)
        recipe.mask = try MaskSpec(name: "block2", ratio: 0.5)
        recipe.flipProbability = 0.5
        return try DiffusionTrainer(model: MaskedUViT(config: .tiny(imageSize: 16), rng: &rng), recipe: recipe,
                                    communicator: RankStandIn(rank: rank, size: size))
    }

    @Test("Each rank prepares exactly its rows of the one-process batch, with the same per-sample generators")
    func ranksTakeTheirShare() throws {
        var rng = RandomGenerator(seed: 3)
        let data = TensorDataset(images: Tensor.randomUniform([20, 3, 16, 16], low: -1, high: 1, using: &rng))
        let whole = try trainer(rank: 0, size: 1).prepareBatch(forStep: 4, from: data)
        for rank in 0..<4 {
            let t = try trainer(rank: rank, size: 4)
            #expect(t.localBatchSize == 2 && t.localSamples == (2 * rank)..<(2 * rank + 2))
            let part = try t.prepareBatch(forStep: 4, from: data)
            #expect(part.images.scalars == Array(whole.images.scalars[(rank * 2 * 768)..<((rank + 1) * 2 * 768)]))
            #expect(part.generators == Array(whole.generators[(2 * rank)..<(2 * rank + 2)]))
        }
        // Different steps and samples draw differently.
        let other = try trainer(rank: 0, size: 1).prepareBatch(forStep: 5, from: data)
        #expect(other.generators[0] != whole.generators[0] && whole.generators[0] != whole.generators[1])
    }

    @Test("A batch that does not divide over the ranks is an error naming batch_size")
    func indivisibleBatch() throws {
        #expect { try trainer(rank: 0, size: 3, batch: 8) } throws: { "\($0)".contains("batch_size") && "\($0)".contains("3 ranks") }
    }

    @Test("share(of:) deals items in contiguous blocks, the first ranks taking the remainder")
    func share() {
        let parts = (0..<3).map { RankStandIn(rank: $0, size: 3).share(of: 10) }
        #expect(parts == [0..<4, 4..<7, 7..<10])
        #expect(SingleProcessCommunicator().share(of: 5) == 0..<5)
    }
}
