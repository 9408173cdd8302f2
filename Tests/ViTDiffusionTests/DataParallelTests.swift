import Foundation
import Masking
import NN
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

    @Test("A prepared batch's draws are each sample's timestep, noise and mask in turn, on any thread count",
          arguments: [16, 80])
    func drawsMatchOneSampleAfterAnother(imageSize: Int) throws {
        var rng = RandomGenerator(seed: 5)
        var recipe = TrainingRecipe.pretraining(batchSize: 5, steps: 10)
        recipe.mask = try MaskSpec(name: "block2", ratio: 0.5)
        let trainer = try DiffusionTrainer(model: MaskedUViT(config: .tiny(imageSize: imageSize), rng: &rng), recipe: recipe)
        let data = TensorDataset(images: Tensor.randomUniform([7, 3, imageSize, imageSize], low: -1, high: 1, using: &rng))
        let batch = try trainer.prepareBatch(forStep: 2, from: data)
        // By hand, one sample after another (80 px: 19,200 values an image, past the size from
        // which randomNormal itself spreads its transform over the threads).
        let c = trainer.model.config
        var steps: [Int] = [], noise: [Float] = [], dropped: [[Int]] = []
        for var g in batch.generators {
            steps.append(g.nextInt(below: trainer.schedule.timesteps))
            noise += Parallel.$threads.withValue(1) { Tensor.randomNormal([1, 3, imageSize, imageSize], using: &g).scalars }
            dropped.append(try trainer.masking.makeMask(gridHeight: c.gridHeight, gridWidth: c.gridWidth, batchSize: 1,
                                                    using: &g).dropped[0])
        }
        #expect(Set(steps).count > 1 && Set(dropped).count > 1)
        for threads in [1, 2, 3] {
            let d = try Parallel.$threads.withValue(threads) { try trainer.draws(for: batch) }
            #expect(d.timesteps == steps, "\(threads) threads")
            #expect(d.noise.shape == batch.images.shape && d.noise.scalars == noise, "\(threads) threads")
            #expect(d.mask.dropped == dropped && d.mask.patchCount == c.patchCount, "\(threads) threads")
        }
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

@Suite("Batch split across threads (replicas)")
struct ThreadSplitTests {
    static let config = MaskedUViTConfig(imageSize: 8, embedDim: 32, depth: 3, heads: 2)

    /// One step on fixed inputs with the batch split `split` ways; returns the loss and the
    /// gradient arena (the AdamW pass does not touch it).
    /// `accumulate`: the recipe's gradient accumulation (micro-batches a step runs in turn).
    func step(split: Int, batch: Int, masked: Bool, freeze: Bool = false, accumulate: Int = 1) throws
        -> (loss: Float, gradients: [Float], trainer: DiffusionTrainer) {
        var rng = RandomGenerator(seed: 11)
        let model = MaskedUViT(config: Self.config, rng: &rng)
        if freeze { model.store.freeze { $0.contains("mid_block") } }
        var recipe = TrainingRecipe.pretraining(batchSize: batch, steps: 10)
        recipe.accumulationSteps = accumulate
        let trainer = try DiffusionTrainer(model: model, recipe: recipe)
        trainer.dataParallelThreads = split
        let x0 = Tensor.randomUniform([batch, 3, 8, 8], low: -1, high: 1, using: &rng)
        let noise = Tensor.randomNormal(x0.shape, using: &rng)
        let t = (0..<batch).map { 37 * ($0 + 1) % 1000 }
        let n = Self.config.patchCount
        let mask = masked ? Mask(visible: (0..<batch).map { i in (0..<n).filter { ($0 + i) % 4 != 0 } }, patchCount: n)
                          : Mask(visible: (0..<batch).map { _ in Array(0..<n) }, patchCount: n)
        let loss = try Parallel.$threads.withValue(4) {   // split 2: kernels on 2 threads each (nested regions)
            try trainer.trainStep(images: x0, timesteps: t, noise: noise, mask: mask)
        }
        let g = trainer.model.store.gradients
        return (loss, Array(UnsafeBufferPointer(start: g.base, count: trainer.model.store.count)), trainer)
    }

    @Test("Two or three shares give the one-network loss and gradient (float rounding apart)",
          arguments: [(2, 6, false), (2, 5, true), (3, 5, true), (3, 7, false)])
    func splitMatchesWhole(split: Int, batch: Int, masked: Bool) throws {
        let whole = try step(split: 1, batch: batch, masked: masked)
        let parts = try step(split: split, batch: batch, masked: masked)
        #expect(abs(parts.loss - whole.loss) <= 1e-5 * abs(whole.loss), "loss \(parts.loss) vs \(whole.loss)")
        let scale = whole.gradients.map(abs).max() ?? 0
        #expect(scale > 0)
        let worst = zip(parts.gradients, whole.gradients).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-4 * scale, "largest gradient difference \(worst) of \(scale)")
        #expect(parts.trainer.lastStepTimings.forward > 0 && parts.trainer.lastStepTimings.backward > 0)
        // Each share's wall time, in share order, within the forward and backward phases it ran in
        // (the split runs on the own kernels only); none without a split.
        let timings = parts.trainer.lastStepTimings
        #expect(timings.shares.count == parallelShareCount(split, of: batch) || !Gemm.usesOwnKernels && timings.shares.isEmpty)
        #expect(timings.shares.allSatisfy { $0 > 0 && $0 <= 1.01 * (timings.forward + timings.backward) + 1e-3 })
        #expect(whole.trainer.lastStepTimings.shares.isEmpty)
        // The norm the split's gradient sum took is the summed arena's norm, exactly.
        #expect(parts.trainer.lastGradientNorm == gradientNorm(parts.trainer.model.store))
        #expect(abs(parts.trainer.lastGradientNorm - whole.trainer.lastGradientNorm) <= 1e-5 * whole.trainer.lastGradientNorm)
    }

    @Test("A split never exceeds the batch, and a second step reuses the replicas' cleared arenas")
    func secondStepAndTinyBatch() throws {
        // Batch 1 split 4 ways runs as one network; its result equals split 1 exactly.
        let one = try step(split: 4, batch: 1, masked: true)
        let whole = try step(split: 1, batch: 1, masked: true)
        #expect(one.loss == whole.loss && one.gradients == whole.gradients)
        // Two steps in a row: the second must not add the first step's replica gradients.
        let first = try step(split: 2, batch: 4, masked: false)
        var rng = RandomGenerator(seed: 12)
        let x0 = Tensor.randomUniform([4, 3, 8, 8], low: -1, high: 1, using: &rng)
        let noise = Tensor.randomNormal(x0.shape, using: &rng)
        let n = Self.config.patchCount
        let mask = Mask(visible: (0..<4).map { _ in Array(0..<n) }, patchCount: n)
        let reference = try DiffusionTrainer(model: MaskedUViT(copying: first.trainer.model),
                                             recipe: .pretraining(batchSize: 4, steps: 10))
        reference.dataParallelThreads = 1
        _ = try reference.trainStep(images: x0, timesteps: [5, 50, 500, 900], noise: noise, mask: mask)
        _ = try first.trainer.trainStep(images: x0, timesteps: [5, 50, 500, 900], noise: noise, mask: mask)
        let a = first.trainer.model.store.gradients, b = reference.model.store.gradients
        let count = reference.model.store.count
        let scale = (0..<count).map { abs(b.base[$0]) }.max() ?? 0
        let worst = (0..<count).map { abs(a.base[$0] - b.base[$0]) }.max() ?? 0
        #expect(scale > 0 && worst <= 1e-4 * scale, "largest gradient difference \(worst) of \(scale)")
    }

    @Test("Frozen parameters get no gradient and keep their values on every share")
    func frozenStayFrozen() throws {
        let parts = try step(split: 2, batch: 4, masked: true, freeze: true)
        let store = parts.trainer.model.store
        let frozen = store.parameters.filter { store.isFrozen($0) }
        #expect(!frozen.isEmpty)
        var rng = RandomGenerator(seed: 11)
        let initial = MaskedUViT(config: Self.config, rng: &rng)
        for p in frozen {
            #expect(store.gradient(p).scalars.allSatisfy { $0 == 0 }, "\(p.name) has a gradient")
            #expect(store.value(p).scalars == initial.store.value(p).scalars, "\(p.name) moved")
        }
        let whole = try step(split: 1, batch: 4, masked: true, freeze: true)
        let worst = zip(parts.gradients, whole.gradients).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-4 * (whole.gradients.map(abs).max() ?? 0))
    }

    @Test("A replica computes with the original's weights, including later changes, into its own gradients")
    func replicaSharesWeights() {
        var rng = RandomGenerator(seed: 3)
        let model = MaskedUViT(config: Self.config, rng: &rng)
        let replica = MaskedUViT(sharingWeightsOf: model)
        let x = Tensor.randomNormal([2, 3, 8, 8], using: &rng)
        #expect(replica.predictNoise(x, timesteps: [3, 700]).scalars == model.predictNoise(x, timesteps: [3, 700]).scalars)
        model.store.pointer(model.head.weight).pointee += 0.5
        #expect(replica.predictNoise(x, timesteps: [3, 700]).scalars == model.predictNoise(x, timesteps: [3, 700]).scalars)
        let tape = Tape()
        let loss = replica.loss(xt: x, timesteps: [3, 700], noise: x, visiblePatches: nil, tape: tape)
        tape.backward(from: loss)
        #expect(replica.store.hasGradients && !model.store.hasGradients)
    }
}

@Suite("Inference split across threads")
struct InferenceSplitTests {
    @Test("predictNoise gives the same values, bit for bit, on 1, 2 and 3 threads", arguments: [1, 2, 5])
    func sameOnAnyThreadCount(batch: Int) {
        var rng = RandomGenerator(seed: 21)
        let model = MaskedUViT(config: MaskedUViTConfig(imageSize: 8, embedDim: 32, depth: 3, heads: 2, qkvBias: true), rng: &rng)
        let x = Tensor.randomNormal([batch, 3, 8, 8], using: &rng)
        let t = (0..<batch).map { Float(100 * $0 + 7) }
        let one = Parallel.$threads.withValue(1) { model.predictNoise(x, timesteps: t) }
        #expect(one.shape == [batch, 3, 8, 8])
        for threads in [2, 3] {
            let split = Parallel.$threads.withValue(threads) { model.predictNoise(x, timesteps: t) }
            #expect(split.scalars == one.scalars, "\(threads) threads, batch \(batch)")
        }
        // Each image's output depends on that image alone on the own kernels. OpenBLAS (chosen
        // with MASKDM_GEMM_ISA, and what a debug build forwards every product to) blocks a
        // product by its row count, so the check holds only where the own kernels run.
        guard Gemm.usesOwnKernels else { return }
        let alone = Parallel.$threads.withValue(1) { model.predictNoise(x.sliced(axis: 0, (batch - 1)..<batch), timesteps: [t[batch - 1]]) }
        #expect(alone.scalars == Array(one.scalars.suffix(alone.scalars.count)))
    }
}

@Suite("Default batch split")
struct DefaultSplitTests {
    @Test("One share per thread while the replica arenas fit the budget, fewer for large models")
    func defaultSplitRespectsTheBudget() {
        #expect(DiffusionTrainer.defaultSplit(threads: 2, parameters: 44_000_000) == 2)
        #expect(DiffusionTrainer.defaultSplit(threads: 32, parameters: 44_000_000) == 13)    // 12 x 176 MB <= 2 GiB
        #expect(DiffusionTrainer.defaultSplit(threads: 32, parameters: 600_000_000) == 1)   // one replica would be 2.4 GB
        #expect(DiffusionTrainer.defaultSplit(threads: 1, parameters: 10) == 1)
        #expect(DiffusionTrainer.defaultSplit(threads: 8, parameters: 0) == 8)
    }
}

@Suite("MASKDM_BATCH_SPLIT")
struct EnvironmentSplitTests {
    @Test("Unset or empty means the default; a positive count is taken; anything else names the variable")
    func parsesOrNamesTheVariable() throws {
        #expect(try DiffusionTrainer.environmentSplit(nil) == nil)
        #expect(try DiffusionTrainer.environmentSplit("") == nil)
        #expect(try DiffusionTrainer.environmentSplit("3") == 3)
        for bad in ["0", "-2", "two", "1.5"] {
            #expect { try DiffusionTrainer.environmentSplit(bad) } throws: {
                "\($0)".contains("MASKDM_BATCH_SPLIT") && "\($0)".contains("'\(bad)'")
            }
        }
    }
}
