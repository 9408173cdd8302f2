import Tensor

// Elementwise updates of the samplers. Coefficients are Float64 scalars from the schedule; each
// element is combined in Float64 and rounded once to Float32. x, y, z, out: same shape.

/// a x + b y (+ c z) per element.
func combine(_ a: Double, _ x: Tensor, _ b: Double, _ y: Tensor, _ c: Double = 0, _ z: Tensor? = nil) -> Tensor {
    precondition(x.shape == y.shape && (z == nil || z?.shape == x.shape),
                 "combine: shapes \(x.shape), \(y.shape), \(z?.shape.description ?? "-") differ")
    var out = Tensor(uninitialized: x.shape)
    let o = out.mutablePointer()
    let zt = z ?? x
    withExtendedLifetime(out) {
        x.withUnsafeBufferPointer { px in
            y.withUnsafeBufferPointer { py in
                zt.withUnsafeBufferPointer { pz in
                    let cz = z == nil ? 0 : c
                    for i in 0..<px.count {
                        o[i] = Float(a * Double(px[i]) + b * Double(py[i]) + cz * Double(pz[i]))
                    }
                }
            }
        }
    }
    return out
}

/// x0 = sqrt(1/ab) x_t - sqrt(1/ab - 1) eps, clamped to [-1, 1] when `clip`.
func x0FromEps(_ schedule: NoiseSchedule, _ x: Tensor, _ eps: Tensor, t: Int, clip: Bool) -> Tensor {
    let ab = schedule.alphaBar(t)
    let x0 = combine((1 / ab).squareRoot(), x, -(1 / ab - 1).squareRoot(), eps)
    return clip ? x0.clamped(min: -1, max: 1) : x0
}
