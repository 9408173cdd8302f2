import CKernels
import Foundation
import Testing
@testable import Tensor

/// The row kernels (bias broadcast and its gradient, patch gathering, the token sequence) and the
/// arena passes of the optimizers, each against its naive twin or its definition.
@Suite struct RowAndOptimizerKernelTests {
    @Test(arguments: [(1, 1, 1), (5, 7, 7), (9, 33, 99), (40, 16, 48)])
    func columnSumsMatchNaive(rows: Int, cols: Int, ld: Int) {
        var rng = RandomGenerator(seed: UInt64(rows * 31 + cols))
        let x = Tensor.randomNormal([rows * ld], using: &rng)
        let start = Tensor.randomNormal([cols], using: &rng)
        var fast = start, naive = start
        Kernels.accumulateColumnSums(x.storage.base, rows: rows, cols: cols, ld: ld, into: fast.mutablePointer())
        Naive.columnSums(x.storage.base, rows: rows, cols: cols, ld: ld, into: naive.mutablePointer())
        #expect(relativeError(fast, naive) < 1e-6)
        // Strided rows: the values outside the first `cols` of each row are not summed.
        if ld > cols {
            var sum0: Float = start[0]
            for r in 0..<rows { sum0 += x[r * ld] }
            #expect(abs(fast[0] - sum0) <= 1e-5 * max(1, abs(sum0)))
        }
    }

    @Test func broadcastAndAddToRowsFollowTheirDefinition() {
        let v = Tensor([1, 2, 3], shape: [3])
        var y = Tensor.zeros([2, 5])
        Kernels.broadcastRows(v.storage.base, into: y.mutablePointer(), rows: 2, cols: 3, ld: 5)
        #expect(y.scalars == [1, 2, 3, 0, 0, 1, 2, 3, 0, 0])
        Kernels.addToRows(v.storage.base, y.mutablePointer() + 2, rows: 2, cols: 3, ld: 5)
        #expect(y.scalars == [1, 2, 4, 2, 3, 1, 2, 4, 2, 3])
    }

    @Test(arguments: [false, true])
    func gatherPatchesMatchesNaive(selected: Bool) {
        var rng = RandomGenerator(seed: selected ? 7 : 8)
        let (b, c, h, w, p) = (2, 3, 8, 12, 4)
        let images = Tensor.randomNormal([b, c, h, w], using: &rng)
        let indices: [[Int]]? = selected ? [[0, 2, 5], [1, 3, 4]] : nil
        let nv = indices?[0].count ?? (h / p) * (w / p)
        var fast = Tensor.zeros([b, nv, c * p * p]), naive = fast
        Kernels.gatherPatches(images: images.storage.base, out: fast.mutablePointer(), batch: b, channels: c,
                              height: h, width: w, patch: p, indices: indices)
        Naive.gatherPatches(images: images.storage.base, out: naive.mutablePointer(), batch: b, channels: c,
                            height: h, width: w, patch: p, indices: indices)
        #expect(fast.scalars == naive.scalars)
        // Patch 5 of a 2 x 3 grid is row 1, column 2: its first value is pixel (c 0, y 4, x 8).
        if selected { #expect(fast[flat: 2 * c * p * p] == images[flat: ((0 * c + 0) * h + 4) * w + 8]) }
    }

    @Test(arguments: [false, true])
    func tokenSequenceMatchesNaiveAndItsBackwardIsTheAdjoint(selected: Bool) {
        var rng = RandomGenerator(seed: selected ? 21 : 22)
        let (b, n, d) = (2, 5, 6)
        let indices: [[Int]]? = selected ? [[1, 4], [0, 3]] : nil
        let nv = indices?[0].count ?? n
        let tokens = Tensor.randomNormal([b, nv, d], using: &rng), first = Tensor.randomNormal([b, d], using: &rng)
        let position = Tensor.randomNormal([1 + n, d], using: &rng)
        var fast = Tensor.zeros([b, 1 + nv, d]), naive = fast
        Kernels.prependTokenAddPositions(tokens: tokens.storage.base, first: first.storage.base, position: position.storage.base,
                                         out: fast.mutablePointer(), batch: b, visible: nv, dimensions: d, indices: indices)
        Naive.prependTokenAddPositions(tokens: tokens.storage.base, first: first.storage.base, position: position.storage.base,
                                       out: naive.mutablePointer(), batch: b, visible: nv, dimensions: d, indices: indices)
        #expect(fast.scalars == naive.scalars)

        // The map is affine in (tokens, position): <dOut, f(t, p) - f(0, 0)> = <dt, t> + <dp, p>.
        let dOut = Tensor.randomNormal([b, 1 + nv, d], using: &rng)
        var dTokens = Tensor.zeros(tokens.shape), dPosition = Tensor.zeros(position.shape)
        Kernels.prependTokenAddPositionsBackward(dOut: dOut.storage.base, dPosition: dPosition.mutablePointer(),
                                                 dTokens: dTokens.mutablePointer(), batch: b, visible: nv, dimensions: d,
                                                 indices: indices)
        var zero = Tensor.zeros(fast.shape)
        let zt = Tensor.zeros(tokens.shape), zp = Tensor.zeros(position.shape)
        Kernels.prependTokenAddPositions(tokens: zt.storage.base, first: first.storage.base, position: zp.storage.base,
                                         out: zero.mutablePointer(), batch: b, visible: nv, dimensions: d, indices: indices)
        let lhs = dot(dOut, fast - zero), rhs = dot(dTokens, tokens) + dot(dPosition, position)
        #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)))
    }

    @Test func accumulateBlocksAddsEachBlockAtItsStride() {
        let src = Tensor([1, 2, 3, 4, 5, 6], shape: [6])
        var dst = Tensor.ones([8])
        Kernels.accumulateBlocks(src.storage.base + 1, stride: 3, into: dst.mutablePointer() + 2, stride: 4, blocks: 2, length: 2)
        #expect(dst.scalars == [1, 1, 3, 4, 1, 1, 6, 7])
    }

    @Test(arguments: [Float(1), 0.25])
    func adamWMatchesTheScalarFormula(gradientScale: Float) {
        var rng = RandomGenerator(seed: 5)
        let n = 1000
        let p0 = Tensor.randomNormal([n], using: &rng), g = Tensor.randomNormal([n], using: &rng)
        let m0 = Tensor.randomNormal([n], std: 0.1, using: &rng)
        let v0 = Tensor.randomUniform([n], low: 0, high: 0.01, using: &rng)
        let k = AdamWStepConstants(decay: 1 - 1e-3 * 0.03, beta1: 0.9, beta2: 0.99, eps: 1e-8, stepSize: 1.7e-3,
                                   biasCorrection2Root: 0.3, gradientScale: gradientScale)
        var (p, m, v) = (p0, m0, v0), (pn, mn, vn) = (p0, m0, v0)
        Kernels.adamW(parameters: p.mutablePointer(), gradients: g.storage.base, m: m.mutablePointer(),
                      v: v.mutablePointer(), range: 3..<997, k)
        Naive.adamW(parameters: pn.mutablePointer(), gradients: g.storage.base, m: mn.mutablePointer(),
                    v: vn.mutablePointer(), range: 3..<997, k)
        #expect(p.scalars == pn.scalars && m.scalars == mn.scalars && v.scalars == vn.scalars)
        #expect(p[0] == p0[0] && p[999] == p0[999] && p[3] != p0[3])   // only the range moves
    }

    @Test(arguments: [nil, Float(0.01)])
    func adamWWithEMAEqualsAdamWThenLerp(shadowWeight: Float?) {
        var rng = RandomGenerator(seed: 6)
        let n = 1003
        let p0 = Tensor.randomNormal([n], using: &rng), g = Tensor.randomNormal([n], using: &rng)
        let m0 = Tensor.randomNormal([n], std: 0.1, using: &rng), s0 = Tensor.randomNormal([n], using: &rng)
        let v0 = Tensor.randomUniform([n], low: 0, high: 0.01, using: &rng)
        let k = AdamWStepConstants(decay: 1 - 1e-3 * 0.03, beta1: 0.99, beta2: 0.99, eps: 1e-8, stepSize: 2e-3,
                                   biasCorrection2Root: 0.2, gradientScale: 0.5)
        // Two passes: AdamW, then the EMA (lerp or copy) of the range.
        var (p, m, v, s) = (p0, m0, v0, s0)
        Kernels.adamW(parameters: p.mutablePointer(), gradients: g.storage.base, m: m.mutablePointer(), v: v.mutablePointer(),
                      range: 5..<1000, k)
        if let w = shadowWeight { Kernels.lerp(s.mutablePointer() + 5, toward: p.storage.base + 5, weight: w, count: 995) }
        else { Kernels.copy(p.storage.base + 5, into: s.mutablePointer() + 5, count: 995) }
        // One fused pass, and its naive twin.
        var (pf, mf, vf, sf) = (p0, m0, v0, s0), (pn, mn, vn, sn) = (p0, m0, v0, s0)
        Kernels.adamW(parameters: pf.mutablePointer(), gradients: g.storage.base, m: mf.mutablePointer(), v: vf.mutablePointer(),
                      range: 5..<1000, k, shadow: sf.mutablePointer(), shadowWeight: shadowWeight)
        Naive.adamW(parameters: pn.mutablePointer(), gradients: g.storage.base, m: mn.mutablePointer(), v: vn.mutablePointer(),
                    range: 5..<1000, k, shadow: sn.mutablePointer(), shadowWeight: shadowWeight)
        #expect(pf.scalars == p.scalars && mf.scalars == m.scalars && vf.scalars == v.scalars && sf.scalars == s.scalars)
        #expect(pn.scalars == p.scalars && sn.scalars == s.scalars)
        #expect(sf[0] == s0[0] && sf[1002] == s0[1002] && sf[5] != s0[5])   // only the range moves
    }

    /// The AVX2 pass (this CPU's path) and the portable Swift one give the same bits, with and
    /// without gradient scaling, for each EMA mode (none, warm-up copy, interpolation), over an
    /// odd range whose vector loop ends in a scalar tail.
    @Test(arguments: [(Float(1), Int32(0)), (0.5, 1), (1, 2), (0.25, 2)])
    func adamWCPassMatchesPortable(gradientScale: Float, shadowMode: Int32) throws {
        try #require(Kernels.usesAVX2Kernels, "no AVX2 on this CPU: only the portable pass runs")
        var rng = RandomGenerator(seed: 9)
        let n = 1011
        let p0 = Tensor.randomNormal([n], using: &rng), g = Tensor.randomNormal([n], using: &rng)
        let m0 = Tensor.randomNormal([n], std: 0.1, using: &rng), s0 = Tensor.randomNormal([n], using: &rng)
        let v0 = Tensor.randomUniform([n], low: 0, high: 0.01, using: &rng)
        var k = maskdm_adamw_constants(gradient_scale: gradientScale, decay: 1 - 3e-5, one_minus_beta1: 1 - 0.9, beta2: 0.999,
                                       one_minus_beta2: 1 - 0.999, eps: 1e-8, step_size: 1.3e-3, bias_correction2_root: 0.4,
                                       shadow_weight: 0.001, shadow_mode: shadowMode)
        var (pc, mc, vc, sc) = (p0, m0, v0, s0), (pp, mp, vp, sp) = (p0, m0, v0, s0)
        let shadowC = shadowMode == 0 ? nil : sc.mutablePointer(), shadowP = shadowMode == 0 ? nil : sp.mutablePointer()
        maskdm_adamw_avx2(pc.mutablePointer() + 3, g.storage.base + 3, mc.mutablePointer() + 3, vc.mutablePointer() + 3,
                          shadowC.map { $0 + 3 }, 1005, &k)
        Kernels.adamWPortable(pp.mutablePointer(), g.storage.base, mp.mutablePointer(), vp.mutablePointer(), shadowP, 3..<1008, k)
        #expect(pc.scalars == pp.scalars && mc.scalars == mp.scalars && vc.scalars == vp.scalars && sc.scalars == sp.scalars)
        #expect(pc[3] != p0[3] && pc[1008] == p0[1008] && (shadowMode == 0) == (sc[5] == s0[5]))
    }

    @Test(arguments: [0, 15, 4096, 70_001])
    func sumOfSquaresMatchesNaive(count: Int) {
        var rng = RandomGenerator(seed: UInt64(count))
        let x = Tensor.randomNormal([max(count, 1)], using: &rng)
        let fast = Kernels.sumOfSquares(x.storage.base, count: count), naive = Naive.sumOfSquares(x.storage.base, count: count)
        #expect(abs(fast - naive) <= 1e-5 * max(1, naive))
        #expect(Kernels.sumOfSquares(x.storage.base, count: count) == fast)   // deterministic
    }

    @Test(arguments: [0, 15, 4096, 70_001])
    func addSumOfSquaresIsAddThenSumOfSquares(count: Int) {
        var rng = RandomGenerator(seed: UInt64(count) + 1)
        let src = Tensor.randomNormal([count + 1], using: &rng), dst0 = Tensor.randomNormal([count + 1], using: &rng)
        var fused = dst0, separate = dst0
        let squares = Parallel.$threads.withValue(3) {
            Kernels.addSumOfSquares(src.storage.base, into: fused.mutablePointer(), count: count)
        }
        Kernels.add(src.storage.base, into: separate.mutablePointer(), count: count)
        #expect(fused.scalars == separate.scalars)
        #expect(squares == Kernels.sumOfSquares(separate.storage.base, count: count))   // bit for bit
        if count > 0 { #expect(fused[count - 1] == dst0[count - 1] + src[count - 1]) }
        #expect(fused[count] == dst0[count])   // nothing past `count` is touched
    }

    @Test func lerpScaleAndCopyFollowTheirDefinitions() {
        var rng = RandomGenerator(seed: 9)
        let n = 1037
        let x0 = Tensor.randomNormal([n], using: &rng), target = Tensor.randomNormal([n], using: &rng)
        var x = x0
        Kernels.lerp(x.mutablePointer(), toward: target.storage.base, weight: 0.1, count: n)
        for i in [0, 16, 1036] { #expect(x[i] == x0[i] + 0.1 * (target[i] - x0[i])) }
        Kernels.scale(x.mutablePointer(), by: 2, count: n)
        #expect(x[5] == 2 * (x0[5] + 0.1 * (target[5] - x0[5])))
        var y = Tensor.zeros([n])
        Kernels.copy(target.storage.base, into: y.mutablePointer(), count: n)
        #expect(y.scalars == target.scalars)
    }

    private func dot(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.scalars, b.scalars).reduce(0) { $0 + $1.0 * $1.1 }
    }
}
