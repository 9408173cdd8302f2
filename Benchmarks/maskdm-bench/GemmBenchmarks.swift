import CBLAS
import Foundation
import Tensor

/// Our GEMM (`Gemm.sgemm`, own kernels threaded by `parallelFor`) against raw OpenBLAS
/// `cblas_sgemm` on the `matmul` suite's shapes, alternating the two sides; median milliseconds,
/// GFLOP/s and share of the machine's peak for `threads` cores. Each linear layer shape is timed in
/// the three products a training step runs: forward `y = x W^T`, weight gradient `dW = dy^T x` and
/// input gradient `dx = dy W` (squares only forward).
func benchGemm(threads: Int, quick: Bool) {
    benchGemm(matmulCases(quick: quick), threads: threads)
}

/// `gemm-shapes NAME:ROWS:IN:OUT ...`: the `gemm` suite's three products on the linear layers
/// given (for instance `tiny_fc1:2080:256:1024`, the tiny config's fc1 at batch 32, 65 tokens).
func benchGemmShapes(_ specs: [String], threads: Int) throws {
    let cases = try specs.map { spec -> (String, Int, Int, Int) in
        let parts = spec.split(separator: ":")
        guard parts.count == 4, let rows = Int(parts[1]), let inDim = Int(parts[2]), let outDim = Int(parts[3]),
              rows > 0, inDim > 0, outDim > 0 else {
            throw BenchUsageError("gemm-shapes: '\(spec)' is not NAME:ROWS:IN:OUT with positive sizes")
        }
        return (String(parts[0]), rows, inDim, outDim)
    }
    guard !cases.isEmpty else { throw BenchUsageError("gemm-shapes: give at least one NAME:ROWS:IN:OUT") }
    benchGemm(cases, threads: threads)
}

/// A command-line mistake, printed as the message.
struct BenchUsageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

func benchGemm(_ cases: [(String, Int, Int, Int)], threads: Int) {
    var rng = RandomGenerator(seed: 0)
    for (name, rows, inDim, outDim) in cases {
        var products = [("", false, true, rows, outDim, inDim)]             // x (rows, in) W^T
        if !name.hasPrefix("square") {
            products += [("_dW", true, false, outDim, inDim, rows),        // dy^T (out, rows) x (rows, in)
                         ("_dx", false, false, rows, inDim, outDim)]       // dy (rows, out) W (out, in)
        }
        for (suffix, ta, tb, m, n, k) in products {
            let a = Tensor.randomNormal(ta ? [k, m] : [m, k], using: &rng)
            let b = Tensor.randomNormal(tb ? [n, k] : [k, n], using: &rng)
            var c = Tensor.zeros([m, n])
            let cp = c.mutablePointer()
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let reps = max(5, min(50, Int(2e10 / flops)))
            var oursT: [Double] = [], rawT: [Double] = []
            withExtendedLifetime((a, b, c)) {
                for _ in 0..<3 {   // alternate the two sides
                    oursT.append(medianMs(warmup: 1, reps: reps) {
                        Gemm.sgemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: a.storage.base, b: b.storage.base, c: cp)
                    })
                    rawT.append(medianMs(warmup: 1, reps: reps) {
                        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                                    blasint(m), blasint(n), blasint(k), 1, a.storage.base, blasint(ta ? m : k),
                                    b.storage.base, blasint(tb ? k : n), 0, cp, blasint(n))
                    })
                }
            }
            let ours = oursT.sorted()[1], raw = rawT.sorted()[1]
            let peak = measuredPeak(threads: threads).gflops
            emit([("name", "gemm_\(name)\(suffix)"), ("shape", "\(ta ? "T" : "N")\(tb ? "T" : "N") m \(m) n \(n) k \(k)"),
                  ("threads", threads), ("isa", Gemm.usesOwnKernels ? "\(Gemm.instructionSet)" : "openblas"), ("blocking", Gemm.blocking.environmentName),
                  ("median_ms", ours), ("gflops", flops / ours / 1e6), ("peak_share", flops / ours / 1e6 / peak),
                  ("openblas_ms", raw), ("openblas_gflops", flops / raw / 1e6),
                  ("openblas_peak_share", flops / raw / 1e6 / peak), ("speedup", raw / ours)])
        }
    }
}
