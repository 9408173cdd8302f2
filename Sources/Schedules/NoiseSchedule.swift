// The Schedules module: the discrete Gaussian diffusion process (beta schedules, q(x_t | x_0))
// and the samplers that invert it with a noise-predicting network.
//
// ```swift
// let schedule = NoiseSchedule.linear(timesteps: 1000)
// let xt = schedule.qSample(x0: images, t: t, noise: eps)          // training input
// let sampler = DDIMSampler(schedule: schedule, steps: 250, eta: 1) // MaskDM's reported sampler
// var rng = RandomGenerator(seed: 0)
// let samples = try sampler.sample(shape: [16, 3, 64, 64], model: { x, t in try net(x, t) }, using: &rng)
// ```
import Foundation
import Tensor

/// The variance schedule of a discrete diffusion process with `T` steps `t = 0..<T`.
///
/// Values are computed in Float64 (as the reference does before registering Float32 buffers) and
/// kept in both precisions. `alphasCumprod[t]` is alpha-bar_t = prod_{i<=t} (1 - beta_i); step
/// `t = -1` means clean data (alpha-bar = 1) wherever a step index is accepted.
public struct NoiseSchedule: Sendable, Equatable {
    /// `"linear"`, `"cosine"` or `"custom"`; what configs and checkpoints record.
    public let name: String
    /// beta_t, shape (T).
    public let betas: [Double]
    /// alpha_t = 1 - beta_t, shape (T).
    public let alphas: [Double]
    /// alpha-bar_t = prod_{i<=t} alpha_i, shape (T).
    public let alphasCumprod: [Double]
    /// ``betas`` rounded to Float32.
    public let betas32: [Float]
    /// ``alphas`` rounded to Float32.
    public let alphas32: [Float]
    /// ``alphasCumprod`` rounded to Float32 (the reference's `alphas_cumprod` buffer).
    public let alphasCumprod32: [Float]

    /// Number of diffusion steps T.
    public var timesteps: Int { betas.count }
    /// Number of diffusion steps (the paper's T); same as ``timesteps``.
    public var T: Int { betas.count }

    /// A schedule from explicit betas, each in `[0, 1)`.
    public init(betas: [Double], name: String = "custom") {
        precondition(!betas.isEmpty, "NoiseSchedule: no betas")
        for (t, b) in betas.enumerated() {
            precondition(b >= 0 && b < 1, "NoiseSchedule: beta[\(t)] = \(b) is not in [0, 1)")
        }
        self.name = name
        self.betas = betas
        alphas = betas.map { 1 - $0 }
        var acc = 1.0
        alphasCumprod = alphas.map { acc *= $0; return acc }
        betas32 = betas.map(Float.init)
        alphas32 = alphas.map(Float.init)
        alphasCumprod32 = alphasCumprod.map(Float.init)
    }

    /// The linear schedule: beta = linspace(1e-4 * 1000/T, 0.02 * 1000/T, T) in Float64 (the
    /// reference scales the end points by 1000/T, a no-op at T = 1000). CelebA 64 and Church.
    /// T must be above 20: at T = 20 the last beta reaches 1 (the program stops, naming it).
    public static func linear(timesteps: Int = 1000) -> NoiseSchedule {
        precondition(timesteps >= 1, "NoiseSchedule.linear: timesteps \(timesteps) must be positive")
        let scale = 1000 / Double(timesteps)
        return NoiseSchedule(betas: torchLinspace(scale * 0.0001, scale * 0.02, count: timesteps), name: "linear")
    }

    /// The cosine schedule (Nichol & Dhariwal): alpha-bar(t) = cos^2(((t/T) + s)/(1 + s) * pi/2)
    /// normalised by its value at 0, beta_t = 1 - alpha-bar(t+1)/alpha-bar(t) clipped to
    /// [0, 0.999]; all in Float64. CelebA-HQ, VGGFace2 and the transfer runs.
    public static func cosine(timesteps: Int = 1000, s: Double = 0.008) -> NoiseSchedule {
        precondition(timesteps >= 1, "NoiseSchedule.cosine: timesteps \(timesteps) must be positive")
        let big = Double(timesteps)
        let f = (0...timesteps).map { i -> Double in
            let c = Foundation.cos(((Double(i) / big) + s) / (1 + s) * Double.pi * 0.5)
            return c * c
        }
        let ab = f.map { $0 / f[0] }
        let betas = (0..<timesteps).map { Swift.min(Swift.max(1 - ab[$0 + 1] / ab[$0], 0), 0.999) }
        return NoiseSchedule(betas: betas, name: "cosine")
    }

    /// The schedule a config names: `"linear"` or `"cosine"`.
    /// - Throws: ``ScheduleError/unknownSchedule(_:)`` for any other name.
    public static func named(_ name: String, timesteps: Int = 1000) throws -> NoiseSchedule {
        try ScheduleKind(name: name).schedule(timesteps: timesteps)
    }

    /// alpha-bar at step `t` in Float64; `t = -1` gives 1 (clean data).
    public func alphaBar(_ t: Int) -> Double {
        precondition(t >= -1 && t < timesteps, "NoiseSchedule: step \(t) outside -1..<\(timesteps)")
        return t < 0 ? 1 : alphasCumprod[t]
    }

    /// alpha-bar of the previous step, alpha-bar_{t-1} (1 at t = 0), shape (T).
    public var alphasCumprodPrev: [Double] { [1] + alphasCumprod.dropLast() }
}

/// Errors for schedules named in configs or files.
public enum ScheduleError: Error, Equatable, CustomStringConvertible {
    /// A schedule name other than `linear` or `cosine`.
    case unknownSchedule(String)
    /// A sampler name other than `ddim`, `ddpm` or `dpm`.
    case unknownSampler(String)
    /// A known sampler whose settings cannot run (a step count below 1, a DDIM eta outside
    /// [0, 1], more steps than the schedule has); the text says why.
    case unusableSampler(String)

    /// The message, naming the offending schedule.
    public var description: String {
        switch self {
        case .unknownSchedule(let name): return "unknown beta schedule '\(name)' (expected linear or cosine)"
        case .unknownSampler(let name): return "unknown sampler '\(name)' (expected ddim, ddpm or dpm)"
        case .unusableSampler(let problem): return "sampler: \(problem)"
        }
    }
}

/// `torch.linspace(start, end, count, dtype=float64)`: the first half counts up from `start`,
/// the second half down from `end`, each value one fused multiply-add.
func torchLinspace(_ start: Double, _ end: Double, count: Int) -> [Double] {
    if count == 1 { return [start] }
    let step = (end - start) / Double(count - 1)
    let half = count / 2
    return (0..<count).map { i in
        i < half ? start.addingProduct(step, Double(i)) : end.addingProduct(-step, Double(count - 1 - i))
    }
}
