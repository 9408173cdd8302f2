import Dispatch
import Foundation
import Synchronization
import Testing
@testable import Tensor

/// The polling worker pool behind `parallelFor`: every chunk runs exactly once, across sleeps,
/// nesting and concurrent submitters.
@Suite struct WorkerPoolTests {
    /// Runs `jobs` jobs of 1 ... workers + 1 chunks on `pool`, each chunk adding its index + 1 to
    /// its own slot; returns false on the first job whose slots are not exactly hit once.
    func exercise(_ pool: WorkerPool, jobs: Int, pauseMicroseconds: UInt32 = 0) -> Bool {
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: 64)
        defer { slots.deallocate() }
        let p = SendablePointer(slots)
        for j in 0..<jobs {
            let chunks = 1 + j % (pool.workers + 1)
            slots.initialize(repeating: 0, count: 64)
            let ran = pool.run(chunks: chunks) { i in p[i] += i + 1 }
            guard ran else { return false }
            for i in 0..<64 where slots[i] != (i < chunks ? i + 1 : 0) { return false }
            if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
        }
        return true
    }

    @Test func everyChunkRunsExactlyOnce() {
        let pool = WorkerPool(workers: 3)
        #expect(exercise(pool, jobs: 20_000))
    }

    /// Idle longer than the polling window: the workers sleep and must be woken for each job.
    @Test func workersWakeFromSleep() {
        let pool = WorkerPool(workers: 2)
        #expect(WorkerPool.spinNanoseconds < 1_000_000)
        #expect(exercise(pool, jobs: 30, pauseMicroseconds: 1_500))
    }

    @Test func refusesJobsItCannotTake() {
        let pool = WorkerPool(workers: 1)
        #expect(!pool.run(chunks: 3) { _ in Issue.record("a refused job ran") })
        #expect(!WorkerPool(workers: 0).run(chunks: 2) { _ in Issue.record("a refused job ran") })
        // Nested: the inner region finds the pool busy and is refused (parallelFor then uses libdispatch).
        let inner = Atomic<Int>(0)
        #expect(pool.run(chunks: 2) { _ in
            if !pool.run(chunks: 2, { _ in Issue.record("nested job ran on a busy pool") }) { inner.add(1, ordering: .relaxed) }
        })
        #expect(inner.load(ordering: .relaxed) == 2)
    }

    /// parallelFor from several threads at once (one gets the pool, the others libdispatch) and
    /// nested inside its own body: every element is written exactly once.
    @Test func parallelForFromConcurrentThreadsAndNested() {
        let n = 1000
        let results = UnsafeMutablePointer<Int>.allocate(capacity: 4 * n)
        defer { results.deallocate() }
        results.initialize(repeating: 0, count: 4 * n)
        let r = SendablePointer(results)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for round in 0..<200 {
                Parallel.$threads.withValue(2) {
                    parallelFor(n) { range in
                        if round % 50 == 0 {
                            parallelFor(range.count) { inner in for i in inner { r[t * n + range.lowerBound + i] += 1 } }
                        } else {
                            for i in range { r[t * n + i] += 1 }
                        }
                    }
                }
            }
        }
        #expect((0..<(4 * n)).allSatisfy { results[$0] == 200 })
    }

    /// parallelShares deals contiguous shares, each once, with the inner thread count set inside.
    @Test(arguments: [(10, 3, 1), (5, 8, 2), (1, 2, 1), (0, 2, 1)])
    func sharesCoverTheRangeOnce(count: Int, parts: Int, inner: Int) {
        let seen = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1) + 3 * 8)
        defer { seen.deallocate() }
        seen.initialize(repeating: 0, count: max(count, 1) + 3 * 8)
        let p = SendablePointer(seen), meta = SendablePointer(seen + max(count, 1))
        Parallel.$threads.withValue(4) {
            parallelShares(of: count, parts: parts, innerThreads: inner) { i, share in
                for j in share { p[j] += 1 }
                meta[3 * i] = share.lowerBound + 1
                meta[3 * i + 1] = share.count
                meta[3 * i + 2] = Parallel.threads
            }
        }
        #expect((0..<count).allSatisfy { seen[$0] == 1 })
        let used = min(parts, count)
        for i in 0..<used {
            #expect(meta[3 * i] == i * count / used + 1 && meta[3 * i + 1] == (i + 1) * count / used - i * count / used)
            #expect(meta[3 * i + 2] == inner)
        }
        if count == 0 { #expect(meta[0] == 0) }   // no share runs
    }

    /// The share count stays within 1 ... count, and is 1 when the products go to OpenBLAS.
    @Test func shareCountIsBoundedAndOneOnOpenBLAS() {
        #expect(parallelShareCount(3, of: 2) == (Gemm.usesOwnKernels ? 2 : 1))
        #expect(parallelShareCount(2, of: 16) == (Gemm.usesOwnKernels ? 2 : 1))
        #expect(parallelShareCount(0, of: 16) == 1)
        #expect(parallelShareCount(4, of: 0) == 1)
    }
}
