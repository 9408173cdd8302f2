import Foundation

/// Where one attention operand lives in memory: element (b, h, t, :) of a (B, NH, T, HS) view
/// starts at `base + b * batchStride + h * headStride + t * rowStride` and has HS contiguous values.
///
/// This lets the kernel read q, k and v straight out of a packed `qkv` projection (B, T, 3, NH, HS)
/// and write the output in (B, T, NH, HS) order, with no permutes.
public struct AttentionOperand {
    /// Pointer to element (0, 0, 0, 0) of the view.
    public var base: UnsafeMutablePointer<Float>
    /// Elements between consecutive batch items.
    public var batchStride: Int
    /// Elements between consecutive heads.
    public var headStride: Int
    /// Elements between consecutive tokens (rows).
    public var rowStride: Int

    /// An operand at `base` with the given strides, in elements.
    public init(base: UnsafeMutablePointer<Float>, batchStride: Int, headStride: Int, rowStride: Int) {
        self.base = base; self.batchStride = batchStride; self.headStride = headStride; self.rowStride = rowStride
    }

    /// A contiguous (B, NH, T, HS) tensor.
    public static func contiguous(_ base: UnsafeMutablePointer<Float>, heads: Int, tokens: Int, headSize: Int) -> AttentionOperand {
        AttentionOperand(base: base, batchStride: heads * tokens * headSize, headStride: tokens * headSize, rowStride: headSize)
    }

    /// Part `part` (0 = q, 1 = k, 2 = v) of a packed (B, T, 3, NH, HS) projection.
    public static func packedQKV(_ base: UnsafeMutablePointer<Float>, part: Int, heads: Int, tokens: Int, headSize: Int) -> AttentionOperand {
        let d = heads * headSize
        return AttentionOperand(base: base + part * d, batchStride: tokens * 3 * d, headStride: headSize, rowStride: 3 * d)
    }

    /// A (B, T, NH, HS) tensor (heads interleaved per token, as the input of the output projection).
    public static func tokenMajor(_ base: UnsafeMutablePointer<Float>, heads: Int, tokens: Int, headSize: Int) -> AttentionOperand {
        AttentionOperand(base: base, batchStride: tokens * heads * headSize, headStride: headSize, rowStride: heads * headSize)
    }

    /// ``contiguous(_:heads:tokens:headSize:)`` for an input (q, k, v, out, dout): the kernels
    /// never write through an input operand.
    public static func contiguous(_ base: UnsafePointer<Float>, heads: Int, tokens: Int, headSize: Int) -> AttentionOperand {
        contiguous(UnsafeMutablePointer(mutating: base), heads: heads, tokens: tokens, headSize: headSize)
    }

    /// ``packedQKV(_:part:heads:tokens:headSize:)`` for an input.
    public static func packedQKV(_ base: UnsafePointer<Float>, part: Int, heads: Int, tokens: Int, headSize: Int) -> AttentionOperand {
        packedQKV(UnsafeMutablePointer(mutating: base), part: part, heads: heads, tokens: tokens, headSize: headSize)
    }

    /// ``tokenMajor(_:heads:tokens:headSize:)`` for an input.
    public static func tokenMajor(_ base: UnsafePointer<Float>, heads: Int, tokens: Int, headSize: Int) -> AttentionOperand {
        tokenMajor(UnsafeMutablePointer(mutating: base), heads: heads, tokens: tokens, headSize: headSize)
    }

    @inline(__always) func at(_ b: Int, _ h: Int) -> UnsafeMutablePointer<Float> { base + b * batchStride + h * headStride }
}

/// Dimensions of an attention call: (B, NH, T, HS) and the logit scale.
public struct AttentionShape: Sendable, Equatable {
    /// Batch size B.
    public var batch: Int
    /// Number of heads NH.
    public var heads: Int
    /// Sequence length T.
    public var tokens: Int
    /// Head size HS.
    public var headSize: Int
    /// Factor applied to the logits `Q K^T` before the softmax.
    public var scale: Float
    /// A shape; `scale` defaults to `1 / sqrt(headSize)`.
    public init(batch: Int, heads: Int, tokens: Int, headSize: Int, scale: Float? = nil) {
        self.batch = batch; self.heads = heads; self.tokens = tokens; self.headSize = headSize
        self.scale = scale ?? 1 / Float(headSize).squareRoot()
    }
    /// Rows of queries processed per block: the scratch is `blockRows * T` floats (O(T) per head).
    public var blockRows: Int { Swift.max(1, Swift.min(tokens, (1 << 18) / Swift.max(tokens, 1))) }
    /// Floats of scratch the kernels need.
    public var scratchCount: Int { 2 * blockRows * tokens }
    /// Multiply-add FLOPs of the forward pass (two GEMMs).
    public var forwardFlops: Double { 4.0 * Double(batch * heads) * Double(tokens) * Double(tokens) * Double(headSize) }
}

extension Kernels {
    /// Tests set this to run the one-head-at-a-time path (threaded GEMMs), which CPUs without a
    /// SIMD GEMM kernel use, on machines that have one.
    @TaskLocal static var forceSerialHeads = false

    /// Attention core `O = softmax(scale * Q K^T) V` per (batch, head), memory-efficient:
    /// queries are processed in blocks, so scratch is O(T) per block row, never O(T^2) per head.
    /// Writes `lse` (B, NH, T), the log-sum-exp of each scaled logit row, when given (for backward).
    public static func attentionForward(q: AttentionOperand, k: AttentionOperand, v: AttentionOperand,
                                        out: AttentionOperand, lse: UnsafeMutablePointer<Float>?,
                                        shape s: AttentionShape, scratch: UnsafeMutablePointer<Float>) {
        if usesTiledAttention(s) {
            attentionForwardTiled(q: q, k: k, v: v, out: out, lse: lse, shape: s)
            return
        }
        if Gemm.hasSerialKernel && !forceSerialHeads {
            attentionForwardPerHead(q: q, k: k, v: v, out: out, lse: lse, shape: s)
            return
        }
        let t = s.tokens, hs = s.headSize, br = s.blockRows
        let p = SendablePointer(scratch)
        for b in 0..<s.batch {
            for h in 0..<s.heads {
                let qh = q.at(b, h), kh = k.at(b, h), vh = v.at(b, h), oh = out.at(b, h)
                let lseh = lse.map { SendablePointer($0 + (b * s.heads + h) * t) }
                var r0 = 0
                while r0 < t {
                    let rows = Swift.min(br, t - r0)
                    // S = Q_blk K^T (rows, T); the scale is applied inside the softmax.
                    Gemm.sgemm(transposeB: true, m: rows, n: t, k: hs, a: qh + r0 * q.rowStride, lda: q.rowStride,
                               b: kh, ldb: k.rowStride, c: scratch, ldc: t)
                    let base = r0
                    parallelFor(rows, grain: Swift.max(1, 8192 / Swift.max(t, 1))) { rr in
                        for i in rr {
                            let row = p.base + i * t
                            let l = softmaxRow(row, row, t, scale: s.scale)
                            lseh?[base + i] = l
                        }
                    }
                    // O_blk = P V (rows, HS)
                    Gemm.sgemm(m: rows, n: hs, k: t, a: scratch, lda: t, b: vh, ldb: v.rowStride,
                               c: oh + r0 * out.rowStride, ldc: out.rowStride)
                    r0 += rows
                }
            }
        }
    }

    /// Attention backward, accumulating into dq, dk, dv (+=), or with `accumulate: false`
    /// assigning them (their old contents, even NaN, are never read: a gradient buffer that holds
    /// nothing yet needs no zero fill). Recomputes the probabilities from `lse` blockwise (O(T)
    /// scratch per block row, like the forward).
    ///
    /// Pass the forward output as `out` when it is still alive: long sequences then run the tiled
    /// (flash-style) backward, which needs each row's `<dO_i, O_i>` and keeps the key and value
    /// gradients of one key block in cache instead of streaming all of them per query block.
    public static func attentionBackward(dout: AttentionOperand, out: AttentionOperand? = nil,
                                         q: AttentionOperand, k: AttentionOperand,
                                         v: AttentionOperand, lse: UnsafePointer<Float>,
                                         dq: AttentionOperand, dk: AttentionOperand, dv: AttentionOperand,
                                         shape s: AttentionShape, scratch: UnsafeMutablePointer<Float>,
                                         accumulate: Bool = true) {
        if Gemm.hasSerialKernel && !forceSerialHeads && !(out != nil && usesTiledAttention(s)) {
            attentionBackwardPerHead(dout: dout, q: q, k: k, v: v, lse: lse, dq: dq, dk: dk, dv: dv, shape: s,
                                     accumulate: accumulate)
            return
        }
        if !accumulate {
            // The other paths add into their outputs: start them from zero.
            for operand in [dq, dk, dv] {
                for b in 0..<s.batch {
                    for h in 0..<s.heads {
                        let head = operand.at(b, h)
                        for i in 0..<s.tokens { (head + i * operand.rowStride).update(repeating: 0, count: s.headSize) }
                    }
                }
            }
        }
        if let out, usesTiledAttention(s) {
            attentionBackwardTiled(dout: dout, out: out, q: q, k: k, v: v, lse: lse, dq: dq, dk: dk, dv: dv, shape: s)
            return
        }
        let t = s.tokens, hs = s.headSize, br = s.blockRows
        let pBuf = SendablePointer(scratch), dpBuf = SendablePointer(scratch + br * t)
        let lses = SendablePointer(lse)
        for b in 0..<s.batch {
            for h in 0..<s.heads {
                let qh = q.at(b, h), kh = k.at(b, h), vh = v.at(b, h), doh = dout.at(b, h)
                let dqh = dq.at(b, h), dkh = dk.at(b, h), dvh = dv.at(b, h)
                let lbase = (b * s.heads + h) * t
                var r0 = 0
                while r0 < t {
                    let rows = Swift.min(br, t - r0)
                    let base = r0
                    // Recompute P = exp(scale * Q K^T - lse).
                    Gemm.sgemm(transposeB: true, m: rows, n: t, k: hs, a: qh + r0 * q.rowStride, lda: q.rowStride,
                               b: kh, ldb: k.rowStride, c: pBuf.base, ldc: t)
                    // dP = dO V^T (rows, T)
                    Gemm.sgemm(transposeB: true, m: rows, n: t, k: hs, a: doh + r0 * dout.rowStride, lda: dout.rowStride,
                               b: vh, ldb: v.rowStride, c: dpBuf.base, ldc: t)
                    parallelFor(rows, grain: Swift.max(1, 4096 / Swift.max(t, 1))) { rr in
                        for i in rr {
                            probabilityAndScoreGradient(p: pBuf.base + i * t, dp: dpBuf.base + i * t, t: t,
                                                        scale: s.scale, lse: lses[lbase + base + i])
                        }
                    }
                    // dV += P^T dO_blk (T, HS)
                    Gemm.sgemm(transposeA: true, m: t, n: hs, k: rows, a: pBuf.base, lda: t,
                               b: doh + r0 * dout.rowStride, ldb: dout.rowStride, beta: 1, c: dvh, ldc: dv.rowStride)
                    // dQ_blk += scale dS K (rows, HS)
                    Gemm.sgemm(m: rows, n: hs, k: t, alpha: s.scale, a: dpBuf.base, lda: t, b: kh, ldb: k.rowStride,
                               beta: 1, c: dqh + r0 * dq.rowStride, ldc: dq.rowStride)
                    // dK += scale dS^T Q_blk (T, HS)
                    Gemm.sgemm(transposeA: true, m: t, n: hs, k: rows, alpha: s.scale, a: dpBuf.base, lda: t,
                               b: qh + r0 * q.rowStride, ldb: q.rowStride, beta: 1, c: dkh, ldc: dk.rowStride)
                    r0 += rows
                }
            }
        }
    }
}

extension Naive {
    /// Reference attention in Double for contiguous (B, NH, T, HS) q, k, v.
    public static func attention(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                 out: UnsafeMutablePointer<Float>, shape s: AttentionShape) {
        let t = s.tokens, hs = s.headSize
        var row = [Double](repeating: 0, count: t)
        for bh in 0..<(s.batch * s.heads) {
            let off = bh * t * hs
            for i in 0..<t {
                var m = -Double.infinity
                for j in 0..<t {
                    var d = 0.0
                    for c in 0..<hs { d += Double(q[off + i * hs + c]) * Double(k[off + j * hs + c]) }
                    row[j] = d * Double(s.scale); m = Swift.max(m, row[j])
                }
                var sum = 0.0
                for j in 0..<t { row[j] = Foundation.exp(row[j] - m); sum += row[j] }
                for c in 0..<hs {
                    var acc = 0.0
                    for j in 0..<t { acc += row[j] * Double(v[off + j * hs + c]) }
                    out[off + i * hs + c] = Float(acc / sum)
                }
            }
        }
    }
}

extension Tensor {
    /// Attention core `softmax(scale * Q K^T) V` for contiguous (B, NH, T, HS) tensors;
    /// the default scale is HS^-1/2. Memory-efficient (blockwise, no T x T matrix per head).
    public static func attention(q: Tensor, k: Tensor, v: Tensor, scale: Float? = nil) -> Tensor {
        let (b, nh, t, hs) = q.shape.dims4()
        precondition(k.shape == q.shape && v.shape == q.shape,
                     "attention: q \(q.shape), k \(k.shape), v \(v.shape) must be equal (B, NH, T, HS)")
        let s = AttentionShape(batch: b, heads: nh, tokens: t, headSize: hs, scale: scale)
        var out = Tensor(uninitialized: q.shape)
        let scratch = TensorStorage(uninitializedCount: s.scratchCount)
        let o = out.mutablePointer()
        withExtendedLifetime((q.storage, k.storage, v.storage, scratch)) {
            Kernels.attentionForward(
                q: .contiguous(q.storage.base, heads: nh, tokens: t, headSize: hs),
                k: .contiguous(k.storage.base, heads: nh, tokens: t, headSize: hs),
                v: .contiguous(v.storage.base, heads: nh, tokens: t, headSize: hs),
                out: .contiguous(o, heads: nh, tokens: t, headSize: hs), lse: nil, shape: s, scratch: scratch.mutableBase)
        }
        return out
    }
}
