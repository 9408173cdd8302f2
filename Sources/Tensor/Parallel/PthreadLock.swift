#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a pthread mutex: `withLock` gives exclusive `inout` access.
///
/// The library's shared pools use this rather than the standard library's `Mutex`, whose
/// futex-based lock lives in an uninstrumented module: ThreadSanitizer does not see it
/// synchronise and reports the guarded accesses as races. `pthread_mutex_lock` is intercepted, so
/// TSan runs stay meaningful.
///
/// ```swift
/// let counter = PthreadLock(0)
/// parallelFor(8) { r in counter.withLock { $0 += r.count } }
/// ```
public final class PthreadLock<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched between pthread_mutex_lock and unlock.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    /// A lock guarding `initial`.
    public init(_ initial: Value) {
        value = initial
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held and exclusive access to the value.
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
