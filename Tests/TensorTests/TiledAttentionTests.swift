import CKernels
import Foundation
import Testing
@testable import Tensor

/// The tiled (flash-style) attention kernels against the row-block kernels and the Double
/// reference, on packed-QKV operands (strided, as the model calls them), ragged tiles included.
@Suite struct TiledAttentionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let b: Int, nh: Int, t: Int, hs: Int
        let forward: (rows: Int, keys: Int), backward: (rows: Int, keys: Int)
        var testDescription: String { "(\(b), \(nh), \(t), \(hs)) tiles \(forward) / \(backward)" }
    }

    static let cases = [
        Case(b: 2, nh: 3, t: 37, hs: 8, forward: (6, 16), backward: (12, 16)),
        Case(b: 1, nh: 2, t: 100, hs: 16, forward: (7, 10), backward: (5, 33)),
        Case(b: 2, nh: 2, t: 300, hs: 64, forward: (96, 128), backward: (192, 256)),
        Case(b: 1, nh: 3, t: 1, hs: 4, forward: (6, 16), backward: (6, 16)),
    ]

    /// Output, log-sum-exp and the three gradients (accumulated onto `start` everywhere, or
    /// assigned over it without `accumulate`).
    func run(_ c: Case, qkv: Tensor, g: Tensor, start: Float = 0.25, accumulate: Bool = true) -> [Tensor] {
        let (b, nh, t, hs) = (c.b, c.nh, c.t, c.hs)
        let s = AttentionShape(batch: b, heads: nh, tokens: t, headSize: hs)
        var out = Tensor.zeros([b, t, nh * hs]), lse = Tensor.zeros([b * nh * t])
        var dqkv = Tensor(Array(repeating: start, count: qkv.count), shape: qkv.shape)
        var scratch = Tensor.zeros([s.scratchCount])
        let base = qkv.storage.base, d = dqkv.mutablePointer(), o = out.mutablePointer()
        func part(_ p: UnsafePointer<Float>, _ i: Int) -> AttentionOperand { .packedQKV(p, part: i, heads: nh, tokens: t, headSize: hs) }
        func tokens(_ p: UnsafePointer<Float>) -> AttentionOperand { .tokenMajor(p, heads: nh, tokens: t, headSize: hs) }
        Kernels.attentionForward(q: part(base, 0), k: part(base, 1), v: part(base, 2), out: tokens(o),
                                 lse: lse.mutablePointer(), shape: s, scratch: scratch.mutablePointer())
        Kernels.attentionBackward(dout: tokens(g.storage.base), out: tokens(o), q: part(base, 0), k: part(base, 1),
                                  v: part(base, 2), lse: lse.storage.base, dq: part(d, 0), dk: part(d, 1), dv: part(d, 2),
                                  shape: s, scratch: scratch.mutablePointer(), accumulate: accumulate)
        return [out, lse, dqkv]
    }

    @Test(.enabled(if: ownKernelsApply, "MASKDM_GEMM_ISA chose OpenBLAS"), arguments: cases)
    func tiledMatchesRowBlocks(_ c: Case) throws {
        try #require(Gemm.hasSerialKernel, "the tiled kernels need the SIMD GEMM (optimised build, AVX2)")
        var rng = RandomGenerator(seed: UInt64(c.t))
        let d = c.nh * c.hs
        let qkv = Tensor.randomNormal([c.b, c.t, 3 * d], using: &rng) * 2
        let g = Tensor.randomNormal([c.b, c.t, d], using: &rng)
        let rows = Kernels.$tiledAttentionMinTokens.withValue(Int.max) { run(c, qkv: qkv, g: g) }
        let tiled = Kernels.$tiledAttentionMinTokens.withValue(0) {
            Kernels.$tiledAttentionBlocks.withValue(c.forward) {
                Kernels.$tiledAttentionBackwardBlocks.withValue(c.backward) { run(c, qkv: qkv, g: g) }
            }
        }
        for (name, (a, r)) in zip(["out", "lse", "dqkv"], zip(tiled, rows)) {
            #expect(relativeError(a, r) < 2e-5, "\(name)")
        }
        // And the forward against the Double reference (q, k, v split out of the packed layout).
        let parts = qkv.reshaped([c.b, c.t, 3, c.nh, c.hs]).permuted([2, 0, 3, 1, 4])
        func split(_ i: Int) -> Tensor { parts.sliced(axis: 0, i..<(i + 1)).reshaped([c.b, c.nh, c.t, c.hs]) }
        var ref = Tensor.zeros([c.b, c.nh, c.t, c.hs])
        let (q, k, v) = (split(0), split(1), split(2))
        Naive.attention(q: q.storage.base, k: k.storage.base, v: v.storage.base, out: ref.mutablePointer(),
                        shape: AttentionShape(batch: c.b, heads: c.nh, tokens: c.t, headSize: c.hs))
        #expect(relativeError(tiled[0], ref.permuted([0, 2, 1, 3]).reshaped([c.b, c.t, d])) < 1e-5)
    }

    /// Long sequences take the tiled path by default (T >= tiledAttentionMinTokens) once the
    /// backward gets the forward output; without it the backward stays on the row blocks. Both
    /// give the same gradients.
    @Test(.enabled(if: ownKernelsApply, "MASKDM_GEMM_ISA chose OpenBLAS")) func defaultDispatchAtLongSequences() throws {
        try #require(Gemm.hasSerialKernel, "the tiled kernels need the SIMD GEMM (optimised build, AVX2)")
        let c = Case(b: 1, nh: 2, t: 1100, hs: 16, forward: Kernels.tiledAttentionBlocks, backward: Kernels.tiledAttentionBackwardBlocks)
        #expect(Kernels.usesTiledAttention(AttentionShape(batch: 1, heads: 2, tokens: 1100, headSize: 16)))
        #expect(!Kernels.usesTiledAttention(AttentionShape(batch: 1, heads: 2, tokens: 1023, headSize: 16)))
        var rng = RandomGenerator(seed: 5)
        let qkv = Tensor.randomNormal([1, c.t, 6 * c.hs], using: &rng)
        let g = Tensor.randomNormal([1, c.t, 2 * c.hs], using: &rng)
        let tiled = run(c, qkv: qkv, g: g)
        let rows = Kernels.$tiledAttentionMinTokens.withValue(Int.max) { run(c, qkv: qkv, g: g) }
        for (a, r) in zip(tiled, rows) { #expect(relativeError(a, r) < 2e-5) }
    }

    @Test(arguments: [1, 7, 8, 9, 33, 128, 257])
    func avx2TileRowsMatchThePortableRows(n: Int) throws {
        try #require(Kernels.usesAVX2Kernels, "this test needs an AVX2 CPU")
        var rng = RandomGenerator(seed: UInt64(100 + n))
        let first = Tensor.randomNormal([n], using: &rng) * 6, second = Tensor.randomNormal([n], using: &rng) * 6 + 3
        // Two key blocks of one row: the second raises the running maximum.
        var mf = -Float.infinity, lf: Float = 0, mp = -Float.infinity, lp: Float = 0
        var xf = first, xp = first
        let c1f = maskdm_online_softmax_row_avx2(xf.mutablePointer(), Int32(n), 0.125, &mf, &lf)
        let c1p = Kernels.onlineSoftmaxRowPortable(xp.mutablePointer(), n, scale: 0.125, m: &mp, l: &lp)
        #expect(c1f == 0 && c1p == 0)
        #expect(relativeError(xf, xp) < 1e-6)
        var yf = second, yp = second
        let c2f = maskdm_online_softmax_row_avx2(yf.mutablePointer(), Int32(n), 0.125, &mf, &lf)
        let c2p = Kernels.onlineSoftmaxRowPortable(yp.mutablePointer(), n, scale: 0.125, m: &mp, l: &lp)
        #expect(mf == mp && abs(c2f - c2p) <= 1e-6 * c2p && abs(lf - lp) <= 1e-5 * lp)
        #expect(relativeError(yf, yp) < 1e-6)
        // The running statistics give the softmax of the concatenated row.
        let whole = Tensor.concat([first, second], axis: 0)
        var sm = Tensor.zeros([2 * n])
        let lse = Kernels.softmaxRowPortable(whole.storage.base, sm.mutablePointer(), 2 * n, scale: 0.125)
        #expect(abs(mp + Foundation.log(lp) - lse) <= 1e-5 * max(1, abs(lse)))
        // Backward tile row with a given correction term.
        let g = Tensor.randomNormal([n], using: &rng)
        var pf = first, pp = first, gf = g, gp = g
        maskdm_softmax_grad_row_given_avx2(pf.mutablePointer(), gf.mutablePointer(), Int32(n), 0.125, lse, 0.3)
        Kernels.softmaxGradRowGivenPortable(p: pp.mutablePointer(), dp: gp.mutablePointer(), n, scale: 0.125, lse: lse, dot: 0.3)
        #expect(relativeError(pf, pp) < 1e-6)
        #expect(relativeError(gf, gp) < 1e-5)
    }

    /// `accumulate: false` assigns the gradients: over a NaN-filled buffer it gives, bit for bit,
    /// what accumulating onto zeros gives, on the row-block, tiled and one-head-at-a-time paths.
    @Test(.enabled(if: ownKernelsApply, "MASKDM_GEMM_ISA chose OpenBLAS"), arguments: ["rows", "tiled", "serial"])
    func assignModeIgnoresOldContents(path: String) throws {
        try #require(Gemm.hasSerialKernel, "the row-block and tiled kernels need the SIMD GEMM (optimised build, AVX2)")
        let c = Case(b: 2, nh: 2, t: 300, hs: 16, forward: (96, 128), backward: (192, 256))
        var rng = RandomGenerator(seed: 31)
        let qkv = Tensor.randomNormal([c.b, c.t, 3 * c.nh * c.hs], using: &rng)
        let g = Tensor.randomNormal([c.b, c.t, c.nh * c.hs], using: &rng)
        func run(start: Float, accumulate: Bool) -> [Float] {
            self.run(c, qkv: qkv, g: g, start: start, accumulate: accumulate)[2].scalars
        }
        func onPath(_ body: () -> [Float]) -> [Float] {
            switch path {
            case "tiled": Kernels.$tiledAttentionMinTokens.withValue(0) { body() }
            case "serial": Kernels.$forceSerialHeads.withValue(true) { Kernels.$tiledAttentionMinTokens.withValue(Int.max) { body() } }
            default: Kernels.$tiledAttentionMinTokens.withValue(Int.max) { body() }
            }
        }
        let added = onPath { run(start: 0, accumulate: true) }
        let assigned = onPath { run(start: .nan, accumulate: false) }
        #expect(added.allSatisfy(\.isFinite) && added.contains { $0 != 0 })
        #expect(assigned == added)
        // And accumulating still adds: onto 0.5 everywhere, the same gradient plus 0.5.
        let shifted = onPath { run(start: 0.5, accumulate: true) }
        let worst = zip(shifted, added).map { abs($0 - ($1 + 0.5)) }.max() ?? 0
        #expect(worst < 1e-5)
    }
}
