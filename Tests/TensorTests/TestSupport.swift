import Foundation
import Testing
@testable import Tensor

/// Whether tests of the own SIMD kernels apply: always, unless the run chose another kernel with
/// `MASKDM_GEMM_ISA` (CI runs the suite once more with `openblas`). Without that choice, a
/// machine or build lacking the kernels fails these tests instead of skipping them.
let ownKernelsApply = Gemm.usesOwnKernels || ProcessInfo.processInfo.environment["MASKDM_GEMM_ISA"] == nil

/// Central finite-difference gradient of a scalar function of a tensor (evaluated in Double).
func numericGradient(_ x: Tensor, h: Float = 1e-2, _ f: (Tensor) -> Double) -> Tensor {
    var g = Tensor.zeros(x.shape)
    var xp = x
    for i in 0..<x.count {
        let orig = x[flat: i]
        xp[flat: i] = orig + h
        let fp = f(xp)
        xp[flat: i] = orig - h
        let fm = f(xp)
        xp[flat: i] = orig
        g[flat: i] = Float((fp - fm) / (2 * Double(h)))
    }
    return g
}

/// `sum(y * w)` in Double: a scalar loss whose gradient with respect to y is w.
func weightedSum(_ y: Tensor, _ w: Tensor) -> Double {
    let a = y.scalars, b = w.scalars
    var s = 0.0
    for i in 0..<a.count { s += Double(a[i]) * Double(b[i]) }
    return s
}

/// Max absolute difference relative to the larger tensor's max magnitude.
func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    a.maxAbsDifference(b) / max(max(a.maxAbs(), b.maxAbs()), 1e-12)
}
