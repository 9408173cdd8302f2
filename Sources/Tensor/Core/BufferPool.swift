import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A process-wide cache of large tensor buffers, so that a training loop which allocates the same
/// activation and gradient shapes every step reuses memory instead of page-faulting fresh
/// megabytes each time (on a virtual machine a 4 KiB fault costs microseconds; a small-model step
/// touched ~400 MB of fresh pages per forward pass before this pool existed).
///
/// Buffers of at least ``minimumBytes`` are mapped directly from the kernel in multiples of 2 MiB,
/// 2 MiB aligned and advised for transparent huge pages (fewer TLB misses; see
/// ``advisesHugePages`` and ``allocate(sizeClass:hugePages:)``). A freed
/// buffer goes to the cache; an allocation of the same size class (or, failing that, of up to half
/// a cached buffer's size) takes it back. The cache never makes the process hold more than its live
/// peak: on a miss, cached buffers (least recently freed first) are unmapped until mapping the new
/// one keeps the pool's bytes within the highest live total seen so far. Smaller buffers use the
/// system allocator.
///
/// Set `MASKDM_BUFFER_POOL=0` in the environment to bypass the pool (every large buffer is then
/// mapped and unmapped on its own), or call ``trim()`` to return every cached buffer now.
public final class BufferPool: Sendable {
    /// The pool behind every ``TensorStorage``.
    public static let shared = BufferPool(
        enabled: (getenv("MASKDM_BUFFER_POOL").map { String(cString: $0) } ?? "1") != "0")

    /// Requests below this many bytes go to the system allocator.
    public static let minimumBytes = 1 << 20
    /// Size-class granularity (and alignment) of pooled buffers: one huge page (2 MiB).
    public static let granularity = 2 << 20

    /// Counters of a pool; bytes are rounded to size classes.
    public struct Statistics: Sendable, Equatable {
        /// Allocations served from the cache.
        public var hits = 0
        /// Allocations that mapped new memory.
        public var misses = 0
        /// Bytes in buffers currently handed out.
        public var liveBytes = 0
        /// Bytes in cached (free) buffers.
        public var cachedBytes = 0
        /// Highest `liveBytes` seen.
        public var peakLiveBytes = 0
        /// Highest `liveBytes + cachedBytes` seen (what the pool made resident at most); never above
        /// `peakLiveBytes`.
        public var peakOwnedBytes = 0
        /// Cached buffers unmapped to make room.
        public var evictions = 0
        /// Misses served by resizing a cached buffer that would otherwise have been unmapped to
        /// make room: the pages it keeps need no fresh memory (see
        /// ``BufferPool/allocate(sizeClass:hugePages:)``).
        public var recycled = 0
    }

    /// A mapped buffer: handed between threads only through the pool's lock.
    private struct Block: @unchecked Sendable {
        let bytes: Int
        let base: UnsafeMutableRawPointer
    }

    private struct State {
        var cached: [Block] = []   // least recently freed first
        var stats = Statistics()
    }

    private let state = PthreadLock(State())
    /// Whether freed buffers are kept for reuse.
    public let isEnabled: Bool

    /// A pool; `enabled: false` maps and unmaps every large buffer on its own.
    public init(enabled: Bool = true) { self.isEnabled = enabled }

    /// The size class of a request of `bytes` (a multiple of ``granularity``), or nil when the
    /// request is below ``minimumBytes`` and belongs to the system allocator.
    public static func sizeClass(forBytes bytes: Int) -> Int? {
        guard bytes >= minimumBytes else { return nil }
        return (bytes + granularity - 1) / granularity * granularity
    }

    /// A buffer of at least `sizeClass` bytes (from ``sizeClass(forBytes:)``), 2 MiB aligned,
    /// contents unspecified; `bytes` is its actual size, to pass back to
    /// ``deallocate(_:sizeClass:)``. A cached buffer of exactly the class is preferred, then the
    /// smallest cached one of at most twice the class (so a step whose temporaries change size
    /// between forward and backward reuses memory instead of mapping more).
    ///
    /// On a miss that has to make room, the cached buffer that would be unmapped first among
    /// those closest in size is resized to the request instead (`mremap`): its pages stay
    /// populated, so only the difference is fresh memory. (First touches of fresh memory are slow
    /// on virtual machines whose host backs it lazily; a folder of FID features, whose network
    /// allocates many sizes, mapped about 15 new buffers a batch.)
    ///
    /// `hugePages: false` maps a new buffer in 4 KiB pages even under ``advisesHugePages``, for
    /// buffers read in order, such as packed weights, where the cheaper first touch matters more
    /// (a cached buffer is handed out as it was mapped).
    public func allocate(sizeClass bytes: Int, hugePages: Bool = true) -> (base: UnsafeMutableRawPointer, bytes: Int) {
        let huge = hugePages && Self.advisesHugePages
        let (reused, recycle, toUnmap): (Block?, Block?, [Block]) = state.withLock { s in
            var pick = s.cached.lastIndex(where: { $0.bytes == bytes })
            if pick == nil {
                var best = Int.max
                for (i, c) in s.cached.enumerated() where c.bytes > bytes && c.bytes <= 2 * bytes && c.bytes < best {
                    best = c.bytes
                    pick = i
                }
            }
            if let i = pick {
                let hit = s.cached.remove(at: i)
                s.stats.hits += 1
                s.stats.cachedBytes -= hit.bytes
                s.stats.liveBytes += hit.bytes
                s.stats.peakLiveBytes = max(s.stats.peakLiveBytes, s.stats.liveBytes)
                return (hit, nil, [])
            }
            // Miss: map a new buffer, first unmapping least recently freed ones while the pool would
            // otherwise own more than the highest live total so far (or than live + this request).
            let ceiling = max(s.stats.peakLiveBytes, s.stats.liveBytes + bytes)
            var victims: [Block] = []
            while s.stats.liveBytes + s.stats.cachedBytes + bytes > ceiling, !s.cached.isEmpty {
                let v = s.cached.removeFirst()
                s.stats.cachedBytes -= v.bytes
                victims.append(v)
            }
            // The victim to resize: the smallest one at least as large as the request (shrunk in
            // place), else the largest (grown, adding the fewest fresh pages).
            let recycle = Self.recyclable && !victims.isEmpty
                ? victims.indices.min(by: { Self.recyclingCost(victims[$0].bytes, bytes) < Self.recyclingCost(victims[$1].bytes, bytes) })
                : nil
            s.stats.misses += 1
            s.stats.evictions += victims.count - (recycle == nil ? 0 : 1)
            if recycle != nil { s.stats.recycled += 1 }
            s.stats.liveBytes += bytes
            s.stats.peakLiveBytes = max(s.stats.peakLiveBytes, s.stats.liveBytes)
            s.stats.peakOwnedBytes = max(s.stats.peakOwnedBytes, s.stats.liveBytes + s.stats.cachedBytes)
            guard let recycle else { return (nil, nil, victims) }
            var others = victims
            return (nil, others.remove(at: recycle), others)
        }
        for v in toUnmap { Self.unmap(v.base, bytes: v.bytes) }
        if let reused { return (reused.base, reused.bytes) }
        if let recycle {
            if let base = Self.resize(recycle, to: bytes) {
                if huge && bytes > recycle.bytes { Self.adviseHugePages(base, bytes: bytes) }
                return (base, bytes)
            }
            Self.unmap(recycle.base, bytes: recycle.bytes)   // cannot resize: unmap it after all
            state.withLock { s in
                s.stats.recycled -= 1
                s.stats.evictions += 1
            }
        }
        return (Self.map(bytes: bytes, hugePages: huge), bytes)
    }

    /// Whether misses resize cached buffers (`MASKDM_BUFFER_RECYCLING=0` turns it off, to measure).
    static let recyclable = (getenv("MASKDM_BUFFER_RECYCLING").map { String(cString: $0) } ?? "1") != "0"

    /// How much fresh memory resizing a cached buffer of `cached` bytes to `request` bytes costs,
    /// ordered: shrinking (no fresh pages; the less dropped the better) before growing (the less
    /// added the better).
    static func recyclingCost(_ cached: Int, _ request: Int) -> Int {
        cached >= request ? cached - request : Int.max / 2 + (request - cached)
    }

    /// Returns a buffer from ``allocate(sizeClass:hugePages:)`` with the `bytes` it reported (to the
    /// cache, or to the kernel when the pool is disabled).
    public func deallocate(_ base: UnsafeMutableRawPointer, sizeClass bytes: Int) {
        let keep = isEnabled
        state.withLock { s in
            s.stats.liveBytes -= bytes
            if keep {
                s.cached.append(Block(bytes: bytes, base: base))
                s.stats.cachedBytes += bytes
            }
        }
        if !keep { Self.unmap(base, bytes: bytes) }
    }

    /// Unmaps every cached buffer (e.g. between a training run and sampling at another batch size).
    public func trim() {
        let all = state.withLock { s in
            let all = s.cached
            s.cached.removeAll()
            s.stats.evictions += all.count
            s.stats.cachedBytes = 0
            return all
        }
        for v in all { Self.unmap(v.base, bytes: v.bytes) }
    }

    /// A snapshot of the counters.
    public var statistics: Statistics { state.withLock { $0.stats } }

    /// Maps `bytes` (a multiple of the granularity) at a 2 MiB boundary, advised for huge pages when
    /// `hugePages`.
    private static func map(bytes: Int, hugePages: Bool) -> UnsafeMutableRawPointer {
        guard let base = mapAligned(bytes: bytes, protection: PROT_READ | PROT_WRITE) else {
            fatalError("BufferPool: cannot map \(bytes) bytes (errno \(errno)): out of memory")
        }
        if hugePages { adviseHugePages(base, bytes: bytes) }
        return base
    }

    /// A private anonymous mapping of `bytes` at a 2 MiB boundary with `protection`, or nil.
    private static func mapAligned(bytes: Int, protection: Int32) -> UnsafeMutableRawPointer? {
        let span = bytes + granularity
        guard let raw = mmap(nil, span, protection, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            return nil
        }
        let address = UInt(bitPattern: raw)
        let aligned = (address + UInt(granularity) - 1) & ~UInt(granularity - 1)
        let head = Int(aligned - address), tail = span - head - bytes
        if head > 0 { munmap(raw, head) }
        let base = raw + head
        if tail > 0 { munmap(base + bytes, tail) }
        return base
    }

    /// `block` resized to `bytes`, keeping its pages: shrunk in place (the tail unmapped), grown in
    /// place when the pages after it are free, else moved without copying to a new 2 MiB-aligned
    /// range; nil when it cannot be grown (`block` is then still mapped as it was).
    private static func resize(_ block: Block, to bytes: Int) -> UnsafeMutableRawPointer? {
        if bytes <= block.bytes {
            if bytes < block.bytes { unmap(block.base + bytes, bytes: block.bytes - bytes) }
            return block.base
        }
        if let grown = maskdm_remap(block.base, block.bytes, bytes, nil) { return grown }
        guard let destination = mapAligned(bytes: bytes, protection: PROT_NONE) else { return nil }
        if let moved = maskdm_remap(block.base, block.bytes, bytes, destination) { return moved }
        unmap(destination, bytes: bytes)
        return nil
    }

    private static func adviseHugePages(_ base: UnsafeMutableRawPointer, bytes: Int) {
        #if os(Linux)
        _ = madvise(base, bytes, 14)   // MADV_HUGEPAGE; advisory, ignored when THP is off
        #endif
    }

    /// Whether new buffers may be advised for transparent huge pages (`MADV_HUGEPAGE`): true
    /// unless the environment sets `MASKDM_HUGE_PAGES=0`. Huge pages ran FID feature extraction 7%
    /// faster than 4 KiB pages (its convolutions' large activations) and made no measurable
    /// difference to a ViT step or sampling pass; but on virtual machines whose host backs memory
    /// lazily (free-page reporting) a fresh huge page costs 3-10 times more per byte to touch
    /// first, which a short run pays for every buffer it maps (about 2 s of a small@64 step
    /// benchmark process). Set `MASKDM_HUGE_PAGES=0` for many short processes on such a machine.
    public static let advisesHugePages = (getenv("MASKDM_HUGE_PAGES").map { String(cString: $0) } ?? "1") != "0"

    private static func unmap(_ base: UnsafeMutableRawPointer, bytes: Int) {
        munmap(base, bytes)
    }
}
