import CKernels
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
            if usesAVX2Kernels {
                maskdm_layernorm_forward_avx2(xs.base + r.lowerBound * cols, ws.base, bs.base, ys.base + r.lowerBound * cols,
                                              ms.map { $0.base + r.lowerBound }, rs.map { $0.base + r.lowerBound },
                                              r.count, Int32(cols), eps)
            } else {
                layerNormForwardPortable(xs.base, ws.base, bs.base, ys.base, ms?.base, rs?.base, rows: r, cols: cols, eps: eps)
            }
        }
    }

    /// ``layerNormForward(x:weight:bias:y:mean:rstd:rows:cols:eps:)`` of `rows` on one thread in
    /// portable Swift SIMD (the path on CPUs without AVX2; tests check the C rows against it).
    static func layerNormForwardPortable(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                                         _ y: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>?,
                                         _ rstd: UnsafeMutablePointer<Float>?, rows: Range<Int>, cols: Int, eps: Float) {
        for i in rows {
            let px = x + i * cols, py = y + i * cols
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
                let w = UnsafeRawPointer(weight + j).loadUnaligned(as: SIMD16<Float>.self)
                let b = UnsafeRawPointer(bias + j).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(py + j).storeBytes(of: (xv - mv) * rv * w + b, as: SIMD16<Float>.self)
                j += 16
            }
            while j < cols { py[j] = (px[j] - m) * rsd * weight[j] + bias[j]; j += 1 }
            mean?[i] = m
            rstd?[i] = rsd
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
                if usesAVX2Kernels {
                    maskdm_layernorm_backward_input_avx2(dys.base + r.lowerBound * cols, xs.base + r.lowerBound * cols, ws.base,
                                                         ms.base + r.lowerBound, rs.base + r.lowerBound,
                                                         dxs.base + r.lowerBound * cols, r.count, Int32(cols))
                } else {
                    layerNormBackwardInputPortable(dys.base, xs.base, ws.base, ms.base, rs.base, dxs.base, rows: r, cols: cols)
                }
            }
        }
        if dweight == nil && dbias == nil { return }
        // Parameter gradients: each chunk owns a range of columns and walks all rows.
        let dws = dweight.map { SendablePointer($0) }, dbs = dbias.map { SendablePointer($0) }
        let blocks = (cols + 15) / 16
        parallelFor(blocks, grain: 1) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, cols)
            if usesAVX2Kernels {
                maskdm_layernorm_backward_params_avx2(dys.base, xs.base, ms.base, rs.base, dws?.base, dbs?.base, rows,
                                                      Int32(cols), Int32(lo), Int32(hi))
                return
            }
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

    /// The input gradient of ``layerNormBackward(dy:x:weight:mean:rstd:dx:dweight:dbias:rows:cols:)``
    /// for `rows` on one thread in portable Swift SIMD.
    static func layerNormBackwardInputPortable(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                                               _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                                               _ dx: UnsafeMutablePointer<Float>, rows: Range<Int>, cols: Int) {
        for i in rows {
            let pdy = dy + i * cols, px = x + i * cols, pdx = dx + i * cols
            let m = mean[i], rsd = rstd[i]
            let mv = SIMD16<Float>(repeating: m), rv = SIMD16<Float>(repeating: rsd)
            // mean(w*dy) and mean(w*dy*xhat)
            var a1 = SIMD16<Float>(repeating: 0), a2 = SIMD16<Float>(repeating: 0)
            var j = 0
            while j + 16 <= cols {
                let g = UnsafeRawPointer(pdy + j).loadUnaligned(as: SIMD16<Float>.self)
                    * UnsafeRawPointer(weight + j).loadUnaligned(as: SIMD16<Float>.self)
                let xh = (UnsafeRawPointer(px + j).loadUnaligned(as: SIMD16<Float>.self) - mv) * rv
                a1 += g; a2 += g * xh; j += 16
            }
            var s1 = a1.sum(), s2 = a2.sum()
            while j < cols { let g = pdy[j] * weight[j]; s1 += g; s2 += g * (px[j] - m) * rsd; j += 1 }
            s1 /= Float(cols); s2 /= Float(cols)
            let s1v = SIMD16<Float>(repeating: s1), s2v = SIMD16<Float>(repeating: s2)
            j = 0
            while j + 16 <= cols {
                let g = UnsafeRawPointer(pdy + j).loadUnaligned(as: SIMD16<Float>.self)
                    * UnsafeRawPointer(weight + j).loadUnaligned(as: SIMD16<Float>.self)
                let xh = (UnsafeRawPointer(px + j).loadUnaligned(as: SIMD16<Float>.self) - mv) * rv
                let cur = UnsafeRawPointer(pdx + j).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(pdx + j).storeBytes(of: cur + (g - s1v - xh * s2v) * rv, as: SIMD16<Float>.self)
                j += 16
            }
            while j < cols {
                let g = pdy[j] * weight[j], xh = (px[j] - m) * rsd
                pdx[j] += (g - s1 - xh * s2) * rsd; j += 1
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
