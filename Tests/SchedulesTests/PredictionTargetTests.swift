import Tensor
import Testing
@testable import Schedules

/// The eps / x0 / v parameterisations against the reference wrapper's formulas
/// (`predict_v`, `predict_start_from_v`, `predict_noise_from_start`), computed here in Float64.
@Suite struct PredictionTargetTests {
    let schedule = NoiseSchedule.cosine()
    let t = [0, 3, 250, 500, 998]

    func data() -> (x0: Tensor, noise: Tensor) {
        var rng = RandomGenerator(seed: 4)
        return (Tensor.randomUniform([5, 3, 4, 4], low: -0.9, high: 0.9, using: &rng), Tensor.randomNormal([5, 3, 4, 4], using: &rng))
    }

    @Test func velocityTargetIsSqrtAbEpsMinusSqrtOneMinusAbX0() {
        let (x0, eps) = data()
        let v = schedule.trainingTarget(.velocity, x0: x0, noise: eps, t: t)
        let per = x0.count / 5
        for i in 0..<x0.count {
            let ab = schedule.alphaBar(t[i / per])
            let want = ab.squareRoot() * Double(eps[flat: i]) - (1 - ab).squareRoot() * Double(x0[flat: i])
            #expect(abs(Double(v[flat: i]) - want) < 1e-6)
        }
        #expect(schedule.trainingTarget(.noise, x0: x0, noise: eps, t: t).scalars == eps.scalars)
        #expect(schedule.trainingTarget(.x0, x0: x0, noise: eps, t: t).scalars == x0.scalars)
    }

    @Test func perfectPredictionsOfEveryTargetGiveTheTrueNoiseAndImage() {
        let (x0, eps) = data()
        // t >= 3: at t = 0 eps is recovered through 1 / sqrt(1/ab - 1) ~ 100, so Float32 rounding of x_t dominates.
        let ts = [3, 40, 250, 500, 998]
        let xt = schedule.qSample(x0: x0, t: ts, noise: eps)
        for target in PredictionTarget.allCases {
            let out = schedule.trainingTarget(target, x0: x0, noise: eps, t: ts)
            let epsHat = schedule.noise(from: out, target: target, xt: xt, t: ts)
            let x0Hat = schedule.cleanEstimate(from: out, target: target, xt: xt, t: ts, clip: true)
            #expect(epsHat.maxAbsDifference(eps) < 2e-3, "\(target): eps")
            #expect(x0Hat.maxAbsDifference(x0) < 1e-3, "\(target): x0")
        }
    }

    @Test func x0AndVEstimatesAreClampedBeforeEpsIsRederived() {
        // A v prediction whose x0 estimate leaves [-1, 1]: eps must come from the clamped x0, as the
        // reference's model_predictions does for pred_v / pred_x0 (not for pred_noise).
        let xt = Tensor(repeating: 0, shape: [1, 1, 1, 1])
        let v = Tensor(repeating: -50, shape: [1, 1, 1, 1])
        let x0 = schedule.cleanEstimate(from: v, target: .velocity, xt: xt, t: [500], clip: true)
        #expect(x0.scalars == [1])
        let eps = schedule.noise(from: v, target: .velocity, xt: xt, t: [500])
        let ab = schedule.alphaBar(500)
        let want = (0 - 1) / (1 / ab - 1).squareRoot()            // (sqrt(1/ab) x_t - x0) / sqrt(1/ab - 1)
        #expect(abs(Double(eps.scalars[0]) - want) < 1e-5)
        #expect(schedule.noise(from: v, target: .noise, xt: xt, t: [500]).scalars == v.scalars)
    }

    @Test func namesParseBothSpellings() {
        #expect(PredictionTarget(name: "pred_v") == .velocity && PredictionTarget(name: "v") == .velocity)
        #expect(PredictionTarget(name: "pred_noise") == .noise && PredictionTarget(name: "eps") == .noise)
        #expect(PredictionTarget(name: "pred_x0") == .x0 && PredictionTarget(name: "x_0") == nil)
        #expect(PredictionTarget.velocity.referenceName == "pred_v")
    }

    @Test func samplerKindsParseAndBuild() throws {
        #expect(try SamplerKind(name: "ddim") == .ddim(steps: 250, eta: 1))
        #expect(try SamplerKind(name: "dpm", steps: 20) == .dpmSolver(steps: 20))
        #expect(try SamplerKind(name: "DDPM") == .ddpm)
        #expect(throws: ScheduleError.self) { try SamplerKind(name: "euler") }
        #expect(throws: ScheduleError.unusableSampler("DDIM with 0 steps and eta 1.0 (steps must be >= 1, eta in [0, 1])")) {
            try SamplerKind(name: "ddim", steps: 0)
        }
        #expect(throws: ScheduleError.unusableSampler("DDIM with 250 steps and eta 2.0 (steps must be >= 1, eta in [0, 1])")) {
            try SamplerKind(name: "ddim", eta: 2)
        }
        #expect(throws: ScheduleError.unusableSampler("DPM-Solver++ with 0 steps (steps must be >= 1)")) { try SamplerKind(name: "dpm", steps: 0) }
        #expect(throws: ScheduleError.unusableSampler("DPM-Solver++ with 30 steps on a schedule of 20 steps (steps must be from 1 to 20)")) {
            try SamplerKind.dpmSolver(steps: 30).validate(trainingSteps: 20)
        }
        try SamplerKind.dpmSolver(steps: 20).validate(trainingSteps: 20)
        try SamplerKind.ddpm.validate(trainingSteps: 1)
        #expect(try SamplerKind.ddim(steps: 50, eta: 0).sampler(schedule: schedule).networkEvaluations == 50)
        // Parsed without a schedule, a step count the schedule cannot take is an error when it is built.
        let tooMany = try SamplerKind(name: "ddim", steps: 5000)
        #expect(throws: ScheduleError.self) { try tooMany.sampler(schedule: .linear()) }
        #expect(try ScheduleKind(name: "Cosine") == .cosine)
        #expect(throws: ScheduleError.self) { try ScheduleKind(name: "sigmoid") }
    }
}
