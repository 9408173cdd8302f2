import Foundation

/// The heap buffer behind a ``Tensor``: `count` Float32 values, 64-byte aligned.
///
/// Owned by exactly one or more tensors; ``Tensor`` copies it before a write when it is shared
/// (copy-on-write).
public final class TensorStorage: @unchecked Sendable {
    // @unchecked Sendable: the buffer is only mutated through Tensor's copy-on-write accessors,
    // which first make the storage uniquely referenced; shared storages are read-only.
    /// The first element, read-only. Write through ``Tensor/mutablePointer()`` (which copies a
    /// shared storage first), or through ``mutableBase`` for a storage you alone own.
    @inlinable public var base: UnsafePointer<Float> { UnsafePointer(mutableBase) }
    /// The first element, writable. Writing here bypasses copy-on-write: use it only on a storage
    /// no ``Tensor`` shares (an optimizer's arena, a scratch buffer), never on a tensor's storage.
    public let mutableBase: UnsafeMutablePointer<Float>
    /// Number of Float32 elements.
    public let count: Int
    /// Bytes of the ``BufferPool`` block behind `base` (0: from the system allocator).
    private let pooledBytes: Int

    /// Allocates uninitialised storage for `count` floats (at least one byte is allocated).
    /// Buffers of a megabyte or more come from (and return to) ``BufferPool/shared``;
    /// `hugePages: false` keeps a newly mapped one in 4 KiB pages (see
    /// ``BufferPool/allocate(sizeClass:hugePages:)``).
    public init(uninitializedCount count: Int, hugePages: Bool = true) {
        precondition(count >= 0, "TensorStorage: negative count \(count)")
        let bytes = max(count, 1) * 4
        let raw: UnsafeMutableRawPointer
        if let sizeClass = BufferPool.sizeClass(forBytes: bytes) {
            (raw, pooledBytes) = BufferPool.shared.allocate(sizeClass: sizeClass, hugePages: hugePages)
        } else {
            raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            pooledBytes = 0
        }
        self.mutableBase = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
    }

    /// Allocates storage filled with `value` (zeros by `memset`, which the C library vectorises;
    /// the generic fill is a scalar loop in this baseline-x86 build).
    public convenience init(count: Int, repeating value: Float) {
        self.init(uninitializedCount: count)
        if value.bitPattern == 0 {
            memset(mutableBase, 0, count * MemoryLayout<Float>.stride)
        } else {
            mutableBase.initialize(repeating: value, count: count)
        }
    }

    /// A new storage holding a copy of this one.
    public func copy() -> TensorStorage {
        let s = TensorStorage(uninitializedCount: count)
        s.mutableBase.update(from: base, count: count)
        return s
    }

    deinit {
        if pooledBytes > 0 {
            BufferPool.shared.deallocate(UnsafeMutableRawPointer(mutableBase), sizeClass: pooledBytes)
        } else {
            UnsafeMutableRawPointer(mutableBase).deallocate()
        }
    }
}
