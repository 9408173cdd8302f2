// Materialising shape operations: permute, transpose, concat, split, slice, row gather/scatter.

extension Tensor {
    /// A copy with axes reordered: result axis `i` is source axis `axes[i]` (as `torch.permute`).
    public func permuted(_ axes: [Int]) -> Tensor {
        precondition(axes.count == rank && Set(axes.map(shape.normalizedAxis)).count == rank,
                     "permuted: \(axes) is not a permutation of the axes of \(shape)")
        let ax = axes.map(shape.normalizedAxis)
        if ax == Array(0..<rank) { return self }
        let outShape = Shape(ax.map { shape.dims[$0] })
        let srcStrides = shape.strides
        let strides = ax.map { srcStrides[$0] }        // source stride for each output axis
        var out = Tensor(uninitialized: outShape)
        let r = rank
        let inner = outShape.dims[r - 1], innerStride = strides[r - 1]
        let rows = outShape.count / Swift.max(inner, 1)
        let dims = outShape.dims
        let o = SendablePointer(out.mutablePointer()), x = SendablePointer(storage.base)
        withExtendedLifetime(storage) {
            parallelFor(rows, grain: Swift.max(1, elementwiseGrain / Swift.max(inner, 1))) { range in
                for row in range {
                    var rem = row, off = 0
                    for d in stride(from: r - 2, through: 0, by: -1) {
                        off += (rem % dims[d]) * strides[d]; rem /= dims[d]
                    }
                    let po = o.base + row * inner, px = x.base + off
                    if innerStride == 1 { po.update(from: px, count: inner) }
                    else { for j in 0..<inner { po[j] = px[j * innerStride] } }
                }
            }
        }
        return out
    }

    /// A copy with two axes swapped (default: the last two).
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var axes = Array(0..<rank)
        axes.swapAt(shape.normalizedAxis(a), shape.normalizedAxis(b))
        return permuted(axes)
    }

    /// The sub-tensor with indices `range` along `axis` (a copy).
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = shape.normalizedAxis(axis)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape.dims[a],
                     "sliced: range \(range) out of bounds for axis \(a) of \(shape)")
        var dims = shape.dims; dims[a] = range.count
        var out = Tensor(uninitialized: Shape(dims))
        let outer = shape.outerCount(before: a), inner = shape.innerCount(after: a)
        let n = shape.dims[a], m = range.count, lo = range.lowerBound
        let o = out.mutablePointer()
        withExtendedLifetime(storage) {
            for i in 0..<outer {
                (o + i * m * inner).update(from: storage.base + (i * n + lo) * inner, count: m * inner)
            }
        }
        return out
    }

    /// Concatenates tensors along `axis`; all other dimensions must agree.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat: no tensors")
        let first = tensors[0].shape
        let a = first.normalizedAxis(axis)
        for t in tensors {
            precondition(t.rank == first.rank && (0..<first.rank).allSatisfy { $0 == a || t.shape.dims[$0] == first.dims[$0] },
                         "concat along axis \(a): shape \(t.shape) does not match \(first)")
        }
        var dims = first.dims
        dims[a] = tensors.reduce(0) { $0 + $1.shape.dims[a] }
        var out = Tensor(uninitialized: Shape(dims))
        let outer = first.outerCount(before: a), inner = first.innerCount(after: a)
        let total = dims[a] * inner
        let o = out.mutablePointer()
        var offset = 0
        for t in tensors {
            let w = t.shape.dims[a] * inner
            withExtendedLifetime(t.storage) {
                for i in 0..<outer { (o + i * total + offset).update(from: t.storage.base + i * w, count: w) }
            }
            offset += w
        }
        return out
    }

    /// Splits along `axis` into pieces of the given sizes (which must sum to the axis length).
    public func split(sizes: [Int], axis: Int) -> [Tensor] {
        let a = shape.normalizedAxis(axis)
        precondition(sizes.reduce(0, +) == shape.dims[a], "split: sizes \(sizes) do not sum to axis \(a) of \(shape)")
        var start = 0
        return sizes.map { s in defer { start += s }; return sliced(axis: a, start..<(start + s)) }
    }

    /// Gathers rows of the `(R, C)` view of this tensor (C = last dimension):
    /// result row `i` is source row `indices[i]`. Result shape `(indices.count, C)`.
    public func gatherRows(_ indices: [Int]) -> Tensor {
        let c = shape.dims.last ?? 1
        let rows = count / Swift.max(c, 1)
        var out = Tensor(uninitialized: [indices.count, c])
        let o = SendablePointer(out.mutablePointer()), x = SendablePointer(storage.base)
        for i in indices { precondition(i >= 0 && i < rows, "gatherRows: index \(i) out of range 0..<\(rows) for \(shape)") }
        withExtendedLifetime(storage) {
            indices.withUnsafeBufferPointer { idx in
                let ip = SendablePointer(UnsafeMutablePointer(mutating: idx.baseAddress!))
                parallelFor(indices.count, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { r in
                    for i in r { (o.base + i * c).update(from: x.base + ip[i] * c, count: c) }
                }
            }
        }
        return out
    }

    /// Adds the rows of `source` (shape `(indices.count, C)`) into rows `indices` of this
    /// tensor's `(R, C)` view. Repeated indices accumulate.
    public mutating func scatterAddRows(_ indices: [Int], _ source: Tensor) {
        let c = shape.dims.last ?? 1
        let rows = count / Swift.max(c, 1)
        precondition(source.count == indices.count * c,
                     "scatterAddRows: source \(source.shape) does not hold \(indices.count) rows of \(c)")
        let o = mutablePointer()
        withExtendedLifetime(source.storage) {
            for (i, r) in indices.enumerated() {
                precondition(r >= 0 && r < rows, "scatterAddRows: index \(r) out of range 0..<\(rows) for \(shape)")
                let po = o + r * c, ps = source.storage.base + i * c
                for j in 0..<c { po[j] += ps[j] }
            }
        }
    }
}
