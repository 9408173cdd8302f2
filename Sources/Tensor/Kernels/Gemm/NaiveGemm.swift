extension Naive {
    /// Reference twin of ``Gemm/sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``
    /// (same labels, defaults and semantics), accumulating each dot product in Double.
    /// `beta == 0` never reads C; `alpha == 0` or `k == 0` never reads A or B.
    public static func sgemm(transposeA: Bool = false, transposeB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int? = nil,
                             b: UnsafePointer<Float>, ldb: Int? = nil,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        let la = lda ?? (transposeA ? m : k)
        let lb = ldb ?? (transposeB ? k : n)
        let lc = ldc ?? n
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                if alpha != 0 {
                    for p in 0..<k {
                        let x = transposeA ? a[p * la + i] : a[i * la + p]   // op(A)(i, p)
                        let y = transposeB ? b[j * lb + p] : b[p * lb + j]   // op(B)(p, j)
                        sum += Double(x) * Double(y)
                    }
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * lc + j])
                c[i * lc + j] = Float(Double(alpha) * sum + old)
            }
        }
    }
}
