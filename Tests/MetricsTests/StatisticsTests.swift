import Foundation
import Tensor
import Testing
@testable import Metrics

@Suite struct FrechetDistanceTests {
    @Test func meanAndCovarianceMatchNumpy() throws {
        let f = try Fixtures.statistics()
        let s = try GaussianStatistics(features: tensor(f.a))
        #expect(s.count == 60 && s.dimension == 16)
        for j in 0..<16 {
            #expect(abs(s.mean[j] - f.mean_a[j]) < 1e-6)
            #expect(abs(s.covariance[j * 16 + j] - f.cov_a_diag[j]) < 1e-6 * max(1, f.cov_a_diag[j]))
        }
        #expect(abs(s.covariance[1] - f.cov_a_01) < 1e-6 && s.covariance[1] == s.covariance[16])
    }

    /// Against pytorch-fid's formula (scipy.linalg.sqrtm) on full-rank and rank-deficient covariances.
    @Test func matchesScipy() throws {
        let f = try Fixtures.statistics()
        let a = try GaussianStatistics(features: tensor(f.a))
        let b = try GaussianStatistics(features: tensor(f.b))
        let c = try GaussianStatistics(features: tensor(f.c))            // 10 samples in 16 dimensions
        let ab = frechetDistance(a, b), ac = frechetDistance(a, c)
        #expect(abs(ab - f.fid_ab) < 1e-6 * f.fid_ab, "\(ab) vs scipy \(f.fid_ab)")
        #expect(abs(ab - f.fid_ab_eigh) < 1e-6 * f.fid_ab)
        #expect(abs(ac - f.fid_ac_eigh) < 1e-6 * f.fid_ac, "\(ac) vs numpy eigh \(f.fid_ac_eigh)")
        #expect(abs(ac - f.fid_ac) < 1e-4 * f.fid_ac, "\(ac) vs scipy \(f.fid_ac)")
        #expect(abs(frechetDistance(b, a) - ab) < 1e-9 * ab)
        // The statistics of fewer samples (c's 10 against a's) are S1 in either order: the same
        // sums, bit for bit.
        #expect(frechetDistance(c, a).bitPattern == ac.bitPattern, "\(frechetDistance(c, a)) vs \(ac)")
    }

    @Test func identicalStatisticsGiveZero() throws {
        let f = try Fixtures.statistics()
        let a = try GaussianStatistics(features: tensor(f.a))
        #expect(abs(frechetDistance(a, a)) < 1e-9)
        let c = try GaussianStatistics(features: tensor(f.c))           // singular covariance
        #expect(abs(frechetDistance(c, c)) < 1e-12 * c.covarianceTrace, "\(frechetDistance(c, c))")
    }

    /// 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s.
    @Test func oneDimensionalClosedForm() {
        let a = GaussianStatistics(count: 10, mean: [1.5], covariance: [4])
        let b = GaussianStatistics(count: 10, mean: [-0.5], covariance: [0.25])
        #expect(abs(frechetDistance(a, b) - (4 + 1.5 * 1.5)) < 1e-12)
    }

    /// Diagonal covariances: the sum over dimensions of the 1-D distances; a rotation of both
    /// Gaussians leaves the distance unchanged.
    @Test func diagonalClosedFormAndRotationInvariance() {
        let v1 = [1.0, 2.0, 0.5, 3.0], v2 = [0.5, 2.0, 2.0, 0.0], m1 = [0.0, 1.0, -1.0, 2.0], m2 = [1.0, 1.0, 0.0, 0.0]
        func diagonal(_ v: [Double]) -> [Double] {
            var c = [Double](repeating: 0, count: 16)
            for i in 0..<4 { c[i * 5] = v[i] }
            return c
        }
        var expected = 0.0
        for i in 0..<4 {
            expected += (m1[i] - m2[i]) * (m1[i] - m2[i]) + pow(v1[i].squareRoot() - v2[i].squareRoot(), 2)
        }
        let a = GaussianStatistics(count: 5, mean: m1, covariance: diagonal(v1))
        let b = GaussianStatistics(count: 5, mean: m2, covariance: diagonal(v2))
        #expect(abs(frechetDistance(a, b) - expected) < 1e-12)
        // Rotate by a Householder reflection H = I - 2 u u^T (orthogonal): S -> H S H, mu -> H mu.
        let u = [0.5, -0.5, 0.5, 0.5]
        var h = [Double](repeating: 0, count: 16)
        for i in 0..<4 { for j in 0..<4 { h[i * 4 + j] = (i == j ? 1 : 0) - 2 * u[i] * u[j] } }
        func rotate(_ s: GaussianStatistics) -> GaussianStatistics {
            let c = product(product(h, s.covariance, n: 4), h, n: 4)
            let m = (0..<4).map { i in (0..<4).reduce(0.0) { $0 + h[i * 4 + $1] * s.mean[$1] } }
            return GaussianStatistics(count: s.count, mean: m, covariance: c)
        }
        #expect(abs(frechetDistance(rotate(a), rotate(b)) - expected) < 1e-10)
    }

    @Test func tooFewSamplesThrow() {
        #expect(throws: MetricsError.tooFewSamples(what: "covariance of features", count: 1, needed: 2)) {
            try GaussianStatistics(features: Tensor([1, 2, 3], shape: [1, 3]))
        }
    }

    /// tr sqrt(S1 S2) for S1 = A A^T, S2 = I: tr sqrt(S1) = the sum of A's singular values;
    /// here A = [[2, 0], [0, 3]] rotated, so 5.
    @Test func traceSqrtProductClosedForm() throws {
        let c = cos(0.3), s = sin(0.3)
        // S1 = R diag(4, 9) R^T
        let s1 = [4 * c * c + 9 * s * s, (4 - 9) * c * s, (4 - 9) * c * s, 4 * s * s + 9 * c * c]
        let t = try #require(traceSqrtProduct(s1, [1, 0, 0, 1], n: 2))
        #expect(abs(t - 5) < 1e-12)
        // A singular S1 (rank 1): only the kept eigenvalue contributes.
        let t1 = try #require(traceSqrtProduct([4, 0, 0, 0], [9, 0, 0, 1], n: 2))
        #expect(abs(t1 - 6) < 1e-12)
        #expect(traceSqrtProduct([0, 0, 0, 0], [1, 0, 0, 1], n: 2) == 0)
    }
}

@Suite struct KernelInceptionDistanceTests {
    @Test func mmdMatchesNumpy() throws {
        let f = try Fixtures.statistics()
        let a = tensor(f.a), b = tensor(f.b)
        let ab = KernelInceptionDistance.mmd2Unbiased(a, b)
        #expect(abs(ab - f.mmd2_ab) < 1e-5 * abs(f.mmd2_ab), "\(ab) vs \(f.mmd2_ab)")
        let a50 = tensor(Array(f.a.prefix(50)))
        // Equal sizes (50 and 50): every subset is the whole set, so KID is that MMD with std 0.
        let kid = try KernelInceptionDistance(a50, b, subsets: 10, subsetSize: 1000)
        #expect(kid.subsetSize == 50 && kid.std == 0)
        #expect(abs(kid.mean - f.mmd2_a50_b) < 1e-5 * abs(f.mmd2_a50_b))
    }

    /// By hand for 1-D features: k(x, y) = (x y + 1)^3.
    @Test func mmdByHand() {
        let x: [Double] = [0, 1, 2], y: [Double] = [1, -1]
        func k(_ u: Double, _ v: Double) -> Double { pow(u * v + 1, 3) }
        var xx = 0.0, yy = 0.0, xy = 0.0
        for i in 0..<3 { for j in 0..<3 where i != j { xx += k(x[i], x[j]) } }
        for i in 0..<2 { for j in 0..<2 where i != j { yy += k(y[i], y[j]) } }
        for u in x { for v in y { xy += k(u, v) } }
        let expected = xx / 6 + yy / 2 - 2 * xy / 6
        let got = KernelInceptionDistance.mmd2Unbiased(Tensor(x.map(Float.init), shape: [3, 1]),
                                                       Tensor(y.map(Float.init), shape: [2, 1]))
        #expect(abs(got - expected) < 1e-9)
    }

    /// Subsets: seeded, reproducible, near zero for two samples of one distribution and clearly
    /// positive for shifted ones.
    @Test func subsetsAreSeededAndSensible() throws {
        var rng = RandomGenerator(seed: 11)
        let p = Tensor.randomNormal([300, 8], using: &rng)
        let q = Tensor.randomNormal([200, 8], using: &rng)
        let shifted = Tensor.randomNormal([200, 8], mean: 1, using: &rng)
        let k1 = try KernelInceptionDistance(p, q, subsets: 20, subsetSize: 50, seed: 5)
        let k2 = try KernelInceptionDistance(p, q, subsets: 20, subsetSize: 50, seed: 5)
        let k3 = try KernelInceptionDistance(p, q, subsets: 20, subsetSize: 50, seed: 6)
        #expect(k1 == k2 && k1 != k3)
        #expect(k1.subsetSize == 50 && k1.std > 0)
        let far = try KernelInceptionDistance(p, shifted, subsets: 20, subsetSize: 50, seed: 5)
        #expect(abs(k1.mean) < 3 * k1.std + 0.05, "\(k1)")
        #expect(far.mean > 10 * abs(k1.mean) && far.mean > 3 * far.std, "\(far) vs \(k1)")
    }

    @Test func subsetSampleIsDistinct() {
        var rng = RandomGenerator(seed: 1)
        let s = KernelInceptionDistance.sample(40, of: 50, using: &rng)
        #expect(s.count == 40 && Set(s).count == 40 && s.allSatisfy { (0..<50).contains($0) })
    }
}

/// `a b` for (n, n) row-major matrices.
private func product(_ a: [Double], _ b: [Double], n: Int) -> [Double] {
    var c = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for k in 0..<n { for j in 0..<n { c[i * n + j] += a[i * n + k] * b[k * n + j] } } }
    return c
}
