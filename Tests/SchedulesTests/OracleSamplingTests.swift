import Foundation
import Tensor
import Testing
@testable import Schedules

/// Samplers driven by the exact noise prediction for data ~ N(mu, sigma^2) per pixel:
/// eps*(x_t) = (x_t - sqrt(ab) mu) sqrt(1 - ab) / (ab sigma^2 + 1 - ab). No neural network.
@Suite struct OracleSamplingTests {
    static let mu = 0.1, sigma = 0.3

    static func oracle(_ schedule: NoiseSchedule) -> NoisePredictor {
        { x, t in
            let ab = schedule.alphaBar(t[0])
            let k = (1 - ab).squareRoot() / (ab * sigma * sigma + 1 - ab)
            return (x - Float(ab.squareRoot() * mu)) * Float(k)
        }
    }

    static func sampler(_ name: String, _ schedule: NoiseSchedule, steps: Int, spacing: String, eta: Double) -> any DiffusionSampler {
        let sp: TimestepSpacing = spacing == "quadratic" ? .quadratic : .uniform
        switch name {
        case "ddim": return DDIMSampler(schedule: schedule, steps: steps, eta: eta, spacing: sp)
        case "ddpm": return DDPMSampler(schedule: schedule)
        default: return DPMSolverPlusPlus2M(schedule: schedule, steps: steps, spacing: sp)
        }
    }

    /// Deterministic samplers map x_T linearly; compare the images of -1, 0, 1 with the script.
    @Test func deterministicSamplersMatchScript() throws {
        let f = try #require(ScheduleFixtures.shared?.oracle)
        for c in f.deterministic {
            let schedule = try NoiseSchedule.named(c.schedule)
            let s = Self.sampler(c.sampler, schedule, steps: c.steps, spacing: c.spacing, eta: 0)
            var rng = RandomGenerator(seed: 0)
            let out = try s.sample(from: Tensor([-1, 0, 1], shape: [3, 1, 1, 1]), model: Self.oracle(schedule), using: &rng)
            let label = "\(c.sampler) \(c.schedule) S=\(c.steps) \(c.spacing)"
            // 1e-4: the Float32 eps at t = 999 of the cosine schedule is multiplied by
            // sqrt(1/ab) = 2e4 in the x0 estimate; the algorithm itself agrees to ~1e-7.
            #expect(maxScaledError(out, c.out) < 1e-4, "\(label): \(out.scalars) vs \(c.out)")
        }
    }

    /// DPM-Solver++(2M) with 20-25 calls reproduces the data distribution within a few percent.
    @Test(arguments: ["linear", "cosine"], [20, 25])
    func dpmSolverIsAccurateWithFewCalls(_ name: String, _ steps: Int) throws {
        let schedule = try NoiseSchedule.named(name)
        var rng = RandomGenerator(seed: 0)
        let out = try DPMSolverPlusPlus2M(schedule: schedule, steps: steps)
            .sample(from: Tensor([-1, 0, 1], shape: [3, 1, 1, 1]), model: Self.oracle(schedule), using: &rng)
        let std = Double(out[2, 0, 0, 0] - out[0, 0, 0, 0]) / 2     // x_0 = std * x_T + mean
        #expect(abs(std / Self.sigma - 1) < 0.035, "std ratio \(std / Self.sigma)")
        #expect(abs(Double(out[1, 0, 0, 0]) - Self.mu) < 0.002)
        // The same budget on DDIM's uniform spacing is clearly worse.
        let ddim = try DDIMSampler(schedule: schedule, steps: steps, eta: 0)
            .sample(from: Tensor([-1, 0, 1], shape: [3, 1, 1, 1]), model: Self.oracle(schedule), using: &rng)
        let ddimStd = Double(ddim[2, 0, 0, 0] - ddim[0, 0, 0, 0]) / 2
        #expect(abs(ddimStd / Self.sigma - 1) > abs(std / Self.sigma - 1))
    }

    /// Stochastic samplers over 16,384 pixels (DDIM, 250 steps) or 4,096 (DDPM, 1000 steps): sample
    /// mean and std against the exact moments of the discrete sampler (from the script) and
    /// against the data's mu and sigma.
    @Test(arguments: 0..<4)
    func stochasticSamplersMatchDataMoments(_ i: Int) throws {
        let f = try #require(ScheduleFixtures.shared?.oracle)
        try #require(f.stochastic.count == 4)
        do {
            let c = f.stochastic[i]
            let schedule = try NoiseSchedule.named(c.schedule)
            let s = Self.sampler(c.sampler, schedule, steps: c.steps, spacing: "uniform", eta: c.eta)
            var rng = RandomGenerator(seed: UInt64(100 + i))
            let items = c.sampler == "ddpm" ? 64 : 256
            let out = try s.sample(shape: [items, 1, 8, 8], model: Self.oracle(schedule), using: &rng)
            let v = out.scalars.map(Double.init)
            let n = Double(v.count)
            let mean = v.reduce(0, +) / n
            let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / (n - 1)).squareRoot()
            let label = "\(c.sampler) \(c.schedule) S=\(c.steps): mean \(mean) std \(std)"
            // 4 standard errors of the sample mean and of the sample std.
            #expect(abs(mean - c.mean) < 4 * c.std / n.squareRoot(), "\(label) vs exact \(c.mean)")
            #expect(abs(std - c.std) < 4 * c.std / (2 * n).squareRoot(), "\(label) vs exact \(c.std)")
            #expect(abs(mean - Self.mu) < 0.03 * Self.sigma, "\(label)")
            #expect(abs(std / Self.sigma - 1) < 0.06, "\(label)")
        }
    }
}
