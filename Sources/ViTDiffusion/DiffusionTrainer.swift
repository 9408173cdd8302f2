import Foundation
import Masking
import NN
import Schedules
import Tensor

/// Trains a ``MaskedUViT`` with MaskDM's recipe: masked pre-training, then unmasked fine-tuning.
///
/// Every random choice of a step comes from (seed, step, global sample index): which image from
/// the run's ``EpochOrder``, its flip, its timestep, its noise and its mask from a generator of
/// them. So a resumed run replays exactly
/// the same randomness as an uninterrupted one, and a job of N ranks, each training its share of
/// the global batch (``localSamples``) and summing gradients through its ``communicator``,
/// computes what one process computes, up to the order of floating-point sums.
///
/// ```swift
/// var rng = RandomGenerator(seed: 0)
/// let pre = try DiffusionTrainer(model: MaskedUViT(config: .tiny(), rng: &rng), recipe: .pretraining(steps: 1000))
/// for _ in 0..<1000 { _ = try pre.trainStep(dataset: data) }
/// let fine = try pre.transferred(to: .finetuning(steps: 1000))   // online weights, fresh AdamW and EMA
/// ```
public final class DiffusionTrainer {
    /// The online network.
    public let model: MaskedUViT
    /// A network of the same config whose weights are the EMA (used for sampling).
    public let emaModel: MaskedUViT
    /// AdamW over the online network's parameters.
    public let optimizer: AdamW
    /// The EMA that averages the online weights into ``emaModel``.
    public let ema: ExponentialMovingAverage
    /// The noise schedule of `recipe.schedule` (1000 steps).
    public let schedule: NoiseSchedule
    /// How each step chooses the patches to drop.
    public let masking: any MaskingStrategy
    /// The hyperparameters of this stage (its `mask` records the strategy used).
    public let recipe: TrainingRecipe
    /// Optimisation steps taken in this stage.
    public private(set) var step: Int = 0
    /// Steps skipped because of non-finite values (with `skipNonFiniteSteps`).
    public private(set) var skippedSteps: Int = 0
    private let learningRateSchedule: LearningRateSchedule
    /// Global gradient norm of the last step, before clipping.
    public private(set) var lastGradientNorm: Float = 0
    /// Wall-clock seconds of the phases of the last step (for profiling).
    public private(set) var lastStepTimings = StepTimings()
    /// The processes of the job; gradients and losses are summed over them each step.
    public let communicator: any Communicator
    /// Images per step on this rank: `recipe.batchSize / communicator.size`.
    public let localBatchSize: Int
    /// How many threads split each local batch: each runs the forward and backward pass of its
    /// share of the images on its own replica of the network (the same weights, a gradient arena
    /// of its own), one thread per replica; the arenas are then summed. This replaces the
    /// per-kernel threading inside each GEMM, whose threads wait for each other at the end of
    /// every product (most of a short masked sequence's loss on two cores).
    ///
    /// `nil` (the default, unless `MASKDM_BATCH_SPLIT` is set: see ``environmentSplit(_:)``) uses
    /// ``defaultSplit(threads:parameters:)``: one share per thread as
    /// long as the replicas' gradient arenas fit ``replicaMemoryBudget``. 1 runs one network with
    /// threaded kernels. The split never exceeds the local batch; with fewer shares than
    /// `Parallel.threads`, each share's kernels use `threads / shares` threads. Each replica past
    /// the first holds a gradient arena as large as the model (4 bytes per parameter). Results
    /// are deterministic for a given split; a different split sums the gradient in another order
    /// (float rounding differs). When the products go to OpenBLAS (`MASKDM_GEMM_ISA=openblas`, or
    /// a CPU without AVX2: see `Gemm.instructionSet`) the step runs one network, whatever is set.
    public var dataParallelThreads: Int?

    /// The split the environment variable `MASKDM_BATCH_SPLIT` asks for (the initial value of
    /// ``dataParallelThreads``, so command-line tools can be told too): nil when it is unset or
    /// empty, else a positive count; anything else is an error naming the variable.
    public static func environmentSplit(_ value: String? = ProcessInfo.processInfo.environment["MASKDM_BATCH_SPLIT"]) throws -> Int? {
        guard let value, !value.isEmpty else { return nil }
        guard let n = Int(value.trimmingCharacters(in: .whitespaces)), n > 0 else {
            throw ViTDiffusionError.invalidConfig(file: nil, field: "MASKDM_BATCH_SPLIT",
                                                  problem: "must be a positive number of shares, got '\(value)'")
        }
        return n
    }

    /// The most memory the default split spends on replicas' gradient arenas: 2 GiB.
    public static let replicaMemoryBudget = 2 << 30

    /// The default number of shares: `threads`, lowered until the `shares - 1` replica arenas of a
    /// model with `parameters` parameters fit ``replicaMemoryBudget`` (at least 1).
    public static func defaultSplit(threads: Int, parameters: Int) -> Int {
        let affordable = 1 + replicaMemoryBudget / Swift.max(4 * parameters, 1)
        return Swift.max(1, Swift.min(threads, affordable))
    }
    private var replicas: [MaskedUViT] = []
    /// The epochs' permutations the last batches used (``prepareBatch(forStep:from:)``).
    private let epochOrders = EpochOrderCache()

    /// The global sample indices (`0..<recipe.batchSize`) this rank trains each step.
    public var localSamples: Range<Int> { communicator.share(of: recipe.batchSize) }

    /// Seconds spent in each phase of one training step.
    public struct StepTimings: Sendable {
        /// Drawing timesteps, noise and mask, noising the images and zeroing the gradients.
        public var prepare = 0.0
        /// The forward pass and loss.
        public var forward = 0.0
        /// The backward pass.
        public var backward = 0.0
        /// Summing gradients and losses over the ranks (0 in a single process).
        public var communicate = 0.0
        /// Computing the gradient norm and clipping scale.
        public var clip = 0.0
        /// The AdamW update, with the EMA update in the same pass.
        public var optimizer = 0.0
        /// A separate EMA update (0: the trainer updates the EMA inside the AdamW pass).
        public var ema = 0.0
        /// Wall seconds of each thread's share of the batch (its forward and backward pass) when
        /// the step split the batch over threads, in share order; empty otherwise. Their spread is
        /// the time the first share to finish waited for the last (part of ``backward``).
        public var shares: [Double] = []
        /// Sum of all phases.
        public var total: Double { prepare + forward + backward + communicate + clip + optimizer + ema }
    }

    /// A trainer for `model` with fresh AdamW and EMA state.
    ///
    /// - Parameter masking: a strategy to use instead of `recipe.mask`, e.g. a custom
    ///   ``MaskingStrategy``; the trainer's ``recipe`` then records it (`MaskSpec(describing:)`:
    ///   a built-in as its case, anything else as `.custom(name:)` with its description), so
    ///   checkpoints say what was used.
    /// - Parameter communicator: the job's processes (default: this one alone). With N ranks the
    ///   global `recipe.batchSize` is split evenly (it must divide) and rank 0's weights are
    ///   copied to every rank before the EMA copy is made.
    public init(model: MaskedUViT, recipe: TrainingRecipe, masking: (any MaskingStrategy)? = nil,
                communicator: any Communicator = SingleProcessCommunicator()) throws {
        try recipe.validate(ranks: communicator.size)
        self.communicator = communicator
        dataParallelThreads = try Self.environmentSplit()
        localBatchSize = recipe.batchSize / communicator.size
        self.model = model
        var recipe = recipe
        if let masking { recipe.mask = MaskSpec(describing: masking) }
        self.recipe = recipe
        if communicator.size > 1 { try communicator.broadcast(model.store.values, count: model.store.count, root: 0) }
        emaModel = MaskedUViT(copying: model)
        ema = ExponentialMovingAverage(online: model.store, shadow: emaModel.store, beta: recipe.emaBeta)
        optimizer = AdamW(store: model.store, learningRate: recipe.learningRate, beta1: recipe.beta1, beta2: recipe.beta2,
                          eps: recipe.adamEps, weightDecay: recipe.weightDecay)
        schedule = recipe.schedule.schedule()
        self.masking = try masking ?? recipe.mask.strategy()
        learningRateSchedule = .constant(warmup: recipe.warmupSteps)
    }

    /// Throws ``ViTDiffusionError/invalidRecipe(field:problem:)`` (field `mask`) unless the
    /// trainer's ``masking`` can mask the model's patch grid and keeps at least one patch visible
    /// (``MaskingStrategy/validateForTraining(gridHeight:gridWidth:)``).
    /// The steps that draw their own masks check it first; ``TrainingRun`` checks it before a run
    /// starts. Steps given explicit masks (``trainStep(images:timesteps:noise:mask:)``) do not use
    /// the strategy.
    public func validateMasking() throws {
        let c = model.config
        do {
            try masking.validateForTraining(gridHeight: c.gridHeight, gridWidth: c.gridWidth)
        } catch {                                                         // a custom validate may throw its own errors
            throw ViTDiffusionError.invalidRecipe(
                field: "mask", problem: "\(error) (the model: \(c.imageHeight)x\(c.imageWidth) px in patches of \(c.patchSize))")
        }
    }

    /// A lower bound on the bytes one training step of this rank holds: the weights, their
    /// gradient, AdamW's two moments and the EMA (4 bytes a value each), plus, for each image of
    /// the largest micro-batch, at least (8 D + heads x T) floats a token and block saved for the
    /// backward pass (T tokens: the visible patches and the time token). Measured steps hold
    /// 1.5-2.5x this (the split over threads, packed weights, the buffer pool's rounding), so it can
    /// only say that a batch cannot fit, not that it will.
    public var memoryLowerBound: Int {
        let c = model.config
        let tokens = Swift.max(0, masking.visibleCount(gridHeight: c.gridHeight, gridWidth: c.gridWidth)) + 1
        let microBatch = (localBatchSize + recipe.accumulationSteps - 1) / recipe.accumulationSteps
        let perImage = tokens * c.depth * (8 * c.embedDim + c.heads * tokens) * 4
        return 5 * model.parameterCount * 4 + microBatch * perImage
    }

    /// The order in which training visits a dataset of `count` images: an ``EpochOrder`` drawn
    /// from the recipe's seed.
    public func imageOrder(count: Int) -> EpochOrder { EpochOrder(count: count, seed: recipe.seed) }

    /// The generator of global sample `sample` of step `step`: a pure function of the seed,
    /// the step and the sample's index in the global batch (not of the rank that trains it).
    public func generator(forStep step: Int, sample: Int) -> RandomGenerator {
        var g = RandomGenerator(seed: recipe.seed &+ UInt64(step + 1) &* 0x9E37_79B9_7F4A_7C15)
        return RandomGenerator(seed: g.next() ^ (UInt64(sample + 1) &* 0xD1B5_4A32_D192_ED03))
    }

    /// This rank's share of one step's batch: the images, and each sample's generator after it
    /// drew its flip (it goes on to draw the timestep, the noise and the mask).
    public struct PreparedBatch: Sendable {
        /// The step it belongs to.
        public let step: Int
        /// (localBatchSize, C, H, W) in [-1, 1].
        public let images: Tensor
        /// One generator per local sample, positioned after the flip.
        public let generators: [RandomGenerator]
    }

    /// One optimisation step on this rank's share of the batch drawn from `dataset`. Returns
    /// the loss (the mean over the global batch). In a job of several ranks, images that fail to
    /// load on one rank stop the step on every rank (``abandonStep(because:)``).
    @discardableResult
    public func trainStep(dataset: any TrainingImages) throws -> Float {
        let batch: PreparedBatch
        do { batch = try prepareBatch(forStep: step, from: dataset) } catch { try abandonStep(because: error) }
        return try trainStep(batch: batch)
    }

    /// Gives up this rank's part of the current step because of `error` (its images failed to
    /// load, say), and throws `error`. Alone, that is all. In a job of several ranks a rank that
    /// cannot take its part calls this instead of a `trainStep`: it takes part in the step's first
    /// collective, where the other ranks learn of it, so that their `trainStep` throws
    /// ``ViTDiffusionError/rankFailed(rank:step:problem:)`` (with this rank's error) instead of
    /// waiting for it forever. No rank updates its weights, so every rank may keep its progress
    /// (``ViTDiffusionError/leavesWeightsUntouched``). Every `trainStep` does the same for what
    /// fails before its loss on one rank: the strategy's validation or mask, images of another
    /// shape than the network's. So in a job of several ranks every error of a step is thrown by
    /// every rank at that step, before any update.
    public func abandonStep(because error: any Error) throws -> Never {
        if communicator.size > 1 { _ = try agreeOnLoss(0, failure: error) }
        throw error
    }

    /// The mean of the ranks' losses of this step, agreed in one collective that also tells
    /// every rank whether any rank failed to take its part: then every rank throws, the failed
    /// ones their own `failure`, the others ``ViTDiffusionError/rankFailed(rank:step:problem:)``
    /// naming the first failed rank and its error.
    private func agreeOnLoss(_ loss: Float, failure: (any Error)?) throws -> Float {
        let ranks = communicator.size
        var values = [Double](repeating: 0, count: 1 + ranks)
        values[0] = Double(loss)
        values[1 + communicator.rank] = failure == nil ? 0 : 1
        try communicator.allReduceSum(&values)
        guard let failed = values.dropFirst().firstIndex(where: { $0 > 0 }).map({ $0 - 1 }) else {
            return Float(values[0] / Double(ranks))
        }
        let problems = try communicator.allGather(text: failure.map { "\($0)" } ?? "")
        if let failure { throw failure }
        throw ViTDiffusionError.rankFailed(rank: failed, step: step + 1, problem: problems[failed])
    }

    /// This rank's images of step `step`: what ``trainStep(dataset:)`` does first, split out so
    /// that another thread can prepare the next step's batch while this one trains
    /// (``trainStep(batch:)`` then gives the same result bit for bit). Global sample `i` of the
    /// step is image ``imageOrder(count:)``'s position `step * batchSize + i` (every image once
    /// an epoch), flipped by a draw of its generator.
    public func prepareBatch(forStep step: Int, from dataset: any TrainingImages) throws -> PreparedBatch {
        var generators: [RandomGenerator] = []
        var picks: [ImagePick] = []
        let order = imageOrder(count: dataset.count)
        for i in localSamples {
            var g = generator(forStep: step, sample: i)
            let index = epochOrders.index(order, at: step * recipe.batchSize + i)
            picks.append(.draw(index: index, flipProbability: recipe.flipProbability, using: &g))
            generators.append(g)
        }
        return PreparedBatch(step: step, images: try dataset.batch(picks), generators: generators)
    }

    /// One optimisation step on a prepared batch: each sample draws its timestep (uniform), its
    /// noise and its mask, in that order, from its own generator.
    @discardableResult
    public func trainStep(batch: PreparedBatch) throws -> Float {
        precondition(batch.step == step, "trainStep: batch of step \(batch.step) at step \(step)")
        let start = Date()
        let drawn: (timesteps: [Int], noise: Tensor, mask: Mask)
        do {
            try validateMasking()
            try checkImages(batch.images)
            drawn = try draws(for: batch)
        } catch { try abandonStep(because: error) }
        return try trainStep(images: batch.images, timesteps: drawn.timesteps, noise: drawn.noise, mask: drawn.mask,
                             drawSeconds: Date().timeIntervalSince(start))
    }

    /// The random draws of a prepared batch: each sample's timestep (uniform), its noise and its
    /// mask, in that order, from its own generator.
    func draws(for batch: PreparedBatch) throws -> (timesteps: [Int], noise: Tensor, mask: Mask) {
        let c = model.config
        var generators = batch.generators
        let t = generators.indices.map { generators[$0].nextInt(below: schedule.timesteps) }
        // Each sample draws its noise from its own generator into its rows of one tensor, so the
        // samples draw on all threads (the Box-Muller transform is most of a small step's set-up)
        // with the values of one sample after another. The masks follow, one after another.
        var noise = Tensor(uninitialized: batch.images.shape)
        let perSample = generators.isEmpty ? 0 : batch.images.shape.count / generators.count
        let out = SendablePointer(noise.mutablePointer())
        generators.withUnsafeMutableBufferPointer { gens in
            guard let base = gens.baseAddress else { return }
            let g = SendablePointer(base)
            parallelFor(gens.count) { r in
                Parallel.$threads.withValue(1) {
                    for i in r { g.base[i].fillNormal(UnsafeMutableBufferPointer(start: out.base + i * perSample, count: perSample)) }
                }
            }
        }
        let samples = Array(localSamples)
        let dropped = try generators.indices.map { i in
            do {
                return try drawMask(batchSize: 1, using: &generators[i]).dropped[0]
            } catch ViTDiffusionError.invalidRecipe(let field, let problem) {
                // Drawn one image at a time: the strategy's "item 0" is this sample.
                throw ViTDiffusionError.invalidRecipe(field: field, problem: "\(problem) (the mask of sample \(samples[i]) of step \(step + 1)'s batch, drawn alone as item 0)")
            }
        }
        let mask = Mask(dropped: dropped, patchCount: c.patchCount)
        return (t, noise, mask)
    }

    /// A mask of ``masking`` for `batchSize` images, checked (``checkedMask(_:batchSize:)``); an
    /// error the strategy throws becomes ``ViTDiffusionError/invalidRecipe(field:problem:)``
    /// (`mask`) naming it. Drawn before the step changes any weight, so a run keeps its progress.
    func drawMask(batchSize: Int, using rng: inout RandomGenerator) throws -> Mask {
        let c = model.config
        let mask: Mask
        do {
            mask = try masking.makeMask(gridHeight: c.gridHeight, gridWidth: c.gridWidth, batchSize: batchSize, using: &rng)
        } catch {
            throw ViTDiffusionError.invalidRecipe(field: "mask", problem: "the strategy \(String(describing: masking)) failed to draw a mask: \(error)")
        }
        return try checkedMask(mask, batchSize: batchSize)
    }

    /// `mask` as drawn by ``masking`` for `batchSize` images, checked against the strategy's
    /// contract: one row per image over the model's grid, each dropping the
    /// `maskedCount(gridHeight:gridWidth:)` it declares. A custom strategy that breaks it would
    /// otherwise train on other masks than it says (or trap).
    func checkedMask(_ mask: Mask, batchSize: Int) throws -> Mask {
        let c = model.config
        let declared = masking.maskedCount(gridHeight: c.gridHeight, gridWidth: c.gridWidth)
        guard mask.batchSize == batchSize, mask.patchCount == c.patchCount, mask.droppedCount == declared else {
            throw ViTDiffusionError.invalidRecipe(
                field: "mask", problem: "the strategy \(String(describing: masking)) returned \(mask.batchSize) rows over \(mask.patchCount) patches, "
                    + "each dropping \(mask.droppedCount), for \(batchSize) images over the \(c.gridHeight)x\(c.gridWidth) grid (\(c.patchCount) patches), "
                    + "where its maskedCount says \(declared) (see MaskingStrategy's contract)")
        }
        return mask
    }

    /// One optimisation step on the clean images `x0` (B, C, H, W) in [-1, 1]: draws the
    /// timesteps (uniform), the noise and the mask from `rng`, in that order, and trains on them.
    /// (In a job of several ranks each passes its own share of the batch.)
    @discardableResult
    public func trainStep(images x0: Tensor, using rng: inout RandomGenerator) throws -> Float {
        let start = Date()
        let t: [Int], noise: Tensor, mask: Mask
        do {
            try validateMasking()
            try checkImages(x0)
            let b = x0.shape[0]
            t = (0..<b).map { _ in rng.nextInt(below: schedule.timesteps) }
            noise = Tensor.randomNormal(x0.shape, using: &rng)
            mask = try drawMask(batchSize: b, using: &rng)
        } catch { try abandonStep(because: error) }
        return try trainStep(images: x0, timesteps: t, noise: noise, mask: mask, drawSeconds: Date().timeIntervalSince(start))
    }

    /// One optimisation step with every random choice given: the loss of the network on
    /// `x_t = q_sample(x0, t, noise)` with the patches `mask` drops, the backward pass, clipping,
    /// AdamW and the EMA update. This is the reference's training step with its draws made by the
    /// caller (a test replaying the reference's inputs, or a custom sampling of timesteps).
    /// - Parameters:
    ///   - x0: clean images (B, C, H, W) in [-1, 1].
    ///   - timesteps: B integer timesteps in `0..<schedule.timesteps`.
    ///   - noise: Gaussian noise, the shape of `x0`.
    ///   - mask: the dropped patches of each image (B rows over the model's patch grid).
    @discardableResult
    public func trainStep(images x0: Tensor, timesteps t: [Int], noise: Tensor, mask: Mask) throws -> Float {
        do { try checkImages(x0) } catch { try abandonStep(because: error) }   // on one rank: every rank stops
        return try trainStep(images: x0, timesteps: t, noise: noise, mask: mask, drawSeconds: 0)
    }

    /// Images from a dataset that does not match the network (grey images for an RGB model,
    /// another size) are the caller's data, not a bug: throws
    /// ``ViTDiffusionError/invalidArgument(name:problem:)`` (`images`) saying so instead of trapping.
    private func checkImages(_ x0: Tensor) throws {
        let c = model.config
        guard x0.rank == 4, x0.shape[0] > 0, Array(x0.shape.dims.dropFirst()) == [c.inChannels, c.imageHeight, c.imageWidth] else {
            throw ViTDiffusionError.invalidArgument(
                name: "images", problem: "have shape \(x0.shape.dims), but the network takes (B, \(c.inChannels), \(c.imageHeight), \(c.imageWidth))"
                    + " (in_chans \(c.inChannels), \(c.imageHeight)x\(c.imageWidth) px)")
        }
    }

    /// The step itself; the public steps have checked the images (``checkImages(_:)``).
    private func trainStep(images x0: Tensor, timesteps t: [Int], noise: Tensor, mask: Mask, drawSeconds: Double) throws -> Float {
        let b = x0.shape[0]
        precondition(t.count == b && noise.shape == x0.shape && mask.batchSize == b && mask.patchCount == model.config.patchCount,
                     "trainStep: \(t.count) timesteps, noise \(noise.shape), mask \(mask.batchSize) x \(mask.patchCount) for images \(x0.shape)")
        var timings = StepTimings()
        var clock = Date()
        func lap() -> Double { let n = Date(); defer { clock = n }; return n.timeIntervalSince(clock) }
        let xt = schedule.qSample(x0: x0, t: t, noise: noise)
        let visible: [[Int]]? = mask.droppedCount == 0 ? nil : mask.visible
        model.store.zeroGrad()
        let target = schedule.trainingTarget(recipe.objective, x0: x0, noise: noise, t: t)
        let threads = Parallel.threads
        let requested = dataParallelThreads ?? Self.defaultSplit(threads: threads, parameters: model.parameterCount)
        // Gradient accumulation: the batch runs as `micro` micro-batches in turn (one, the whole
        // batch, without it), each with the same split over the threads.
        let micro = Swift.min(recipe.accumulationSteps, b)
        let parts = parallelShareCount(requested, of: b / micro)   // 1 on OpenBLAS
        timings.prepare = lap() + drawSeconds
        var pending: (tape: Tape, loss: Variable)?
        var summedSquares: Double?   // the gradient's sum of squares, when the split's sum took it
        if parts == 1 { replicas.removeAll() }   // a split turned off gives its gradient arenas back
        var loss = 0.0
        for k in 0..<micro {
            // Each micro-batch's loss is seeded with its fraction of the batch, so the arena ends
            // with the gradient of the whole batch's mean loss; its activations are freed before
            // the next one runs.
            let rows = (k * b / micro)..<((k + 1) * b / micro)
            let weight = Float(rows.count) / Float(b)
            func part(_ x: Tensor) -> Tensor { micro == 1 ? x : x.sliced(axis: 0, rows) }
            let ts = micro == 1 ? t : Array(t[rows]), vis = micro == 1 ? visible : visible.map { Array($0[rows]) }
            if parts > 1 {
                // Forward and backward per share on its own thread; a non-finite loss is caught
                // below, after the (then discarded) gradients.
                let r = splitForwardBackward(parts: parts, kernelThreads: Swift.max(1, threads / parts), xt: part(xt), t: ts,
                                             target: part(target), visible: vis, weight: weight)
                loss += Double(r.loss)
                summedSquares = r.squares   // the last add's: of the sum over every micro-batch
                timings.forward += r.forward
                timings.shares = timings.shares.isEmpty ? r.shares : zip(timings.shares, r.shares).map(+)
            } else {
                let started = Date(), tape = Tape()
                let l = model.loss(xt: part(xt), timesteps: ts.map(Float.init), target: part(target), visiblePatches: vis,
                                   kind: recipe.loss, tape: tape)
                loss += Double(l.value.item) * Double(weight)
                timings.forward += Date().timeIntervalSince(started)
                // One network on the whole batch waits for the ranks to agree the loss is finite.
                if micro == 1 { pending = (tape, l) } else { tape.backward(from: l, seed: weight) }
            }
        }
        var value = Float(loss)
        // Share 0's backward, the wait for the others and the sum (0 here when `pending` runs below).
        timings.backward = lap() - timings.forward
        let ranks = communicator.size
        // Every rank must take the same branch below: agree on the mean loss first.
        if ranks > 1 { value = try agreeOnLoss(value, failure: nil) }
        guard value.isFinite else { return try nonFinite("loss is \(value) at step \(step + 1)") }
        timings.communicate = lap()
        if let pending {
            pending.tape.backward(from: pending.loss)
            timings.backward = lap()
        }
        if ranks > 1 { try communicator.allReduceSum(model.store.gradients, count: model.store.count) }
        timings.communicate += lap()
        // The arena now holds the sum of the ranks' mean gradients: the global mean is 1/N of it.
        // The 1/N and the clipping scale are applied inside the AdamW pass (one pass fewer).
        // One rank with a split: the gradient sum already took the norm (one pass fewer).
        let squares = ranks == 1 ? summedSquares : nil
        let norm = (squares.map { Float($0.squareRoot()) } ?? gradientNorm(model.store)) / Float(ranks)
        let gradientScale = (recipe.gradientClip.map { clippingScale(norm: norm, maxNorm: $0) } ?? 1) / Float(ranks)
        timings.clip = lap()
        lastGradientNorm = norm
        guard norm.isFinite else { return try nonFinite("gradient norm is \(norm) at step \(step + 1)") }
        optimizer.learningRate = learningRateSchedule.rate(base: recipe.learningRate, step: step)
        // AdamW and the EMA in one pass over the arena (the EMA's time is inside `optimizer`).
        optimizer.update(gradientScale: gradientScale, averagingInto: ema)
        timings.optimizer = lap()
        lastStepTimings = timings
        step += 1
        return value
    }

    /// Runs the loss and its backward pass for `parts` shares of the batch at once, one thread
    /// each (their kernels on `kernelThreads`; see `parallelShares`): share 0 on ``model`` (into
    /// its gradient arena), the others on replicas whose arenas are then added to it. Each share's loss is seeded with its fraction of the batch, so the
    /// sum is the gradient of the whole batch's mean loss. Returns that mean loss, the wall time
    /// of share 0's forward pass and the summed gradient's sum of squares (taken by the last add).
    /// `weight`: the fraction of the step's batch that `xt` is (a micro-batch's; 1 without
    /// accumulation). The gradients are added to what ``model``'s arena holds.
    private func splitForwardBackward(parts: Int, kernelThreads: Int, xt: Tensor, t: [Int], target: Tensor, visible: [[Int]]?,
                                      weight: Float) -> (loss: Float, forward: Double, squares: Double, shares: [Double]) {
        if replicas.count > parts - 1 { replicas.removeLast(replicas.count - (parts - 1)) }
        while replicas.count < parts - 1 { replicas.append(MaskedUViT(sharingWeightsOf: model)) }
        let networks = [model] + replicas.prefix(parts - 1)
        for net in networks.dropFirst() {
            net.store.shareValues(with: model.store)   // picks up freezing changes since last step
            net.store.zeroGrad()
        }
        let b = xt.shape[0]
        // Per share: its part of the mean loss, its forward pass's wall time and its whole time.
        var results = [(loss: Double, forward: Double, total: Double)](repeating: (0, 0, 0), count: parts)
        let objective = recipe.loss
        results.withUnsafeMutableBufferPointer { buffer in
            let out = SendablePointer(buffer.baseAddress!)
            parallelShares(of: b, parts: parts, innerThreads: kernelThreads) { i, rows in
                let start = Date()
                let tape = Tape()
                let loss = networks[i].loss(xt: xt.sliced(axis: 0, rows), timesteps: t[rows].map(Float.init),
                                            target: target.sliced(axis: 0, rows),
                                            visiblePatches: visible.map { Array($0[rows]) },
                                            kind: objective, tape: tape)
                out[i] = (Double(loss.value.item) * Double(rows.count) / Double(b) * Double(weight), Date().timeIntervalSince(start), 0)
                tape.backward(from: loss, seed: Float(rows.count) / Float(b) * weight)
                out[i].total = Date().timeIntervalSince(start)
            }
        }
        let arena = model.store.gradients, count = model.store.count
        for net in networks.dropFirst().dropLast() {
            Kernels.add(net.store.gradients.base, into: arena.mutableBase, count: count)
        }
        let squares = Kernels.addSumOfSquares(networks[parts - 1].store.gradients.base, into: arena.mutableBase, count: count)
        return (Float(results.map(\.loss).reduce(0, +)), results[0].forward, squares, results.map(\.total))
    }

    private func nonFinite(_ what: String) throws -> Float {
        if recipe.skipNonFiniteSteps {
            skippedSteps += 1
            step += 1
            return .nan
        }
        throw ViTDiffusionError.nonFinite(step: step, what: what)
    }

    /// A fine-tuning trainer that starts from this trainer's **online** weights (all of them),
    /// with a fresh optimizer and a fresh EMA copied from those weights (MaskDM's transfer).
    public func transferred(to recipe: TrainingRecipe, masking: (any MaskingStrategy)? = nil) throws -> DiffusionTrainer {
        try DiffusionTrainer(model: MaskedUViT(copying: model), recipe: recipe, masking: masking, communicator: communicator)
    }

    /// Saves weights, EMA, optimizer state, step and config atomically.
    public func save(to url: URL, extraMetadata: [String: String] = [:]) throws {
        var meta = extraMetadata
        meta["config"] = model.config.json
        meta["recipe"] = recipe.json
        meta["step"] = String(step)
        meta["skipped_steps"] = String(skippedSteps)
        try Checkpoint.save(to: url, store: model.store, ema: ema, optimizer: optimizer, metadata: meta)
    }

    /// A trainer restored from a checkpoint written by ``save(to:extraMetadata:)``: the model
    /// config and recipe come from its metadata, then weights, EMA, optimizer state and step.
    /// Every rank reads the file.
    ///
    /// A checkpoint trained with a custom strategy (recorded as `MaskSpec.custom(name:)`) opens
    /// without it for sampling and evaluation; training steps then throw, asking for it. Given
    /// again as `masking`, its description must be the recorded name (as a run folder requires).
    public convenience init(checkpoint url: URL, masking: (any MaskingStrategy)? = nil,
                            communicator: any Communicator = SingleProcessCommunicator()) throws {
        let (config, recipe) = try Self.describe(checkpoint: url)
        var masking = masking
        if case .custom(let name) = recipe.mask {
            if let given = masking, MaskSpec(describing: given) != recipe.mask {
                throw ViTDiffusionError.invalidInput(
                    file: url.path, key: "recipe.mask",
                    problem: "was trained with the custom strategy '\(name)', not '\(MaskSpec(describing: given))'")
            }
            masking = masking ?? RecordedCustomMasking(name: name, checkpoint: url.path)
        }
        var rng = RandomGenerator(seed: 0)
        try self.init(model: MaskedUViT(config: config, rng: &rng), recipe: recipe, masking: masking, communicator: communicator)
        try resume(from: url)
    }

    /// The model config and recipe recorded in a checkpoint's metadata.
    public static func describe(checkpoint url: URL) throws -> (config: MaskedUViTConfig, recipe: TrainingRecipe) {
        let meta: [String: String]
        do { meta = try SafetensorsFile(contentsOf: url).metadata } catch {
            throw CheckpointError(file: url.path, "\(error)")
        }
        return try describe(metadata: meta, file: url.path)
    }

    /// The model config and recipe recorded in the metadata of the checkpoint `file` (for a
    /// caller that has read the metadata already); errors name `file`.
    public static func describe(metadata meta: [String: String], file: String) throws -> (config: MaskedUViTConfig, recipe: TrainingRecipe) {
        guard let c = meta["config"]?.data(using: .utf8) else { throw CheckpointError(file: file, "metadata has no 'config'") }
        let config: MaskedUViTConfig
        do { config = try JSONDecoder().decode(MaskedUViTConfig.self, from: c); try config.validate() } catch {
            throw CheckpointError(file: file, "metadata 'config' is not a model config: \(error)")
        }
        var recipe = TrainingRecipe()
        if let r = meta["recipe"]?.data(using: .utf8) {
            do { recipe = try JSONDecoder().decode(TrainingRecipe.self, from: r) } catch {
                throw CheckpointError(file: file, "metadata 'recipe' is not a training recipe: \(error)")
            }
        }
        return (config, recipe)
    }

    /// Restores a checkpoint written by ``save(to:extraMetadata:)`` (strict: every key must match).
    /// Returns the checkpoint's metadata (for what callers recorded beside the step).
    @discardableResult
    public func resume(from url: URL) throws -> [String: String] {
        let report = try Checkpoint.load(from: url, into: model.store, ema: ema, optimizer: optimizer)
        guard let text = report.metadata["step"] else {
            throw ViTDiffusionError.missingMetadata(file: url.path, key: "step")
        }
        let skippedText = report.metadata["skipped_steps"] ?? "0"
        guard let s = Int(text), s >= 0 else {
            throw ViTDiffusionError.invalidInput(file: url.path, key: "step", problem: "metadata is '\(text)', not a step count")
        }
        guard let skipped = Int(skippedText), skipped >= 0, skipped <= s else {
            throw ViTDiffusionError.invalidInput(file: url.path, key: "skipped_steps",
                                                 problem: "metadata is '\(skippedText)', not a count of skipped steps up to step \(s)")
        }
        // Every step either updated the weights or was skipped: a step the optimizer's count
        // does not account for is a damaged or edited file, which would resume at the wrong place.
        guard optimizer.step + skipped == s else {
            throw ViTDiffusionError.invalidInput(file: url.path, key: "step",
                                                 problem: "metadata says step \(s), but the optimizer state holds \(optimizer.step) updates"
                                                    + " and \(skipped) steps were skipped (a damaged or edited file?)")
        }
        step = s
        skippedSteps = skipped
        return report.metadata
    }

    /// Samples `count` images with the EMA weights, in batches of `batchSize`. Returns (count, C, H, W).
    public func sample(count: Int, batchSize: Int = 64, sampler: any DiffusionSampler, using rng: inout RandomGenerator) throws -> Tensor {
        try Sampling.sample(model: emaModel, objective: recipe.objective, count: count, batchSize: batchSize,
                            sampler: sampler, using: &rng)
    }
}

/// Stands in for the custom strategy a checkpoint was trained with when it is opened without it
/// (``DiffusionTrainer/init(checkpoint:masking:communicator:)``): sampling needs no mask, and a
/// training step stops at ``DiffusionTrainer/validateMasking()`` with a message asking for it.
struct RecordedCustomMasking: MaskingStrategy, CustomStringConvertible {
    let name: String
    let checkpoint: String
    var description: String { name }
    func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { 0 }
    func validate(gridHeight: Int, gridWidth: Int) throws {
        throw MaskingError.unfitGrid(strategy: name, gridHeight: gridHeight, gridWidth: gridWidth,
                                     problem: "the checkpoint \(checkpoint) was trained with this custom strategy; "
                                        + "pass it again (masking:) to train on")
    }
    func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) throws -> Mask {
        throw MaskingError.customStrategy(name)                          // (validate refuses first, with the checkpoint's name)
    }
}

/// Sampling helpers over a network.
public enum Sampling {
    /// `count` samples from `model` (trained to predict `objective`) with `sampler`, batched.
    /// Returns (count, C, H, W) in about [-1, 1].
    ///
    /// The linear weights are packed for the GEMM kernel once for all batches (see
    /// `ParameterStore.withPackedWeights(upToRows:_:)`); a caller drawing several batches through
    /// separate calls can open that scope around them itself to pack only once.
    ///
    /// - Parameters:
    ///   - progress: called after every network evaluation with the evaluations done so far and
    ///     the total (`sampler.networkEvaluations` per batch), for a progress display.
    ///   - stop: polled before each batch; when it returns true, the call returns the batches
    ///     drawn so far (fewer than `count` rows: compare `shape[0]` with `count`). The rows it
    ///     does return are the same as an uninterrupted call's.
    public static func sample(model: MaskedUViT, objective: PredictionTarget = .noise, count: Int, batchSize: Int = 64,
                              sampler: any DiffusionSampler, using rng: inout RandomGenerator,
                              progress: ((_ evaluations: Int, _ total: Int) -> Void)? = nil,
                              stop: (() -> Bool)? = nil) throws -> Tensor {
        guard batchSize >= 1 else { throw ViTDiffusionError.invalidArgument(name: "batchSize", problem: "must be >= 1, got \(batchSize)") }
        guard count >= 0 else { throw ViTDiffusionError.invalidArgument(name: "count", problem: "must be >= 0, got \(count)") }
        let c = model.config
        guard count > 0 else { return Tensor.zeros([0, c.inChannels, c.imageHeight, c.imageWidth]) }
        var parts: [Tensor] = []
        var done = 0
        let batches = (count + batchSize - 1) / batchSize
        let total = batches * sampler.networkEvaluations
        var evaluations = 0
        // The weights do not change during sampling: pack them for the GEMM once, not per pass.
        try model.store.withPackedWeights {
            while done < count, stop?() != true {
                let n = min(batchSize, count - done)
                let x = try sampler.sample(shape: [n, c.inChannels, c.imageHeight, c.imageWidth],
                                           model: noisePredictor(model, objective, sampler.schedule) {
                                               evaluations += 1
                                               progress?(evaluations, total)
                                           }, using: &rng)
                parts.append(x)
                done += n
            }
        }
        if parts.isEmpty { return Tensor.zeros([0, c.inChannels, c.imageHeight, c.imageWidth]) }
        return parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: 0)
    }

    /// One batch of `itemGenerators.count` samples in which sample i (its x_T and any noise a
    /// stochastic sampler adds) comes from `itemGenerators[i]` alone, so it does not depend on
    /// the batch it is drawn in (up to the network's rounding, which can differ with the batch
    /// size). Returns (count, C, H, W) in about [-1, 1].
    ///
    /// - Parameter progress: called after every network evaluation with the evaluations done so
    ///   far and `sampler.networkEvaluations`.
    public static func sample(model: MaskedUViT, objective: PredictionTarget = .noise, sampler: any DiffusionSampler,
                              itemGenerators: inout [RandomGenerator],
                              progress: ((_ evaluations: Int, _ total: Int) -> Void)? = nil) throws -> Tensor {
        let c = model.config
        guard !itemGenerators.isEmpty else { return Tensor.zeros([0, c.inChannels, c.imageHeight, c.imageWidth]) }
        var evaluations = 0
        return try model.store.withPackedWeights {
            try sampler.sample(shape: [itemGenerators.count, c.inChannels, c.imageHeight, c.imageWidth],
                               model: noisePredictor(model, objective, sampler.schedule) {
                                   evaluations += 1
                                   progress?(evaluations, sampler.networkEvaluations)
                               }, itemGenerators: &itemGenerators)
        }
    }

    /// The sampler's view of `model`: its prediction as noise, calling `evaluated` after each pass.
    private static func noisePredictor(_ model: MaskedUViT, _ objective: PredictionTarget, _ schedule: NoiseSchedule,
                                       evaluated: @escaping () -> Void) -> NoisePredictor {
        { xt, t in
            let out = model.predictNoise(xt, timesteps: t.map(Float.init))
            evaluated()
            return schedule.noise(from: out, target: objective, xt: xt, t: t)
        }
    }
}

extension DiffusionTrainer {
    /// Progress of ``run(dataset:checkpoint:resume:progress:)``.
    public struct Progress: Sendable {
        /// Steps completed in this stage, including the one just run.
        public let step: Int
        /// The stage's target step count (`recipe.steps`).
        public let totalSteps: Int
        /// Loss of the step just run (NaN for a skipped non-finite step).
        public let loss: Float
        /// Wall-clock seconds since the previous progress report.
        public let secondsPerStep: Double
    }

    /// Trains until `recipe.steps`, saving `checkpoint` every `recipe.checkpointEvery` steps and
    /// at the end (rank 0 alone writes it). Returns the losses of the steps run now.
    ///
    /// - Parameter resume: when true and `checkpoint` exists, training continues from it; when
    ///   false (default) an existing checkpoint is an error rather than silently resumed or
    ///   overwritten.
    @discardableResult
    public func run(dataset: any TrainingImages, checkpoint: URL? = nil, resume: Bool = false,
                    progress: ((Progress) -> Void)? = nil) throws -> [Float] {
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            guard resume else {
                throw ViTDiffusionError.checkpointExists(file: checkpoint.path)
            }
            try self.resume(from: checkpoint)
        }
        var losses: [Float] = []
        var last = Date()
        while step < recipe.steps {
            let loss = try trainStep(dataset: dataset)
            losses.append(loss)
            let now = Date()
            progress?(Progress(step: step, totalSteps: recipe.steps, loss: loss, secondsPerStep: now.timeIntervalSince(last)))
            last = now
            if let checkpoint, communicator.isWriter, recipe.checkpointEvery > 0, step % recipe.checkpointEvery == 0, step < recipe.steps {
                try save(to: checkpoint)
            }
        }
        if let checkpoint, communicator.isWriter { try save(to: checkpoint) }
        return losses
    }
}
