import Foundation
import NN
import Schedules

/// Hyper-parameters of one training stage (MaskDM's tables: pre-training masked, fine-tuning not).
public struct TrainingRecipe: Codable, Sendable, Equatable {
    /// Images per step.
    public var batchSize: Int = 128
    /// Base learning rate (constant after warm-up).
    public var learningRate: Float = 2e-4
    /// Linear warm-up steps (0 = none): update k runs at `lr * min((k - 1) / warmupSteps, 1)`, as the
    /// reference's `LambdaLR` (the first update at lr 0).
    public var warmupSteps: Int = 0
    /// Global gradient-norm clip (nil = none).
    public var gradientClip: Float? = nil
    /// AdamW betas, eps and weight decay (MaskDM: 0.99, 0.99, 1e-8, 0.03 on all parameters).
    public var beta1: Float = 0.99
    public var beta2: Float = 0.99
    public var adamEps: Float = 1e-8
    public var weightDecay: Float = 0.03
    /// EMA decay ceiling (0.999; 0.9999 for Church).
    public var emaBeta: Float = 0.999
    /// Masking strategy name (`none`, `patch`, `blockB`, `cropC`) and ratio.
    public var mask: String = "none"
    public var maskRatio: Double = 0
    /// What the network predicts (eps, x0 or v; MaskDM: eps).
    public var objective: PredictionTarget = .noise
    /// Regression loss over the visible tokens (MaskDM: l2).
    public var loss: RegressionLoss = .l2
    /// Beta schedule: `linear` or `cosine`.
    public var schedule: String = "linear"
    /// Probability of a horizontal flip of each training image.
    public var flipProbability: Double = 0
    /// Number of optimisation steps of this stage.
    public var steps: Int = 1000
    /// Checkpoint every this many steps (0 = only at the end).
    public var checkpointEvery: Int = 0
    /// Seed of every random choice (timesteps, noise, masks, batches, flips).
    public var seed: UInt64 = 0
    /// What to do on a non-finite loss or gradient: stop with an error (default) or skip the step.
    public var skipNonFiniteSteps: Bool = false

    public init() {}

    /// MaskDM pre-training: block-4 masking at 90%, lr 2e-4, no warm-up.
    public static func pretraining(batchSize: Int = 128, steps: Int = 1000, mask: String = "block4", ratio: Double = 0.9,
                                   schedule: String = "linear") -> TrainingRecipe {
        var r = TrainingRecipe()
        r.batchSize = batchSize; r.steps = steps; r.mask = mask; r.maskRatio = ratio; r.schedule = schedule
        return r
    }

    /// MaskDM fine-tuning: no mask; the few-data recipe uses lr 5e-5 and flips with p = 0.5.
    public static func finetuning(batchSize: Int = 64, steps: Int = 1000, learningRate: Float = 5e-5,
                                  flipProbability: Double = 0.5, schedule: String = "linear") -> TrainingRecipe {
        var r = TrainingRecipe()
        r.batchSize = batchSize; r.steps = steps; r.learningRate = learningRate; r.flipProbability = flipProbability
        r.schedule = schedule
        return r
    }

    /// Compact JSON, e.g. for checkpoint metadata.
    public var json: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return (try? enc.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }
}
