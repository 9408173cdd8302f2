import CBLAS
import Foundation
import Tensor

/// Matmul cases (name, M, K, N) for x (M, K) W^T with W (N, K): the small config's linear layers at
/// batch 16 with 257 tokens (unmasked) and 33 tokens (90% block masking), then squares.
func matmulCases(quick: Bool) -> [(String, Int, Int, Int)] {
    var cases: [(String, Int, Int, Int)] = []
    for (label, tokens) in [("unmasked", 257), ("masked90", 33)] {
        let m = 16 * tokens
        cases += [("qkv_\(label)", m, 512, 1536), ("proj_\(label)", m, 512, 512), ("fc1_\(label)", m, 512, 2048),
                  ("fc2_\(label)", m, 2048, 512), ("skip_linear_\(label)", m, 1024, 512)]
    }
    for s in (quick ? [256, 1024] : [256, 512, 1024, 2048]) { cases.append(("square_\(s)", s, s, s)) }
    return cases
}

/// Matmul on the small config's real shapes (batch 16, 64 px: 257 tokens; 90% block masking: 33 tokens)
/// and square sizes, through our wrapper and through raw `cblas_sgemm`, alternating.
func benchMatmul(threads: Int, quick: Bool) {
    let cases = matmulCases(quick: quick)
    var rng = RandomGenerator(seed: 0)
    for (name, m, k, n) in cases {
        let x = Tensor.randomNormal([m, k], using: &rng)
        let w = Tensor.randomNormal([n, k], using: &rng)          // PyTorch (out, in) layout: x W^T
        var c = Tensor.zeros([m, n])
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        let reps = max(5, min(50, Int(2e10 / flops)))
        let cp = c.mutablePointer()
        // Alternate the two sides call by call (each in short bursts of 3), so both see the same
        // machine state; OpenBLAS's idle threads spin after a call and ours poll for 0.3 ms, so
        // each burst starts with a warm-up call.
        let (ours, raw) = alternatingMedians(rounds: max(3, reps / 3), burst: 3) {
            _ = x.matmul(w, transposeB: true)
        } _: {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(n), blasint(k), 1,
                        x.storage.base, blasint(k), w.storage.base, blasint(k), 0, cp, blasint(n))
        }
        let g = flops / ours / 1e6
        emit([("name", "matmul_\(name)"), ("shape", "(\(m)x\(k))x(\(k)x\(n))^T"), ("threads", threads),
              ("median_ms", ours), ("gflops", g), ("raw_sgemm_ms", raw), ("raw_gflops", flops / raw / 1e6),
              ("wrapper_overhead_pct", (ours / raw - 1) * 100),
              ("peak_share", g / measuredPeak(threads: threads).gflops)])
    }
}

/// Attention core: fused blockwise kernel vs the unfused composition (batched matmul, softmax,
/// batched matmul), forward and forward+backward.
func benchAttention(threads: Int, quick: Bool) {
    var cases = [(16, 8, 257, 64), (16, 8, 33, 64), (64, 8, 65, 64), (4, 12, 417, 64)]
    if !quick { cases.append((1, 12, 4097, 64)) }
    var rng = RandomGenerator(seed: 1)
    for (b, nh, t, hs) in cases {
        let data = AttentionBenchData(batch: b, heads: nh, tokens: t, headSize: hs, rng: &rng)
        let s = data.shape
        let fl = s.forwardFlops
        let reps = max(3, min(20, Int(3e9 / fl)))
        let fused = medianMs(warmup: 1, reps: reps) { data.forward() }
        let fusedFB = medianMs(warmup: 1, reps: reps) { data.forward(); data.backward() }
        let (q, k, v) = (data.q, data.k, data.v)
        var unfused = Double.nan
        if t <= 1024 {
            unfused = medianMs(warmup: 1, reps: reps) {
                let p = (q.matmul(k, transposeB: true) * s.scale).softmax()
                _ = p.matmul(v)
            }
        }
        emit([("name", "attention"), ("shape", "(\(b), \(nh), \(t), \(hs))"), ("threads", threads),
              ("median_ms", fused), ("gflops", fl / fused / 1e6), ("fwd_bwd_ms", fusedFB),
              ("fwd_bwd_gflops", 3.5 * fl / fusedFB / 1e6), ("unfused_fwd_ms", unfused),
              ("peak_rss_mb", peakRSSMiB())])
    }
}

/// Random q, k, v and output gradient of one (B, NH, T, HS) attention shape with every output and
/// gradient buffer, for timing the fused kernels (contiguous operands).
final class AttentionBenchData {
    let shape: AttentionShape
    let q: Tensor, k: Tensor, v: Tensor, g: Tensor
    private var out: Tensor, lse: Tensor, scratch: Tensor, dq: Tensor, dk: Tensor, dv: Tensor

    init(batch b: Int, heads nh: Int, tokens t: Int, headSize hs: Int, rng: inout RandomGenerator) {
        let dims: Shape = [b, nh, t, hs]
        shape = AttentionShape(batch: b, heads: nh, tokens: t, headSize: hs)
        q = Tensor.randomNormal(dims, using: &rng); k = Tensor.randomNormal(dims, using: &rng)
        v = Tensor.randomNormal(dims, using: &rng); g = Tensor.randomNormal(dims, using: &rng)
        out = Tensor.zeros(dims); lse = Tensor.zeros([b, nh, t]); scratch = Tensor.zeros([shape.scratchCount])
        dq = Tensor.zeros(dims); dk = Tensor.zeros(dims); dv = Tensor.zeros(dims)
    }

    private func op(_ p: UnsafePointer<Float>) -> AttentionOperand {
        .contiguous(p, heads: shape.heads, tokens: shape.tokens, headSize: shape.headSize)
    }

    /// Forward into the output and log-sum-exp buffers.
    func forward() {
        Kernels.attentionForward(q: op(q.storage.base), k: op(k.storage.base), v: op(v.storage.base),
                                 out: op(out.mutablePointer()), lse: lse.mutablePointer(), shape: shape,
                                 scratch: scratch.mutablePointer())
    }

    /// Backward from the last forward (accumulating into the gradient buffers).
    func backward() {
        Kernels.attentionBackward(dout: op(g.storage.base), out: op(out.mutablePointer()), q: op(q.storage.base),
                                  k: op(k.storage.base), v: op(v.storage.base), lse: lse.storage.base,
                                  dq: op(dq.mutablePointer()), dk: op(dk.mutablePointer()), dv: op(dv.mutablePointer()),
                                  shape: shape, scratch: scratch.mutablePointer())
    }
}
