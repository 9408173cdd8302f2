import Tensor

/// What the network is trained to predict (the reference wrapper's `objective`).
///
/// - ``noise``: eps (`pred_noise`, MaskDM's choice and the default).
/// - ``x0``: the clean image (`pred_x0`).
/// - ``velocity``: v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0 (`pred_v`, progressive distillation's
///   v-parameterisation). Its x0 estimate does not divide by sqrt(ab_t), so an error of the network
///   at large t is not amplified the way an eps error is; short CPU runs learn much faster with it.
///
/// Samplers consume noise predictions; ``NoiseSchedule/noise(from:target:xt:t:clip:)`` turns any
/// target's output into one exactly as the reference's `model_predictions` does.
public enum PredictionTarget: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// The added noise eps (`pred_noise`).
    case noise = "eps"
    /// The clean image x0 (`pred_x0`).
    case x0 = "x0"
    /// The velocity v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0 (`pred_v`).
    case velocity = "v"

    /// Parses `eps`/`x0`/`v` or the reference's `pred_noise`/`pred_x0`/`pred_v`.
    public init?(name: String) {
        switch name {
        case "eps", "noise", "pred_noise": self = .noise
        case "x0", "pred_x0": self = .x0
        case "v", "pred_v": self = .velocity
        default: return nil
        }
    }

    /// The reference's name (`pred_noise`, `pred_x0`, `pred_v`).
    public var referenceName: String {
        switch self {
        case .noise: "pred_noise"
        case .x0: "pred_x0"
        case .velocity: "pred_v"
        }
    }

    public var description: String { rawValue }
}

extension NoiseSchedule {
    /// The regression target of `target` for clean images `x0` noised with `noise` at steps `t`:
    /// eps, x0 or v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0. `x0`, `noise`: (B, ...); `t`: B steps.
    public func trainingTarget(_ target: PredictionTarget, x0: Tensor, noise: Tensor, t: [Int]) -> Tensor {
        switch target {
        case .noise: return noise
        case .x0: return x0
        case .velocity:
            let (a, b) = signalAndNoiseScales(t)
            return perItemAffine(noise, a, x0, b.map { -$0 })
        }
    }

    /// The clean-image estimate implied by a network `output` of kind `target` at (x_t, t):
    /// eps: sqrt(1/ab) x_t - sqrt(1/ab - 1) eps; x0: the output; v: sqrt(ab) x_t - sqrt(1 - ab) v.
    /// Clamped to [-1, 1] when `clip`.
    public func cleanEstimate(from output: Tensor, target: PredictionTarget, xt: Tensor, t: [Int], clip: Bool) -> Tensor {
        let x0: Tensor
        switch target {
        case .noise: return predictX0(xt: xt, t: t, eps: output, clip: clip)
        case .x0: x0 = output
        case .velocity:
            let (a, b) = signalAndNoiseScales(t)
            x0 = perItemAffine(xt, a, output, b.map { -$0 })
        }
        return clip ? x0.clamped(min: -1, max: 1) : x0
    }

    /// The noise prediction a sampler needs from a network `output` of kind `target`, as the
    /// reference's `model_predictions`: eps is passed through (a clamp of its x0 happens in the
    /// sampler and eps is not re-derived); for x0 and v, x0 is estimated, clamped when `clip`, and
    /// eps re-derived from it: eps = (sqrt(1/ab) x_t - x0) / sqrt(1/ab - 1).
    /// `output`, `xt`: (B, ...); `t`: B steps in `0..<T`.
    public func noise(from output: Tensor, target: PredictionTarget, xt: Tensor, t: [Int], clip: Bool = true) -> Tensor {
        if target == .noise { return output }
        return predictEps(xt: xt, t: t, x0: cleanEstimate(from: output, target: target, xt: xt, t: t, clip: clip))
    }
}
