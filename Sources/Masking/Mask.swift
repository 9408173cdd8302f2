import Tensor

/// Which patches each item of a batch drops, as produced by a ``MaskingStrategy``.
///
/// Patches are numbered in raster order (row-major over the patch grid), `0..<patchCount`.
/// Every item keeps the same number of patches (`visibleCount`), so the kept tokens of a batch form
/// a dense `(B, 1 + visibleCount, D)` tensor. In the token view the time token sits at index 0 and
/// is never dropped; patch `i` is token `i + 1`.
///
/// ```swift
/// let mask = Mask(dropped: [[0, 1], [2, 3]], patchCount: 4)
/// mask.visible                 // [[2, 3], [0, 1]]
/// mask.tokenMask[0]            // [false, true, true, false, false]   (true = dropped)
/// ```
public struct Mask: Sendable, Equatable {
    /// Number of batch items (B).
    public let batchSize: Int
    /// Number of patches per item (N).
    public let patchCount: Int
    /// Per item, the kept patch indices, ascending (raster order). Shape (B, visibleCount).
    public let visible: [[Int]]
    /// Per item, the dropped patch indices, ascending. Shape (B, droppedCount).
    public let dropped: [[Int]]

    /// Patches kept per item.
    public var visibleCount: Int { patchCount - droppedCount }
    /// Patches dropped per item.
    public let droppedCount: Int

    /// A mask from the dropped patch indices of each item (any order; duplicates are an error).
    /// Every item must drop the same number of patches, each in `0..<patchCount`; anything else
    /// stops the program, naming the item and patch (a strategy that can err: ``init(checkedDropped:patchCount:)``).
    public init(dropped: [[Int]], patchCount: Int) {
        do { try self.init(checkedDropped: dropped, patchCount: patchCount) } catch { preconditionFailure("Mask(dropped:): \(error)") }
    }

    /// A mask from the kept patch indices of each item (any order; duplicates are an error).
    /// Every item must keep the same number of patches, each in `0..<patchCount`; anything else
    /// stops the program (see ``init(checkedVisible:patchCount:)``).
    public init(visible: [[Int]], patchCount: Int) {
        do { try self.init(checkedVisible: visible, patchCount: patchCount) } catch { preconditionFailure("Mask(visible:): \(error)") }
    }

    /// ``init(dropped:patchCount:)`` that throws ``MaskingError/invalidMask(_:)`` instead of
    /// stopping the program: for a strategy whose ``MaskingStrategy/makeMask(gridHeight:gridWidth:batchSize:using:)``
    /// throws, so that a mistake in it stops the training with an error (after the checkpoint).
    public init(checkedDropped dropped: [[Int]], patchCount: Int) throws {
        guard patchCount >= 0 else { throw MaskingError.invalidMask("negative patch count \(patchCount)") }
        let count = dropped.first?.count ?? 0
        var keptRows: [[Int]] = []
        var droppedRows: [[Int]] = []
        keptRows.reserveCapacity(dropped.count)
        droppedRows.reserveCapacity(dropped.count)
        for (b, row) in dropped.enumerated() {
            guard row.count == count else {
                throw MaskingError.invalidMask("item \(b) drops \(row.count) patches but item 0 drops \(count); every item must drop the same number")
            }
            var isDropped = [Bool](repeating: false, count: patchCount)
            for p in row {
                guard p >= 0 && p < patchCount else { throw MaskingError.invalidMask("item \(b) drops patch \(p), outside 0..<\(patchCount)") }
                guard !isDropped[p] else { throw MaskingError.invalidMask("item \(b) drops patch \(p) twice") }
                isDropped[p] = true
            }
            droppedRows.append(row.sorted())
            keptRows.append((0..<patchCount).filter { !isDropped[$0] })
        }
        self.init(trusted: keptRows, dropped: droppedRows, patchCount: patchCount)
    }

    /// ``init(visible:patchCount:)`` that throws ``MaskingError/invalidMask(_:)`` instead of
    /// stopping the program (see ``init(checkedDropped:patchCount:)``).
    public init(checkedVisible visible: [[Int]], patchCount: Int) throws {
        guard patchCount >= 0 else { throw MaskingError.invalidMask("negative patch count \(patchCount)") }
        let count = visible.first?.count ?? 0
        var dropped: [[Int]] = []
        for (b, row) in visible.enumerated() {
            guard row.count == count else {
                throw MaskingError.invalidMask("item \(b) keeps \(row.count) patches but item 0 keeps \(count); every item must keep the same number")
            }
            var kept = [Bool](repeating: false, count: patchCount)
            for p in row {
                guard p >= 0 && p < patchCount else { throw MaskingError.invalidMask("item \(b) keeps patch \(p), outside 0..<\(patchCount)") }
                guard !kept[p] else { throw MaskingError.invalidMask("item \(b) keeps patch \(p) twice") }
                kept[p] = true
            }
            dropped.append((0..<patchCount).filter { !kept[$0] })
        }
        try self.init(checkedDropped: dropped, patchCount: patchCount)
    }

    /// A mask that keeps every patch of every item.
    public static func none(batchSize: Int, patchCount: Int) -> Mask {
        Mask(trusted: Array(repeating: Array(0..<patchCount), count: batchSize),
             dropped: Array(repeating: [], count: batchSize), patchCount: patchCount)
    }

    /// A mask from a reference-style `(B, 1+N)` token mask (`true` = dropped, column 0 = the time
    /// token). Throws when rows differ in length, the time token is dropped, or items drop
    /// different numbers of patches.
    public init(tokenMask: [[Bool]]) throws {
        guard let width = tokenMask.first?.count else {
            throw MaskingError.invalidTokenMask("empty batch (no rows)")
        }
        guard width >= 1 else { throw MaskingError.invalidTokenMask("rows have no time-token column") }
        var rows: [[Int]] = []
        for (b, row) in tokenMask.enumerated() {
            guard row.count == width else {
                throw MaskingError.invalidTokenMask("row \(b) has \(row.count) columns, row 0 has \(width)")
            }
            guard !row[0] else { throw MaskingError.invalidTokenMask("row \(b) drops the time token (column 0)") }
            rows.append((1..<width).filter { row[$0] }.map { $0 - 1 })
            guard rows[b].count == rows[0].count else {
                throw MaskingError.invalidTokenMask(
                    "row \(b) drops \(rows[b].count) patches, row 0 drops \(rows[0].count)")
            }
        }
        self.init(dropped: rows, patchCount: width - 1)
    }

    /// A mask from a flat row-major `(B, 1+N)` byte mask (non-zero = dropped), e.g. a torch bool
    /// tensor's bytes. Throws as the `[[Bool]]` form does.
    public init(tokenMask bytes: [UInt8], batchSize: Int) throws {
        guard batchSize > 0, bytes.count % batchSize == 0 else {
            throw MaskingError.invalidTokenMask("\(bytes.count) bytes do not split into \(batchSize) rows")
        }
        let width = bytes.count / batchSize
        try self.init(tokenMask: (0..<batchSize).map { b in bytes[(b * width)..<((b + 1) * width)].map { $0 != 0 } })
    }

    /// Builds a mask from already validated, sorted rows.
    init(trusted visible: [[Int]], dropped: [[Int]], patchCount: Int) {
        self.batchSize = visible.count
        self.patchCount = patchCount
        self.visible = visible
        self.dropped = dropped
        self.droppedCount = dropped.first?.count ?? 0
    }

    /// The `(B, 1+N)` token mask, `true` = dropped; column 0 (the time token) is always `false`.
    public var tokenMask: [[Bool]] {
        dropped.map { row in
            var m = [Bool](repeating: false, count: patchCount + 1)
            for p in row { m[p + 1] = true }
            return m
        }
    }

    /// The token mask flattened row-major as bytes `(B, 1+N)`, 1 = dropped (torch bool layout).
    public var tokenMaskBytes: [UInt8] {
        tokenMask.flatMap { $0.map { $0 ? 1 : 0 } }
    }

    /// Whether patch `patch` of item `item` is dropped.
    public func isDropped(item: Int, patch: Int) -> Bool {
        precondition(item >= 0 && item < batchSize && patch >= 0 && patch < patchCount,
                     "Mask.isDropped: (\(item), \(patch)) outside (\(batchSize), \(patchCount))")
        return dropped[item].contains(patch)
    }

    /// Indices into the `(1+N)` token sequence of item `item` that are kept: 0 (the time token)
    /// followed by `visible[item] + 1`. Count `1 + visibleCount`.
    public func keptTokenIndices(item: Int) -> [Int] {
        [0] + visible[item].map { $0 + 1 }
    }

    /// Row indices into a `(B*N, C)` patch matrix of the kept patches, item by item in raster
    /// order: `b*N + p`. Count `B * visibleCount`; feed to `Tensor.gatherRows`.
    public var flatVisiblePatchRows: [Int] {
        visible.enumerated().flatMap { b, row in row.map { b * patchCount + $0 } }
    }

    /// Row indices into a `(B*(1+N), D)` token matrix of the kept tokens (time token first):
    /// `b*(1+N) + token`. Count `B * (1 + visibleCount)`.
    public var flatKeptTokenRows: [Int] {
        (0..<batchSize).flatMap { b in keptTokenIndices(item: b).map { b * (patchCount + 1) + $0 } }
    }
}
