import Foundation
import Tensor

/// DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver of the diffusion ODE in
/// data prediction, for good samples in about 20-25 network calls instead of 250.
///
/// With alpha_t = sqrt(ab_t), sigma_t = sqrt(1 - ab_t), lambda_t = log(alpha_t / sigma_t) and
/// D_i the (clamped) x0 estimate at step t_i, each move t_i -> t_{i+1} with h = lambda_{i+1} -
/// lambda_i is x_{i+1} = (sigma_{i+1}/sigma_i) x_i + alpha_{i+1} (1 - e^{-h}) D, where D = D_i
/// for the first step and otherwise D = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}, r = h_{i-1}/h.
///
/// Choices (documented because they differ between implementations):
/// - Steps: ``TimestepSpacing/quadratic`` by default: S evaluations at integer steps 999 ... 0
///   then a final move to clean data (t = -1, lambda = +inf), which is first order and returns
///   D at t = 0 (DPM-Solver's `denoise_to_zero`). All points are training steps, so lambda is
///   read from the discrete schedule directly and no log-alpha interpolation is needed.
///   `.uniform` (the DDIM spacing) is available but far less accurate with few steps: on Gaussian
///   toy data with an exact noise oracle (data N(0.1, 0.3^2), linear schedule, 20 calls) the sample
///   standard deviation comes out at 0.82x the truth with `.uniform` and 1.03x with `.quadratic`.
/// - Lower-order final step (`lowerOrderFinal`, default on): the move into the last evaluated
///   step is first order too, which avoids the 2M extrapolation over the largest lambda jump.
/// - x0 estimates are clamped to [-1, 1] like the reference DDIM (`clipDenoised`).
public struct DPMSolverPlusPlus2M: DiffusionSampler {
    /// The schedule the model was trained with.
    public let schedule: NoiseSchedule
    /// The steps, descending, last = -1; the network is evaluated at all but the last.
    public let timesteps: [Int]
    /// Whether x0 estimates are clamped to [-1, 1].
    public let clipDenoised: Bool
    /// Whether the move into the last evaluated step is first order.
    public let lowerOrderFinal: Bool

    /// The solver with `steps` network evaluations on `spacing`.
    public init(schedule: NoiseSchedule, steps: Int = 20, spacing: TimestepSpacing = .quadratic,
                clipDenoised: Bool = true, lowerOrderFinal: Bool = true) {
        self.init(schedule: schedule, timesteps: spacing.timesteps(steps: steps, trainingSteps: schedule.timesteps),
                  clipDenoised: clipDenoised, lowerOrderFinal: lowerOrderFinal)
    }

    /// The solver on an explicit list of steps (strictly descending, ending with -1).
    public init(schedule: NoiseSchedule, timesteps: [Int], clipDenoised: Bool = true, lowerOrderFinal: Bool = true) {
        checkTimesteps("DPMSolverPlusPlus2M", timesteps, schedule.timesteps)
        self.schedule = schedule
        self.timesteps = timesteps
        self.clipDenoised = clipDenoised
        self.lowerOrderFinal = lowerOrderFinal
    }

    /// Network calls per batch.
    public var networkEvaluations: Int { timesteps.count - 1 }

    /// lambda_t = log(alpha_t / sigma_t) = 0.5 log(ab_t / (1 - ab_t)); +inf at t = -1.
    public func lambda(_ t: Int) -> Double {
        let ab = schedule.alphaBar(t)
        return t < 0 ? .infinity : 0.5 * Foundation.log(ab / (1 - ab))
    }

    /// Runs the reverse process from `noise` = x_T (B, C, H, W); returns x_0 of the same shape.
    public func sample(from noise: Tensor, model: NoisePredictor, using rng: inout RandomGenerator,
                       progress: SamplingProgress?) throws -> Tensor {
        checkSampleInput("DPMSolverPlusPlus2M", noise)
        var x = noise
        var previous: (x0: Tensor, h: Double)? = nil
        for i in 0..<networkEvaluations {
            let t = timesteps[i], s = timesteps[i + 1]
            let eps = try evaluate(model, x, t)
            let x0 = x0FromEps(schedule, x, eps, t: t, clip: clipDenoised)
            progress?(i + 1, networkEvaluations)
            if s < 0 { x = x0; break }                       // first order into lambda = +inf
            let h = lambda(s) - lambda(t)
            let ratio = ((1 - schedule.alphaBar(s)) / (1 - schedule.alphaBar(t))).squareRoot()
            let k = schedule.alphaBar(s).squareRoot() * -Foundation.expm1(-h)
            let intoLast = timesteps[i + 2] < 0
            if let prev = previous, !(lowerOrderFinal && intoLast) {
                let w = 1 / (2 * (prev.h / h))
                x = combine(ratio, x, k * (1 + w), x0, -k * w, prev.x0)
            } else {
                x = combine(ratio, x, k, x0)
            }
            previous = (x0, h)
        }
        return x
    }
}
