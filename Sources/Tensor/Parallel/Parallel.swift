import Dispatch
import Foundation

/// Threading configuration for the library's own (non-BLAS) kernels.
///
/// The thread count is task-local configuration, not a global: wrap work in
/// `Parallel.$threads.withValue(1) { ... }` to change it for that scope. The default is the
/// `MASKDM_THREADS` environment variable, or the number of active processors.
public enum Parallel {
    /// Default thread count: `MASKDM_THREADS` if set, else the active processor count.
    public static let defaultThreads: Int = {
        if let s = ProcessInfo.processInfo.environment["MASKDM_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Threads used by ``parallelFor(_:grain:_:)`` in the current task scope.
    @TaskLocal public static var threads: Int = defaultThreads
}

/// Runs `body` over disjoint sub-ranges covering `0..<count`, on up to ``Parallel/threads`` threads.
///
/// Chunks never overlap, so `body` may write to disjoint parts of a shared buffer. Ranges
/// smaller than `grain` items are not split further. The calling thread runs chunks too; the others
/// go to persistent polling worker threads (see `MASKDM_WORKER_POOL` in Docs/Performance.md), or
/// to libdispatch when the region is nested or another thread's region is running. Never call BLAS from `body`: OpenBLAS
/// threads itself.
/// - Parameters:
///   - count: number of work items.
///   - grain: the minimum number of items worth a separate chunk.
///   - body: called once per chunk with its item range.
@inlinable
public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    let threads = Parallel.threads
    let maxChunks = max(1, count / max(grain, 1))
    let chunks = min(threads, maxChunks)
    if chunks <= 1 { body(0..<count); return }
    withoutActuallyEscaping(body) { escapable in
        // The body only runs inside this call (both paths block until all chunks finish), and
        // chunks write disjoint ranges, so handing it to other threads is safe.
        let box = UncheckedSendableBox(escapable)
        let chunk: @Sendable (Int) -> Void = { c in
            let lo = c * count / chunks
            let hi = (c + 1) * count / chunks
            if lo < hi { box.value(lo..<hi) }
        }
        // The polling worker pool; when it cannot take the region (nested, concurrent with another
        // thread's region, or more chunks than it has threads), libdispatch's pool.
        if !WorkerPool.shared.run(chunks: chunks, chunk) {
            DispatchQueue.concurrentPerform(iterations: chunks, execute: chunk)
        }
    }
}

/// The number of shares of `count` items to give ``parallelShares(of:parts:innerThreads:_:)``
/// when `requested` are asked for: at most `count`, at least 1, and 1 whenever the matrix products
/// go to OpenBLAS (``Gemm/usesOwnKernels`` false): OpenBLAS threads every call itself, so shares
/// calling it at once would oversubscribe the cores.
public func parallelShareCount(_ requested: Int, of count: Int) -> Int {
    Gemm.usesOwnKernels ? Swift.max(1, Swift.min(requested, count)) : 1
}

/// Runs `body(i, share)` for `parts` contiguous shares of `0..<count` (share `i` is
/// `i * count / parts ..< (i + 1) * count / parts`; `parts` is capped at `count`), one share per thread, with
/// ``Parallel/threads`` set to `innerThreads` inside, so the kernels a share calls run on that many
/// threads (1: on the share's thread alone, with no waiting between threads inside them). This is
/// how a training step and inference split a batch across the threads.
public func parallelShares(of count: Int, parts: Int, innerThreads: Int = 1, _ body: (Int, Range<Int>) -> Void) {
    guard count > 0 else { return }
    let parts = Swift.max(1, Swift.min(parts, count))
    parallelFor(parts) { range in
        Parallel.$threads.withValue(innerThreads) {
            for i in range { body(i, (i * count / parts)..<((i + 1) * count / parts)) }
        }
    }
}

/// A pointer that may be captured by ``parallelFor(_:grain:_:)`` bodies.
///
/// The one audited escape hatch for Swift 6 sendability in kernels: callers promise that
/// concurrent chunks write disjoint elements.
public struct SendablePointer<T>: @unchecked Sendable {
    // @unchecked Sendable: used only by kernels whose parallel chunks touch disjoint elements.
    /// The wrapped pointer.
    public let base: UnsafeMutablePointer<T>
    /// Wraps a mutable pointer.
    @inlinable public init(_ base: UnsafeMutablePointer<T>) { self.base = base }
    /// Wraps a read-only pointer; callers must not write through it.
    @inlinable public init(_ base: UnsafePointer<T>) { self.base = UnsafeMutablePointer(mutating: base) }
    /// Element `i`, read or written without bounds checks.
    @inlinable public subscript(i: Int) -> T {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }
    /// The wrapped pointer advanced by `n` elements.
    @inlinable public static func + (p: SendablePointer, n: Int) -> UnsafeMutablePointer<T> { p.base + n }
}

/// Carries a non-Sendable value into `concurrentPerform`; only ``parallelFor(_:grain:_:)`` uses it.
@usableFromInline
struct UncheckedSendableBox<T>: @unchecked Sendable {
    // @unchecked Sendable: parallelFor's chunks are disjoint and the box never outlives the call.
    @usableFromInline let value: T
    @usableFromInline init(_ value: T) { self.value = value }
}
