/// Reusable 64-byte aligned scratch buffers for ``Gemm``'s operand packing, so a call does not
/// allocate (and page-fault) megabytes of fresh memory.
///
/// A call takes a buffer out of the pool (or allocates one), uses it exclusively, and puts it
/// back; concurrent calls get different buffers. At most `capacity` idle buffers are kept.
final class GemmWorkspacePool: Sendable {
    private let idle = PthreadLock<[TensorStorage]>([])
    private let capacity: Int

    /// A pool keeping at most `capacity` idle buffers.
    init(capacity: Int) { self.capacity = capacity }

    /// Runs `body` with exclusive use of at least `floats` floats of 64-byte aligned scratch.
    func withBuffer<R>(floats: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        let taken: TensorStorage? = idle.withLock { buffers in
            guard let i = buffers.firstIndex(where: { $0.count >= floats }) else { return nil }
            return buffers.remove(at: i)
        }
        let buffer = taken ?? TensorStorage(uninitializedCount: floats)
        let result = withExtendedLifetime(buffer) { body(buffer.mutableBase) }
        idle.withLock { buffers in
            buffers.append(buffer)
            // Keep the largest buffers: they serve every smaller request.
            if buffers.count > capacity {
                buffers.sort { $0.count > $1.count }
                buffers.removeLast(buffers.count - capacity)
            }
        }
        return result
    }
}
