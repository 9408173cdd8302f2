import Foundation
import Tensor
import Testing
@testable import Schedules

@Suite struct NoiseScheduleTests {
    @Test func fixtureParses() throws {
        // Decode again with `try` so a broken fixture reports the decoding error.
        let f = try JSONDecoder().decode(ScheduleFixtures.self, from: Data(scheduleFixturesJSON.utf8))
        #expect(f.schedules.count == 2 && f.ddimTimes.count == 8 && f.oracle.deterministic.count == 8)
    }

    @Test(arguments: ["linear", "cosine"])
    func valuesMatchReference(_ name: String) throws {
        let f = try #require(ScheduleFixtures.shared?.schedules[name])
        let s = try NoiseSchedule.named(name)
        #expect(s.name == name && s.T == 1000 && s.timesteps == 1000)
        for (k, t) in f.indices.enumerated() {
            #expect(abs(s.betas[t] - f.betas[k]) <= 1e-9 * f.betas[k], "beta[\(t)]")
            #expect(abs(s.alphasCumprod[t] - f.alphasCumprod[k]) <= 1e-9 * f.alphasCumprod[k], "alphas_cumprod[\(t)]")
            #expect(s.betas32[t] == Float(s.betas[t]) && s.alphasCumprod32[t] == Float(s.alphasCumprod[t]))
            #expect(abs(s.alphas[t] - (1 - s.betas[t])) == 0)
        }
        #expect(abs(s.betas.reduce(0, +) - f.betaSum) < 1e-9)
    }

    @Test func linearEndpointsAndScaling() {
        let s = NoiseSchedule.linear()
        #expect(s.betas[0] == 1e-4 && s.betas[999] == 0.02)
        let short = NoiseSchedule.linear(timesteps: 500)      // reference scales the ends by 1000/T
        #expect(abs(short.betas[0] - 2e-4) < 1e-18 && abs(short.betas[499] - 0.04) < 1e-17)
    }

    @Test func cosineIsClipped() {
        let s = NoiseSchedule.cosine()
        #expect(s.betas.max() == 0.999 && s.betas[999] == 0.999)
        #expect(s.betas.allSatisfy { $0 >= 0 })
        #expect(s.alphaBar(-1) == 1 && s.alphaBar(0) == s.alphasCumprod[0])
        #expect(s.alphasCumprodPrev[0] == 1 && s.alphasCumprodPrev[5] == s.alphasCumprod[4])
    }

    @Test func unknownNameThrows() {
        #expect(throws: ScheduleError.unknownSchedule("sigmoid")) { try NoiseSchedule.named("sigmoid") }
    }

    @Test func qSampleMatchesReference() throws {
        let f = try #require(ScheduleFixtures.shared?.qSample)
        let s = try NoiseSchedule.named(f.schedule)
        let xt = s.qSample(x0: tensor(f.x0, f.shape), t: f.t, noise: tensor(f.eps, f.shape))
        #expect(xt.shape == Shape(f.shape))
        #expect(maxScaledError(xt, f.xt) < 1e-6)
    }

    @Test func predictX0AndEpsInvertQSample() {
        var rng = RandomGenerator(seed: 4)
        let s = NoiseSchedule.linear()
        let x0 = Tensor.randomUniform([3, 2, 4, 4], low: -1, high: 1, using: &rng)
        let eps = Tensor.randomNormal([3, 2, 4, 4], using: &rng)
        let t = [0, 300, 700]
        let xt = s.qSample(x0: x0, t: t, noise: eps)
        #expect(s.predictX0(xt: xt, t: t, eps: eps).maxAbsDifference(x0) < 1e-4)
        #expect(s.predictEps(xt: xt, t: t, x0: x0).maxAbsDifference(eps) < 2e-3)   // t = 0 divides by sqrt(1e-4)
        let clipped = s.predictX0(xt: xt, t: t, eps: eps * 0, clip: true)
        #expect(clipped.scalars.allSatisfy { $0 >= -1 && $0 <= 1 })
        // Per-item coefficients: item 0 at t = 0 is almost the clean image.
        #expect(xt.sliced(axis: 0, 0..<1).maxAbsDifference(x0.sliced(axis: 0, 0..<1)) < 0.05)
    }
}
