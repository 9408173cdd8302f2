import CKernels
import Foundation
import Tensor

/// Wall-clock seconds of a monotonic clock.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The median of `values` (the upper one of an even count), as every benchmark here reports it.
func median(_ values: [Double]) -> Double {
    values.sorted()[values.count / 2]
}

/// Median milliseconds of `reps` timed runs after `warmup` untimed ones.
func medianMs(warmup: Int = 2, reps: Int, _ body: () -> Void) -> Double {
    for _ in 0..<warmup { body() }
    var times: [Double] = []
    for _ in 0..<reps {
        let t0 = now()
        body()
        times.append((now() - t0) * 1000)
    }
    return median(times)
}

/// Lock-step timing driven by another process (`Benchmarks/lockstep.py`): after `warmup` untimed
/// runs it prints `{"ready": 1}`, then for every `step` line read from standard input runs `body`
/// once and prints `{"ms": T}`. At `end` or the end of input it returns the median of the timed runs
/// (nil if there were none). Between requests the process sleeps in `readLine`, so two servers
/// alternated step by step never share the cores.
func servedMedianMs(warmup: Int, _ body: () -> Void) -> Double? {
    for _ in 0..<warmup { body() }
    emit([("ready", 1)])
    var times: [Double] = []
    while let line = readLine(), line != "end" {
        guard line == "step" else { emit([("error", "unknown request '\(line)'; expected step or end")]); continue }
        let t0 = now()
        body()
        times.append((now() - t0) * 1000)
        emit([("ms", times.last!)])
    }
    return times.isEmpty ? nil : median(times)
}

/// Median milliseconds of `a` and of `b`, measured alternately: `rounds` times, a burst of `burst`
/// timed calls of each side after one untimed call of it.
func alternatingMedians(rounds: Int, burst: Int, _ a: () -> Void, _ b: () -> Void) -> (Double, Double) {
    func timed(_ body: () -> Void, into times: inout [Double]) {
        body()
        for _ in 0..<burst {
            let t0 = now()
            body()
            times.append((now() - t0) * 1000)
        }
    }
    var ta: [Double] = [], tb: [Double] = []
    for _ in 0..<rounds {
        timed(a, into: &ta)
        timed(b, into: &tb)
    }
    ta.sort(); tb.sort()
    return (ta[ta.count / 2], tb[tb.count / 2])
}

/// Peak resident set size of this process in MiB (from /proc/self/status VmHWM).
func peakRSSMiB() -> Double {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
        return kb / 1024
    }
    return .nan
}

/// The buffer pool's counters since `before` (a `BufferPool.shared.statistics` snapshot), as
/// `emit` fields: hits, misses, evictions and recycled buffers.
func poolCounters(since before: BufferPool.Statistics) -> [(String, Any)] {
    let after = BufferPool.shared.statistics
    return [("pool_hits", after.hits - before.hits), ("pool_misses", after.misses - before.misses),
            ("pool_evictions", after.evictions - before.evictions), ("pool_recycled", after.recycled - before.recycled)]
}

/// `s` as a JSON string literal (quotes, backslashes and control characters escaped), by Foundation.
func jsonString(_ s: String) -> String {
    (try? JSONSerialization.data(withJSONObject: s, options: [.fragmentsAllowed, .withoutEscapingSlashes]))
        .map { String(decoding: $0, as: UTF8.self) } ?? "null"
}

/// Prints one JSON object per line.
func emit(_ fields: [(String, Any)]) {
    let parts = fields.map { key, value -> String in
        switch value {
        case let s as String: return "\"\(key)\": \(jsonString(s))"
        case let d as Double: return "\"\(key)\": \(d.isFinite ? String(format: "%.4g", d) : "null")"
        default: return "\"\(key)\": \(value)"
        }
    }
    print("{" + parts.joined(separator: ", ") + "}")
    fflush(nil)
}

/// The machine's measured peak for the kernel the GEMMs run: its instruction set's FMA loop
/// (`maskdm_fma_peak_flops`; for the bf16 kernel its dot-product loop, twice the fp32 rate) run on
/// `threads` threads at once, best of 5 runs of about 0.1 s (before any other work). "Share of peak" figures divide
/// by this, so they mean the same on AVX2 and AVX-512 machines.
struct MeasuredPeak {
    let isa: String
    let threads: Int
    let gflops: Double
    var gflopsPerCore: Double { gflops / Double(threads) }

    static func measure(threads: Int) -> MeasuredPeak {
        // The FMA loop of the kernel the GEMMs run (MASKDM_GEMM_ISA can pick AVX2 on an AVX-512 CPU).
        let isa = Gemm.instructionSet == .none ? maskdm_gemm_best_isa() : Gemm.instructionSet.rawValue
        let iterations = 10_000_000                       // about 0.1 s per run at 2 FMA/cycle
        var best = 0.0
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            let flops = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
            defer { flops.deallocate() }
            nonisolated(unsafe) let out = flops              // each thread writes its own slot
            DispatchQueue.concurrentPerform(iterations: threads) { i in
                out[i] = maskdm_fma_peak_flops(isa, iterations)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, flops.reduce(0, +) / seconds / 1e9)
        }
        // The emulated AVX-512 kernel runs AVX2 instructions, so its loop is AVX2's; the bf16
        // kernel's loop runs its pairwise dot products (its mixed-precision peak).
        let kernel = Gemm.InstructionSet(rawValue: isa) ?? .none
        let name = kernel == .none ? "none" : kernel == .avx512Emulated ? "avx2" : kernel.environmentName
        return MeasuredPeak(isa: name, threads: threads, gflops: best)
    }
}

/// The measured peak for the benchmark's thread count (measured once per process).
nonisolated(unsafe) var measuredPeakCache: [Int: MeasuredPeak] = [:]
func measuredPeak(threads: Int) -> MeasuredPeak {
    if let p = measuredPeakCache[threads] { return p }
    let p = MeasuredPeak.measure(threads: threads)
    measuredPeakCache[threads] = p
    return p
}

/// Prints the measured peak as a JSON line (`maskdm-bench peak`).
func benchPeak(threads: Int) {
    let one = MeasuredPeak.measure(threads: 1), all = measuredPeak(threads: threads)
    emit([("name", "peak"), ("isa", all.isa), ("threads", threads), ("gflops", all.gflops),
          ("gflops_per_core", all.gflopsPerCore), ("gflops_one_core_alone", one.gflops)])
}
