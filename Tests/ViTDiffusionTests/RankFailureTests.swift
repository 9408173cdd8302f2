import Foundation
import Masking
import NN
import Tensor
import Testing
@testable import ViTDiffusion

/// The ranks of one job as threads of this process: each collective returns when every rank has
/// entered it (or throws after a minute, so a rank left waiting fails the test instead of hanging it).
final class ThreadedJob: @unchecked Sendable {
    struct Timeout: Error, CustomStringConvertible {
        let rank: Int
        var description: String { "rank \(rank) waited a minute in a collective the others never entered" }
    }

    let size: Int
    private let condition = NSCondition()
    private var slots: [[Double]], results: [[Double]] = []
    private var arrived = 0, generation = 0

    init(size: Int) {
        self.size = size
        slots = Array(repeating: [], count: size)
    }

    /// Every rank's `payload`, in rank order, once all ranks have passed theirs.
    func exchange(rank: Int, _ payload: [Double]) throws -> [[Double]] {
        condition.lock()
        defer { condition.unlock() }
        let mine = generation
        slots[rank] = payload
        arrived += 1
        if arrived == size {
            results = slots
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            let deadline = Date().addingTimeInterval(60)
            while generation == mine {
                guard condition.wait(until: deadline) || generation != mine else { throw Timeout(rank: rank) }
            }
        }
        return results
    }

    /// Rank `rank`'s communicator.
    func rank(_ rank: Int) -> Rank { Rank(job: self, rank: rank) }

    /// One rank's view of the job.
    final class Rank: Communicator, @unchecked Sendable {
        let job: ThreadedJob, rank: Int
        var size: Int { job.size }
        init(job: ThreadedJob, rank: Int) { self.job = job; self.rank = rank }

        func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
            let all = try job.exchange(rank: rank, buffer.map(Double.init))
            for i in buffer.indices { buffer[i] = Float(all.reduce(0) { $0 + $1[i] }) }
        }
        func allReduceSum(_ values: inout [Double]) throws {
            let all = try job.exchange(rank: rank, values)
            values = values.indices.map { i in all.reduce(0) { $0 + $1[i] } }
        }
        func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
            let all = try job.exchange(rank: rank, rank == root ? buffer.map(Double.init) : [])
            for i in buffer.indices { buffer[i] = Float(all[root][i]) }
        }
        func allGather(_ values: [Int64]) throws -> [[Int64]] {
            try job.exchange(rank: rank, values.map(Double.init)).map { $0.map { Int64($0) } }
        }
        func gather(_ values: [Float], root: Int) throws -> [[Float]] {
            let all = try job.exchange(rank: rank, values.map(Double.init))
            return rank == root ? all.map { $0.map(Float.init) } : []
        }
        func barrier() throws { _ = try job.exchange(rank: rank, []) }
    }

    /// Runs `body` once per rank, each on its own thread (its kernels on that thread alone), and
    /// returns what each returned or threw, in rank order.
    func run<T: Sendable>(_ body: @escaping @Sendable (Int, any Communicator) throws -> T) -> [Result<T, any Error>] {
        let lock = NSLock()
        nonisolated(unsafe) var results = [Result<T, any Error>?](repeating: nil, count: size)
        let group = DispatchGroup()
        for r in 0..<size {
            let thread = Thread { [self] in
                let result = Result { try Parallel.$threads.withValue(1) { try body(r, self.rank(r)) } }
                lock.lock(); results[r] = result; lock.unlock()
                group.leave()
            }
            thread.stackSize = 8 << 20
            group.enter()
            thread.start()
        }
        group.wait()
        return results.map { $0! }
    }
}

/// A masking strategy that fails from its `failFrom`-th draw on (counted per instance: one rank's).
final class FailingLater: MaskingStrategy, CustomStringConvertible, @unchecked Sendable {
    let failFrom: Int
    private var draws = 0
    init(failFrom: Int) { self.failFrom = failFrom }
    var description: String { "failing-later" }
    func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { gridHeight * gridWidth / 2 }
    func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) throws -> Mask {
        draws += 1
        let n = gridHeight * gridWidth
        let kept = (0..<batchSize).map { _ in Array(Array(0..<n).shuffled(using: &rng).prefix(n / 2)).sorted() }
        return try Mask(checkedVisible: draws >= failFrom ? kept.map { [n] + $0.dropFirst() } : kept, patchCount: n)
    }
}

/// Images that fail to load from the `failFrom`-th batch on (counted per instance: one rank's).
final class FailingImages: TrainingImages, @unchecked Sendable {
    struct Unreadable: Error, CustomStringConvertible { var description: String { "image 3 became unreadable" } }
    let images: TensorDataset, failFrom: Int
    private var batches = 0
    init(_ images: TensorDataset, failFrom: Int) { self.images = images; self.failFrom = failFrom }
    var count: Int { images.count }
    func batch(_ picks: [ImagePick]) throws -> Tensor {
        batches += 1
        if batches >= failFrom { throw Unreadable() }
        return images.batch(picks)
    }
}

@Suite("A rank that cannot take its part of a step")
struct RankFailureTests {
    static let config = MaskedUViTConfig(imageSize: 8, embedDim: 16, depth: 1, heads: 2)

    static func data() -> TensorDataset {
        var rng = RandomGenerator(seed: 8)
        return TensorDataset(images: Tensor.randomUniform([6, 3, 8, 8], low: -1, high: 1, using: &rng))
    }

    /// Two ranks train until one fails: (each rank's error, its step, its weights after the last
    /// step, the weights the first step left).
    static func trainUntilFailure(masking: @escaping @Sendable (Int) -> any MaskingStrategy,
                                  data: @escaping @Sendable (Int) -> any TrainingImages)
        -> [Result<(error: String, failure: ViTDiffusionError?, step: Int, weights: [Float], afterFirst: [Float]), any Error>] {
        ThreadedJob(size: 2).run { rank, communicator in
            var rng = RandomGenerator(seed: 1)
            var recipe = TrainingRecipe.pretraining(batchSize: 4, steps: 5)
            recipe.seed = 2
            let trainer = try DiffusionTrainer(model: MaskedUViT(config: config, rng: &rng), recipe: recipe,
                                               masking: masking(rank), communicator: communicator)
            let images = data(rank)
            func weights() -> [Float] { Array(UnsafeBufferPointer(start: trainer.model.store.values.base, count: trainer.model.store.count)) }
            try trainer.trainStep(dataset: images)
            let afterFirst = weights()
            do {
                for _ in 0..<4 { try trainer.trainStep(dataset: images) }
            } catch {
                return ("\(error)", error as? ViTDiffusionError, trainer.step, weights(), afterFirst)
            }
            return ("no error", nil, trainer.step, weights(), afterFirst)
        }
    }

    @Test("A mask one rank's strategy fails to draw stops the step on every rank, naming the rank, the sample and the step")
    func maskFailureOnOneRank() throws {
        // Four patches, two samples a rank: rank 1's third draw is the first sample of its share of step 2 (sample 2).
        let results = Self.trainUntilFailure(masking: { FailingLater(failFrom: $0 == 1 ? 3 : .max) }, data: { _ in Self.data() })
        let r0 = try results[0].get(), r1 = try results[1].get()
        #expect(r0.step == 1 && r1.step == 1)
        #expect(r1.failure?.leavesWeightsUntouched == true)
        #expect(r1.error.contains("the strategy failing-later failed to draw a mask: invalid mask: item 0 keeps patch 4, outside 0..<4")
                && r1.error.contains("(the mask of sample 2 of step 2's batch, drawn alone as item 0)"), "\(r1.error)")
        guard case .rankFailed(let rank, let step, let problem)? = r0.failure else {
            Issue.record("rank 0 threw \(r0.error)")
            return
        }
        #expect(rank == 1 && step == 2 && problem == r1.error)
        #expect(r0.failure?.leavesWeightsUntouched == true)
        #expect(r0.error.contains("training stopped at step 2: rank 1 could not take its part (recipe: mask the strategy failing-later"), "\(r0.error)")
        // No rank updated its weights: both hold step 1's, alike.
        #expect(r0.weights == r0.afterFirst && r1.weights == r1.afterFirst && r0.weights == r1.weights)
    }

    @Test("Images that fail on one rank stop the step on every rank with that rank's error")
    func dataFailureOnOneRank() throws {
        let results = Self.trainUntilFailure(masking: { _ in FailingLater(failFrom: .max) },
                                             data: { rank in FailingImages(Self.data(), failFrom: rank == 0 ? 3 : .max) })
        let r0 = try results[0].get(), r1 = try results[1].get()
        #expect(r0.step == 2 && r1.step == 2)
        #expect(r0.error == "image 3 became unreadable" && r0.failure == nil)
        #expect(r1.failure == .rankFailed(rank: 0, step: 3, problem: "image 3 became unreadable"), "\(r1.error)")
        #expect(r0.weights == r1.weights && r0.weights != r0.afterFirst)
    }

    @Test("Images of another shape on one rank stop the step on every rank")
    func wrongShapeOnOneRank() throws {
        /// Grey images from the `failFrom`-th batch on.
        final class Greying: TrainingImages, @unchecked Sendable {
            let images = RankFailureTests.data(), failFrom: Int
            private var batches = 0
            init(failFrom: Int) { self.failFrom = failFrom }
            var count: Int { images.count }
            func batch(_ picks: [ImagePick]) throws -> Tensor {
                batches += 1
                return batches >= failFrom ? Tensor.zeros([picks.count, 1, 8, 8]) : images.batch(picks)
            }
        }
        let results = Self.trainUntilFailure(masking: { _ in FailingLater(failFrom: .max) },
                                             data: { rank in Greying(failFrom: rank == 1 ? 2 : .max) })
        let r0 = try results[0].get(), r1 = try results[1].get()
        #expect(r0.step == 1 && r1.step == 1)
        #expect(r1.error.contains("images have shape [2, 1, 8, 8], but the network takes (B, 3, 8, 8)"), "\(r1.error)")
        #expect(r0.failure == .rankFailed(rank: 1, step: 2, problem: r1.error), "\(r0.error)")
        #expect(r0.weights == r0.afterFirst && r0.weights == r1.weights)
    }

    @Test("The in-process job's collectives agree with one process's arithmetic")
    func threadedJobCollectives() throws {
        let results = ThreadedJob(size: 3).run { rank, c in
            var values = [Double(rank), 1]
            try c.allReduceSum(&values)
            let texts = try c.allGather(text: String(repeating: "é", count: rank))
            var floats: [Float] = rank == 2 ? [4, 5] : [0, 0]
            try floats.withUnsafeMutableBufferPointer { try c.broadcast($0, root: 2) }
            try c.barrier()
            return (values, texts, floats)
        }
        for result in results {
            let (values, texts, floats) = try result.get()
            #expect(values == [3, 3] && texts == ["", "é", "éé"] && floats == [4, 5])
        }
    }
}
