/// Row-wise kernels of a ViT's token bookkeeping: broadcasting a bias to rows, column sums (the
/// bias gradient), gathering patches by index, building the token sequence with a prepended token
/// and learned positions, and strided block accumulation. Matrices are row-major with a row
/// stride `ld` (elements between row starts, at least `cols`).
extension Kernels {
    /// `y[r, j] = vector[j]` for `r < rows`, `j < cols`.
    public static func broadcastRows(_ vector: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                                     rows: Int, cols: Int, ld: Int? = nil) {
        let ld = ld ?? cols
        for r in 0..<rows { (y + r * ld).update(from: vector, count: cols) }
    }

    /// `x[r, j] += vector[j]` for `r < rows`, `j < cols` (a bias added to every row).
    public static func addToRows(_ vector: UnsafePointer<Float>, _ x: UnsafeMutablePointer<Float>,
                                 rows: Int, cols: Int, ld: Int? = nil) {
        let ld = ld ?? cols
        for r in 0..<rows {
            let row = x + r * ld
            for j in 0..<cols { row[j] += vector[j] }
        }
    }

    /// `out[j] += sum_r x[r, j]`, rows summed in order (the gradient of a bias added to every
    /// row); parallel over blocks of 16 columns.
    public static func accumulateColumnSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int? = nil,
                                            into out: UnsafeMutablePointer<Float>) {
        let ld = ld ?? cols
        let xs = SendablePointer(x), os = SendablePointer(out)
        parallelFor((cols + 15) / 16, grain: 4) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, cols)
            for i in 0..<rows {
                let row = xs.base + i * ld
                for j in lo..<hi { os[j] += row[j] }
            }
        }
    }

    /// `dst[k * dstStride + i] += src[k * srcStride + i]` for `k < blocks`, `i < length`: the
    /// gradient of a slice that kept `length` contiguous values out of every block.
    public static func accumulateBlocks(_ src: UnsafePointer<Float>, stride srcStride: Int,
                                        into dst: UnsafeMutablePointer<Float>, stride dstStride: Int,
                                        blocks: Int, length: Int) {
        for k in 0..<blocks {
            let s = src + k * srcStride, d = dst + k * dstStride
            for i in 0..<length { d[i] += s[i] }
        }
    }

    /// Gathers image patches in the layout of a patch-embedding convolution's weight, `(C, P1, P2)`
    /// per patch: images (B, C, H, W) -> out (B, NV, C*P*P). Patch `i` of item `b` is
    /// `indices[b][i]` in raster order of the (H/P, W/P) grid, or `i` when `indices` is nil
    /// (NV = all patches).
    public static func gatherPatches(images: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                     batch: Int, channels c: Int, height h: Int, width w: Int, patch p: Int,
                                     indices: [[Int]]?) {
        let gw = w / p
        let nv = indices?.first?.count ?? (h / p) * gw
        let xs = SendablePointer(images), os = SendablePointer(out)
        parallelFor(batch * nv, grain: 16) { r in
            for k in r {
                let bi = k / nv, i = k % nv
                let patch = indices?[bi][i] ?? i
                let hi = patch / gw, wi = patch % gw
                var dst = os.base + k * c * p * p
                for ci in 0..<c {
                    for p1 in 0..<p {
                        dst.update(from: xs.base + ((bi * c + ci) * h + hi * p + p1) * w + wi * p, count: p)
                        dst += p
                    }
                }
            }
        }
    }

    /// A ViT's token sequence with a prepended token and learned positions:
    /// `out[b, 0] = first[b] + position[0]`, `out[b, 1 + i] = tokens[b, i] + position[1 + k]` with
    /// `k = indices[b][i]` (or `i` when `indices` is nil). tokens (B, NV, D), first (B, D),
    /// position (1 + N, D), out (B, 1 + NV, D).
    public static func prependTokenAddPositions(tokens: UnsafePointer<Float>, first: UnsafePointer<Float>,
                                                position: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                                batch b: Int, visible nv: Int, dimensions d: Int, indices: [[Int]]?) {
        for bi in 0..<b {
            let row0 = out + bi * (1 + nv) * d
            for j in 0..<d { row0[j] = first[bi * d + j] + position[j] }
            for i in 0..<nv {
                let dst = row0 + (1 + i) * d, src = tokens + (bi * nv + i) * d
                let pp = position + (1 + (indices?[bi][i] ?? i)) * d
                for j in 0..<d { dst[j] = src[j] + pp[j] }
            }
        }
    }

    /// The backward of ``prependTokenAddPositions(tokens:first:position:out:batch:visible:dimensions:indices:)``:
    /// accumulates dOut (B, 1 + NV, D) into `dPosition` (1 + N, D) by position index, items in
    /// order, and into `dTokens` (B, NV, D); either may be nil (frozen or not needed).
    public static func prependTokenAddPositionsBackward(dOut: UnsafePointer<Float>, dPosition: UnsafeMutablePointer<Float>?,
                                                        dTokens: UnsafeMutablePointer<Float>?,
                                                        batch b: Int, visible nv: Int, dimensions d: Int, indices: [[Int]]?) {
        if let gp = dPosition {
            for bi in 0..<b {
                let row0 = dOut + bi * (1 + nv) * d
                for j in 0..<d { gp[j] += row0[j] }
                for i in 0..<nv {
                    let src = row0 + (1 + i) * d, dst = gp + (1 + (indices?[bi][i] ?? i)) * d
                    for j in 0..<d { dst[j] += src[j] }
                }
            }
        }
        if let dTokens {
            accumulateBlocks(dOut + d, stride: (1 + nv) * d, into: dTokens, stride: nv * d, blocks: b, length: nv * d)
        }
    }
}

extension Naive {
    /// Reference for ``Kernels/accumulateColumnSums(_:rows:cols:ld:into:)``.
    public static func columnSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, into out: UnsafeMutablePointer<Float>) {
        for j in 0..<cols {
            var s = out[j]
            for r in 0..<rows { s += x[r * ld + j] }
            out[j] = s
        }
    }

    /// Reference for ``Kernels/gatherPatches(images:out:batch:channels:height:width:patch:indices:)``,
    /// one output element at a time from its (b, i, c, p1, p2) coordinates.
    public static func gatherPatches(images: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                     batch: Int, channels c: Int, height h: Int, width w: Int, patch p: Int,
                                     indices: [[Int]]?) {
        let gw = w / p, nv = indices?.first?.count ?? (h / p) * gw
        var o = 0
        for bi in 0..<batch {
            for i in 0..<nv {
                let patch = indices?[bi][i] ?? i
                for ci in 0..<c {
                    for p1 in 0..<p {
                        for p2 in 0..<p {
                            let y = (patch / gw) * p + p1, x = (patch % gw) * p + p2
                            out[o] = images[((bi * c + ci) * h + y) * w + x]
                            o += 1
                        }
                    }
                }
            }
        }
    }

    /// Reference for the prepended-token sequence: the same definition, one element at a time.
    public static func prependTokenAddPositions(tokens: UnsafePointer<Float>, first: UnsafePointer<Float>,
                                                position: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                                batch b: Int, visible nv: Int, dimensions d: Int, indices: [[Int]]?) {
        for bi in 0..<b {
            for t in 0...nv {
                for j in 0..<d {
                    let source = t == 0 ? first[bi * d + j] : tokens[(bi * nv + t - 1) * d + j]
                    let k = t == 0 ? 0 : 1 + (indices?[bi][t - 1] ?? (t - 1))
                    out[(bi * (1 + nv) + t) * d + j] = source + position[k * d + j]
                }
            }
        }
    }
}
