import Foundation
import Masking
import NN
import Schedules
import Tensor
import ViTDiffusion

/// The settings of a two-stage experiment (the demo and `compare`): the network, the two stage
/// recipes and how samples are drawn and scored.
public struct ExperimentRecipe: Codable, Sendable, Equatable {
    /// The network (one config for both stages).
    public var model: MaskedUViTConfig
    /// Masked pre-training on the source data.
    public var pretrain: TrainingRecipe
    /// Unmasked fine-tuning on the target data (also the from-scratch recipe).
    public var finetune: TrainingRecipe
    /// Sampler of the final samples and grids.
    public var sampler: SamplerKind
    /// Final samples (FID/KID against the target).
    public var sampleCount: Int
    /// The precision of every stage's matrix products (see `RunConfig.precision`; nil: the
    /// process's, or a resumed stage's recorded one). Sampling runs in the same precision; FID
    /// and KID are computed in fp32 always.
    public var precision: Gemm.Precision? = nil

    /// A recipe of the values above.
    public init(model: MaskedUViTConfig, pretrain: TrainingRecipe, finetune: TrainingRecipe, sampler: SamplerKind, sampleCount: Int) {
        self.model = model; self.pretrain = pretrain; self.finetune = finetune; self.sampler = sampler; self.sampleCount = sampleCount
    }

    /// The demo recipe calibrated on a 2-core CPU (see Docs/Results.md): the tiny U-ViT's width and
    /// depth (D 256, 9 blocks, 4 heads) at 16 px with patch 2 (an 8x8 token grid) predicting v, AdamW (0.9, 0.99) at lr 1e-3 with 100 warm-up steps, EMA 0.999 with
    /// ema-pytorch's warm-up, flips; 2x2-block masking at 50% for pre-training on the 3,811
    /// non-face emoji, then fine-tuning on the 115 faces; DDIM with eta 1 at 50 steps (stochastic
    /// steps hide more of a short run's errors than DPM-Solver++: FID 76.5 vs 97.7 from one model).
    public static var calibrated: ExperimentRecipe {
        var pre = TrainingRecipe.pretraining(batchSize: 128, steps: 200, mask: .block(size: 2, ratio: 0.5))
        var fine = TrainingRecipe.finetuning(batchSize: 32, steps: 800, learningRate: 1e-3, flipProbability: 0.5)
        for r in [0, 1] {
            var x = r == 0 ? pre : fine
            x.objective = .velocity; x.learningRate = 1e-3; x.beta1 = 0.9; x.beta2 = 0.99; x.warmupSteps = 100
            x.flipProbability = 0.5; x.checkpointEvery = 50
            if r == 0 { pre = x } else { fine = x }
        }
        fine.seed = pre.seed &+ 1
        return ExperimentRecipe(model: MaskedUViTConfig(imageSize: 16, patchSize: 2, embedDim: 256, depth: 9, heads: 4),
                                pretrain: pre, finetune: fine, sampler: .ddim(steps: 50, eta: 1), sampleCount: 400)
    }

    /// The same recipe on tiny budgets (a smoke test of the whole pipeline in a couple of minutes).
    public static var quick: ExperimentRecipe {
        var r = calibrated
        r.model = MaskedUViTConfig(imageSize: 16, embedDim: 64, depth: 3, heads: 2)
        r.pretrain.steps = 20; r.pretrain.batchSize = 32; r.pretrain.warmupSteps = 5; r.pretrain.checkpointEvery = 10
        r.finetune.steps = 20; r.finetune.batchSize = 16; r.finetune.warmupSteps = 5; r.finetune.checkpointEvery = 10
        r.sampler = .dpmSolver(steps: 10)
        r.sampleCount = 32
        return r
    }
}

extension MaskedUViTConfig {
    /// Floating-point operations of one training step (forward + backward ~ 3 x forward) on
    /// `batch` images of which `visiblePatches` patches are kept (all when nil): the linears,
    /// the attention products, patch embedding and head. An estimate for comparing budgets.
    public func trainingFLOPs(batch: Int, visiblePatches: Int? = nil) -> Double {
        let d = Double(embedDim), t = Double(1 + (visiblePatches ?? patchCount))
        let blocks = Double(depth / 2 * 2 + 1), outs = Double(depth / 2)
        let perTokenBlock = (4 + 2 * mlpRatio) * d * d + 2 * t * d         // qkv, proj, mlp; QK^T and PV
        var macs = blocks * t * perTokenBlock + outs * t * 2 * d * d        // + skip linears
        macs += t * Double(patchDimensions) * d * 2                          // patch embedding and head
        return 3 * 2 * macs * Double(batch)
    }
}
