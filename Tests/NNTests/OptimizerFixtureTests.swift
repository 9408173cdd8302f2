import Foundation
import Tensor
import Testing
@testable import NN

/// 10 AdamW steps with warm-up and clipping, and the EMA trajectory, against PyTorch + ema-pytorch
/// (Tests/NNTests/Fixtures/adamw_ema.json from scripts/make_nn_fixtures.py).
@Suite struct OptimizerFixtureTests {
    struct Fixture {
        let json: [String: Any]
        init() throws {
            let url = try #require(Bundle.module.url(forResource: "adamw_ema", withExtension: "json", subdirectory: "Fixtures"))
            json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        }
        static func tensor(_ entry: Any?) throws -> Tensor {
            let e = try #require(entry as? [String: Any])
            let shape = try #require(e["shape"] as? [Int]), data = try #require(e["data"] as? [Double])
            return Tensor(data.map(Float.init), shape: Shape(shape))
        }
        func floats(_ key: String) throws -> [Float] { try #require(json[key] as? [Double]).map(Float.init) }
    }

    @Test func adamWWarmupClippingAndEMAMatchPyTorch() throws {
        let fx = try Fixture()
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 0)
        let l0 = Linear(store.builder.scope("0"), inputDimensions: 5, outputDimensions: 7, rng: &rng)
        let ln = LayerNorm(store.builder.scope("2"), dimensions: 7)
        let l3 = Linear(store.builder.scope("3"), inputDimensions: 7, outputDimensions: 3, rng: &rng)
        let params0 = try #require(fx.json["params0"] as? [String: Any])
        for p in store.parameters { store.setValue(p, try Fixture.tensor(params0[p.name])) }
        let x = Tensor(try fx.floats("x"), shape: [6, 5]), y = Tensor(try fx.floats("y"), shape: [6, 3])
        let base = Float(try #require(fx.json["lr"] as? Double)), warmup = try #require(fx.json["warmup"] as? Int)
        let opt = AdamW(store: store, learningRate: base, beta1: 0.99, beta2: 0.99, eps: 1e-8, weightDecay: 0.03)
        let ema = ExponentialMovingAverage(online: store, beta: 0.9)
        ema.updateAfterStep = try #require(fx.json["ema_update_after_step"] as? Int)
        let schedule = LearningRateSchedule.constant(warmup: warmup)
        let steps = try #require(fx.json["steps"] as? [[String: Any]])
        #expect(steps.count == 10)
        for (i, step) in steps.enumerated() {
            store.zeroGrad()
            let tape = Tape()
            let out = l3(ln(Functional.gelu(l0(Variable(x), tape: tape), tape: tape), tape: tape), tape: tape)
            let loss = Functional.mseLoss(out, target: y, tape: tape)
            tape.backward(from: loss)
            let expectedLoss = Float(try #require(step["loss"] as? Double))
            #expect(abs(loss.value.item - expectedLoss) <= 1e-5 * abs(expectedLoss), "step \(i + 1) loss")
            let norm = clipGradientNorm(store, maxNorm: 1)
            let expectedNorm = Float(try #require(step["grad_norm"] as? Double))
            #expect(abs(norm - expectedNorm) <= 1e-5 * expectedNorm, "step \(i + 1) grad norm")
            opt.learningRate = schedule.rate(base: base, step: i)   // the reference's LambdaLR count
            opt.update()
            ema.update()
            let params = try #require(step["params"] as? [String: Any]), emaParams = try #require(step["ema"] as? [String: Any])
            for p in store.parameters {
                let want = try Fixture.tensor(params[p.name])
                let got = store.value(p)
                #expect(got.maxAbsDifference(want) <= 1e-5 * max(want.maxAbs(), 1e-3), "step \(i + 1) \(p.name)")
                let wantEMA = try Fixture.tensor(emaParams[p.name])
                let gotEMA = ema.shadow.value(try #require(ema.shadow.parameter(named: p.name)))
                #expect(gotEMA.maxAbsDifference(wantEMA) <= 1e-5 * max(wantEMA.maxAbs(), 1e-3), "step \(i + 1) ema \(p.name)")
            }
        }
    }

    /// Clipping inside the AdamW pass gives bit-identical weights to clipping the gradients first.
    @Test func clippingInsideTheUpdateMatchesClippingInPlace() {
        func store() -> ParameterStore {
            let s = ParameterStore()
            var rng = RandomGenerator(seed: 3)
            _ = s.add("w", Tensor.randomNormal([1000], using: &rng))
            _ = s.add("b", Tensor.randomNormal([37], using: &rng))
            let g = s.gradients.mutableBase
            for i in 0..<s.count { g[i] = rng.nextNormal() * 3 }
            return s
        }
        let inPlace = store(), fused = store()
        let a = AdamW(store: inPlace, learningRate: 0.1), b = AdamW(store: fused, learningRate: 0.1)
        let norm = clipGradientNorm(inPlace, maxNorm: 1)
        a.update()
        let scale = clippingScale(norm: gradientNorm(fused), maxNorm: 1)
        #expect(norm > 1 && scale < 1)
        b.update(gradientScale: scale)
        let x = Array(UnsafeBufferPointer(start: inPlace.values.base, count: inPlace.count))
        let y = Array(UnsafeBufferPointer(start: fused.values.base, count: fused.count))
        #expect(x == y)
        #expect(clippingScale(norm: 0.5, maxNorm: 1) == 1)
    }

    @Test func emaDecayFollowsTheWarmupRule() {
        let store = ParameterStore()
        store.add("w", .zeros([1]))
        let ema = ExponentialMovingAverage(online: store, beta: 0.999)
        #expect(ema.decay(at: 1) == nil && ema.decay(at: 101) == nil)
        #expect(abs(ema.decay(at: 102)! - Float(1 - pow(2.0, -2.0 / 3))) < 1e-7)
        #expect(abs(ema.decay(at: 1101)! - Float(1 - pow(1001.0, -2.0 / 3))) < 1e-6)
        #expect(ema.decay(at: 10_000_000) == 0.999)
    }

    @Test func learningRateSchedules() {
        let c = LearningRateSchedule.constant(warmup: 5000)
        #expect(c.rate(base: 1e-5, step: 0) == 0)        // the first update (LambdaLR's count)
        #expect(c.rate(base: 1e-5, step: 2500) == 5e-6)
        #expect(c.rate(base: 1e-5, step: 9000) == 1e-5)
        #expect(LearningRateSchedule.constant(warmup: 0).rate(base: 2e-4, step: 1) == 2e-4)
        let cos = LearningRateSchedule.cosine(warmup: 10, total: 110, minimum: 0)
        #expect(abs(cos.rate(base: 1, step: 60) - 0.5) < 1e-6)
        #expect(cos.rate(base: 1, step: 110) < 1e-6)
    }

    /// The fused AdamW + EMA pass gives exactly what AdamW then `ema.update()` give, through the
    /// EMA's copying warm-up and its averaging, with a frozen parameter in the middle of the arena.
    @Test func fusedEMAUpdateEqualsSeparateUpdates() {
        func make() -> (ParameterStore, AdamW, ExponentialMovingAverage) {
            let store = ParameterStore()
            var rng = RandomGenerator(seed: 3)
            for (i, n) in [37, 5, 100, 16].enumerated() { _ = store.add("p\(i)", Tensor.randomNormal([n], using: &rng)) }
            store.freeze { $0 == "p1" }
            let ema = ExponentialMovingAverage(online: store, beta: 0.99)
            ema.updateAfterStep = 2
            return (store, AdamW(store: store, learningRate: 1e-2), ema)
        }
        let (a, optA, emaA) = make(), (b, optB, emaB) = make()
        var rng = RandomGenerator(seed: 4)
        for step in 0..<8 {
            let g = Tensor.randomNormal([a.count], using: &rng)
            g.scalars.withUnsafeBufferPointer { src in
                a.gradients.mutableBase.update(from: src.baseAddress!, count: a.count)
                b.gradients.mutableBase.update(from: src.baseAddress!, count: b.count)
            }
            if step == 5 { a.setValue(a.parameters[1], Tensor(repeating: 0.5, shape: [5])); b.setValue(b.parameters[1], Tensor(repeating: 0.5, shape: [5])) }
            optA.update(gradientScale: 0.7)
            emaA.update()
            optB.update(gradientScale: 0.7, averagingInto: emaB)
            #expect(Self.values(a) == Self.values(b), "online weights differ at step \(step)")
            #expect(Self.values(emaA.shadow) == Self.values(emaB.shadow), "EMA differs at step \(step)")
            #expect(emaA.updates == emaB.updates)
        }
        #expect(b.value(b.parameters[1]).scalars == [Float](repeating: 0.5, count: 5))    // frozen: AdamW left it
    }

    static func values(_ store: ParameterStore) -> [Float] { Array(UnsafeBufferPointer(start: store.values.base, count: store.count)) }
}
