import Foundation
import Synchronization
import Tensor

/// Set by SIGINT / SIGTERM / SIGHUP once ``StopSignal/install()`` ran; the training loop finishes
/// its step, writes a checkpoint and stops.
private let stopRequested = Atomic<Int>(0)
/// The first stop signal's number (0: none, or a request from code).
private let firstSignal = Atomic<Int32>(0)
/// Set by SIGPIPE (stdout's reader went away): a stop, but not one that makes the next signal a
/// second one.
private let pipeClosed = Atomic<Bool>(false)

/// Cooperative stopping on Ctrl-C, SIGTERM (a batch scheduler's or `kill`'s) and SIGHUP (the
/// terminal or ssh session closed).
///
/// ```swift
/// StopSignal.install()                     // in main, before training
/// if StopSignal.isRequested { ... }        // polled between steps
/// ```
public enum StopSignal {
    /// Routes SIGINT, SIGTERM, SIGHUP and SIGUSR1 to the stop flag (a second signal ends the
    /// process at once, killed by that signal: the shell shows 128 + its number, 130 for Ctrl-C, and a
    /// parent sees a death by signal, not the clean stop's exit status), and unblocks them on the calling thread (call it
    /// from the main thread, before starting others). SIGPIPE (stdout's reader went away) stops
    /// too, once: its repeats do not count as a second signal.
    public static func install() {
        let handler: @convention(c) (Int32) -> Void = { number in
            _ = firstSignal.compareExchange(expected: 0, desired: number, ordering: .relaxed)
            if stopRequested.add(1, ordering: .relaxed).newValue > 1 {
                // Ended by the signal itself (its default action, as the handler returns), so a
                // parent tells it from a clean stop's exit status 128 + n (the shell shows both as
                // 128 + n); a script's loop around the command stops too.
                signal(number, SIG_DFL)
                raise(number)
            }
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        signal(SIGHUP, handler)
        // mpirun forwards SIGUSR1 to every rank, while its own Ctrl-C handling kills the ranks a
        // second after SIGTERM, too soon for a checkpoint: `kill -USR1 <mpirun>` stops a job cleanly.
        signal(SIGUSR1, handler)
        // A closed pipe on stdout (`maskdm ... | tee log` when the session drops, or `| head`)
        // stops the run as a signal does, instead of killing it between checkpoints. Every later
        // print raises it again: only the first counts, never as a second signal.
        // A SIGPIPE the process inherited as ignored (`trap '' PIPE`, a service manager's
        // setting) stays ignored.
        let pipe: @convention(c) (Int32) -> Void = { signal in
            _ = firstSignal.compareExchange(expected: 0, desired: signal, ordering: .relaxed)
            pipeClosed.store(true, ordering: .relaxed)
        }
        _ = stopRequested.load(ordering: .relaxed)                      // the globals exist before any handler runs
        _ = pipeClosed.load(ordering: .relaxed)
        _ = firstSignal.load(ordering: .relaxed)
        let previous = signal(SIGPIPE, pipe)
        if let previous, unsafeBitCast(previous, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) {
            signal(SIGPIPE, SIG_IGN)
        }
        // A parent can start us with the two blocked (a thread of a test runner or a service
        // manager that spawns from a thread blocking them): unblock them, or Ctrl-C never arrives.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGHUP)
        sigaddset(&signals, SIGUSR1)
        sigaddset(&signals, SIGPIPE)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
    }

    /// The exit status for a run that stopped on request: 128 + the first stop signal's number
    /// (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), the shell's convention; 130 when the
    /// stop came from ``request()``.
    public static var exitStatus: Int32 {
        let s = firstSignal.load(ordering: .relaxed)
        return s > 0 ? 128 + s : 130
    }

    /// Whether a stop was requested.
    public static var isRequested: Bool { stopRequested.load(ordering: .relaxed) > 0 || pipeClosed.load(ordering: .relaxed) }

    /// Requests a stop (what the signal handler does; for tests and embedding programs).
    public static func request() { stopRequested.add(1, ordering: .relaxed) }

    /// The first stop signal's number; 0 when none came (or the stop came from ``request()``).
    public static var signalNumber: Int32 { firstSignal.load(ordering: .relaxed) }

    /// When the ranks of a job stop together (each rank calls it, at the same point): every rank
    /// takes the signal of the lowest rank that received one, so all of them exit with the same
    /// status (``exitStatus``) whichever rank the signal reached. Only the number is taken, not a
    /// request: the same signal arriving late on this rank is still a first one, not a second
    /// that would exit at once.
    public static func shareSignal(over communicator: any Communicator) throws {
        let numbers = try communicator.allGather([Int64(signalNumber)]).map { $0.first ?? 0 }
        guard let first = numbers.first(where: { $0 > 0 }) else { return }
        firstSignal.store(Int32(first), ordering: .relaxed)
    }

    /// Clears a request.
    public static func reset() {
        stopRequested.store(0, ordering: .relaxed)
        firstSignal.store(0, ordering: .relaxed)
        pipeClosed.store(false, ordering: .relaxed)
    }
}
