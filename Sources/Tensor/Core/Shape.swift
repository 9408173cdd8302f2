/// The runtime shape of a ``Tensor``: its dimensions, outermost first (row-major).
///
/// ```swift
/// let s: Shape = [16, 257, 512]
/// let (b, t, c) = s.dims3()
/// ```
public struct Shape: Hashable, Sendable, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// The dimensions, outermost first.
    public var dims: [Int]

    /// Creates a shape from its dimensions; every dimension must be non-negative.
    public init(_ dims: [Int]) {
        precondition(dims.allSatisfy { $0 >= 0 }, "Shape: negative dimension in \(dims)")
        self.dims = dims
    }

    public init(arrayLiteral elements: Int...) { self.init(elements) }

    /// Number of dimensions.
    public var rank: Int { dims.count }
    /// Number of elements (the product of the dimensions; 1 for a scalar).
    public var count: Int { dims.reduce(1, *) }
    /// The dimension at `axis`; negative axes count from the end.
    public subscript(axis: Int) -> Int { dims[normalizedAxis(axis)] }

    /// Maps a possibly negative axis into `0..<rank`, trapping with a clear message when out of range.
    public func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) out of range for shape \(self)")
        return a
    }

    /// Row-major strides in elements.
    public var strides: [Int] {
        var s = [Int](repeating: 1, count: rank)
        var acc = 1
        for i in stride(from: rank - 1, through: 0, by: -1) { s[i] = acc; acc *= dims[i] }
        return s
    }

    /// Product of the dimensions before `axis` (exclusive).
    public func outerCount(before axis: Int) -> Int { dims[..<axis].reduce(1, *) }
    /// Product of the dimensions after `axis` (exclusive).
    public func innerCount(after axis: Int) -> Int { dims[(axis + 1)...].reduce(1, *) }

    /// Destructures a rank-1 shape.
    public func dims1() -> Int { checkRank(1); return dims[0] }
    /// Destructures a rank-2 shape.
    public func dims2() -> (Int, Int) { checkRank(2); return (dims[0], dims[1]) }
    /// Destructures a rank-3 shape.
    public func dims3() -> (Int, Int, Int) { checkRank(3); return (dims[0], dims[1], dims[2]) }
    /// Destructures a rank-4 shape.
    public func dims4() -> (Int, Int, Int, Int) { checkRank(4); return (dims[0], dims[1], dims[2], dims[3]) }

    private func checkRank(_ r: Int) {
        precondition(rank == r, "expected a rank-\(r) shape, got \(self)")
    }

    public var description: String { "(" + dims.map(String.init).joined(separator: ", ") + ")" }
}
