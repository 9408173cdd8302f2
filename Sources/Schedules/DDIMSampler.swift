import Tensor

/// DDIM (Song et al.), exactly as the MaskDM reference samples: all reported results use 250 steps
/// with eta = 1 on the reference's uniform spacing.
///
/// For each pair (t, s) of consecutive steps:
/// x0 = clamp(sqrt(1/ab_t) x_t - sqrt(1/ab_t - 1) eps, -1, 1) (eps is *not* recomputed from the
/// clamped x0), sigma = eta sqrt((1 - ab_t/ab_s)(1 - ab_s)/(1 - ab_t)),
/// x_s = sqrt(ab_s) x0 + sqrt(1 - ab_s - sigma^2) eps + sigma z; at s = -1 the result is x0.
///
/// ```swift
/// let ddim = DDIMSampler(schedule: .linear(), steps: 250, eta: 1)
/// let x = try ddim.sample(shape: [8, 3, 64, 64], model: net, using: &rng)
/// ```
public struct DDIMSampler: StepNoiseSampler {
    /// The schedule the model was trained with.
    public let schedule: NoiseSchedule
    /// The steps, descending, last = -1; the network is evaluated at all but the last.
    public let timesteps: [Int]
    /// Amount of fresh noise per step: 0 is the deterministic DDIM ODE, 1 is DDPM-like.
    public let eta: Double
    /// Whether x0 estimates are clamped to [-1, 1] (the reference's `clip_denoised`, default on).
    public let clipDenoised: Bool

    /// DDIM with `steps` network evaluations on `spacing` (default: the reference's).
    public init(schedule: NoiseSchedule, steps: Int, eta: Double = 1, spacing: TimestepSpacing = .uniform,
                clipDenoised: Bool = true) {
        self.init(schedule: schedule, timesteps: spacing.timesteps(steps: steps, trainingSteps: schedule.timesteps),
                  eta: eta, clipDenoised: clipDenoised)
    }

    /// DDIM on an explicit list of steps (strictly descending, ending with -1).
    public init(schedule: NoiseSchedule, timesteps: [Int], eta: Double = 1, clipDenoised: Bool = true) {
        precondition(eta >= 0 && eta <= 1, "DDIMSampler: eta \(eta) is not in [0, 1]")
        checkTimesteps("DDIMSampler", timesteps, schedule.timesteps)
        self.schedule = schedule
        self.timesteps = timesteps
        self.eta = eta
        self.clipDenoised = clipDenoised
    }

    /// Network calls per batch.
    public var networkEvaluations: Int { timesteps.count - 1 }

    /// sigma for the move from step `t` to step `s` (0 when s = -1).
    public func sigma(from t: Int, to s: Int) -> Double {
        if s < 0 { return 0 }
        let at = schedule.alphaBar(t), as_ = schedule.alphaBar(s)
        return eta * ((1 - at / as_) * (1 - as_) / (1 - at)).squareRoot()
    }

    /// One DDIM move from step `t` to step `s` given the model's `eps` at (x, t). `noise` (same
    /// shape as x) is required when sigma > 0. Returns x_s and the (clamped) x0 estimate;
    /// for s = -1 both are x0.
    public func step(x: Tensor, eps: Tensor, from t: Int, to s: Int, noise: Tensor?) -> (next: Tensor, x0: Tensor) {
        precondition(x.shape == eps.shape, "DDIMSampler.step: x \(x.shape) and eps \(eps.shape) differ")
        let x0 = x0FromEps(schedule, x, eps, t: t, clip: clipDenoised)
        if s < 0 { return (x0, x0) }
        let as_ = schedule.alphaBar(s)
        let sig = sigma(from: t, to: s)
        let c = Swift.max(0, 1 - as_ - sig * sig).squareRoot()
        if sig == 0 { return (combine(as_.squareRoot(), x0, c, eps), x0) }
        guard let z = noise else { preconditionFailure("DDIMSampler.step: sigma \(sig) > 0 needs noise") }
        return (combine(as_.squareRoot(), x0, c, eps, sig, z), x0)
    }

    /// Runs the reverse process from `noise` = x_T (B, C, H, W); returns x_0 of the same shape.
    /// Each step's noise comes from `drawNoise` (see ``StepNoiseSampler``).
    public func sample(from noise: Tensor, model: NoisePredictor, progress: SamplingProgress?,
                       drawNoise: (Shape) -> Tensor) throws -> Tensor {
        checkSampleInput("DDIMSampler", noise)
        var x = noise
        for (i, (t, s)) in zip(timesteps, timesteps.dropFirst()).enumerated() {
            let eps = try evaluate(model, x, t)
            let z: Tensor? = sigma(from: t, to: s) > 0 ? drawNoise(x.shape) : nil
            x = step(x: x, eps: eps, from: t, to: s, noise: z).next
            progress?(i + 1, networkEvaluations)
        }
        return x
    }
}
