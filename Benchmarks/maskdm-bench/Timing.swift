import Foundation

/// Wall-clock seconds of a monotonic clock.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
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
    times.sort()
    return times[times.count / 2]
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

/// Prints one JSON object per line.
func emit(_ fields: [(String, Any)]) {
    let parts = fields.map { key, value -> String in
        switch value {
        case let s as String: return "\"\(key)\": \"\(s)\""
        case let d as Double: return "\"\(key)\": \(d.isFinite ? String(format: "%.4g", d) : "null")"
        default: return "\"\(key)\": \(value)"
        }
    }
    print("{" + parts.joined(separator: ", ") + "}")
    fflush(nil)
}

/// Machine fp32 peak used for "share of peak" figures: 240 GFLOP/s per core (AVX-512 FMA, Zen 5).
let peakGflopsPerCore = 240.0
