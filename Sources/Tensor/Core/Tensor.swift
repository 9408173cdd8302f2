/// A dense, row-major, Float32 n-dimensional array with value semantics.
///
/// `Tensor` is a struct over a reference-counted, 64-byte-aligned buffer (``TensorStorage``);
/// copies are cheap and the buffer is copied only when a shared tensor is written to
/// (copy-on-write). Shapes are checked at run time; a mismatch is a precondition failure that
/// names both shapes.
///
/// ```swift
/// var rng = RandomGenerator(seed: 0)
/// let x = Tensor.randomNormal([4, 8], using: &rng)
/// let w = Tensor.randomNormal([16, 8], using: &rng)
/// let y = x.matmul(w, transposeB: true)        // (4, 16), no copy for the transpose
/// let p = y.softmax()                          // last axis
/// print(p.sum(axis: -1))                       // all ones
/// ```
public struct Tensor: Sendable, CustomStringConvertible {
    /// The dimensions of the tensor.
    public private(set) var shape: Shape
    /// The buffer; shared between copies until one of them is written to.
    public private(set) var storage: TensorStorage

    /// Wraps an existing storage; `storage.count` must equal `shape.count`.
    public init(shape: Shape, storage: TensorStorage) {
        precondition(storage.count == shape.count,
                     "Tensor: storage holds \(storage.count) values, shape \(shape) needs \(shape.count)")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor whose contents are unspecified (to be overwritten by a kernel).
    public init(uninitialized shape: Shape) {
        self.init(shape: shape, storage: TensorStorage(uninitializedCount: shape.count))
    }

    /// A tensor filled with `value`.
    public init(repeating value: Float, shape: Shape) {
        self.init(shape: shape, storage: TensorStorage(count: shape.count, repeating: value))
    }

    /// A tensor from row-major scalars; `scalars.count` must equal `shape.count`.
    public init(_ scalars: [Float], shape: Shape) {
        precondition(scalars.count == shape.count,
                     "Tensor: \(scalars.count) scalars do not fill shape \(shape)")
        self.init(uninitialized: shape)
        scalars.withUnsafeBufferPointer { src in
            if let b = src.baseAddress { storage.mutableBase.update(from: b, count: scalars.count) }
        }
    }

    /// A rank-1 tensor from scalars.
    public init(_ scalars: [Float]) { self.init(scalars, shape: [scalars.count]) }

    /// A rank-0 tensor holding one value.
    public init(scalar: Float) { self.init([scalar], shape: []) }

    /// Zeros of the given shape.
    public static func zeros(_ shape: Shape) -> Tensor { Tensor(repeating: 0, shape: shape) }
    /// Ones of the given shape.
    public static func ones(_ shape: Shape) -> Tensor { Tensor(repeating: 1, shape: shape) }
    /// A tensor filled with `value`.
    public static func full(_ shape: Shape, _ value: Float) -> Tensor { Tensor(repeating: value, shape: shape) }

    /// `[start, start + step, ...]` up to but excluding `end`, as a rank-1 tensor.
    public static func arange(_ start: Float = 0, _ end: Float, step: Float = 1) -> Tensor {
        precondition(step != 0, "arange: step must be non-zero")
        let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor((0..<n).map { start + Float($0) * step })
    }

    /// Number of elements.
    public var count: Int { shape.count }
    /// Number of dimensions.
    public var rank: Int { shape.rank }

    /// The elements in row-major order.
    public var scalars: [Float] {
        withUnsafeBufferPointer { Array($0) }
    }

    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) elements")
        return storage.base[0]
    }

    /// Calls `body` with the elements (row-major) for reading.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeBufferPointer(start: storage.base, count: count))
        }
    }

    /// Calls `body` with the elements for writing, copying the buffer first if it is shared.
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try withExtendedLifetime(storage) {
            try body(UnsafeMutableBufferPointer(start: storage.mutableBase, count: count))
        }
    }

    /// Copies the elements (row-major) to `destination`, which must have room for ``count`` floats.
    public func copyScalars(to destination: UnsafeMutablePointer<Float>) {
        withExtendedLifetime(storage) { destination.update(from: storage.base, count: count) }
    }

    /// A tensor holding a copy of `shape.count` values of `storage` from `offset` (a slice of an
    /// arena, e.g. one parameter's moments).
    public init(copying storage: TensorStorage, offset: Int, shape: Shape) {
        precondition(offset >= 0 && offset + shape.count <= storage.count,
                     "Tensor(copying:): \(shape.count) values from \(offset) exceed the storage's \(storage.count)")
        self.init(uninitialized: shape)
        withExtendedLifetime(storage) { self.storage.mutableBase.update(from: storage.base + offset, count: shape.count) }
    }

    /// Makes the storage uniquely owned (copying it if shared) and returns its base pointer.
    /// The pointer is valid while `self` is alive and not reassigned.
    @inlinable
    public mutating func mutablePointer() -> UnsafeMutablePointer<Float> {
        makeUnique()
        return storage.mutableBase
    }

    /// Whether no other tensor shares the storage (so writing through ``mutablePointer()`` will
    /// not copy it).
    public var isUniquelyReferenced: Bool {
        mutating get { isKnownUniquelyReferenced(&storage) }
    }

    /// Copies the storage if another tensor shares it.
    public mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// The element at a flat (row-major) index.
    public subscript(flat index: Int) -> Float {
        get {
            precondition(index >= 0 && index < count, "flat index \(index) out of range for \(shape)")
            return withExtendedLifetime(storage) { storage.base[index] }
        }
        set {
            precondition(index >= 0 && index < count, "flat index \(index) out of range for \(shape)")
            mutablePointer()[index] = newValue
        }
    }

    /// The element at a full multi-index (slow; for tests and small tensors).
    public subscript(indices: Int...) -> Float {
        get { self[flat: flatIndex(indices)] }
        set { self[flat: flatIndex(indices)] = newValue }
    }

    private func flatIndex(_ idx: [Int]) -> Int {
        precondition(idx.count == rank, "index \(idx) has wrong rank for shape \(shape)")
        var f = 0
        for (i, d) in zip(idx, shape.dims) {
            precondition(i >= 0 && i < d, "index \(idx) out of range for shape \(shape)")
            f = f * d + i
        }
        return f
    }

    /// The same elements viewed with another shape of equal count (no copy).
    public func reshaped(to newShape: Shape) -> Tensor {
        precondition(newShape.count == count, "reshape: \(shape) (\(count) elements) cannot become \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    /// The same elements viewed with another shape; one dimension may be -1 and is inferred.
    public func reshaped(_ dims: [Int]) -> Tensor {
        var d = dims
        if let i = d.firstIndex(of: -1) {
            let known = d.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshape: cannot infer -1 in \(dims) for \(shape)")
            d[i] = count / known
        }
        let s = Shape(d)
        precondition(s.count == count, "reshape: \(shape) (\(count) elements) cannot become \(s)")
        return Tensor(shape: s, storage: storage)
    }

    /// A short summary: shape and up to eight leading values.
    public var description: String {
        let head = withUnsafeBufferPointer { Array($0.prefix(8)) }
        return "Tensor\(shape) \(head)\(count > 8 ? "..." : "")"
    }
}

extension Tensor {
    /// Largest absolute elementwise difference from `other` (same shape required).
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "maxAbsDifference: \(shape) vs \(other.shape)")
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                var m: Float = 0
                for i in 0..<a.count { m = Swift.max(m, Swift.abs(a[i] - b[i])) }
                return m
            }
        }
    }

    /// Largest absolute value (0 for an empty tensor).
    public func maxAbs() -> Float {
        withUnsafeBufferPointer { $0.reduce(0) { Swift.max($0, Swift.abs($1)) } }
    }

    /// True when every element is finite.
    public var isFinite: Bool {
        withUnsafeBufferPointer { $0.allSatisfy(\.isFinite) }
    }
}
