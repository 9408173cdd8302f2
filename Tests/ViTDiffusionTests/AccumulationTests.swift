import Foundation
import Masking
import NN
import Tensor
import Testing
@testable import ViTDiffusion

@Suite("Gradient accumulation (micro-batches in turn)")
struct AccumulationTests {
    let split = ThreadSplitTests()

    @Test("Micro-batches one after another give the whole batch's loss, gradient and norm, with and without a thread split",
          arguments: [(1, 6, 2, false), (1, 7, 3, true), (2, 8, 4, true), (2, 7, 2, false), (3, 9, 2, true), (2, 5, 5, true)])
    func microBatchesMatchTheWholeBatch(threads: Int, batch: Int, accumulate: Int, masked: Bool) throws {
        let whole = try split.step(split: 1, batch: batch, masked: masked)
        let micro = try split.step(split: threads, batch: batch, masked: masked, accumulate: accumulate)
        #expect(abs(micro.loss - whole.loss) <= 1e-5 * abs(whole.loss), "loss \(micro.loss) vs \(whole.loss)")
        let scale = whole.gradients.map(abs).max() ?? 0
        let worst = zip(micro.gradients, whole.gradients).map { abs($0 - $1) }.max() ?? 0
        #expect(scale > 0 && worst <= 1e-4 * scale, "largest gradient difference \(worst) of \(scale)")
        // The clipping norm is the accumulated arena's (with a split, the last micro-batch's sum took it).
        let norm = micro.trainer.lastGradientNorm
        #expect(abs(norm - gradientNorm(micro.trainer.model.store)) <= 1e-6 * norm)
        #expect(abs(norm - whole.trainer.lastGradientNorm) <= 1e-5 * whole.trainer.lastGradientNorm)
        #expect(micro.trainer.lastStepTimings.forward > 0 && micro.trainer.lastStepTimings.backward > 0)
    }

    @Test("Two steps with micro-batches train what two whole-batch steps train (nothing carries over between steps)")
    func twoStepsMatch() throws {
        func run(accumulate: Int) throws -> [Float] {
            var rng = RandomGenerator(seed: 21)
            var recipe = TrainingRecipe.pretraining(batchSize: 6, steps: 10, mask: .block(size: 2, ratio: 0.5))
            recipe.accumulationSteps = accumulate
            recipe.learningRate = 1e-2
            recipe.gradientClip = 1
            // AdamW's first updates are about lr * sign(g); an eps of 1 keeps them proportional to
            // g, so rounding in a gradient near 0 cannot flip an update's sign.
            recipe.adamEps = 1
            let trainer = try DiffusionTrainer(model: MaskedUViT(config: ThreadSplitTests.config, rng: &rng), recipe: recipe)
            let data = TensorDataset(images: Tensor.randomUniform([10, 3, 8, 8], low: -1, high: 1, using: &rng))
            for _ in 0..<2 { _ = try trainer.trainStep(dataset: data) }
            return Array(UnsafeBufferPointer(start: trainer.model.store.values.base, count: trainer.model.store.count))
        }
        let whole = try run(accumulate: 1), micro = try run(accumulate: 3)
        let start: [Float] = {
            var rng = RandomGenerator(seed: 21)
            let m = MaskedUViT(config: ThreadSplitTests.config, rng: &rng)
            return Array(UnsafeBufferPointer(start: m.store.values.base, count: m.store.count))
        }()
        let moved = zip(whole, start).map { abs($0 - $1) }.max() ?? 0
        let worst = zip(micro, whole).map { abs($0 - $1) }.max() ?? 0
        #expect(moved > 1e-4, "the steps did not move the weights")
        #expect(worst <= 1e-3 * moved, "largest weight difference \(worst), against a largest move of \(moved)")
    }

    @Test("An accumulation below 1 or above the images per rank is refused, naming accumulationSteps")
    func badValuesAreRefused() throws {
        var rng = RandomGenerator(seed: 1)
        let model = MaskedUViT(config: ThreadSplitTests.config, rng: &rng)
        for (accumulate, ranks) in [(0, 1), (9, 1), (5, 2)] {
            var recipe = TrainingRecipe.pretraining(batchSize: 8, steps: 1)
            recipe.accumulationSteps = accumulate
            #expect { try DiffusionTrainer(model: model, recipe: recipe, communicator: RankStandIn(rank: 0, size: ranks)) } throws: {
                "\($0)".contains("accumulationSteps") && "\($0)".contains("\(accumulate)")
            }
        }
        var recipe = TrainingRecipe.pretraining(batchSize: 8, steps: 1)
        recipe.accumulationSteps = 4
        #expect(try DiffusionTrainer(model: model, recipe: recipe, communicator: RankStandIn(rank: 0, size: 2)).localBatchSize == 4)
    }

    @Test("The recipe records the accumulation, and a recipe written before the field existed decodes to 1")
    func recipeCoding() throws {
        var recipe = TrainingRecipe.pretraining(batchSize: 8, steps: 1)
        recipe.accumulationSteps = 4
        #expect(try JSONDecoder().decode(TrainingRecipe.self, from: Data(recipe.json.utf8)).accumulationSteps == 4)
        var object = try JSONSerialization.jsonObject(with: Data(recipe.json.utf8)) as? [String: Any] ?? [:]
        object["accumulationSteps"] = nil
        let old = try JSONDecoder().decode(TrainingRecipe.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(old.accumulationSteps == 1 && old.batchSize == 8)
    }
}
