// Float64 linear algebra for the Frechet distance: symmetric eigendecomposition (LAPACK dsyevd).
import CBLAS
import Tensor

/// Symmetric Float64 matrices, row-major (n, n).
enum SymmetricMatrix {
    /// Eigenvalues (ascending) and eigenvectors of the symmetric matrix `a` (n, n) by LAPACK
    /// `dsyevd`; eigenvector `i` is row `i` of `vectors`. Nil when LAPACK reports a failure
    /// (no convergence or a NaN in the input).
    static func eigen(_ a: [Double], n: Int) -> (values: [Double], vectors: [Double])? {
        precondition(a.count == n * n && n > 0, "SymmetricMatrix.eigen: \(a.count) values for a \(n)x\(n) matrix")
        // Column-major LAPACK on a symmetric matrix: the input needs no transpose, and the
        // eigenvectors, LAPACK's columns, are the rows of the row-major result.
        var matrix = a
        var values = [Double](repeating: 0, count: n)
        var info: Int32 = 0
        var size = Int32(n), lda = Int32(n)
        var jobz = CChar(UInt8(ascii: "V")), uplo = CChar(UInt8(ascii: "U"))
        var workQuery = 0.0, iworkQuery: Int32 = 0, query: Int32 = -1
        dsyevd_(&jobz, &uplo, &size, &matrix, &lda, &values, &workQuery, &query, &iworkQuery, &query, &info)
        guard info == 0 else { return nil }
        var lwork = Int32(workQuery.rounded(.up)), liwork = iworkQuery
        var work = [Double](repeating: 0, count: Int(lwork))
        var iwork = [Int32](repeating: 0, count: Int(liwork))
        dsyevd_(&jobz, &uplo, &size, &matrix, &lda, &values, &work, &lwork, &iwork, &liwork, &info)
        guard info == 0 else { return nil }
        return (values, matrix)
    }

    /// Eigenvalues with those at or below the rounding level of the decomposition,
    /// `n * eps * max |lambda|` (including every negative one), set to 0: the zero eigenvalues of a
    /// singular covariance come out of the solver as +-rounding noise, whose square roots would
    /// otherwise add up (2,048 of them for a covariance of fewer than 2,048 images).
    static func clampedToNumericalRank(_ values: [Double]) -> [Double] {
        let largest = values.reduce(0) { Swift.max($0, abs($1)) }
        let cutoff = Double(values.count) * Double.ulpOfOne * largest
        return values.map { $0 > cutoff ? $0 : 0 }
    }

    /// Copies the upper triangle onto the lower one.
    static func mirrorUpper(_ a: inout [Double], n: Int) {
        for i in 0..<n {
            for j in 0..<i { a[i * n + j] = a[j * n + i] }
        }
    }

    /// `(a + a^T) / 2`, removing the rounding asymmetry of a product that is symmetric in exact arithmetic.
    static func symmetrized(_ a: [Double], n: Int) -> [Double] {
        var s = a
        for i in 0..<n {
            for j in 0..<i {
                let v = 0.5 * (a[i * n + j] + a[j * n + i])
                s[i * n + j] = v
                s[j * n + i] = v
            }
        }
        return s
    }
}
