import Foundation
import NN
import Schedules
import Tensor
import Testing
@testable import ViTDiffusion

@Suite("Weights packed once for inference")
struct PackedWeightsTests {
    let model: MaskedUViT
    let x: Tensor
    let t: [Float] = [3, 480, 999]

    init() {
        var rng = RandomGenerator(seed: 31)
        // 8 px at patch 4: 4 patches. Depth 3: in, mid and out blocks, so the skip layer's two column blocks are packed too.
        model = MaskedUViT(config: MaskedUViTConfig(imageSize: 8, embedDim: 32, depth: 3, heads: 2, qkvBias: true), rng: &rng)
        x = Tensor.randomNormal([3, 3, 8, 8], using: &rng)
    }

    @Test("predictNoise inside withPackedWeights gives the same bits on 1 and 2 threads; the packs go at the end")
    func sameValuesAndReleased() {
        var packedBytes: [Int] = []
        for threads in [1, 2] {
            Parallel.$threads.withValue(threads) {
                let plain = model.predictNoise(x, timesteps: t)
                let (first, second, bytes) = model.store.withPackedWeights {
                    (model.predictNoise(x, timesteps: t), model.predictNoise(x, timesteps: t), model.store.packedWeightBytes)
                }
                #expect(first.scalars == plain.scalars, "\(threads) threads, first pass")
                #expect(second.scalars == plain.scalars, "\(threads) threads, reusing the packs")
                // Every linear weight's block: at least the weights' own size (panels pad columns).
                let linear = model.store.parameters.filter { $0.shape.rank == 2 }.reduce(0) { $0 + $1.count }
                #expect(bytes >= (Gemm.hasSerialKernel ? linear * 4 : 0), "packed \(bytes) bytes for \(linear) weights")
                if !Gemm.hasSerialKernel { #expect(bytes == 0) }
                #expect(model.store.packedWeightBytes == 0)
                packedBytes.append(bytes)
            }
        }
        // Two shares split the first pass's packing between them (a share finding a weight being
        // packed multiplies it unpacked): every weight is still packed, once.
        #expect(packedBytes[0] == packedBytes[1])
    }

    @Test("A new scope packs the current values; a nested scope keeps the outer one's packs")
    func newScopeSeesChangedWeights() {
        let before = model.store.withPackedWeights { model.predictNoise(x, timesteps: t) }
        // Change one linear weight (as an optimiser step would) outside any scope.
        let w = model.store.parameters.first { $0.shape.rank == 2 && $0.name.contains("mlp") }!
        let p = model.store.pointer(w)
        for i in 0..<w.count { p[i] *= -0.5 }
        let plain = model.predictNoise(x, timesteps: t)
        #expect(plain.scalars != before.scalars)
        model.store.withPackedWeights {
            let after = model.predictNoise(x, timesteps: t)
            #expect(after.scalars == plain.scalars)
            let held = model.store.packedWeightBytes
            model.store.withPackedWeights { _ = model.predictNoise(x, timesteps: t) }
            #expect(model.store.packedWeightBytes == held)
        }
        #expect(model.store.packedWeightBytes == 0)
    }

    @Test("Products above the row limit multiply the weights unpacked and pack nothing")
    func rowLimit() {
        // One share on one thread: the blocks' products have 3 images x 5 tokens (4 patches and
        // the time token) = 15 rows; the head's 12, after the time token is dropped.
        let plain = Parallel.$threads.withValue(1) { model.predictNoise(x, timesteps: t) }
        func run(limit: Int) -> (Tensor, Int) {
            Parallel.$threads.withValue(1) {
                model.store.withPackedWeights(upToRows: limit) { (model.predictNoise(x, timesteps: t), model.store.packedWeightBytes) }
            }
        }
        let (none, noBytes) = run(limit: 0), (some, someBytes) = run(limit: 14), (all, allBytes) = run(limit: 15)
        #expect(noBytes == 0)
        #expect([none, some, all].allSatisfy { $0.scalars == plain.scalars })
        if Gemm.hasSerialKernel {
            #expect(someBytes < allBytes)
            #expect(allBytes == run(limit: 4096).1)
        }
    }

    @Test("Sampling.sample (which packs) draws the same images as the sampler on the unpacked network")
    func samplingUnchanged() throws {
        let sampler = DPMSolverPlusPlus2M(schedule: .linear(), steps: 4)
        var rng = RandomGenerator(seed: 8)
        let packed = try Sampling.sample(model: model, count: 2, batchSize: 2, sampler: sampler, using: &rng)
        rng = RandomGenerator(seed: 8)
        let plain = try sampler.sample(shape: [2, 3, 8, 8], model: { xt, ts in
            model.predictNoise(xt, timesteps: ts.map(Float.init))
        }, using: &rng)
        #expect(packed.scalars == plain.scalars)
    }

    @Test("Sampling.sample reports every network evaluation of every batch and refuses bad sizes")
    func samplingProgressAndSizes() throws {
        let sampler = DPMSolverPlusPlus2M(schedule: .linear(), steps: 4)
        var calls: [(Int, Int)] = []
        var rng = RandomGenerator(seed: 8)
        let reported = try Sampling.sample(model: model, count: 5, batchSize: 2, sampler: sampler, using: &rng,
                                           progress: { calls.append(($0, $1)) })
        // 3 batches (2, 2, 1 images) of 4 evaluations each.
        #expect(calls.map(\.0) == Array(1...12))
        #expect(calls.allSatisfy { $0.1 == 12 })
        rng = RandomGenerator(seed: 8)
        let quiet = try Sampling.sample(model: model, count: 5, batchSize: 2, sampler: sampler, using: &rng)
        #expect(reported.shape == [5, 3, 8, 8])
        #expect(reported.scalars == quiet.scalars)

        // A stop polled before each batch: after two batches, the first 4 rows, as drawn uninterrupted.
        var polls = 0
        rng = RandomGenerator(seed: 8)
        let stopped = try Sampling.sample(model: model, count: 5, batchSize: 2, sampler: sampler, using: &rng,
                                          stop: { polls += 1; return polls > 2 })
        #expect(stopped.shape == [4, 3, 8, 8] && polls == 3)
        #expect(stopped.scalars == Array(quiet.scalars[0..<(4 * 3 * 8 * 8)]))
        rng = RandomGenerator(seed: 8)
        #expect(try Sampling.sample(model: model, count: 5, batchSize: 2, sampler: sampler, using: &rng, stop: { true }).shape == [0, 3, 8, 8])

        #expect(try Sampling.sample(model: model, count: 0, sampler: sampler, using: &rng).shape == [0, 3, 8, 8])
        #expect(throws: ViTDiffusionError.invalidArgument(name: "batchSize", problem: "must be >= 1, got 0")) {
            try Sampling.sample(model: model, count: 2, batchSize: 0, sampler: sampler, using: &rng)
        }
        #expect(throws: ViTDiffusionError.invalidArgument(name: "count", problem: "must be >= 0, got -1")) {
            try Sampling.sample(model: model, count: -1, sampler: sampler, using: &rng)
        }
    }
}
