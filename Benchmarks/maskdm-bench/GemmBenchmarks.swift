import CBLAS
import Foundation
import Tensor

/// Our GEMM (`Gemm.sgemm`, own kernels threaded by `parallelFor`) against raw OpenBLAS
/// `cblas_sgemm` on the `matmul` suite's shapes, x (M, K) W^T, alternating the two sides;
/// median milliseconds, GFLOP/s and share of the machine's peak for `threads` cores.
func benchGemm(threads: Int, quick: Bool) {
    var rng = RandomGenerator(seed: 0)
    for (name, m, k, n) in matmulCases(quick: quick) {
        let x = Tensor.randomNormal([m, k], using: &rng)
        let w = Tensor.randomNormal([n, k], using: &rng)          // PyTorch (out, in) layout: x W^T
        var c = Tensor.zeros([m, n])
        let cp = c.mutablePointer()
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        let reps = max(5, min(50, Int(2e10 / flops)))
        var oursT: [Double] = [], rawT: [Double] = []
        withExtendedLifetime((x, w, c)) {
            for _ in 0..<3 {   // alternate the two sides
                oursT.append(medianMs(warmup: 1, reps: reps) {
                    Gemm.sgemm(transposeB: true, m: m, n: n, k: k, a: x.storage.base, b: w.storage.base, c: cp)
                })
                rawT.append(medianMs(warmup: 1, reps: reps) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(n), blasint(k), 1,
                                x.storage.base, blasint(k), w.storage.base, blasint(k), 0, cp, blasint(n))
                })
            }
        }
        let ours = oursT.sorted()[1], raw = rawT.sorted()[1]
        let peak = peakGflopsPerCore * Double(threads)
        emit([("name", "gemm_\(name)"), ("shape", "(\(m)x\(k))x(\(k)x\(n))^T"), ("threads", threads),
              ("isa", "\(Gemm.instructionSet)"), ("median_ms", ours), ("gflops", flops / ours / 1e6),
              ("peak_share", flops / ours / 1e6 / peak), ("openblas_ms", raw),
              ("openblas_gflops", flops / raw / 1e6), ("openblas_peak_share", flops / raw / 1e6 / peak),
              ("speedup", raw / ours)])
    }
}
