import Foundation
import Masking
import NN
import Schedules
import Tensor
import ViTDiffusion

/// Whole training steps (forward, backward, AdamW, EMA) and one sampling step of MaskedUViT.
struct StepCase {
    let name: String
    let config: MaskedUViTConfig
    var batch: Int
    let mask: String
    let ratio: Double
    let sampling: Bool
    /// Threads splitting the batch (`DiffusionTrainer.dataParallelThreads`; nil: its default).
    var split: Int?
    /// Timed repetitions after the warm-up (nil: 5, or 3 with `--quick`); more give a profiler
    /// (`perf record`) the steady state rather than the set-up.
    var reps: Int?
    /// Steps on request (`servedMedianMs`) instead of `reps` in a row: `Benchmarks/lockstep.py`
    /// alternates this process step by step with PyTorch's.
    var serve = false

    var label: String {
        "\(config.embedDim == 256 ? "tiny" : "small") \(config.imageHeight)px b\(batch) \(sampling ? "ddim eta1" : mask == "none" ? "unmasked" : "\(mask) r\(ratio)")"
    }

    static let all: [StepCase] = [
        StepCase(name: "step_tiny_unmasked", config: .tiny(), batch: 32, mask: "none", ratio: 0, sampling: false),
        StepCase(name: "step_tiny_block4_90", config: .tiny(), batch: 32, mask: "block4", ratio: 0.9, sampling: false),
        StepCase(name: "step_small_unmasked", config: .small(), batch: 16, mask: "none", ratio: 0, sampling: false),
        StepCase(name: "step_small_block4_90", config: .small(), batch: 16, mask: "block4", ratio: 0.9, sampling: false),
        StepCase(name: "sample_step_small", config: .small(), batch: 16, mask: "none", ratio: 0, sampling: true),
    ]
}

/// Runs one case in this process and prints its JSON line.
func runStepCase(_ c: StepCase, quick: Bool, threads: Int) throws {
    var rng = RandomGenerator(seed: 0)
    let warmup = quick ? 1 : 2, reps = c.reps ?? (quick ? 3 : 5)
    /// The median of `reps` steps in a row, or of the steps requested when serving (NaN: none).
    func timeSteps(_ body: () -> Void) -> Double {
        c.serve ? servedMedianMs(warmup: warmup, body) ?? .nan : medianMs(warmup: warmup, reps: reps, body)
    }
    let ms: Double
    var timings: DiffusionTrainer.StepTimings?
    if c.sampling {
        // A sampler holds one network (the EMA weights), not a trainer: no gradients or moments.
        let model = MaskedUViT(config: c.config, rng: &rng)
        let x0 = Tensor.randomNormal([c.batch, 3, c.config.imageHeight, c.config.imageWidth], using: &rng)
        let ddim = DDIMSampler(schedule: .linear(), steps: 250, eta: 1)
        var srng = RandomGenerator(seed: 1)
        // One step of a sampling run, which packs the weights once (`Sampling.sample`): the
        // warm-up step packs them here.
        ms = model.store.withPackedWeights {
            timeSteps {
                let eps = model.predictNoise(x0, timesteps: [Float](repeating: 500, count: c.batch))
                _ = ddim.step(x: x0, eps: eps, from: 500, to: 496, noise: Tensor.randomNormal(x0.shape, using: &srng))
            }
        }
    } else {
        var recipe = TrainingRecipe.pretraining(batchSize: c.batch, steps: 1_000_000, mask: try MaskSpec(name: c.mask, ratio: c.ratio))
        recipe.gradientClip = 1
        let trainer = try DiffusionTrainer(model: MaskedUViT(config: c.config, rng: &rng), recipe: recipe)
        trainer.dataParallelThreads = c.split
        let x0 = Tensor.randomUniform([c.batch, 3, c.config.imageHeight, c.config.imageWidth], low: -1, high: 1, using: &rng)
        // The path a training run takes: the step's images picked from a dataset with each
        // sample's generator, then each sample's timestep, noise and mask drawn from it.
        let data = TensorDataset(images: x0)
        ms = timeSteps {
            _ = try? trainer.trainStep(batch: trainer.prepareBatch(forStep: trainer.step, from: data))
        }
        timings = trainer.lastStepTimings
    }
    let visible = c.sampling || c.mask == "none" ? c.config.patchCount
        : try MaskSpec(name: c.mask, ratio: c.ratio).strategy().visibleCount(gridHeight: c.config.gridHeight, gridWidth: c.config.gridWidth)
    let flops = (c.sampling ? 1 : 3) * forwardFlops(c.config, batch: c.batch, visible: visible)
    let peak = measuredPeak(threads: threads)
    var fields: [(String, Any)] = [("name", c.name), ("config", c.label), ("threads", threads), ("median_ms", ms),
                                   ("gflops", flops / ms / 1e6), ("peak_share", flops / ms / 1e6 / peak.gflops),
                                   ("peak_gflops", peak.gflops), ("isa", peak.isa), ("blocking", Gemm.blocking.environmentName),
                                   ("peak_rss_mb", peakRSSMiB()), ("pool_hits", BufferPool.shared.statistics.hits),
                                   ("pool_misses", BufferPool.shared.statistics.misses),
                                   ("pool_peak_mb", Double(BufferPool.shared.statistics.peakOwnedBytes) / 1048576)]
    if let p = timings {
        fields += [("prepare_ms", p.prepare * 1000), ("forward_ms", p.forward * 1000), ("backward_ms", p.backward * 1000),
                   ("clip_ms", p.clip * 1000), ("adamw_ms", p.optimizer * 1000), ("ema_ms", p.ema * 1000)]
        if !p.shares.isEmpty { fields.append(("share_ms", p.shares.map { ($0 * 10000).rounded() / 10 })) }
    }
    emit(fields)
}

/// Multiply-add FLOPs (2 per MAC) of one forward pass with `visible` patch tokens plus the time
/// token, counted as `Benchmarks/pytorch/maskdm_torch.py`'s `forward_flops` counts them (a training
/// step is three times this).
func forwardFlops(_ c: MaskedUViTConfig, batch: Int, visible: Int) -> Double {
    let d = Double(c.embedDim), p = Double(c.patchSize), ch = Double(c.inChannels)
    let tokens = Double(visible + 1), hidden = (d * c.mlpRatio).rounded(.towardZero)
    let blocks = Double(2 * (c.depth / 2) + 1)
    let perBlock = tokens * (2 * d * 3 * d + 2 * d * d + 2 * 2 * d * hidden) + 4 * tokens * tokens * d
    var total = blocks * perBlock + Double(c.depth / 2) * tokens * 2 * 2 * d * d
    total += Double(c.patchCount) * 2 * p * p * ch * d + tokens * 2 * d * p * p * ch
    return Double(batch) * total
}

/// Runs every step case in its own process so that each peak RSS is that case's own.
func benchSteps(threads: Int, quick: Bool) {
    for c in StepCase.all {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        p.arguments = ["step-case", c.name, "--threads", String(threads)] + (quick ? ["--quick"] : [])
        do {
            try p.run()
            p.waitUntilExit()
        } catch {
            FileHandle.standardError.write(Data("cannot run \(c.name): \(error)\n".utf8))
        }
    }
}
