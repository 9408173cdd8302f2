import Tensor
import Testing
@testable import NN

/// The fused primitives (linear over concatenated parts, LayerNorm fused into a linear) against the
/// unfused composition they replace: same outputs, same parameter and input gradients.
@Suite struct FusedLinearTests {
    /// Runs `body` on a fresh tape with a loss `sum(y * probe)` and returns the output, every
    /// parameter gradient (arena order) and the input gradients.
    func run(_ store: ParameterStore, inputs: [Tensor], probe: Tensor,
             _ body: ([Variable], Tape) -> Variable) -> (y: [Float], params: [Float], inputs: [[Float]]) {
        store.zeroGrad()
        let tape = Tape()
        let xs = inputs.map { tape.leaf($0) }
        let y = body(xs, tape)
        let loss = Tape.record(Tensor(scalar: (y.value * probe).sum()), inputs: [y], on: tape) { dy, tape in
            tape.accumulate(probe * dy.item, into: y)
        }
        let grads = tape.backward(from: loss, keeping: xs)
        return (y.value.scalars, Array(UnsafeBufferPointer(start: store.gradients.base, count: store.count)),
                grads.map { $0?.scalars ?? [] })
    }

    func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        let scale = max(a.map(abs).max() ?? 0, 1e-6)
        return zip(a, b).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    /// A backward pass assigns the gradients that hold nothing yet (a cleared weight gradient, a
    /// fresh input gradient: GEMM beta 0) and accumulates the rest; the result must not depend
    /// on what the arena held before `zeroGrad`, and must equal a store that was never used.
    @Test func assignedGradientsIgnoreWhatTheArenaHeldBefore() {
        func build() -> (ParameterStore, Linear, Linear) {
            let store = ParameterStore()
            var rng = RandomGenerator(seed: 8)
            let fc1 = Linear(store.builder.scope("fc1"), inputDimensions: 24, outputDimensions: 40, rng: &rng)
            let fc2 = Linear(store.builder.scope("fc2"), inputDimensions: 40, outputDimensions: 24, rng: &rng)
            return (store, fc1, fc2)
        }
        var rng = RandomGenerator(seed: 9)
        let x = Tensor.randomNormal([3, 7, 24], using: &rng), probe = Tensor.randomNormal([3, 7, 24], using: &rng)
        func body(_ fc1: Linear, _ fc2: Linear) -> ([Variable], Tape) -> Variable {
            { xs, tape in
                // x feeds fc1 and the residual: its gradient is assigned once, then accumulated.
                let h = Functional.gelu(fc1(xs[0], tape: tape), tape: tape)
                return Functional.add(fc2(h, tape: tape), xs[0], tape: tape)
            }
        }
        let (clean, c1, c2) = build()
        let reference = run(clean, inputs: [x], probe: probe, body(c1, c2))
        let (used, u1, u2) = build()
        for i in 0..<used.count { used.gradients.mutableBase[i] = .nan }             // a previous step's leftovers
        let again = run(used, inputs: [x], probe: probe, body(u1, u2))
        #expect(again.params == reference.params && again.inputs == reference.inputs)
        #expect(!reference.params.contains { $0.isNaN } && reference.params.contains { $0 != 0 })
        // A second step accumulates nothing from the first.
        let twice = run(used, inputs: [x], probe: probe, body(u1, u2))
        #expect(twice.params == reference.params)
    }

    @Test(arguments: [(2, 17, 32, 32, 32), (3, 5, 7, 9, 4), (16, 33, 64, 64, 64)])
    func linearOverConcatenatedPartsEqualsLinearOfTheConcatenation(_ dims: (Int, Int, Int, Int, Int)) {
        let (b, t, d1, d2, out) = dims
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 5)
        let lin = Linear(store.builder.scope("skip"), inputDimensions: d1 + d2, outputDimensions: out,
                         initializer: .kaimingUniform, rng: &rng)
        let x1 = Tensor.randomNormal([b, t, d1], using: &rng), x2 = Tensor.randomNormal([b, t, d2], using: &rng)
        let probe = Tensor.randomNormal([b, t, out], using: &rng)
        let fused = run(store, inputs: [x1, x2], probe: probe) { xs, tape in lin(concatenating: xs, tape: tape) }
        let plain = run(store, inputs: [x1, x2], probe: probe) { xs, tape in
            lin(Functional.concatLastAxis(xs[0], xs[1], tape: tape), tape: tape)
        }
        #expect(maxDifference(fused.y, plain.y) < 1e-5)
        #expect(maxDifference(fused.params, plain.params) < 1e-5)
        #expect(maxDifference(fused.inputs[0], plain.inputs[0]) < 1e-5)
        #expect(maxDifference(fused.inputs[1], plain.inputs[1]) < 1e-5)
    }

    @Test(arguments: [(2, 17, 32, 96, true), (3, 5, 6, 11, false), (16, 33, 64, 256, true)])
    func layerNormFusedIntoLinearEqualsTheComposition(_ dims: (Int, Int, Int, Int, Bool)) {
        let (b, t, d, out, hasBias) = dims
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 6)
        let norm = LayerNorm(store.builder.scope("norm"), dimensions: d)
        let lin = Linear(store.builder.scope("fc"), inputDimensions: d, outputDimensions: out, bias: hasBias,
                         initializer: .kaimingUniform, rng: &rng)
        // Non-trivial affine parameters so their gradients are exercised.
        store.setValue(norm.weight, Tensor.randomUniform([d], low: 0.5, high: 1.5, using: &rng))
        store.setValue(norm.bias, Tensor.randomNormal([d], using: &rng))
        let x = Tensor.randomNormal([b, t, d], using: &rng) * 3 + 1
        let probe = Tensor.randomNormal([b, t, out], using: &rng)
        let fused = run(store, inputs: [x], probe: probe) { xs, tape in lin(xs[0], normalizedBy: norm, tape: tape) }
        let plain = run(store, inputs: [x], probe: probe) { xs, tape in lin(norm(xs[0], tape: tape), tape: tape) }
        #expect(fused.y == plain.y)                                   // the same kernels in the same order
        #expect(maxDifference(fused.params, plain.params) < 1e-5)
        #expect(maxDifference(fused.inputs[0], plain.inputs[0]) < 1e-5)
        // Inference (no tape) gives the same output.
        let inference = lin(Variable(x), normalizedBy: norm, tape: nil).value.scalars
        #expect(inference == fused.y)
    }
}
