// Reductions over one axis. The tensor is viewed as (outer, n, inner) around the axis.

extension Tensor {
    @inline(__always)
    private func reduce(axis: Int, keepDims: Bool,
                        _ body: (UnsafePointer<Float>, Int, Int) -> Float) -> Tensor {
        let a = shape.normalizedAxis(axis)
        let outer = shape.outerCount(before: a), n = shape.dims[a], inner = shape.innerCount(after: a)
        var dims = shape.dims
        if keepDims { dims[a] = 1 } else { dims.remove(at: a) }
        var out = Tensor(uninitialized: Shape(dims))
        let o = SendablePointer(out.mutablePointer()), x = SendablePointer(storage.base)
        withExtendedLifetime(storage) {
            parallelFor(outer * inner, grain: Swift.max(1, 4096 / Swift.max(n, 1))) { r in
                for k in r {
                    let i = k / inner, j = k % inner
                    o[k] = body(x.base + i * n * inner + j, n, inner)
                }
            }
        }
        return out
    }

    /// Sum over `axis`.
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor {
        reduce(axis: axis, keepDims: keepDims) { p, n, s in
            var acc: Double = 0
            for i in 0..<n { acc += Double(p[i * s]) }
            return Float(acc)
        }
    }

    /// Mean over `axis`.
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor {
        let n = Float(shape[axis])
        return sum(axis: axis, keepDims: keepDims) * (1 / n)
    }

    /// Maximum over `axis`.
    public func max(axis: Int, keepDims: Bool = false) -> Tensor {
        reduce(axis: axis, keepDims: keepDims) { p, n, s in
            var m = -Float.infinity
            for i in 0..<n { m = Swift.max(m, p[i * s]) }
            return m
        }
    }

    /// Variance over `axis` with `correction` degrees of freedom subtracted (1 = unbiased, as
    /// `torch.var`'s default; 0 = population variance).
    public func variance(axis: Int, correction: Int = 1, keepDims: Bool = false) -> Tensor {
        reduce(axis: axis, keepDims: keepDims) { p, n, s in
            var mean: Double = 0
            for i in 0..<n { mean += Double(p[i * s]) }
            mean /= Double(n)
            var acc: Double = 0
            for i in 0..<n { let d = Double(p[i * s]) - mean; acc += d * d }
            return Float(acc / Double(Swift.max(n - correction, 0)))
        }
    }

    /// Index of the maximum along `axis`, for every position of the other axes (row-major).
    public func argmax(axis: Int) -> [Int] {
        let a = shape.normalizedAxis(axis)
        let outer = shape.outerCount(before: a), n = shape.dims[a], inner = shape.innerCount(after: a)
        return withUnsafeBufferPointer { x in
            (0..<(outer * inner)).map { k in
                let base = (k / inner) * n * inner + k % inner
                var best = 0
                for i in 1..<Swift.max(n, 1) where x[base + i * inner] > x[base + best * inner] { best = i }
                return best
            }
        }
    }

    /// Sum of all elements (accumulated in Double).
    public func sum() -> Float {
        withUnsafeBufferPointer { b in Float(b.reduce(0.0) { $0 + Double($1) }) }
    }

    /// Mean of all elements.
    public func mean() -> Float { count == 0 ? .nan : sum() / Float(count) }
}
