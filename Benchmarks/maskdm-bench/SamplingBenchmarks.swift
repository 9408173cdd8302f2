import Foundation
import Schedules
import Tensor
import ViTDiffusion

/// Whole sampling runs (`maskdm-bench sample`): images per second of a 100-step DDIM (eta 1) and a
/// 20-step DPM-Solver++(2M) run of the demo network (16 px, patch 2, D 256, 9 blocks; batch 64)
/// and of small@64 (batch 4, and batch 16 for the 20-step run), one timed run each after a
/// one-call warm-up; GFLOP/s counts the network's forward passes and is given as a share of the
/// measured peak too; `first_call_ms` (which packs the weights) and `median_call_ms` (the others)
/// time each network evaluation with the sampler's update after it. The PyTorch side (`bench_torch.py sample`) runs the same networks and samplers.
struct SamplingCase {
    let name: String
    let config: MaskedUViTConfig
    let batch: Int
    let sampler: String
    let steps: Int

    static let all: [SamplingCase] = {
        let demo = MaskedUViTConfig(imageSize: 16, patchSize: 2, embedDim: 256, depth: 9, heads: 4)
        return [
            SamplingCase(name: "sample_demo_ddim100", config: demo, batch: 64, sampler: "ddim", steps: 100),
            SamplingCase(name: "sample_demo_dpm20", config: demo, batch: 64, sampler: "dpm", steps: 20),
            SamplingCase(name: "sample_small_ddim100", config: .small(), batch: 4, sampler: "ddim", steps: 100),
            SamplingCase(name: "sample_small_dpm20", config: .small(), batch: 4, sampler: "dpm", steps: 20),
            SamplingCase(name: "sample_small_dpm20_b16", config: .small(), batch: 16, sampler: "dpm", steps: 20),
        ]
    }()
}

/// Runs the sampling cases: `cases` names the ones to run (all when empty; `quick` skips the
/// small network's 100-step DDIM run unless it is named). With `serve` the runs are made on request
/// (`servedMedianMs`: one whole run per `step` line, for `Benchmarks/lockstep.py`) and the row
/// reports their median.
func benchSampling(threads: Int, quick: Bool, cases: [String] = [], serve: Bool = false) throws {
    let chosen = cases.isEmpty ? SamplingCase.all.filter { !(quick && $0.name.contains("small_ddim")) }
                               : SamplingCase.all.filter { cases.contains($0.name) }
    let peak = measuredPeak(threads: threads)   // before any run, on a cool machine
    for c in chosen {
        var rng = RandomGenerator(seed: 0)
        let model = MaskedUViT(config: c.config, rng: &rng)
        let schedule = NoiseSchedule.linear()
        let sampler: any DiffusionSampler = c.sampler == "ddim"
            ? DDIMSampler(schedule: schedule, steps: c.steps, eta: 1)
            : DPMSolverPlusPlus2M(schedule: schedule, steps: c.steps)
        let x = Tensor.randomNormal([c.batch, 3, c.config.imageHeight, c.config.imageWidth], using: &rng)
        _ = model.predictNoise(x, timesteps: [Float](repeating: 500, count: c.batch))       // warm-up
        let before = BufferPool.shared.statistics
        var marks: [UInt64] = []   // the start of the (last) run, then the end of each network evaluation
        var failure: Error?
        func run() {
            marks = [DispatchTime.now().uptimeNanoseconds]
            do {
                _ = try Sampling.sample(model: model, count: c.batch, batchSize: c.batch, sampler: sampler, using: &rng,
                                        progress: { _, _ in marks.append(DispatchTime.now().uptimeNanoseconds) })
            } catch { failure = error }
        }
        let seconds: Double
        if serve {
            seconds = (servedMedianMs(warmup: 0, run) ?? .nan) / 1000
        } else {
            run()
            seconds = Double(DispatchTime.now().uptimeNanoseconds - marks[0]) / 1e9
        }
        if let failure { throw failure }
        let pool = poolCounters(since: before)
        let calls = zip(marks.dropFirst(), marks).map { Double($0 - $1) / 1e6 }   // ms, the sampler's update included
        let laterCalls = calls.dropFirst().sorted()
        // The network's FLOPs only (a full-token forward pass per evaluation); the samplers' updates
        // are element-wise and not counted.
        let gflops = Double(sampler.networkEvaluations) * forwardFlops(c.config, batch: c.batch, visible: c.config.patchCount) / seconds / 1e9
        emit([("name", c.name), ("config", "\(c.config.imageHeight)px p\(c.config.patchSize) D\(c.config.embedDim) b\(c.batch) \(c.sampler)\(c.steps)"),
              ("threads", threads), ("median_ms", seconds * 1000), ("images_per_second", Double(c.batch) / seconds),
              ("gflops", gflops), ("peak_share", gflops / peak.gflops), ("peak_gflops", peak.gflops), ("isa", peak.isa), ("blocking", Gemm.blocking.environmentName),
              ("first_call_ms", calls.first ?? 0), ("median_call_ms", laterCalls.isEmpty ? 0 : laterCalls[laterCalls.count / 2]),
              ("peak_rss_mb", peakRSSMiB())] + pool)
    }
}

/// small@64 forward passes (`predictNoise`) of `batch` images with the weights packed once
/// (`ParameterStore.withPackedWeights`, as `Sampling.sample` runs them) against re-packing them in
/// every pass, alternating pass by pass in one process.
func benchPackedWeights(batch: Int, threads: Int, quick: Bool) {
    var rng = RandomGenerator(seed: 0)
    let model = MaskedUViT(config: .small(), rng: &rng)
    let x = Tensor.randomNormal([batch, 3, 64, 64], using: &rng)
    let t = [Float](repeating: 500, count: batch)
    func ms(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }
    _ = model.predictNoise(x, timesteps: t)                                  // warm-up
    var packed: [Double] = [], unpacked: [Double] = []
    var packedBytes = 0
    for _ in 0..<(quick ? 5 : 9) {
        unpacked.append(ms { _ = model.predictNoise(x, timesteps: t) })
        packed.append(model.store.withPackedWeights {
            _ = model.predictNoise(x, timesteps: t)                           // packs the weights
            packedBytes = model.store.packedWeightBytes
            return ms { _ = model.predictNoise(x, timesteps: t) }
        })
    }
    emit([("name", "packed_weights_small_b\(batch)"), ("threads", threads), ("unpacked_ms", median(unpacked)),
          ("packed_ms", median(packed)), ("speedup", median(unpacked) / median(packed)),
          ("pair_ratios", zip(unpacked, packed).map { ($0 / $1 * 1000).rounded() / 1000 }),
          ("packed_mb", Double(packedBytes) / 1048576), ("peak_rss_mb", peakRSSMiB())])
}
