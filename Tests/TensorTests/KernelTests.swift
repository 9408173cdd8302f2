import CKernels
import Foundation
import Testing
@testable import Tensor

@Suite struct KernelTests {
    @Test(arguments: [(1, 1), (3, 5), (7, 16), (5, 33), (2, 257)])
    func softmaxMatchesNaive(rows: Int, cols: Int) {
        var rng = RandomGenerator(seed: UInt64(rows * 1000 + cols))
        let x = Tensor.randomNormal([rows, cols], std: 4, using: &rng)
        var ref = Tensor.zeros(x.shape)
        let rp = ref.mutablePointer()
        x.withUnsafeBufferPointer { Naive.softmax(x: $0.baseAddress!, y: rp, rows: rows, cols: cols) }
        #expect(relativeError(x.softmax(), ref) < 1e-6)
    }

    @Test func softmaxBackwardMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 11)
        let (rows, cols) = (3, 21)
        let x = Tensor.randomNormal([rows, cols], using: &rng)
        let w = Tensor.randomNormal([rows, cols], using: &rng)
        let y = x.softmax()
        var dx = Tensor.randomNormal([rows, cols], using: &rng)   // accumulates on top of this
        let before = dx
        let dxp = dx.mutablePointer()
        Kernels.softmaxBackward(dy: w.storage.base, y: y.storage.base, dx: dxp, rows: rows, cols: cols)
        let num = numericGradient(x) { weightedSum($0.softmax(), w) }
        #expect(relativeError(dx - before, num) < 2e-3)
    }

    @Test(arguments: [(1, 1), (4, 10), (5, 16), (3, 77), (9, 512)])
    func layerNormMatchesNaive(rows: Int, cols: Int) {
        var rng = RandomGenerator(seed: UInt64(rows * 100 + cols))
        let x = Tensor.randomNormal([rows, cols], mean: 3, std: 2, using: &rng)
        let w = Tensor.randomNormal([cols], using: &rng), b = Tensor.randomNormal([cols], using: &rng)
        var ref = Tensor.zeros(x.shape)
        let rp = ref.mutablePointer()
        Naive.layerNorm(x: x.storage.base, weight: w.storage.base, bias: b.storage.base, y: rp, rows: rows, cols: cols, eps: 1e-5)
        #expect(relativeError(x.layerNorm(weight: w, bias: b), ref) < 2e-6)
    }

    @Test func layerNormBackwardMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 12)
        let (rows, cols) = (4, 19)
        let x = Tensor.randomNormal([rows, cols], using: &rng)
        let w = Tensor.randomNormal([cols], using: &rng), b = Tensor.randomNormal([cols], using: &rng)
        let g = Tensor.randomNormal([rows, cols], using: &rng)
        var y = Tensor.zeros(x.shape), mean = Tensor.zeros([rows]), rstd = Tensor.zeros([rows])
        Kernels.layerNormForward(x: x.storage.base, weight: w.storage.base, bias: b.storage.base, y: y.mutablePointer(),
                                 mean: mean.mutablePointer(), rstd: rstd.mutablePointer(), rows: rows, cols: cols, eps: 1e-5)
        var dx = Tensor.zeros(x.shape), dw = Tensor.ones([cols]), db = Tensor.ones([cols])
        Kernels.layerNormBackward(dy: g.storage.base, x: x.storage.base, weight: w.storage.base, mean: mean.storage.base,
                                  rstd: rstd.storage.base, dx: dx.mutablePointer(), dweight: dw.mutablePointer(),
                                  dbias: db.mutablePointer(), rows: rows, cols: cols)
        #expect(relativeError(dx, numericGradient(x) { weightedSum($0.layerNorm(weight: w, bias: b), g) }) < 2e-3)
        #expect(relativeError(dw - 1, numericGradient(w) { weightedSum(x.layerNorm(weight: $0, bias: b), g) }) < 2e-3)
        #expect(relativeError(db - 1, numericGradient(b) { weightedSum(x.layerNorm(weight: w, bias: $0), g) }) < 2e-3)
    }

    @Test func geluMatchesNaiveAndFiniteDifferences() {
        var rng = RandomGenerator(seed: 13)
        let x = Tensor.randomUniform([1037], low: -7, high: 7, using: &rng)
        var ref = Tensor.zeros(x.shape)
        Naive.gelu(x: x.storage.base, y: ref.mutablePointer(), count: x.count)
        #expect(x.gelu().maxAbsDifference(ref) < 1e-6)
        let small = Tensor.randomUniform([53], low: -4, high: 4, using: &rng)
        let g = Tensor.randomNormal([53], using: &rng)
        var dx = Tensor.zeros([53])
        Kernels.geluBackward(dy: g.storage.base, x: small.storage.base, dx: dx.mutablePointer(), count: 53)
        #expect(relativeError(dx, numericGradient(small) { weightedSum($0.gelu(), g) }) < 2e-3)
    }

    /// The AVX2 C kernels (the path of `geluForward`/`geluBackward` on this CPU) and the portable
    /// Swift ones agree to float rounding, including the scalar tails, far tails and signed zero.
    @Test func geluCKernelMatchesPortable() throws {
        try #require(Kernels.usesAVX2Kernels, "no AVX2 + FMA on this CPU: only the portable path runs")
        var rng = RandomGenerator(seed: 21)
        var values = Tensor.randomUniform([1037], low: -9, high: 9, using: &rng).scalars
        values[0...5] = [0, -0, 1e-30, -1e-30, 40, -40]
        let x = Tensor(values), dy = Tensor.randomNormal([1037], using: &rng)
        var c = Tensor.zeros([1037]), portable = Tensor.zeros([1037])
        maskdm_gelu_forward_avx2(x.storage.base, c.mutablePointer(), 1037)
        Kernels.geluForwardPortable(x: x.storage.base, y: portable.mutablePointer(), count: 1037)
        #expect(c.maxAbsDifference(portable) < 2e-6)
        var dc = Tensor.ones([1037]), dp = Tensor.ones([1037])   // accumulates onto 1
        maskdm_gelu_backward_avx2(dy.storage.base, x.storage.base, dc.mutablePointer(), 1037, 1)
        Kernels.geluBackwardPortable(dy: dy.storage.base, x: x.storage.base, dx: dp.mutablePointer(), count: 1037)
        #expect(dc.maxAbsDifference(dp) < 2e-6)
        #expect(c.scalars[4] == 40 && c.scalars[5] == 0 && dc.scalars[4] == 1 + dy.scalars[4])
    }

    /// The 16-lane GELU kernels give the 8-lane ones' values bit for bit, for every length up to
    /// 70 (16-lane blocks, an 8-lane block, the scalar tail) and across special values.
    @Test func geluAVX512KernelsEqualTheAVX2Ones() throws {
        try #require(Gemm.isaSupported(.avx512), "no AVX-512 on this CPU: the 16-lane GELU never runs")
        var rng = RandomGenerator(seed: 23)
        var values = Tensor.randomUniform([1037], low: -12, high: 12, using: &rng).scalars
        values[0...8] = [0, -0, 1e-30, -1e-30, 40, -40, .infinity, -.infinity, .nan]
        let x = Tensor(values), dy = Tensor.randomNormal([1037], using: &rng)
        func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }
        for (start, length) in [(0, 1037)] + (1...70).map({ (($0 * 7) % 40, $0) }) {
            var narrow = Tensor.zeros([length]), wide = Tensor.zeros([length])
            maskdm_gelu_forward_avx2(x.storage.base + start, narrow.mutablePointer(), length)
            maskdm_gelu_forward_avx512(x.storage.base + start, wide.mutablePointer(), length)
            #expect(bits(narrow) == bits(wide), "forward, \(length) values from \(start)")
            for accumulate: Int32 in [0, 1] {
                var dn = Tensor(repeating: 0.25, shape: [length]), dw = Tensor(repeating: 0.25, shape: [length])
                maskdm_gelu_backward_avx2(dy.storage.base + start, x.storage.base + start, dn.mutablePointer(), length, accumulate)
                maskdm_gelu_backward_avx512(dy.storage.base + start, x.storage.base + start, dw.mutablePointer(), length, accumulate)
                #expect(bits(dn) == bits(dw), "backward (accumulate \(accumulate)), \(length) values from \(start)")
            }
        }
    }

    /// `accumulate: false` assigns: over a NaN-filled dx (C kernel chunks and the portable path,
    /// scalar tails included) it gives exactly what accumulating into zeros gives.
    @Test func geluBackwardAssignEqualsAccumulatingIntoZeros() {
        var rng = RandomGenerator(seed: 22)
        let n = 2 * 8192 + 37                                   // several chunks and a ragged tail
        let x = Tensor.randomUniform([n], low: -6, high: 6, using: &rng), dy = Tensor.randomNormal([n], using: &rng)
        var zeros = Tensor.zeros([n]), nan = Tensor(repeating: .nan, shape: [n])
        Kernels.geluBackward(dy: dy.storage.base, x: x.storage.base, dx: zeros.mutablePointer(), count: n)
        Kernels.geluBackward(dy: dy.storage.base, x: x.storage.base, dx: nan.mutablePointer(), count: n, accumulate: false)
        #expect(nan.scalars == zeros.scalars)
        var portableZeros = Tensor.zeros([53]), portableNaN = Tensor(repeating: .nan, shape: [53])
        Kernels.geluBackwardPortable(dy: dy.storage.base, x: x.storage.base, dx: portableZeros.mutablePointer(), count: 53)
        Kernels.geluBackwardPortable(dy: dy.storage.base, x: x.storage.base, dx: portableNaN.mutablePointer(), count: 53,
                                     accumulate: false)
        #expect(portableNaN.scalars == portableZeros.scalars)
        #expect(!portableNaN.scalars.contains { $0.isNaN } && !nan.scalars.contains { $0.isNaN })
    }

    /// The AVX2 LayerNorm rows (this CPU's path) agree with the portable Swift ones (forward,
    /// input gradient) and with a Double sum (parameter gradients), on ragged and model widths.
    @Test(arguments: [70, 256])
    func layerNormCKernelsMatchPortable(cols: Int) throws {
        try #require(Kernels.usesAVX2Kernels, "no AVX2 + FMA on this CPU: only the portable path runs")
        let rows = 37
        var rng = RandomGenerator(seed: UInt64(cols))
        let x = Tensor.randomNormal([rows, cols], mean: 0.3, std: 2, using: &rng), dy = Tensor.randomNormal([rows, cols], using: &rng)
        let w = Tensor.randomNormal([cols], using: &rng), b = Tensor.randomNormal([cols], using: &rng)
        var (yc, yp) = (Tensor.zeros([rows, cols]), Tensor.zeros([rows, cols]))
        var (mc, rc, mp, rp) = (Tensor.zeros([rows]), Tensor.zeros([rows]), Tensor.zeros([rows]), Tensor.zeros([rows]))
        maskdm_layernorm_forward_avx2(x.storage.base, w.storage.base, b.storage.base, yc.mutablePointer(), mc.mutablePointer(),
                                      rc.mutablePointer(), rows, Int32(cols), 1e-5)
        Kernels.layerNormForwardPortable(x.storage.base, w.storage.base, b.storage.base, yp.mutablePointer(), mp.mutablePointer(),
                                         rp.mutablePointer(), rows: 0..<rows, cols: cols, eps: 1e-5)
        #expect(yc.maxAbsDifference(yp) < 1e-5 && mc.maxAbsDifference(mp) < 1e-6 && rc.maxAbsDifference(rp) < 1e-6)
        var (dxc, dxp) = (Tensor.ones([rows, cols]), Tensor.ones([rows, cols]))
        maskdm_layernorm_backward_input_avx2(dy.storage.base, x.storage.base, w.storage.base, mp.storage.base, rp.storage.base,
                                             dxc.mutablePointer(), rows, Int32(cols))
        Kernels.layerNormBackwardInputPortable(dy.storage.base, x.storage.base, w.storage.base, mp.storage.base, rp.storage.base,
                                               dxp.mutablePointer(), rows: 0..<rows, cols: cols)
        #expect(dxc.maxAbsDifference(dxp) < 1e-5)
        // Parameter gradients of columns 3..<cols (a ragged start and end), onto ones.
        var (dw, db) = (Tensor.ones([cols]), Tensor.ones([cols]))
        maskdm_layernorm_backward_params_avx2(dy.storage.base, x.storage.base, mp.storage.base, rp.storage.base,
                                              dw.mutablePointer(), db.mutablePointer(), rows, Int32(cols), 3, Int32(cols))
        for j in 0..<cols {
            var (sw, sb) = (1.0, 1.0)
            if j >= 3 {
                for r in 0..<rows {
                    let g = Double(dy[flat: r * cols + j])
                    sw += g * Double(x[flat: r * cols + j] - mp[r]) * Double(rp[r])
                    sb += g
                }
            }
            #expect(abs(Double(dw[j]) - sw) < 1e-4 && abs(Double(db[j]) - sb) < 1e-4, "column \(j)")
        }
    }

    /// Shapes include multi-block ones (T = 600 gives two query blocks) and ragged head sizes.
    @Test(arguments: [(1, 1, 1, 4), (2, 3, 17, 8), (1, 2, 33, 64), (2, 1, 65, 5), (1, 1, 600, 4)])
    func attentionMatchesNaive(b: Int, nh: Int, t: Int, hs: Int) {
        var rng = RandomGenerator(seed: UInt64(t * 7 + hs))
        let q = Tensor.randomNormal([b, nh, t, hs], using: &rng)
        let k = Tensor.randomNormal([b, nh, t, hs], using: &rng)
        let v = Tensor.randomNormal([b, nh, t, hs], using: &rng)
        var ref = Tensor.zeros(q.shape)
        Naive.attention(q: q.storage.base, k: k.storage.base, v: v.storage.base, out: ref.mutablePointer(),
                        shape: AttentionShape(batch: b, heads: nh, tokens: t, headSize: hs))
        #expect(relativeError(Tensor.attention(q: q, k: k, v: v), ref) < 1e-5)
    }

    @Test(arguments: [(1, 2, 7, 4), (1, 1, 600, 2)])
    func attentionBackwardMatchesFiniteDifferences(b: Int, nh: Int, t: Int, hs: Int) {
        var rng = RandomGenerator(seed: 14)
        let shape: Shape = [b, nh, t, hs]
        let q = Tensor.randomNormal(shape, using: &rng), k = Tensor.randomNormal(shape, using: &rng)
        let v = Tensor.randomNormal(shape, using: &rng), g = Tensor.randomNormal(shape, using: &rng)
        let s = AttentionShape(batch: b, heads: nh, tokens: t, headSize: hs)
        var out = Tensor.zeros(shape), lse = Tensor.zeros([b, nh, t])
        var scratch = Tensor.zeros([s.scratchCount])
        let sp = scratch.mutablePointer()
        let op = out.mutablePointer()
        func operand(_ p: UnsafePointer<Float>) -> AttentionOperand { .contiguous(p, heads: nh, tokens: t, headSize: hs) }
        Kernels.attentionForward(q: operand(q.storage.base), k: operand(k.storage.base), v: operand(v.storage.base),
                                 out: operand(op), lse: lse.mutablePointer(), shape: s, scratch: sp)
        var dq = Tensor.zeros(shape), dk = Tensor.zeros(shape), dv = Tensor.zeros(shape)
        Kernels.attentionBackward(dout: operand(g.storage.base), q: operand(q.storage.base), k: operand(k.storage.base),
                                  v: operand(v.storage.base), lse: lse.storage.base, dq: operand(dq.mutablePointer()),
                                  dk: operand(dk.mutablePointer()), dv: operand(dv.mutablePointer()), shape: s, scratch: sp)
        if t > 100 {
            // Too many elements for full finite differences: check a directional derivative instead.
            let dir = Tensor.randomNormal(shape, using: &rng)
            let h: Float = 1e-2
            let f = { (qq: Tensor) in weightedSum(Tensor.attention(q: qq, k: k, v: v), g) }
            let num = (f(q + dir * h) - f(q - dir * h)) / (2 * Double(h))
            let ana = weightedSum(dq, dir)
            #expect(abs(num - ana) < 2e-3 * max(1, abs(num)))
            let fv = { (vv: Tensor) in weightedSum(Tensor.attention(q: q, k: k, v: vv), g) }
            let numv = (fv(v + dir * h) - fv(v - dir * h)) / (2 * Double(h))
            #expect(abs(numv - weightedSum(dv, dir)) < 2e-3 * max(1, abs(numv)))
            return
        }
        #expect(relativeError(dq, numericGradient(q) { weightedSum(Tensor.attention(q: $0, k: k, v: v), g) }) < 3e-3)
        #expect(relativeError(dk, numericGradient(k) { weightedSum(Tensor.attention(q: q, k: $0, v: v), g) }) < 3e-3)
        #expect(relativeError(dv, numericGradient(v) { weightedSum(Tensor.attention(q: q, k: k, v: $0), g) }) < 3e-3)
    }

    /// The one-head-at-a-time path (CPUs without a SIMD GEMM kernel) against the per-head-parallel one.
    @Test(arguments: [(2, 3, 17, 8), (1, 1, 600, 4)])
    func attentionPathsAgree(b: Int, nh: Int, t: Int, hs: Int) {
        var rng = RandomGenerator(seed: 21)
        let shape: Shape = [b, nh, t, hs]
        let q = Tensor.randomNormal(shape, using: &rng), k = Tensor.randomNormal(shape, using: &rng)
        let v = Tensor.randomNormal(shape, using: &rng), g = Tensor.randomNormal(shape, using: &rng)
        let s = AttentionShape(batch: b, heads: nh, tokens: t, headSize: hs)
        func run() -> [Tensor] {
            var out = Tensor.zeros(shape), lse = Tensor.zeros([b * nh * t]), scratch = Tensor.zeros([s.scratchCount])
            var dq = Tensor.zeros(shape), dk = Tensor.zeros(shape), dv = Tensor.zeros(shape)
            func op(_ p: UnsafePointer<Float>) -> AttentionOperand { .contiguous(p, heads: nh, tokens: t, headSize: hs) }
            let sp = scratch.mutablePointer()
            Kernels.attentionForward(q: op(q.storage.base), k: op(k.storage.base), v: op(v.storage.base), out: op(out.mutablePointer()),
                                     lse: lse.mutablePointer(), shape: s, scratch: sp)
            Kernels.attentionBackward(dout: op(g.storage.base), q: op(q.storage.base), k: op(k.storage.base), v: op(v.storage.base),
                                      lse: lse.storage.base, dq: op(dq.mutablePointer()), dk: op(dk.mutablePointer()),
                                      dv: op(dv.mutablePointer()), shape: s, scratch: sp)
            return [out, lse, dq, dk, dv]
        }
        let fast = run()
        let serial = Kernels.$forceSerialHeads.withValue(true) { run() }
        for (a, c) in zip(fast, serial) { #expect(relativeError(a, c) < 1e-5) }
    }

    @Test func attentionReadsPackedQKVAndWritesTokenMajor() {
        var rng = RandomGenerator(seed: 15)
        let (b, nh, t, hs) = (2, 3, 9, 4)
        let d = nh * hs
        let qkv = Tensor.randomNormal([b, t, 3 * d], using: &rng)
        // Reference: split and permute explicitly.
        let parts = qkv.reshaped([b, t, 3, nh, hs]).permuted([2, 0, 3, 1, 4])   // (3, B, NH, T, HS)
        let q = parts.sliced(axis: 0, 0..<1).reshaped([b, nh, t, hs])
        let k = parts.sliced(axis: 0, 1..<2).reshaped([b, nh, t, hs])
        let v = parts.sliced(axis: 0, 2..<3).reshaped([b, nh, t, hs])
        let ref = Tensor.attention(q: q, k: k, v: v).permuted([0, 2, 1, 3]).reshaped([b, t, d])
        let s = AttentionShape(batch: b, heads: nh, tokens: t, headSize: hs)
        var out = Tensor.zeros([b, t, d])
        var scratch = Tensor.zeros([s.scratchCount])
        let base = qkv.storage.base
        Kernels.attentionForward(q: .packedQKV(base, part: 0, heads: nh, tokens: t, headSize: hs),
                                 k: .packedQKV(base, part: 1, heads: nh, tokens: t, headSize: hs),
                                 v: .packedQKV(base, part: 2, heads: nh, tokens: t, headSize: hs),
                                 out: .tokenMajor(out.mutablePointer(), heads: nh, tokens: t, headSize: hs),
                                 lse: nil, shape: s, scratch: scratch.mutablePointer())
        #expect(relativeError(out, ref) < 1e-6)
    }

    @Test func patchifyLayoutAndRoundTrip() {
        let (b, c, h, w, p) = (2, 3, 8, 12, 4)
        let x = Tensor((0..<(b * c * h * w)).map(Float.init), shape: [b, c, h, w])
        let t = x.patchified(patch: p)
        #expect(t.shape == [b, 6, p * p * c])
        // token (hi, wi) = (1, 2), inner (p1, p2, c) = (3, 1, 2) comes from x[b, 2, 1*4+3, 2*4+1]
        #expect(t[1, 1 * 3 + 2, (3 * p + 1) * c + 2] == x[1, 2, 7, 9])
        #expect(t.unpatchified(patch: p, channels: c, height: h, width: w).scalars == x.scalars)
        // Equivalent to reshape + permute: B C h p1 w p2 -> B h w p1 p2 C.
        let ref = x.reshaped([b, c, h / p, p, w / p, p]).permuted([0, 2, 4, 3, 5, 1]).reshaped([b, 6, p * p * c])
        #expect(t.scalars == ref.scalars)
    }
}

/// The AVX2 row kernels of the attention softmax against their portable Swift twins.
@Suite struct SoftmaxRowKernelTests {
    /// A negative scale flips which logit is largest: both rows must still match softmax(scale * x)
    /// (large |x| so that shifting by the wrong extreme would overflow the exponentials).
    @Test(arguments: [-0.5, 0.5] as [Float])
    func rowsHandleEitherSignOfTheScale(scale: Float) throws {
        var rng = RandomGenerator(seed: 8)
        let n = 37
        let x = Tensor.randomNormal([n], using: &rng) * 200
        let xs = x.scalars
        let top = xs.map { Double($0 * scale) }.max()!
        let sum = xs.map { Foundation.exp(Double($0 * scale) - top) }.reduce(0, +)
        let want = Tensor(xs.map { Float(Foundation.exp(Double($0 * scale) - top) / sum) }, shape: [n])
        var fast = Tensor.zeros([n]), slow = Tensor.zeros([n])
        let lf = Kernels.softmaxRow(x.storage.base, fast.mutablePointer(), n, scale: scale)
        let ls = Kernels.softmaxRowPortable(x.storage.base, slow.mutablePointer(), n, scale: scale)
        for (got, lse) in [(fast, lf), (slow, ls)] {
            #expect(got.scalars.allSatisfy { $0.isFinite })
            #expect(relativeError(got, want) < 1e-5)
            #expect(abs(Double(lse) - (top + Foundation.log(sum))) < 1e-3)
        }
    }

    @Test(arguments: [1, 7, 8, 9, 33, 257, 4097])
    func avx2RowsMatchThePortableRows(n: Int) throws {
        try #require(Kernels.usesAVX2Kernels, "this test needs an AVX2 CPU")
        var rng = RandomGenerator(seed: UInt64(n))
        let x = Tensor.randomNormal([n], using: &rng) * 6
        let g = Tensor.randomNormal([n], using: &rng)
        var fast = Tensor.zeros([n]), slow = Tensor.zeros([n])
        let lf = Kernels.softmaxRow(x.storage.base, fast.mutablePointer(), n, scale: 0.125)
        let ls = Kernels.softmaxRowPortable(x.storage.base, slow.mutablePointer(), n, scale: 0.125)
        #expect(abs(lf - ls) <= 1e-5 * max(1, abs(ls)))
        #expect(zip(fast.scalars, slow.scalars).allSatisfy { abs($0 - $1) <= 1e-6 * max($1, 1e-6) + 1e-9 })
        // Backward row: logits in place -> probabilities, dp -> score gradient.
        var pf = x, pp = x, df = g, dp = g
        Kernels.probabilityAndScoreGradient(p: pf.mutablePointer(), dp: df.mutablePointer(), t: n, scale: 0.125, lse: ls)
        Kernels.probabilityAndScoreGradientPortable(p: pp.mutablePointer(), dp: dp.mutablePointer(), t: n, scale: 0.125, lse: ls)
        #expect(zip(pf.scalars, pp.scalars).allSatisfy { abs($0 - $1) <= 1e-6 * max($1, 1e-6) + 1e-9 })
        let scale = max(dp.scalars.map(abs).max() ?? 0, 1e-6)
        #expect(zip(df.scalars, dp.scalars).allSatisfy { abs($0 - $1) <= 1e-5 * scale })
    }
}
