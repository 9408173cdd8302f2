import Testing
@testable import Tensor

/// Softmax, layerNorm, GELU and attention against PyTorch float64 values (scripts/make_golden.py).
@Suite struct GoldenKernelTests {
    @Test func softmax() throws {
        let fx = try GoldenFixture.load("golden_softmax")
        let x = try fx.tensor("input"), y = x.softmax()
        #expect(goldenRelativeError(y, try fx.tensor("output")) < 1e-6)
        let g = try fx.tensor("grad_output")
        let c = x.shape.dims.last!
        var dx = Tensor.zeros(x.shape)
        Kernels.softmaxBackward(dy: g.storage.base, y: y.storage.base, dx: dx.mutablePointer(), rows: x.count / c, cols: c)
        #expect(goldenRelativeError(dx, try fx.tensor("grad_input")) < 1e-5)
    }

    @Test func layerNorm() throws {
        let fx = try GoldenFixture.load("golden_layer_norm")
        let x = try fx.tensor("input"), w = try fx.tensor("weight"), b = try fx.tensor("bias")
        let c = w.count, rows = x.count / c
        var y = Tensor.zeros(x.shape), mean = Tensor.zeros([rows]), rstd = Tensor.zeros([rows])
        Kernels.layerNormForward(x: x.storage.base, weight: w.storage.base, bias: b.storage.base, y: y.mutablePointer(),
                                 mean: mean.mutablePointer(), rstd: rstd.mutablePointer(), rows: rows, cols: c,
                                 eps: Float(try fx.double("eps")))
        #expect(goldenRelativeError(y, try fx.tensor("output")) < 1e-5)
        #expect(goldenRelativeError(mean, try fx.tensor("mean").reshaped([rows])) < 1e-5)
        #expect(goldenRelativeError(rstd, try fx.tensor("rstd").reshaped([rows])) < 1e-5)
        let g = try fx.tensor("grad_output")
        var dx = Tensor.zeros(x.shape), dw = Tensor.zeros([c]), db = Tensor.zeros([c])
        Kernels.layerNormBackward(dy: g.storage.base, x: x.storage.base, weight: w.storage.base, mean: mean.storage.base,
                                  rstd: rstd.storage.base, dx: dx.mutablePointer(), dweight: dw.mutablePointer(),
                                  dbias: db.mutablePointer(), rows: rows, cols: c)
        #expect(goldenRelativeError(dx, try fx.tensor("grad_input")) < 1e-5)
        #expect(goldenRelativeError(dw, try fx.tensor("grad_weight")) < 1e-5)
        #expect(goldenRelativeError(db, try fx.tensor("grad_bias")) < 1e-5)
    }

    @Test func gelu() throws {
        let fx = try GoldenFixture.load("golden_gelu")
        let x = try fx.tensor("input")
        #expect(x.gelu().maxAbsDifference(try fx.tensor("output")) < 1e-6)
        let g = try fx.tensor("grad_output")
        var dx = Tensor.zeros(x.shape)
        Kernels.geluBackward(dy: g.storage.base, x: x.storage.base, dx: dx.mutablePointer(), count: x.count)
        #expect(goldenRelativeError(dx, try fx.tensor("grad_input")) < 1e-5)
    }

    /// Both attention kernels against PyTorch: the row blocks, and the flash-style tiles forced on
    /// (small ragged tiles, so the fixture's sequence spans several of them).
    @Test(arguments: [false, true])
    func attention(tiled: Bool) throws {
        if tiled && !ownKernelsApply { return }   // MASKDM_GEMM_ISA chose OpenBLAS: no tiled kernels
        if tiled { try #require(Gemm.hasSerialKernel, "the tiled kernels need the SIMD GEMM (optimised build, AVX2)") }
        let fx = try GoldenFixture.load("golden_attention")
        let q = try fx.tensor("q"), k = try fx.tensor("k"), v = try fx.tensor("v"), g = try fx.tensor("grad_output")
        let (b, nh, t, hs) = q.shape.dims4()
        let s = AttentionShape(batch: b, heads: nh, tokens: t, headSize: hs, scale: Float(try fx.double("scale")))
        var out = Tensor.zeros(q.shape), lse = Tensor.zeros([b * nh * t]), scratch = Tensor.zeros([s.scratchCount])
        var dq = Tensor.zeros(q.shape), dk = Tensor.zeros(q.shape), dv = Tensor.zeros(q.shape)
        func op(_ p: UnsafePointer<Float>) -> AttentionOperand { .contiguous(p, heads: nh, tokens: t, headSize: hs) }
        let sp = scratch.mutablePointer()
        func run() {
            Kernels.attentionForward(q: op(q.storage.base), k: op(k.storage.base), v: op(v.storage.base), out: op(out.mutablePointer()),
                                     lse: lse.mutablePointer(), shape: s, scratch: sp)
            Kernels.attentionBackward(dout: op(g.storage.base), out: op(out.mutablePointer()), q: op(q.storage.base),
                                      k: op(k.storage.base), v: op(v.storage.base), lse: lse.storage.base,
                                      dq: op(dq.mutablePointer()), dk: op(dk.mutablePointer()), dv: op(dv.mutablePointer()),
                                      shape: s, scratch: sp)
        }
        if tiled {
            Kernels.$tiledAttentionMinTokens.withValue(0) {
                Kernels.$tiledAttentionBlocks.withValue((rows: 2, keys: 3)) {
                    Kernels.$tiledAttentionBackwardBlocks.withValue((rows: 3, keys: 2)) { run() }
                }
            }
        } else {
            Kernels.$tiledAttentionMinTokens.withValue(Int.max) { run() }
        }
        #expect(goldenRelativeError(out, try fx.tensor("output")) < 1e-5)
        #expect(goldenRelativeError(dq, try fx.tensor("grad_q")) < 1e-5)
        #expect(goldenRelativeError(dk, try fx.tensor("grad_k")) < 1e-5)
        #expect(goldenRelativeError(dv, try fx.tensor("grad_v")) < 1e-5)
    }
}
