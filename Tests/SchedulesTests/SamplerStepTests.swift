import Tensor
import Testing
@testable import Schedules

/// Single moves against the script, and the samplers' bookkeeping.
@Suite struct SamplerStepTests {
    @Test func ddimStepsMatchReference() throws {
        let f = try #require(ScheduleFixtures.shared)
        for c in f.ddimSteps {
            let ddim = DDIMSampler(schedule: try .named(c.schedule), steps: 10, eta: c.eta)
            let (next, x0) = ddim.step(x: tensor(c.x, c.shape), eps: tensor(c.eps, c.shape), from: c.t, to: c.s,
                                       noise: tensor(c.z, c.shape))
            #expect(maxScaledError(x0, c.x0) < 1e-6, "\(c.schedule) t=\(c.t)")
            #expect(maxScaledError(next, c.next) < 1e-6, "\(c.schedule) t=\(c.t) s=\(c.s)")
        }
    }

    @Test func ddpmStepsMatchReference() throws {
        let f = try #require(ScheduleFixtures.shared)
        for c in f.ddpmSteps {
            let ddpm = DDPMSampler(schedule: try .named(c.schedule))
            let (next, x0) = ddpm.step(x: tensor(c.x, c.shape), eps: tensor(c.eps, c.shape), t: c.t,
                                       noise: tensor(c.z, c.shape))
            #expect(maxScaledError(x0, c.x0) < 1e-6, "\(c.schedule) t=\(c.t)")
            #expect(maxScaledError(next, c.next) < 1e-6, "\(c.schedule) t=\(c.t)")
        }
    }

    /// A fixed smooth "network" for bookkeeping tests; records the steps it is called with.
    final class RecordingModel: @unchecked Sendable {   // only used on one thread inside a test
        var calls: [[Int]] = []
        func callAsFunction(_ x: Tensor, _ t: [Int]) -> Tensor {
            calls.append(t)
            return (x * 0.5).tanh() * Float(1 + t[0] % 3)
        }
    }

    @Test func ddimEtaZeroIsDeterministic() throws {
        let ddim = DDIMSampler(schedule: .linear(), steps: 25, eta: 0)
        var seed = RandomGenerator(seed: 1)
        let xT = Tensor.randomNormal([2, 3, 4, 4], using: &seed)
        let model = RecordingModel()
        var r1 = RandomGenerator(seed: 10), r2 = RandomGenerator(seed: 99)
        let before = r1
        let a = try ddim.sample(from: xT, model: { model($0, $1) }, using: &r1)
        let b = try ddim.sample(from: xT, model: { model($0, $1) }, using: &r2)
        #expect(a.scalars == b.scalars)
        #expect(r1 == before)                                  // no noise drawn at eta = 0
        #expect(a.scalars.allSatisfy { $0 >= -1 && $0 <= 1 })  // the result is the clamped x0
        #expect(model.calls.count == 50)
        #expect(model.calls[0] == [999, 999] && model.calls[24] == [39, 39])
    }

    @Test func stochasticSamplersAreReproducibleForASeed() throws {
        let samplers: [any DiffusionSampler] = [
            DDIMSampler(schedule: .cosine(), steps: 10, eta: 1),
            DPMSolverPlusPlus2M(schedule: .cosine(), steps: 10),
            DDPMSampler(schedule: .linear(timesteps: 50)),
        ]
        for s in samplers {
            let model = RecordingModel()
            var r1 = RandomGenerator(seed: 5), r2 = RandomGenerator(seed: 5), r3 = RandomGenerator(seed: 6)
            var reports: [(Int, Int)] = []
            let a = try s.sample(shape: [2, 1, 3, 3], model: { model($0, $1) }, using: &r1,
                                 progress: { reports.append(($0, $1)) })
            let b = try s.sample(shape: [2, 1, 3, 3], model: { model($0, $1) }, using: &r2)
            let c = try s.sample(shape: [2, 1, 3, 3], model: { model($0, $1) }, using: &r3)
            #expect(a.scalars == b.scalars && a.scalars != c.scalars)
            #expect(a.isFinite && a.shape == [2, 1, 3, 3])
            #expect(model.calls.count == 3 * s.networkEvaluations)
            #expect(reports.count == s.networkEvaluations && reports.last! == (s.networkEvaluations, s.networkEvaluations))
        }
    }

    /// With one generator per item, an item's sample (x_T and the step noise) is the same alone
    /// as in a batch: the model here works element by element, so only the vectorised loops'
    /// rounding (a value in a vector body or in a scalar tail) differs. A sampler that
    /// only implements the single-generator form (the protocol's default) still runs, tied to its batch.
    @Test func itemGeneratorsMakeEachItemIndependentOfItsBatch() throws {
        struct OneGeneratorDDIM: DiffusionSampler {
            let inner = DDIMSampler(schedule: .linear(timesteps: 50), steps: 5, eta: 1)
            var schedule: NoiseSchedule { inner.schedule }
            var networkEvaluations: Int { inner.networkEvaluations }
            func sample(from noise: Tensor, model: NoisePredictor, using rng: inout RandomGenerator,
                        progress: SamplingProgress?) throws -> Tensor {
                try inner.sample(from: noise, model: model, using: &rng, progress: progress)
            }
        }
        let samplers: [any DiffusionSampler] = [
            DDIMSampler(schedule: .cosine(), steps: 10, eta: 1),
            DPMSolverPlusPlus2M(schedule: .cosine(), steps: 10),
            DDPMSampler(schedule: .linear(timesteps: 50)),
        ]
        let model = RecordingModel()
        func generators(_ items: Range<Int>) -> [RandomGenerator] { items.map { RandomGenerator(seed: 100 + UInt64($0)) } }
        for s in samplers {
            var all = generators(0..<3)
            let batch = try s.sample(shape: [3, 1, 3, 3], model: { model($0, $1) }, itemGenerators: &all)
            var alone: [Float] = []
            for i in 0..<3 {
                var one = generators(i..<(i + 1))
                alone += try s.sample(shape: [1, 1, 3, 3], model: { model($0, $1) }, itemGenerators: &one).scalars
            }
            #expect(zip(batch.scalars, alone).allSatisfy { abs($0 - $1) <= 1e-6 }, "\(type(of: s))")
            var other = generators(5..<8)
            let moved = try s.sample(shape: [3, 1, 3, 3], model: { model($0, $1) }, itemGenerators: &other)
            #expect(zip(batch.scalars, moved.scalars).contains { abs($0 - $1) > 0.01 })
        }
        // x_T alone: item i is randomNormal of one item from generator i.
        var gens = generators(0..<2)
        let noise = Tensor.randomNormal([2, 2, 2], itemGenerators: &gens)
        var g1 = RandomGenerator(seed: 101)
        #expect(Array(noise.scalars[4..<8]) == Tensor.randomNormal([1, 2, 2], using: &g1).scalars)
        var custom = generators(0..<2)
        #expect(try OneGeneratorDDIM().sample(shape: [2, 1, 3, 3], model: { model($0, $1) }, itemGenerators: &custom).isFinite)
    }

    @Test func evaluationCountsAndSteps() {
        #expect(DDIMSampler(schedule: .linear(), steps: 250, eta: 1).networkEvaluations == 250)
        #expect(DDPMSampler(schedule: .linear()).networkEvaluations == 1000)
        let dpm = DPMSolverPlusPlus2M(schedule: .linear(), steps: 20)
        #expect(dpm.networkEvaluations == 20 && dpm.timesteps.first == 999 && dpm.timesteps.suffix(2) == [0, -1])
        #expect(dpm.lambda(-1) == .infinity && dpm.lambda(0) > dpm.lambda(999))
        let custom = DDIMSampler(schedule: .linear(), timesteps: [900, 500, 100, -1], eta: 0)
        #expect(custom.networkEvaluations == 3 && custom.sigma(from: 500, to: 100) == 0)
        #expect(DDIMSampler(schedule: .linear(), steps: 10, eta: 1).sigma(from: 899, to: 799) > 0)
    }

    @Test func modelErrorsPropagate() {
        struct Boom: Error {}
        var rng = RandomGenerator(seed: 0)
        #expect(throws: Boom.self) {
            try DDIMSampler(schedule: .linear(), steps: 5).sample(shape: [1, 1, 2, 2], model: { _, _ in throw Boom() }, using: &rng)
        }
    }

    @Test func badTimestepListTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = DDIMSampler(schedule: .linear(), timesteps: [500, 600, -1])
        }
    }
}
