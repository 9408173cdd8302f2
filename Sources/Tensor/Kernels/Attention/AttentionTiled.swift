import CKernels
import Foundation

// Tiled (flash-style) attention for long sequences. The row-block kernels in AttentionPerHead.swift
// compute a block of query rows against all T keys at once: for T = 4097 that is a 1 MB score
// block per 63 rows (twice the L2), and the backward streams all of dK and dV (1 MB each) once per
// query block. Here both loops are tiled:
//   forward:  for each query block i, for each key block j: S = Q_i K_j^T (br x bc, in L2),
//             online softmax (running max m and sum l per row, the output rescaled when m grows),
//             O_i += P V_j;
//   backward: for each key block j (dK_j, dV_j accumulate in L2), for each query block i:
//             P = exp(scale S - lse_i), dP = dO_i V_j^T, dS = P (dP - D_i), dV_j += P^T dO_i,
//             dQ_i += scale dS K_j, dK_j += scale dS^T Q_i, with D_i = <dO_i, O_i> from the
//             forward output (so no pass over all keys is needed to form the softmax correction).
// Keys and values are packed once per head, one GEMM right-operand block per key block.

extension Kernels {
    /// Sequences at least this long use the tiled kernels (when the backward gets the forward
    /// output). Below it, a query block against all keys fits the caches and the row-block kernels
    /// are faster. Tests lower it to run the tiled path on small shapes.
    @TaskLocal public static var tiledAttentionMinTokens = 1024

    /// Query rows and keys per tile of the tiled forward: a 96 x 128 score tile (48 KB) and the
    /// 96 x HS output accumulator stay in L2 (multiples of the AVX2 micro-tile, 6 x 16). Any
    /// positive sizes are correct; tests use small ones to cover ragged tiles.
    @TaskLocal public static var tiledAttentionBlocks: (rows: Int, keys: Int) = (rows: 96, keys: 128)
    /// Query rows and keys per tile of the tiled backward: deeper query blocks (the depth of the
    /// dK and dV products) and a 256-key block whose dK, dV accumulators (2 x 64 KB at HS = 64)
    /// stay in L2 next to the 2 x 192 KB probability and score-gradient tiles.
    @TaskLocal public static var tiledAttentionBackwardBlocks: (rows: Int, keys: Int) = (rows: 192, keys: 256)

    static func usesTiledAttention(_ s: AttentionShape) -> Bool {
        precondition(tiledAttentionBlocks.rows > 0 && tiledAttentionBlocks.keys > 0
                     && tiledAttentionBackwardBlocks.rows > 0 && tiledAttentionBackwardBlocks.keys > 0,
                     "attention: tile sizes \(tiledAttentionBlocks), \(tiledAttentionBackwardBlocks) must be positive")
        // The tile rows are AVX2 C kernels: a CPU exposing AVX-512 but not AVX2 keeps the row blocks.
        return Gemm.hasSerialKernel && usesAVX2Kernels && !forceSerialHeads && s.tokens >= tiledAttentionMinTokens
    }

    /// One thread's buffers for the tiled kernels: the head's keys and values packed per key
    /// block (K^T and V^T as right operands of the score products, K and V for the products over
    /// keys), one score tile and its gradient, per-row statistics, the output / key-gradient
    /// accumulators and GEMM packing space. O(T * HS + br * bc). `isa` is the GEMM kernel read
    /// once at creation, used by every pack and product of the call (see ``AttentionScratch``).
    struct TiledAttentionScratch {
        let storage: TensorStorage
        let isa = Gemm.instructionSet
        let keyBlocks: Int, scoreStride: Int, overKeysStride: Int
        let keysT: UnsafeMutablePointer<Float>, valuesT: UnsafeMutablePointer<Float>
        let keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>
        let p: UnsafeMutablePointer<Float>, dp: UnsafeMutablePointer<Float>
        let accumulator: UnsafeMutablePointer<Float>, accumulator2: UnsafeMutablePointer<Float>
        let rowStats: UnsafeMutablePointer<Float>, gemm: UnsafeMutablePointer<Float>

        init(_ s: AttentionShape, rows br: Int, keys bc: Int, backward: Bool) {
            let t = s.tokens, hs = s.headSize
            let pad = { (n: Int) in (n + 15) / 16 * 16 }
            keyBlocks = (t + bc - 1) / bc
            scoreStride = pad(Gemm.packedBSize(n: bc, k: hs, instructionSet: isa))
            overKeysStride = pad(Gemm.packedBSize(n: hs, k: bc, instructionSet: isa))
            let g = [Gemm.serialWorkspaceSize(m: br, n: bc, k: hs), Gemm.serialWorkspaceSize(m: br, n: hs, k: bc),
                     Gemm.serialWorkspaceSize(m: bc, n: hs, k: br)].max() ?? 0
            let acc = pad(Swift.max(br, bc) * hs)
            let rows = pad(backward ? 2 * t : 2 * br)
            // The forward keeps every key block's K^T and V packed; the backward (key blocks outer)
            // packs one block's K^T, V^T and K at a time.
            let packed = backward ? 2 * scoreStride + overKeysStride : keyBlocks * (scoreStride + overKeysStride)
            let total = packed + 2 * pad(br * bc) + 2 * acc + rows + pad(g)
            storage = TensorStorage(uninitializedCount: total)
            keysT = storage.mutableBase
            if backward {
                valuesT = keysT + scoreStride
                keys = valuesT + scoreStride
                values = keys
                p = keys + overKeysStride
            } else {
                values = keysT + keyBlocks * scoreStride
                valuesT = values
                keys = values
                p = values + keyBlocks * overKeysStride
            }
            dp = p + pad(br * bc)
            accumulator = dp + pad(br * bc)
            accumulator2 = accumulator + acc
            rowStats = accumulator2 + acc
            gemm = rowStats + rows
        }
    }

    static func attentionForwardTiled(q: AttentionOperand, k: AttentionOperand, v: AttentionOperand,
                                      out: AttentionOperand, lse: UnsafeMutablePointer<Float>?, shape s: AttentionShape) {
        let t = s.tokens, hs = s.headSize
        let (br, bc) = tiledAttentionBlocks
        let ls = lse.map { SendablePointer($0) }
        parallelFor(s.batch * s.heads) { range in
            let w = TiledAttentionScratch(s, rows: br, keys: bc, backward: false)
            withExtendedLifetime(w.storage) {
                let m = w.rowStats, l = w.rowStats + br, acc = w.accumulator
                for bh in range {
                    let b = bh / s.heads, h = bh % s.heads
                    let qh = q.at(b, h), kh = k.at(b, h), vh = v.at(b, h), oh = out.at(b, h)
                    for j in 0..<w.keyBlocks {
                        let j0 = j * bc, cols = Swift.min(bc, t - j0)
                        Gemm.packB(transposeB: true, n: cols, k: hs, b: kh + j0 * k.rowStride, ldb: k.rowStride,
                                   into: w.keysT + j * w.scoreStride, instructionSet: w.isa)
                        Gemm.packB(transposeB: false, n: hs, k: cols, b: vh + j0 * v.rowStride, ldb: v.rowStride,
                                   into: w.values + j * w.overKeysStride, instructionSet: w.isa)
                    }
                    var r0 = 0
                    while r0 < t {
                        let rows = Swift.min(br, t - r0)
                        for i in 0..<rows { m[i] = -.infinity; l[i] = 0 }
                        for j in 0..<w.keyBlocks {
                            let j0 = j * bc, cols = Swift.min(bc, t - j0)
                            Gemm.serial(m: rows, n: cols, k: hs, a: qh + r0 * q.rowStride, lda: q.rowStride,
                                        packedB: w.keysT + j * w.scoreStride, c: w.p, ldc: cols, workspace: w.gemm, instructionSet: w.isa)
                            for i in 0..<rows {
                                let corr = maskdm_online_softmax_row_avx2(w.p + i * cols, Int32(cols), s.scale, m + i, l + i)
                                if j > 0 && corr != 1 { scaleRow(acc + i * hs, hs, by: corr) }
                            }
                            Gemm.serial(m: rows, n: hs, k: cols, a: w.p, lda: cols, packedB: w.values + j * w.overKeysStride,
                                        beta: j == 0 ? 0 : 1, c: acc, ldc: hs, workspace: w.gemm, instructionSet: w.isa)
                        }
                        for i in 0..<rows {
                            let orow = oh + (r0 + i) * out.rowStride, arow = acc + i * hs, inv = 1 / l[i]
                            for c in 0..<hs { orow[c] = arow[c] * inv }
                            ls?[bh * t + r0 + i] = m[i] + Foundation.log(l[i])
                        }
                        r0 += rows
                    }
                }
            }
        }
    }

    static func attentionBackwardTiled(dout: AttentionOperand, out: AttentionOperand, q: AttentionOperand,
                                       k: AttentionOperand, v: AttentionOperand, lse: UnsafePointer<Float>,
                                       dq: AttentionOperand, dk: AttentionOperand, dv: AttentionOperand,
                                       shape s: AttentionShape) {
        let t = s.tokens, hs = s.headSize
        let (br, bc) = tiledAttentionBackwardBlocks
        let lses = SendablePointer(lse)
        parallelFor(s.batch * s.heads) { range in
            let w = TiledAttentionScratch(s, rows: br, keys: bc, backward: true)
            withExtendedLifetime(w.storage) {
                let dots = w.rowStats, dkAcc = w.accumulator, dvAcc = w.accumulator2
                for bh in range {
                    let b = bh / s.heads, h = bh % s.heads
                    let doh = dout.at(b, h), oh = out.at(b, h), qh = q.at(b, h), kh = k.at(b, h)
                    let vh = v.at(b, h), dqh = dq.at(b, h), dkh = dk.at(b, h), dvh = dv.at(b, h)
                    let lseh = lses.base + bh * t
                    // D_i = <dO_i, O_i>: the softmax-backward correction sum_j P_ij dP_ij of row i.
                    for i in 0..<t { dots[i] = dotProduct(doh + i * dout.rowStride, oh + i * out.rowStride, hs) }
                    for j in 0..<w.keyBlocks {
                        let j0 = j * bc, cols = Swift.min(bc, t - j0)
                        let kj = kh + j0 * k.rowStride, vj = vh + j0 * v.rowStride
                        Gemm.packB(transposeB: true, n: cols, k: hs, b: kj, ldb: k.rowStride, into: w.keysT, instructionSet: w.isa)
                        Gemm.packB(transposeB: true, n: cols, k: hs, b: vj, ldb: v.rowStride, into: w.valuesT, instructionSet: w.isa)
                        Gemm.packB(transposeB: false, n: hs, k: cols, b: kj, ldb: k.rowStride, into: w.keys, instructionSet: w.isa)
                        var r0 = 0
                        while r0 < t {
                            let rows = Swift.min(br, t - r0)
                            let qi = qh + r0 * q.rowStride, doi = doh + r0 * dout.rowStride
                            Gemm.serial(m: rows, n: cols, k: hs, a: qi, lda: q.rowStride, packedB: w.keysT,
                                        c: w.p, ldc: cols, workspace: w.gemm, instructionSet: w.isa)
                            Gemm.serial(m: rows, n: cols, k: hs, a: doi, lda: dout.rowStride, packedB: w.valuesT,
                                        c: w.dp, ldc: cols, workspace: w.gemm, instructionSet: w.isa)
                            for i in 0..<rows {
                                maskdm_softmax_grad_row_given_avx2(w.p + i * cols, w.dp + i * cols, Int32(cols), s.scale,
                                                                   lseh[r0 + i], dots[r0 + i])
                            }
                            let first: Float = r0 == 0 ? 0 : 1
                            // dV_j += P^T dO_i; dK_j += scale dS^T Q_i; dQ_i += scale dS K_j.
                            Gemm.serial(transposeA: true, m: cols, n: hs, k: rows, a: w.p, lda: cols,
                                        b: doi, ldb: dout.rowStride, beta: first, c: dvAcc, ldc: hs, workspace: w.gemm, instructionSet: w.isa)
                            Gemm.serial(transposeA: true, m: cols, n: hs, k: rows, alpha: s.scale, a: w.dp, lda: cols,
                                        b: qi, ldb: q.rowStride, beta: first, c: dkAcc, ldc: hs, workspace: w.gemm, instructionSet: w.isa)
                            Gemm.serial(m: rows, n: hs, k: cols, alpha: s.scale, a: w.dp, lda: cols, packedB: w.keys,
                                        beta: 1, c: dqh + r0 * dq.rowStride, ldc: dq.rowStride, workspace: w.gemm, instructionSet: w.isa)
                            r0 += rows
                        }
                        for i in 0..<cols {
                            let dkr = dkh + (j0 + i) * dk.rowStride, dvr = dvh + (j0 + i) * dv.rowStride
                            for c in 0..<hs { dkr[c] += dkAcc[i * hs + c]; dvr[c] += dvAcc[i * hs + c] }
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    static func scaleRow(_ x: UnsafeMutablePointer<Float>, _ n: Int, by f: Float) {
        for c in 0..<n { x[c] *= f }
    }

    @inline(__always)
    static func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var c = 0
        while c + 8 <= n {
            acc += UnsafeRawPointer(a + c).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + c).loadUnaligned(as: SIMD8<Float>.self)
            c += 8
        }
        var sum = acc.sum()
        while c < n { sum += a[c] * b[c]; c += 1 }
        return sum
    }

    /// Portable twin of `maskdm_online_softmax_row_avx2` (tests check the C row against it).
    static func onlineSoftmaxRowPortable(_ s: UnsafeMutablePointer<Float>, _ n: Int, scale: Float,
                                         m: inout Float, l: inout Float) -> Float {
        var bm = -Float.infinity
        for j in 0..<n { bm = Swift.max(bm, s[j] * scale) }
        let mnew = Swift.max(m, bm)
        var sum: Float = 0
        for j in 0..<n { let e = Foundation.exp(s[j] * scale - mnew); s[j] = e; sum += e }
        let corr: Float = m == -.infinity ? 0 : Foundation.exp(m - mnew)
        l = l * corr + sum
        m = mnew
        return corr
    }

    /// Portable twin of `maskdm_softmax_grad_row_given_avx2`.
    static func softmaxGradRowGivenPortable(p: UnsafeMutablePointer<Float>, dp: UnsafeMutablePointer<Float>, _ n: Int,
                                            scale: Float, lse: Float, dot: Float) {
        for j in 0..<n { let e = Foundation.exp(p[j] * scale - lse); p[j] = e; dp[j] = e * (dp[j] - dot) }
    }
}
