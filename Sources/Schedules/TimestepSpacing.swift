import Tensor

/// How a sampler with `S` network evaluations picks its steps among the T training steps.
///
/// `timesteps(steps:trainingSteps:)` returns S + 1 integers, strictly descending, ending with -1
/// (clean data): the sampler evaluates the network at the first S and moves from each to the next.
/// Every point is an integer training step, so the schedule's alpha-bar is read directly; no
/// interpolation of log-alpha is ever needed and the network only sees steps it was trained on.
public enum TimestepSpacing: Sendable, Equatable {
    /// The reference DDIM spacing: `torch.linspace(-1, T-1, S+1)` in Float32, truncated toward
    /// zero (`.int()`), reversed: S = 250, T = 1000 gives 999, 995, ..., 3, -1.
    case uniform
    /// Quadratic in time (DDIM's "quad", DPM-Solver's `time_quadratic`): t_i =
    /// round((sqrt(T-1) (1 - i/(S-1)))^2) for i < S, so 999 ... 0, then -1. Many more small steps
    /// near the data, where fine detail forms; with few steps this is much more accurate than
    /// `.uniform` (see ``DPMSolverPlusPlus2M``).
    case quadratic

    /// The S + 1 steps, descending, last = -1. Requires 1 <= S <= T.
    public func timesteps(steps: Int, trainingSteps: Int) -> [Int] {
        precondition(steps >= 1 && steps <= trainingSteps,
                     "TimestepSpacing: \(steps) sampling steps for \(trainingSteps) training steps")
        switch self {
        case .uniform:
            return Array(torchLinspaceFloat32(-1, Float(trainingSteps - 1), count: steps + 1).map { Int($0) }.reversed())
        case .quadratic:
            if steps == 1 { return [trainingSteps - 1, -1] }
            let root = Double(trainingSteps - 1).squareRoot()
            var t = (0..<steps).map { i -> Int in
                let u = root * (1 - Double(i) / Double(steps - 1))
                return Int((u * u).rounded())
            }
            // Keep the points distinct: each at least one above the next (S <= T leaves room).
            for i in stride(from: steps - 2, through: 0, by: -1) { t[i] = Swift.max(t[i], t[i + 1] + 1) }
            return t + [-1]
        }
    }
}

/// `torch.linspace(start, end, count)` in Float32 as PyTorch's CPU kernel computes it: the first
/// half counts up from `start`, the second half down from `end`, each value one fused
/// multiply-add (checked against torch 2.13 for every S <= T at T = 50 ... 4000).
func torchLinspaceFloat32(_ start: Float, _ end: Float, count: Int) -> [Float] {
    if count == 1 { return [start] }
    let step = (end - start) / Float(count - 1)
    let half = count / 2
    return (0..<count).map { i in
        i < half ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(count - 1 - i))
    }
}
