import CKernels
import Dispatch
import Foundation
import Synchronization

/// The persistent worker threads behind ``parallelFor(_:grain:_:)``.
///
/// A kernel hands its chunks to `Parallel.defaultThreads - 1` long-lived threads that poll for
/// work for a short while (``spinNanoseconds``) after each job before they sleep. A training step
/// issues thousands of parallel regions of 0.05-5 ms each; a worker woken through the kernel
/// (`DispatchQueue.concurrentPerform`) starts ~20 us late on this kind of VM, a polling one within
/// a microsecond. `MASKDM_WORKER_POOL=0` disables the pool (every region then goes to
/// `concurrentPerform`, as do nested regions and regions started while another thread's region
/// is running).
///
/// Protocol: `state` packs (epoch << 32 | chunks << 16 | claimed). The submitter (the one thread
/// holding `busy`) writes `job`, then publishes a new epoch with a sequentially consistent store.
/// Every participant, the submitter included, takes chunk indices with a compare-exchange on
/// `state`; a thread reads `job` only after such a claim succeeded, and the submitter returns (and
/// may overwrite `job`) only after every claimed chunk has been counted in `done`. Sleeping:
/// a worker registers in `sleepers` and re-checks the epoch under `lock`; the submitter reads
/// `sleepers` after publishing and broadcasts when it is non-zero.
@usableFromInline
final class WorkerPool: @unchecked Sendable {
    // @unchecked Sendable: the mutable `job` is guarded by the claim protocol above; the rest is
    // atomics and a pthread mutex / condition.
    @usableFromInline static let shared = WorkerPool(
        workers: ProcessInfo.processInfo.environment["MASKDM_WORKER_POOL"] == "0" ? 0 : max(0, Parallel.defaultThreads - 1))

    /// How long an idle worker polls before it sleeps.
    static let spinNanoseconds: UInt64 = 300_000

    /// Worker threads (the submitting thread is the extra participant).
    let workers: Int
    private let state = Atomic<Int>(0)
    private let done = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private let started = Atomic<Bool>(false)
    private nonisolated(unsafe) var job: ((Int) -> Void)?
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init(workers: Int) {
        self.workers = workers
        pthread_mutex_init(lock, nil)
        pthread_cond_init(wake, nil)
    }

    /// Runs only for a pool whose workers never started (started workers keep their pool alive;
    /// the shared pool lives as long as the process).
    deinit {
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(lock)
        wake.deallocate()
        lock.deallocate()
    }

    /// Runs `body(0) ... body(chunks - 1)` on the calling thread and the workers; returns false
    /// without running anything when the pool cannot take the job (too many chunks, pool disabled,
    /// or busy with another thread's or an enclosing region).
    @usableFromInline
    func run(chunks: Int, _ body: (Int) -> Void) -> Bool {
        guard chunks >= 1, chunks <= workers + 1, chunks < 1 << 16 else { return false }
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        startWorkers()
        withoutActuallyEscaping(body) { body in
            job = body
            done.store(0, ordering: .relaxed)
            // 31-bit epochs: the packed word stays non-negative; wrapping to 0 is still "new" to a
            // worker whose last epoch was 2^31 - 1.
            let epoch = ((state.load(ordering: .relaxed) >> 32) + 1) & 0x7FFF_FFFF
            state.store(epoch << 32 | chunks << 16, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(lock)
                pthread_cond_broadcast(wake)
                pthread_mutex_unlock(lock)
            }
            var mine = 0
            while let i = claim(epoch) { body(i); mine += 1 }
            // Wait for the workers' chunks; yield now and then in case one of them was preempted.
            var spins = 0
            while done.load(ordering: .acquiring) < chunks - mine {
                maskdm_cpu_relax()
                spins += 1
                if spins & 4095 == 0 { sched_yield() }
            }
            job = nil
        }
        busy.store(false, ordering: .releasing)
        return true
    }

    /// Takes the next unclaimed chunk of job `epoch`, or nil when it has none left (or is over).
    private func claim(_ epoch: Int) -> Int? {
        var s = state.load(ordering: .acquiring)
        while true {
            let claimed = s & 0xFFFF
            guard s >> 32 == epoch, claimed < (s >> 16) & 0xFFFF else { return nil }
            let (exchanged, original) = state.compareExchange(expected: s, desired: s + 1, ordering: .acquiringAndReleasing)
            if exchanged { return claimed }
            s = original
        }
    }

    private func startWorkers() {
        guard workers > 0, started.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        for i in 0..<workers {
            let thread = Thread { [self] in workerLoop() }
            thread.name = "maskdm-worker-\(i)"
            thread.start()
        }
    }

    private func workerLoop() {
        var seen = 0
        while true {
            // Wait for an epoch newer than the last one handled.
            var s = state.load(ordering: .acquiring)
            var spins = 0
            var since: UInt64 = 0
            while s >> 32 == seen {
                maskdm_cpu_relax()
                spins += 1
                if spins & 63 == 0 {
                    let now = DispatchTime.now().uptimeNanoseconds
                    if since == 0 {
                        since = now
                    } else if now - since > WorkerPool.spinNanoseconds {
                        sleep(untilNewerThan: seen)
                        spins = 0
                        since = 0
                    }
                }
                s = state.load(ordering: .acquiring)
            }
            let epoch = s >> 32
            while let i = claim(epoch) {
                job.unsafelyUnwrapped(i)
                done.add(1, ordering: .releasing)
            }
            seen = epoch
        }
    }

    private func sleep(untilNewerThan epoch: Int) {
        pthread_mutex_lock(lock)
        sleepers.add(1, ordering: .sequentiallyConsistent)
        while state.load(ordering: .sequentiallyConsistent) >> 32 == epoch { pthread_cond_wait(wake, lock) }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(lock)
    }
}
