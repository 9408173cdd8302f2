import Tensor
import Testing
@testable import NN

/// Compares every parameter gradient (and optionally input gradients) from the tape with
/// central finite differences of the loss. Returns the worst relative error per parameter.
func checkGradients(_ store: ParameterStore, h: Float = 1e-2, maxElementsPerParameter: Int = 40,
                    _ loss: (Tape?) -> Variable) -> [String: Float] {
    store.zeroGrad()
    let tape = Tape()
    let l = loss(tape)
    tape.backward(from: l)
    var worst: [String: Float] = [:]
    for p in store.parameters {
        let analytic = store.gradient(p)
        let base = store.pointer(p)
        var maxErr: Float = 0
        let scale = max(analytic.maxAbs(), 1e-3)
        let stride = max(1, p.count / maxElementsPerParameter)
        for i in Swift.stride(from: 0, to: p.count, by: stride) {
            let orig = base[i]
            base[i] = orig + h
            let fp = Double(loss(nil).value.item)
            base[i] = orig - h
            let fm = Double(loss(nil).value.item)
            base[i] = orig
            let num = Float((fp - fm) / (2 * Double(h)))
            maxErr = max(maxErr, abs(num - analytic[flat: i]) / scale)
        }
        worst[p.name] = maxErr
    }
    return worst
}

@Suite struct GradientCheckTests {
    @Test func linearAndLayerNormAndMLP() {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 1)
        let lin = Linear(store.builder.scope("lin"), inputDimensions: 6, outputDimensions: 5, initializer: .kaimingUniform, rng: &rng)
        let ln = LayerNorm(store.builder.scope("ln"), dimensions: 5)
        store.setValue(ln.weight, .randomNormal([5], mean: 1, std: 0.3, using: &rng))
        let mlp = MLP(store.builder.scope("mlp"), dimensions: 5, hiddenDimensions: 12, rng: &rng)
        store.setValue(mlp.fc1.weight, .randomNormal([12, 5], std: 0.5, using: &rng))
        store.setValue(mlp.fc2.weight, .randomNormal([5, 12], std: 0.5, using: &rng))
        let x = Tensor.randomNormal([2, 3, 6], using: &rng)
        let target = Tensor.randomNormal([2, 3, 5], using: &rng)
        let errs = checkGradients(store) { tape in
            let y = mlp(ln(lin(Variable(x), tape: tape), tape: tape), tape: tape)
            return Functional.mseLoss(y, target: target, tape: tape)
        }
        #expect(errs.count == 8)
        for (name, e) in errs { #expect(e < 5e-3, "\(name): \(e)") }
    }

    @Test func attentionBlockWithInputGradient() {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 2)
        let attn = MultiHeadAttention(store.builder.scope("attn"), dimensions: 8, heads: 2, qkvBias: true, rng: &rng)
        store.setValue(attn.qkv.weight, .randomNormal([24, 8], std: 0.4, using: &rng))
        store.setValue(attn.proj.weight, .randomNormal([8, 8], std: 0.4, using: &rng))
        store.setValue(attn.qBias!, .randomNormal([8], std: 0.4, using: &rng))
        store.setValue(attn.vBias!, .randomNormal([8], std: 0.4, using: &rng))
        let x = Tensor.randomNormal([2, 5, 8], using: &rng)
        let target = Tensor.randomNormal([2, 5, 8], using: &rng)
        let errs = checkGradients(store) { tape in
            Functional.mseLoss(attn(Variable(x), tape: tape), target: target, tape: tape)
        }
        #expect(store.parameters.map(\.name) == ["attn.qkv.weight", "attn.q_bias", "attn.v_bias", "attn.proj.weight", "attn.proj.bias"])
        for (name, e) in errs { #expect(e < 5e-3, "\(name): \(e)") }
        // Input gradient through a leaf.
        let tape = Tape()
        let leaf = tape.leaf(x)
        let l = Functional.mseLoss(attn(leaf, tape: tape), target: target, tape: tape)
        let g = tape.backward(from: l, keeping: [leaf])[0]!
        let h: Float = 1e-2
        for i in [0, 17, 33, 79] {
            var xp = x, xm = x
            xp[flat: i] += h; xm[flat: i] -= h
            let fp = Functional.mseLoss(attn(Variable(xp), tape: nil), target: target, tape: nil).value.item
            let fm = Functional.mseLoss(attn(Variable(xm), tape: nil), target: target, tape: nil).value.item
            #expect(abs((fp - fm) / (2 * h) - g[flat: i]) < 5e-3 * max(g.maxAbs(), 1e-3))
        }
    }

    /// A whole miniature masked ViT: patch embedding of visible patches, time token + positions,
    /// a pre-norm block, a long skip (concat + linear), final norm and head, masked MSE.
    @Test func wholeSmallNetworkEndToEnd() {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 3)
        let d = 8, p = 2
        let b = store.builder
        let embed = PatchEmbedding(b.scope("patch_embed"), channels: 3, dimensions: d, patchSize: p, rng: &rng)
        let pos = b.parameter("pos_embed", .truncatedNormal([1, 1 + 9, d], std: 0.5, using: &rng))
        let n1 = LayerNorm(b.scope("norm1"), dimensions: d)
        let attn = MultiHeadAttention(b.scope("attn"), dimensions: d, heads: 2, rng: &rng)
        let n2 = LayerNorm(b.scope("norm2"), dimensions: d)
        let mlp = MLP(b.scope("mlp"), dimensions: d, hiddenDimensions: 4 * d, rng: &rng)
        let skip = Linear(b.scope("skip_linear"), inputDimensions: 2 * d, outputDimensions: d, rng: &rng)
        let norm = LayerNorm(b.scope("norm"), dimensions: d)
        let head = Linear(b.scope("head"), inputDimensions: d, outputDimensions: p * p * 3, rng: &rng)
        for q in store.parameters where q.name.hasSuffix("weight") && q.shape.rank == 2 {
            store.setValue(q, .randomNormal(q.shape, std: 0.4, using: &rng))
        }
        let x = Tensor.randomNormal([2, 3, 6, 6], using: &rng)
        let time = sinusoidalTimeEmbedding([3, 500], dimensions: d)
        let visible = [[0, 4, 8, 5], [1, 2, 3, 7]].map { $0.sorted() }
        let target = Tensor.randomNormal([2, 4, p * p * 3], using: &rng)
        let errs = checkGradients(store) { tape in
            let tok = embed(x, patches: visible, tape: tape)
            var h = Functional.prependTokenAndAddPositions(tok, first: time, position: pos, positions: visible, store: store, tape: tape)
            let s = h
            h = Functional.add(h, attn(n1(h, tape: tape), tape: tape), tape: tape)
            h = Functional.add(h, mlp(n2(h, tape: tape), tape: tape), tape: tape)
            h = skip(Functional.concatLastAxis(h, s, tape: tape), tape: tape)
            h = head(norm(Functional.dropLeadingTokens(h, tape: tape), tape: tape), tape: tape)
            return Functional.mseLoss(h, target: target, tape: tape)
        }
        #expect(errs.count == store.parameters.count)
        for (name, e) in errs { #expect(e < 1e-2, "\(name): \(e)") }
        // Rows of the position embedding for dropped patches get no gradient.
        let gpos = store.gradient(pos)
        #expect(gpos[0, 1 + 6, 0] == 0)
        #expect(gpos[0, 1 + 4, 0] != 0)
    }

    @Test func frozenParametersGetNoGradientOrUpdate() {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 4)
        let a = Linear(store.builder.scope("a"), inputDimensions: 3, outputDimensions: 3, rng: &rng)
        let c = Linear(store.builder.scope("c"), inputDimensions: 3, outputDimensions: 2, rng: &rng)
        store.freeze { $0.hasPrefix("a.") }
        let before = store.value(a.weight)
        let opt = AdamW(store: store, learningRate: 0.1)
        let tape = Tape()
        let x = Tensor.randomNormal([4, 3], using: &rng)
        let l = Functional.mseLoss(c(a(Variable(x), tape: tape), tape: tape), target: .zeros([4, 2]), tape: tape)
        tape.backward(from: l)
        #expect(store.gradient(a.weight).maxAbs() == 0)
        #expect(store.gradient(c.weight).maxAbs() > 0)
        opt.update()
        #expect(store.value(a.weight).scalars == before.scalars)
    }
}
