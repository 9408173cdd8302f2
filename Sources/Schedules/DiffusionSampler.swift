import Tensor

/// A noise-prediction network: given x_t (B, C, H, W) and one step per item, returns the
/// predicted noise eps with the same shape as x_t.
public typealias NoisePredictor = (_ xt: Tensor, _ t: [Int]) throws -> Tensor

/// Called after each network evaluation with (evaluations done, evaluations in total).
public typealias SamplingProgress = (_ completed: Int, _ total: Int) -> Void

/// A sampler that turns Gaussian noise into data with a noise-prediction network.
///
/// All randomness (the initial noise and any noise a stochastic step adds) comes from the
/// explicit generator, so a seed reproduces the samples. Samples are in the model's data space
/// ([-1, 1] for MaskDM); map them to pixels with (x + 1) / 2.
public protocol DiffusionSampler: Sendable {
    /// The schedule the model was trained with.
    var schedule: NoiseSchedule { get }
    /// Number of network calls per batch.
    var networkEvaluations: Int { get }

    /// Runs the reverse process from `noise` = x_T (B, C, H, W), returning x_0 of the same shape.
    func sample(from noise: Tensor, model: NoisePredictor, using rng: inout RandomGenerator,
                progress: SamplingProgress?) throws -> Tensor

    /// The same, with the noise that a stochastic step adds to item i drawn from
    /// `itemGenerators[i]` alone (one generator per item of `noise`), so each item's draws do not
    /// depend on the batch it shares. The default implementation serves deterministic samplers
    /// (they draw nothing); a stochastic sampler gets it by conforming to ``StepNoiseSampler``.
    /// One that does neither draws from one generator split off the first item's, which ties
    /// its items to their batch.
    func sample(from noise: Tensor, model: NoisePredictor, itemGenerators: inout [RandomGenerator],
                progress: SamplingProgress?) throws -> Tensor
}

/// A stochastic sampler written once against a source of step noise. Conforming gives both forms
/// of ``DiffusionSampler/sample(from:model:using:progress:)``: step noise from one generator, or
/// item i's from `itemGenerators[i]` (``DiffusionSampler/sample(from:model:itemGenerators:progress:)``),
/// so its items can be drawn independently of their batch. ``DDIMSampler`` and ``DDPMSampler``
/// conform.
public protocol StepNoiseSampler: DiffusionSampler {
    /// Runs the reverse process from `noise` = x_T (B, C, H, W), returning x_0 of the same shape;
    /// each step that adds noise takes it, of the batch's shape, from `drawNoise`.
    func sample(from noise: Tensor, model: NoisePredictor, progress: SamplingProgress?,
                drawNoise: (Shape) -> Tensor) throws -> Tensor
}

extension StepNoiseSampler {
    /// The reverse process with every step's noise drawn from `rng`.
    public func sample(from noise: Tensor, model: NoisePredictor, using rng: inout RandomGenerator,
                       progress: SamplingProgress?) throws -> Tensor {
        try sample(from: noise, model: model, progress: progress) { Tensor.randomNormal($0, using: &rng) }
    }

    /// The reverse process with item i's step noise drawn from `itemGenerators[i]`.
    public func sample(from noise: Tensor, model: NoisePredictor, itemGenerators: inout [RandomGenerator],
                       progress: SamplingProgress?) throws -> Tensor {
        try sample(from: noise, model: model, progress: progress) { Tensor.randomNormal($0, itemGenerators: &itemGenerators) }
    }
}

extension DiffusionSampler {
    /// See the requirement: one generator split off the first item's (exact for samplers that
    /// draw no noise after x_T).
    public func sample(from noise: Tensor, model: NoisePredictor, itemGenerators: inout [RandomGenerator],
                       progress: SamplingProgress?) throws -> Tensor {
        precondition(itemGenerators.count == noise.shape[0], "sampler: \(itemGenerators.count) generators for a batch of \(noise.shape[0])")
        var rng = itemGenerators[0].split()
        return try sample(from: noise, model: model, using: &rng, progress: progress)
    }

    /// Draws x_T of `shape` (B, ...) with item i from `itemGenerators[i]`, then runs the reverse
    /// process with each item's later noise from its own generator: item i of the result depends
    /// on `itemGenerators[i]` and not on the rest of the batch (up to the network's rounding,
    /// which can differ with the batch size).
    public func sample(shape: Shape, model: NoisePredictor, itemGenerators: inout [RandomGenerator],
                       progress: SamplingProgress? = nil) throws -> Tensor {
        let noise = Tensor.randomNormal(shape, itemGenerators: &itemGenerators)
        return try sample(from: noise, model: model, itemGenerators: &itemGenerators, progress: progress)
    }

    /// Draws x_T ~ N(0, I) of `shape` from `rng`, then runs the reverse process.
    public func sample(shape: Shape, model: NoisePredictor, using rng: inout RandomGenerator,
                       progress: SamplingProgress? = nil) throws -> Tensor {
        let noise = Tensor.randomNormal(shape, using: &rng)
        return try sample(from: noise, model: model, using: &rng, progress: progress)
    }

    /// Runs the reverse process from `noise` = x_T without progress reports.
    public func sample(from noise: Tensor, model: NoisePredictor,
                       using rng: inout RandomGenerator) throws -> Tensor {
        try sample(from: noise, model: model, using: &rng, progress: nil)
    }
}

/// Calls the model at step `t` for the whole batch and checks the output's shape.
func evaluate(_ model: NoisePredictor, _ x: Tensor, _ t: Int) throws -> Tensor {
    let eps = try model(x, [Int](repeating: t, count: x.shape[0]))
    precondition(eps.shape == x.shape, "sampler: the model returned \(eps.shape) for x_t of shape \(x.shape)")
    return eps
}

func checkSampleInput(_ name: String, _ x: Tensor) {
    precondition(x.rank >= 1 && x.shape[0] >= 1, "\(name): x_T must be (B, ...) with B >= 1, got \(x.shape)")
}

/// The steps list of a custom sampler: strictly descending integers in `-1..<T` ending with -1.
func checkTimesteps(_ name: String, _ t: [Int], _ trainingSteps: Int) {
    precondition(t.count >= 2 && t.last == -1 && t[0] < trainingSteps && zip(t, t.dropFirst()).allSatisfy { $0 > $1 },
                 "\(name): timesteps \(t.prefix(8))... must descend strictly from below \(trainingSteps) to -1")
}
