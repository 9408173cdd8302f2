// `passes-ab`: two settings of the kernels compared pass by pass inside one process.
import Dispatch
import Foundation
import Tensor
import ViTDiffusion

/// One side of `passes-ab`: the GEMM kernel, its blocking and the thread count a network pass
/// runs with, and whether the weights are packed once beforehand (as a sampling run does) or by
/// every product (as a training step does). Parsed from `KEY=VALUE,...` with the keys `isa`
/// (the `MASKDM_GEMM_ISA` names), `blocking` (`resident`, `streamed`), `threads` and `packed`
/// (`1`, `0`); `default` sets nothing.
struct PassSetting: CustomStringConvertible {
    var isa: Gemm.InstructionSet?
    var blocking: Gemm.Blocking?
    var threads: Int?
    var packed = true
    let description: String

    init(_ text: String) throws {
        description = text
        guard text != "default" else { return }
        for item in text.split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw BenchUsageError("passes-ab: '\(item)' in '\(text)' is not KEY=VALUE") }
            switch kv[0] {
            case "isa":
                do { isa = try Gemm.environmentInstructionSet(kv[1]) } catch { throw BenchUsageError("passes-ab: \(error)") }
                if isa == Gemm.InstructionSet.none { throw BenchUsageError("passes-ab: isa=openblas cannot be switched to within a process") }
            case "blocking":
                do { blocking = try Gemm.environmentBlocking(kv[1]) } catch { throw BenchUsageError("passes-ab: \(error)") }
            case "threads":
                guard let n = Int(kv[1]), n > 0 else { throw BenchUsageError("passes-ab: threads=\(kv[1]) is not a positive count") }
                threads = n
            case "packed":
                guard kv[1] == "0" || kv[1] == "1" else { throw BenchUsageError("passes-ab: packed=\(kv[1]); use 0 or 1") }
                packed = kv[1] == "1"
            default:
                throw BenchUsageError("passes-ab: unknown key '\(kv[0])' in '\(text)'; keys: isa, blocking, threads, packed")
            }
        }
    }

    /// Runs `body` on `threads` threads (unless the setting names a count) under this setting's
    /// kernel and blocking, and restores the process's kernel and blocking afterwards.
    func run<T>(threads defaultThreads: Int, _ body: () -> T) throws -> T {
        let isa0 = Gemm.instructionSet, blocking0 = Gemm.blocking
        defer {
            if isa != nil && isa0 != Gemm.InstructionSet.none { try? Gemm.select(isa0) }
            Gemm.selectBlocking(blocking0)
        }
        if let isa { try Gemm.select(isa) }
        if let blocking { Gemm.selectBlocking(blocking) }
        return Parallel.$threads.withValue(threads ?? defaultThreads) { body() }
    }
}

/// `maskdm-bench passes-ab MODEL BATCH A B`: network passes (`predictNoise`, as sampling runs
/// them) of the demo, tiny or small network on BATCH images, alternating between settings A and B
/// pass by pass (AB, BA, AB, ...; 15 pairs, 7 with `--quick`). Whole processes alternated by
/// `Benchmarks/ab.py` see the VM's minute-to-minute speed changes; passes a second apart in one
/// process share them, so a few percent become visible.
func benchPassesAB(_ args: [String], threads: Int, quick: Bool) throws {
    let usage = "usage: maskdm-bench passes-ab demo|tiny|small BATCH SETTING_A SETTING_B [--quick]\n"
        + "       SETTING: default, or KEY=VALUE,... with isa=avx2|avx512|avx512-emulated|avx512-bf16, "
        + "blocking=resident|streamed, threads=N, packed=1|0"
    guard args.count == 4, let batch = Int(args[1]), batch > 0 else { throw BenchUsageError(usage) }
    let config: MaskedUViTConfig
    switch args[0] {
    case "demo": config = MaskedUViTConfig(imageSize: 16, patchSize: 2, embedDim: 256, depth: 9, heads: 4)
    case "tiny": config = .tiny()
    case "small": config = .small()
    default: throw BenchUsageError(usage)
    }
    let settings = try [PassSetting(args[2]), PassSetting(args[3])]
    var rng = RandomGenerator(seed: 0)
    let model = MaskedUViT(config: config, rng: &rng)
    let x = Tensor.randomNormal([batch, config.inChannels, config.imageHeight, config.imageWidth], using: &rng)
    let t = [Float](repeating: 500, count: batch)
    /// One timed pass under setting `s` (with packed weights: packed by an untimed pass first).
    func pass(_ s: PassSetting) throws -> Double {
        try s.run(threads: threads) {
            func timed() -> Double {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = model.predictNoise(x, timesteps: t)
                return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            }
            guard s.packed else { return timed() }
            return model.store.withPackedWeights {
                _ = model.predictNoise(x, timesteps: t)
                return timed()
            }
        }
    }
    for s in settings { _ = try pass(s) }   // warm-up: the buffer pool fills
    var times: [[Double]] = [[], []]
    for i in 0..<(quick ? 7 : 15) {
        for side in (i % 2 == 0 ? [0, 1] : [1, 0]) { times[side].append(try pass(settings[side])) }
    }
    let ratios = zip(times[0], times[1]).map { $1 / $0 }
    emit([("name", "passes_ab_\(args[0])_b\(batch)"), ("a", settings[0].description), ("b", settings[1].description),
          ("threads", threads), ("pairs", ratios.count), ("a_median_ms", median(times[0])),
          ("b_median_ms", median(times[1])), ("b_over_a", median(ratios)),
          ("b_over_a_range", "\(String(format: "%.3f", ratios.min()!))-\(String(format: "%.3f", ratios.max()!))")])
}
