import Foundation
import Tensor

/// Ancestral DDPM sampling (Ho et al.) over all T steps, one network call each.
///
/// At step t: x0 = clamp(sqrt(1/ab_t) x_t - sqrt(1/ab_t - 1) eps, -1, 1); the posterior
/// q(x_{t-1} | x_t, x0) has mean c1_t x0 + c2_t x_t with c1_t = beta_t sqrt(ab_{t-1})/(1 - ab_t),
/// c2_t = (1 - ab_{t-1}) sqrt(alpha_t)/(1 - ab_t), and variance beta-tilde_t =
/// beta_t (1 - ab_{t-1})/(1 - ab_t), applied as exp(0.5 log(max(beta-tilde, 1e-20))) z; no noise
/// at t = 0. (The reference's `p_sample_loop` computes the same but crashes before running.)
public struct DDPMSampler: StepNoiseSampler {
    /// The schedule the model was trained with.
    public let schedule: NoiseSchedule
    /// Whether x0 estimates are clamped to [-1, 1] (default on, as the reference).
    public let clipDenoised: Bool
    /// c1_t, the posterior-mean weight of x0, shape (T).
    public let posteriorMeanCoef1: [Double]
    /// c2_t, the posterior-mean weight of x_t, shape (T).
    public let posteriorMeanCoef2: [Double]
    /// beta-tilde_t, shape (T); 0 at t = 0.
    public let posteriorVariance: [Double]
    /// log(max(beta-tilde_t, 1e-20)), shape (T).
    public let posteriorLogVarianceClipped: [Double]

    /// Ancestral sampling with the posterior ("small") variance.
    public init(schedule: NoiseSchedule, clipDenoised: Bool = true) {
        self.schedule = schedule
        self.clipDenoised = clipDenoised
        let ab = schedule.alphasCumprod, abPrev = schedule.alphasCumprodPrev, beta = schedule.betas
        let n = schedule.timesteps
        posteriorMeanCoef1 = (0..<n).map { beta[$0] * abPrev[$0].squareRoot() / (1 - ab[$0]) }
        posteriorMeanCoef2 = (0..<n).map { (1 - abPrev[$0]) * schedule.alphas[$0].squareRoot() / (1 - ab[$0]) }
        posteriorVariance = (0..<n).map { beta[$0] * (1 - abPrev[$0]) / (1 - ab[$0]) }
        posteriorLogVarianceClipped = posteriorVariance.map { Foundation.log(Swift.max($0, 1e-20)) }
    }

    /// Network calls per batch.
    public var networkEvaluations: Int { schedule.timesteps }

    /// One ancestral move from step `t` to `t - 1` given the model's `eps` at (x, t); `noise` is
    /// required for t > 0. Returns x_{t-1} and the (clamped) x0 estimate.
    public func step(x: Tensor, eps: Tensor, t: Int, noise: Tensor?) -> (next: Tensor, x0: Tensor) {
        precondition(x.shape == eps.shape, "DDPMSampler.step: x \(x.shape) and eps \(eps.shape) differ")
        let x0 = x0FromEps(schedule, x, eps, t: t, clip: clipDenoised)
        if t == 0 { return (combine(posteriorMeanCoef1[0], x0, posteriorMeanCoef2[0], x), x0) }
        guard let z = noise else { preconditionFailure("DDPMSampler.step: step \(t) > 0 needs noise") }
        let sd = Foundation.exp(0.5 * posteriorLogVarianceClipped[t])
        return (combine(posteriorMeanCoef1[t], x0, posteriorMeanCoef2[t], x, sd, z), x0)
    }

    /// Runs the reverse process from `noise` = x_T (B, C, H, W); returns x_0 of the same shape.
    /// Each step's noise comes from `drawNoise` (see ``StepNoiseSampler``).
    public func sample(from noise: Tensor, model: NoisePredictor, progress: SamplingProgress?,
                       drawNoise: (Shape) -> Tensor) throws -> Tensor {
        checkSampleInput("DDPMSampler", noise)
        var x = noise
        for t in stride(from: schedule.timesteps - 1, through: 0, by: -1) {
            let eps = try evaluate(model, x, t)
            let z: Tensor? = t > 0 ? drawNoise(x.shape) : nil
            x = step(x: x, eps: eps, t: t, noise: z).next
            progress?(schedule.timesteps - t, networkEvaluations)
        }
        return x
    }
}
