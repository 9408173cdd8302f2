import Foundation
import Masking
import NN
import Schedules

/// Hyper-parameters of one training stage (MaskDM's tables: pre-training masked, fine-tuning not).
///
/// Encodes as JSON with the property names below; keys missing when decoding take the defaults, so
/// checkpoints written before a field existed still load.
///
/// ```swift
/// var recipe = TrainingRecipe.pretraining(batchSize: 128, steps: 1000, mask: .block(size: 4, ratio: 0.9))
/// recipe.objective = .velocity
/// recipe.learningRate = 1e-3
/// ```
public struct TrainingRecipe: Codable, Sendable, Equatable {
    /// Images per optimisation step (over all ranks, and over all micro-batches when
    /// ``accumulationSteps`` > 1).
    public var batchSize: Int = 128
    /// Gradient accumulation: each rank's share of the batch runs as this many micro-batches, one
    /// after another (sizes differing by at most one image), their gradients summed before the
    /// single AdamW update. The step trains the same thing as with 1, up to the order of
    /// floating-point sums, and holds only one micro-batch's activations at a time: use it when a
    /// batch does not fit in memory. At most the batch per rank (``DiffusionTrainer`` refuses more).
    /// The reference's `gradient_accumulate_every` (whose batch is per micro-batch) maps to it
    /// with `batchSize` = `batch_size` x `gradient_accumulate_every`. It may change between the
    /// sittings of a run.
    public var accumulationSteps: Int = 1
    /// Base learning rate (constant after warm-up).
    public var learningRate: Float = 2e-4
    /// Linear warm-up steps (0 = none): update k runs at `lr * min((k - 1) / warmupSteps, 1)`, as the
    /// reference's `LambdaLR` (the first update at lr 0).
    public var warmupSteps: Int = 0
    /// Global gradient-norm clip (nil = none).
    public var gradientClip: Float? = nil
    /// AdamW beta1 (MaskDM: 0.99).
    public var beta1: Float = 0.99
    /// AdamW beta2 (MaskDM: 0.99).
    public var beta2: Float = 0.99
    /// AdamW epsilon (1e-8).
    public var adamEps: Float = 1e-8
    /// Decoupled weight decay on all parameters (0.03).
    public var weightDecay: Float = 0.03
    /// EMA decay ceiling (0.999; 0.9999 for Church).
    public var emaBeta: Float = 0.999
    /// The masking strategy of this stage (``MaskSpec/none`` for fine-tuning and scratch training).
    public var mask: MaskSpec = .none
    /// What the network predicts (eps, x0 or v; MaskDM: eps).
    public var objective: PredictionTarget = .noise
    /// Regression loss over the visible tokens (MaskDM: l2).
    public var loss: RegressionLoss = .l2
    /// Beta schedule.
    public var schedule: ScheduleKind = .linear
    /// Probability of a horizontal flip of each training image.
    public var flipProbability: Double = 0
    /// Number of optimisation steps of this stage.
    public var steps: Int = 1000
    /// Checkpoint every this many steps (0 = only at the end).
    public var checkpointEvery: Int = 0
    /// Seed of every random choice (timesteps, noise, masks, batches, flips): 0 by default, 1 in
    /// ``finetuning(batchSize:steps:learningRate:flipProbability:schedule:)``. Give the two stages
    /// of a pipeline different seeds: the draws are a function of (seed, step, sample), so a
    /// fine-tuning with the pre-training's seed would see the same images, timesteps and noise,
    /// step by step, as the pre-training did.
    public var seed: UInt64 = 0
    /// What to do on a non-finite loss or gradient: stop with an error (default) or skip the step.
    public var skipNonFiniteSteps: Bool = false

    /// The reference's defaults (unmasked, lr 2e-4, batch 128, eps objective), with the linear
    /// schedule (the reference's `main.py` defaults to cosine; its configs name one or the other).
    public init() {}

    /// MaskDM pre-training: block-4 masking at 90%, lr 2e-4, no warm-up.
    public static func pretraining(batchSize: Int = 128, steps: Int = 1000, mask: MaskSpec = .block(size: 4, ratio: 0.9),
                                   schedule: ScheduleKind = .linear) -> TrainingRecipe {
        var r = TrainingRecipe()
        r.batchSize = batchSize; r.steps = steps; r.mask = mask; r.schedule = schedule
        return r
    }

    /// MaskDM fine-tuning: no mask; the few-data recipe uses lr 5e-5 and flips with p = 0.5.
    /// Its seed is 1, so that it does not replay the draws of a pre-training of seed 0.
    public static func finetuning(batchSize: Int = 64, steps: Int = 1000, learningRate: Float = 5e-5,
                                  flipProbability: Double = 0.5, schedule: ScheduleKind = .linear) -> TrainingRecipe {
        var r = TrainingRecipe()
        r.batchSize = batchSize; r.steps = steps; r.learningRate = learningRate; r.flipProbability = flipProbability
        r.schedule = schedule; r.seed = 1
        return r
    }

    /// Checks the values; throws ``ViTDiffusionError/invalidRecipe(field:problem:)`` naming the field.
    public func validate() throws {
        func fail(_ field: String, _ problem: String) -> ViTDiffusionError { .invalidRecipe(field: field, problem: problem) }
        guard batchSize >= 1 else { throw fail("batchSize", "must be at least 1, got \(batchSize)") }
        guard accumulationSteps >= 1 else { throw fail("accumulationSteps", "must be at least 1, got \(accumulationSteps)") }
        guard learningRate.isFinite, learningRate >= 0 else { throw fail("learningRate", "must be finite and >= 0, got \(learningRate)") }
        guard warmupSteps >= 0 else { throw fail("warmupSteps", "must be >= 0, got \(warmupSteps)") }
        guard (0..<1).contains(beta1), (0..<1).contains(beta2) else { throw fail("beta1/beta2", "must be in [0, 1), got \(beta1), \(beta2)") }
        guard (0...1).contains(emaBeta) else { throw fail("emaBeta", "must be in [0, 1], got \(emaBeta)") }
        guard (0...1).contains(flipProbability) else { throw fail("flipProbability", "must be in [0, 1], got \(flipProbability)") }
        guard steps >= 0 else { throw fail("steps", "must be >= 0, got \(steps)") }
        guard checkpointEvery >= 0 else { throw fail("checkpointEvery", "must be >= 0 (0: only at the end), got \(checkpointEvery)") }
        if let c = gradientClip, !(c > 0 && c.isFinite) { throw fail("gradientClip", "must be positive, got \(c)") }
    }

    /// Checks that the batch can be split over `ranks` processes, each running its share as
    /// ``accumulationSteps`` micro-batches of at least one image; throws
    /// ``ViTDiffusionError/invalidRecipe(field:problem:)`` naming the field.
    public func validate(ranks: Int) throws {
        try validate()
        guard ranks >= 1 else { throw ViTDiffusionError.invalidArgument(name: "ranks", problem: "must be at least 1, got \(ranks)") }
        guard batchSize % ranks == 0 else {
            throw ViTDiffusionError.invalidRecipe(
                field: "batch_size", problem: "\(batchSize) does not divide evenly over \(ranks) ranks (use a multiple of \(ranks))")
        }
        guard accumulationSteps <= batchSize / ranks else {
            throw ViTDiffusionError.invalidRecipe(
                field: "accumulationSteps",
                problem: "\(accumulationSteps) micro-batches need at least \(accumulationSteps) images per rank; "
                    + "the batch of \(batchSize) gives \(batchSize / ranks)" + (ranks > 1 ? " on each of \(ranks) ranks" : ""))
        }
    }

    private enum CodingKeys: String, CodingKey {
        case batchSize, learningRate, warmupSteps, gradientClip, beta1, beta2, adamEps, weightDecay, emaBeta, mask
        case objective, loss, schedule, flipProbability, steps, checkpointEvery, seed, skipNonFiniteSteps, accumulationSteps
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingRecipe()
        func get<T: Decodable>(_ k: CodingKeys, _ fallback: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? fallback }
        batchSize = try get(.batchSize, d.batchSize); learningRate = try get(.learningRate, d.learningRate)
        warmupSteps = try get(.warmupSteps, d.warmupSteps); gradientClip = try c.decodeIfPresent(Float.self, forKey: .gradientClip)
        beta1 = try get(.beta1, d.beta1); beta2 = try get(.beta2, d.beta2); adamEps = try get(.adamEps, d.adamEps)
        weightDecay = try get(.weightDecay, d.weightDecay); emaBeta = try get(.emaBeta, d.emaBeta)
        mask = try get(.mask, d.mask); objective = try get(.objective, d.objective); loss = try get(.loss, d.loss)
        schedule = try get(.schedule, d.schedule); flipProbability = try get(.flipProbability, d.flipProbability)
        steps = try get(.steps, d.steps); checkpointEvery = try get(.checkpointEvery, d.checkpointEvery)
        seed = try get(.seed, d.seed); skipNonFiniteSteps = try get(.skipNonFiniteSteps, d.skipNonFiniteSteps)
        accumulationSteps = try get(.accumulationSteps, d.accumulationSteps)
    }

    /// Compact JSON, e.g. for checkpoint metadata.
    public var json: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return (try? enc.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }
}
