import CKernels
import Foundation

// Attention with the heads spread over threads: every (batch, head) pair runs on one thread with
// single-threaded SIMD GEMMs (``Gemm/serial``), so small heads (T = 33, 65) cost no thread
// hand-offs per GEMM. Same maths and the same blockwise O(T) scratch as the serial-head path.

extension Kernels {
    /// Per-thread buffers: probabilities and their gradient for one query block, GEMM packing
    /// space, and one head's keys and values packed once as GEMM right operands (K^T and V^T for
    /// the score products, K and V for the products over keys), reused by every query block.
    /// All O(T * HS) or O(block * T). `isa` is the GEMM kernel read once at creation: every pack
    /// and product of the call runs on it, even if another kernel is selected meanwhile.
    struct AttentionScratch {
        let storage: TensorStorage
        let isa = Gemm.instructionSet
        let p: UnsafeMutablePointer<Float>, dp: UnsafeMutablePointer<Float>, gemm: UnsafeMutablePointer<Float>
        let keysT: UnsafeMutablePointer<Float>, valuesT: UnsafeMutablePointer<Float>
        let keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>
        init(_ s: AttentionShape) {
            let br = s.blockRows, t = s.tokens, hs = s.headSize
            let g = [Gemm.serialWorkspaceSize(m: br, n: t, k: hs), Gemm.serialWorkspaceSize(m: br, n: hs, k: t),
                     Gemm.serialWorkspaceSize(m: t, n: hs, k: br)].max() ?? 0
            let pad = { (n: Int) in (n + 15) / 16 * 16 }
            let scores = pad(Gemm.packedBSize(n: t, k: hs, instructionSet: isa)), overKeys = pad(Gemm.packedBSize(n: hs, k: t, instructionSet: isa))
            storage = TensorStorage(uninitializedCount: 2 * pad(br * t) + pad(g) + 2 * scores + 2 * overKeys)
            p = storage.mutableBase
            dp = p + pad(br * t)
            gemm = dp + pad(br * t)
            keysT = gemm + pad(g)
            valuesT = keysT + scores
            keys = valuesT + scores
            values = keys + overKeys
        }
    }

    static func attentionForwardPerHead(q: AttentionOperand, k: AttentionOperand, v: AttentionOperand,
                                        out: AttentionOperand, lse: UnsafeMutablePointer<Float>?, shape s: AttentionShape) {
        let t = s.tokens, hs = s.headSize, br = s.blockRows
        let ls = lse.map { SendablePointer($0) }
        parallelFor(s.batch * s.heads) { range in
            let w = AttentionScratch(s)
            withExtendedLifetime(w.storage) {
                for bh in range {
                    let b = bh / s.heads, h = bh % s.heads
                    let qh = q.at(b, h), kh = k.at(b, h), vh = v.at(b, h), oh = out.at(b, h)
                    Gemm.packB(transposeB: true, n: t, k: hs, b: kh, ldb: k.rowStride, into: w.keysT, instructionSet: w.isa)
                    Gemm.packB(transposeB: false, n: hs, k: t, b: vh, ldb: v.rowStride, into: w.values, instructionSet: w.isa)
                    var r0 = 0
                    while r0 < t {
                        let rows = Swift.min(br, t - r0)
                        Gemm.serial(m: rows, n: t, k: hs, a: qh + r0 * q.rowStride, lda: q.rowStride,
                                    packedB: w.keysT, c: w.p, ldc: t, workspace: w.gemm, instructionSet: w.isa)
                        for i in 0..<rows {
                            let row = w.p + i * t
                            let l = softmaxRow(row, row, t, scale: s.scale)
                            ls?[bh * t + r0 + i] = l
                        }
                        Gemm.serial(m: rows, n: hs, k: t, a: w.p, lda: t, packedB: w.values,
                                    c: oh + r0 * out.rowStride, ldc: out.rowStride, workspace: w.gemm, instructionSet: w.isa)
                        r0 += rows
                    }
                }
            }
        }
    }

    static func attentionBackwardPerHead(dout: AttentionOperand, q: AttentionOperand, k: AttentionOperand,
                                         v: AttentionOperand, lse: UnsafePointer<Float>,
                                         dq: AttentionOperand, dk: AttentionOperand, dv: AttentionOperand,
                                         shape s: AttentionShape, accumulate: Bool) {
        let t = s.tokens, hs = s.headSize, br = s.blockRows
        let lses = SendablePointer(lse)
        // Without accumulate the first row block assigns dK and dV (beta 0), later ones add; each
        // dQ row block is written once.
        let firstBeta: Float = accumulate ? 1 : 0
        parallelFor(s.batch * s.heads) { range in
            let w = AttentionScratch(s)
            withExtendedLifetime(w.storage) {
                for bh in range {
                    let b = bh / s.heads, h = bh % s.heads
                    let doh = dout.at(b, h), qh = q.at(b, h), kh = k.at(b, h), vh = v.at(b, h)
                    let dqh = dq.at(b, h), dkh = dk.at(b, h), dvh = dv.at(b, h)
                    Gemm.packB(transposeB: true, n: t, k: hs, b: kh, ldb: k.rowStride, into: w.keysT, instructionSet: w.isa)
                    Gemm.packB(transposeB: true, n: t, k: hs, b: vh, ldb: v.rowStride, into: w.valuesT, instructionSet: w.isa)
                    Gemm.packB(transposeB: false, n: hs, k: t, b: kh, ldb: k.rowStride, into: w.keys, instructionSet: w.isa)
                    var r0 = 0
                    while r0 < t {
                        let rows = Swift.min(br, t - r0)
                        Gemm.serial(m: rows, n: t, k: hs, a: qh + r0 * q.rowStride, lda: q.rowStride,
                                    packedB: w.keysT, c: w.p, ldc: t, workspace: w.gemm, instructionSet: w.isa)
                        Gemm.serial(m: rows, n: t, k: hs, a: doh + r0 * dout.rowStride, lda: dout.rowStride,
                                    packedB: w.valuesT, c: w.dp, ldc: t, workspace: w.gemm, instructionSet: w.isa)
                        for i in 0..<rows {
                            probabilityAndScoreGradient(p: w.p + i * t, dp: w.dp + i * t, t: t, scale: s.scale, lse: lses[bh * t + r0 + i])
                        }
                        let beta: Float = r0 == 0 ? firstBeta : 1
                        Gemm.serial(transposeA: true, m: t, n: hs, k: rows, a: w.p, lda: t,
                                    b: doh + r0 * dout.rowStride, ldb: dout.rowStride, beta: beta, c: dvh, ldc: dv.rowStride, workspace: w.gemm, instructionSet: w.isa)
                        Gemm.serial(m: rows, n: hs, k: t, alpha: s.scale, a: w.dp, lda: t, packedB: w.keys,
                                    beta: firstBeta, c: dqh + r0 * dq.rowStride, ldc: dq.rowStride, workspace: w.gemm, instructionSet: w.isa)
                        Gemm.serial(transposeA: true, m: t, n: hs, k: rows, alpha: s.scale, a: w.dp, lda: t,
                                    b: qh + r0 * q.rowStride, ldb: q.rowStride, beta: beta, c: dkh, ldc: dk.rowStride, workspace: w.gemm, instructionSet: w.isa)
                        r0 += rows
                    }
                }
            }
        }
    }

    /// For one query row: `p = exp(scale * s - lse)` in place of the logits `s`, and
    /// `dp = p * (dp - <p, dp>)` in place of `dp` (the softmax backward).
    @inline(__always)
    static func probabilityAndScoreGradient(p pr: UnsafeMutablePointer<Float>, dp dpr: UnsafeMutablePointer<Float>,
                                            t: Int, scale: Float, lse ls: Float) {
        if usesAVX2Kernels { maskdm_softmax_grad_row_avx2(pr, dpr, Int32(t), scale, ls); return }
        probabilityAndScoreGradientPortable(p: pr, dp: dpr, t: t, scale: scale, lse: ls)
    }

    /// ``probabilityAndScoreGradient(p:dp:t:scale:lse:)`` in portable Swift SIMD.
    @inline(__always)
    static func probabilityAndScoreGradientPortable(p pr: UnsafeMutablePointer<Float>, dp dpr: UnsafeMutablePointer<Float>,
                                                    t: Int, scale: Float, lse ls: Float) {
        let l = SIMD16<Float>(repeating: ls)
        var j = 0
        var dotv = SIMD16<Float>(repeating: 0)
        while j + 16 <= t {
            let e = FastMath.exp(UnsafeRawPointer(pr + j).loadUnaligned(as: SIMD16<Float>.self) * scale - l)
            UnsafeMutableRawPointer(pr + j).storeBytes(of: e, as: SIMD16<Float>.self)
            dotv += e * UnsafeRawPointer(dpr + j).loadUnaligned(as: SIMD16<Float>.self)
            j += 16
        }
        var dot = dotv.sum()
        while j < t { let e = Foundation.exp(pr[j] * scale - ls); pr[j] = e; dot += e * dpr[j]; j += 1 }
        j = 0
        let dv = SIMD16<Float>(repeating: dot)
        while j + 16 <= t {
            let pv = UnsafeRawPointer(pr + j).loadUnaligned(as: SIMD16<Float>.self)
            let g = UnsafeRawPointer(dpr + j).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(dpr + j).storeBytes(of: pv * (g - dv), as: SIMD16<Float>.self)
            j += 16
        }
        while j < t { dpr[j] = pr[j] * (dpr[j] - dot); j += 1 }
    }
}
