import Foundation

extension Kernels {
    /// LayerNorm over the last axis. x, y: (R, C); weight, bias: (C); mean, rstd: (R) are saved
    /// for the backward pass (pass nil at inference).
    public static func layerNormForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                        y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?,
                                        rstd: UnsafeMutablePointer<Float>?, rows: Int, cols: Int, eps: Float) {
        let xs = SendablePointer(x), ws = SendablePointer(weight), bs = SendablePointer(bias), ys = SendablePointer(y)
        let ms = mean.map { SendablePointer($0) }, rs = rstd.map { SendablePointer($0) }
        parallelFor(rows, grain: Swift.max(1, 8192 / Swift.max(cols, 1))) { r in
            for i in r {
                let px = xs.base + i * cols, py = ys.base + i * cols
                var sv = SIMD16<Float>(repeating: 0)
                var j = 0
                while j + 16 <= cols { sv += UnsafeRawPointer(px + j).loadUnaligned(as: SIMD16<Float>.self); j += 16 }
                var s = sv.sum()
                while j < cols { s += px[j]; j += 1 }
                let m = s / Float(cols)
                let mv = SIMD16<Float>(repeating: m)
                var vv = SIMD16<Float>(repeating: 0)
                j = 0
                while j + 16 <= cols {
                    let d = UnsafeRawPointer(px + j).loadUnaligned(as: SIMD16<Float>.self) - mv
                    vv += d * d; j += 16
                }
                var v = vv.sum()
                while j < cols { let d = px[j] - m; v += d * d; j += 1 }
                let rsd = 1 / (v / Float(cols) + eps).squareRoot()
                let rv = SIMD16<Float>(repeating: rsd)
                j = 0
                while j + 16 <= cols {
                    let xv = UnsafeRawPointer(px + j).loadUnaligned(as: SIMD16<Float>.self)
                    let w = UnsafeRawPointer(ws.base + j).loadUnaligned(as: SIMD16<Float>.self)
                    let b = UnsafeRawPointer(bs.base + j).loadUnaligned(as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(py + j).storeBytes(of: (xv - mv) * rv * w + b, as: SIMD16<Float>.self)
                    j += 16
                }
                while j < cols { py[j] = (px[j] - m) * rsd * ws[j] + bs[j]; j += 1 }
                ms?[i] = m
                rs?[i] = rsd
            }
        }
    }

    /// LayerNorm backward, accumulating: dx += ..., dweight += sum_r dy * xhat, dbias += sum_r dy.
    /// dy, x, dx: (R, C); mean, rstd: (R) from the forward pass.
    public static func layerNormBackward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                         mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                         dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                         dbias: UnsafeMutablePointer<Float>?, rows: Int, cols: Int) {
        let dys = SendablePointer(dy), xs = SendablePointer(x), ws = SendablePointer(weight)
        let ms = SendablePointer(mean), rs = SendablePointer(rstd)
        if let dx {
            let dxs = SendablePointer(dx)
            parallelFor(rows, grain: Swift.max(1, 4096 / Swift.max(cols, 1))) { r in
                for i in r {
                    let pdy = dys.base + i * cols, px = xs.base + i * cols, pdx = dxs.base + i * cols
                    let m = ms[i], rsd = rs[i]
                    let mv = SIMD16<Float>(repeating: m), rv = SIMD16<Float>(repeating: rsd)
                    // mean(w*dy) and mean(w*dy*xhat)
                    var a1 = SIMD16<Float>(repeating: 0), a2 = SIMD16<Float>(repeating: 0)
                    var j = 0
                    while j + 16 <= cols {
                        let g = UnsafeRawPointer(pdy + j).loadUnaligned(as: SIMD16<Float>.self)
                            * UnsafeRawPointer(ws.base + j).loadUnaligned(as: SIMD16<Float>.self)
                        let xh = (UnsafeRawPointer(px + j).loadUnaligned(as: SIMD16<Float>.self) - mv) * rv
                        a1 += g; a2 += g * xh; j += 16
                    }
                    var s1 = a1.sum(), s2 = a2.sum()
                    while j < cols { let g = pdy[j] * ws[j]; s1 += g; s2 += g * (px[j] - m) * rsd; j += 1 }
                    s1 /= Float(cols); s2 /= Float(cols)
                    let s1v = SIMD16<Float>(repeating: s1), s2v = SIMD16<Float>(repeating: s2)
                    j = 0
                    while j + 16 <= cols {
                        let g = UnsafeRawPointer(pdy + j).loadUnaligned(as: SIMD16<Float>.self)
                            * UnsafeRawPointer(ws.base + j).loadUnaligned(as: SIMD16<Float>.self)
                        let xh = (UnsafeRawPointer(px + j).loadUnaligned(as: SIMD16<Float>.self) - mv) * rv
                        let cur = UnsafeRawPointer(pdx + j).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(pdx + j).storeBytes(of: cur + (g - s1v - xh * s2v) * rv, as: SIMD16<Float>.self)
                        j += 16
                    }
                    while j < cols {
                        let g = pdy[j] * ws[j], xh = (px[j] - m) * rsd
                        pdx[j] += (g - s1 - xh * s2) * rsd; j += 1
                    }
                }
            }
        }
        if dweight == nil && dbias == nil { return }
        // Parameter gradients: each chunk owns a range of columns and walks all rows.
        let dws = dweight.map { SendablePointer($0) }, dbs = dbias.map { SendablePointer($0) }
        let blocks = (cols + 15) / 16
        parallelFor(blocks, grain: 1) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, cols)
            for i in 0..<rows {
                let pdy = dys.base + i * cols, px = xs.base + i * cols
                let m = ms[i], rsd = rs[i]
                for j in lo..<hi {
                    dws?[j] += pdy[j] * (px[j] - m) * rsd
                    dbs?[j] += pdy[j]
                }
            }
        }
    }
}

extension Naive {
    /// Reference LayerNorm in Double. x, y: (R, C).
    public static func layerNorm(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                 y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, eps: Float) {
        for i in 0..<rows {
            var m = 0.0
            for j in 0..<cols { m += Double(x[i * cols + j]) }
            m /= Double(cols)
            var v = 0.0
            for j in 0..<cols { let d = Double(x[i * cols + j]) - m; v += d * d }
            v /= Double(cols)
            let r = 1 / (v + Double(eps)).squareRoot()
            for j in 0..<cols { y[i * cols + j] = Float((Double(x[i * cols + j]) - m) * r * Double(weight[j]) + Double(bias[j])) }
        }
    }
}

extension Tensor {
    /// LayerNorm over the last axis with affine `weight` and `bias` (both (C)).
    public func layerNorm(weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        let c = shape.dims.last ?? 1
        precondition(weight.shape == [c] && bias.shape == [c],
                     "layerNorm: weight \(weight.shape) / bias \(bias.shape) do not match last axis of \(shape)")
        var out = Tensor(uninitialized: shape)
        withExtendedLifetime((storage, weight.storage, bias.storage)) {
            Kernels.layerNormForward(x: storage.base, weight: weight.storage.base, bias: bias.storage.base,
                                     y: out.mutablePointer(), mean: nil, rstd: nil,
                                     rows: count / Swift.max(c, 1), cols: c, eps: eps)
        }
        return out
    }
}
