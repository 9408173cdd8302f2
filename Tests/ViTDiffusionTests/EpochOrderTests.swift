import Foundation
import Masking
import Tensor
import Testing
@testable import ViTDiffusion

/// Training visits its images in epochs, as the reference's shuffled DataLoader: every image once
/// an epoch, a fresh order each epoch, a pure function of the seed and the position.
@Suite struct EpochOrderTests {
    @Test("Each epoch is a permutation of all images; epochs and seeds differ; positions run on across epochs")
    func epochsArePermutations() {
        let order = EpochOrder(count: 10, seed: 3)
        let epochs = (0..<4).map { order.permutation(epoch: $0) }
        for e in epochs { #expect(e.sorted() == Array(0..<10)) }
        #expect(Set(epochs).count == 4)
        #expect(order.permutation(epoch: 2) == epochs[2])                               // a pure function
        #expect(EpochOrder(count: 10, seed: 4).permutation(epoch: 0) != epochs[0])
        #expect((0..<40).map { order.index(at: $0) } == epochs.flatMap { $0 })
        #expect(EpochOrder(count: 1, seed: 9).permutation(epoch: 5) == [0])
        // Every image is first in some epoch about equally often (a uniform shuffle).
        var first = [Int](repeating: 0, count: 10)
        for e in 0..<5_000 { first[order.permutation(epoch: e)[0]] += 1 }
        #expect(first.allSatisfy { (400...600).contains($0) }, "\(first)")
    }

    @Test("A trainer's batches visit every image once an epoch, also when the batch does not divide the dataset, on any rank count")
    func batchesCoverEachEpoch() throws {
        var rng = RandomGenerator(seed: 1)
        let n = 10
        // Image i is the constant i / 16 (its index can be read back from the batch).
        let values = (0..<n).flatMap { i in [Float](repeating: Float(i) / 16, count: 3 * 16 * 16) }
        let data = TensorDataset(images: Tensor(values, shape: [n, 3, 16, 16]))
        var recipe = TrainingRecipe.pretraining(batchSize: 4, steps: 10, mask: .none)
        recipe.seed = 7
        func indices(rank: Int, size: Int, steps: Range<Int>) throws -> [Int] {
            let trainer = try DiffusionTrainer(model: MaskedUViT(config: .tiny(imageSize: 16), rng: &rng), recipe: recipe,
                                               communicator: RankStandIn(rank: rank, size: size))
            return try steps.flatMap { step -> [Int] in
                let images = try trainer.prepareBatch(forStep: step, from: data).images
                return (0..<images.shape[0]).map { Int((images.scalars[$0 * 768] * 16).rounded()) }
            }
        }
        let stream = try indices(rank: 0, size: 1, steps: 0..<10)                         // 40 positions: 4 epochs
        let order = EpochOrder(count: n, seed: 7)
        #expect(stream == (0..<40).map { order.index(at: $0) })
        for epoch in 0..<4 { #expect(stream[(epoch * n)..<((epoch + 1) * n)].sorted() == Array(0..<n)) }
        // Two ranks take their halves of the same order; a step prepared alone (a resume) matches.
        let halves = try (0..<2).map { try indices(rank: $0, size: 2, steps: 0..<10) }
        for step in 0..<10 {
            #expect(Array(halves[0][(2 * step)..<(2 * step + 2)] + halves[1][(2 * step)..<(2 * step + 2)]) == Array(stream[(4 * step)..<(4 * step + 4)]))
        }
        #expect(try indices(rank: 0, size: 1, steps: 7..<8) == Array(stream[28..<32]))
    }

    @Test("The fine-tuning preset's seed is not the pre-training preset's")
    func presetsDrawApart() {
        #expect(TrainingRecipe.pretraining().seed == 0 && TrainingRecipe.finetuning().seed == 1)
    }
}
