import Foundation
import Synchronization

/// Set by SIGINT / SIGTERM once ``StopSignal/install()`` ran; the training loop finishes its step,
/// writes a checkpoint and stops.
private let stopRequested = Atomic<Int>(0)

/// Cooperative stopping on Ctrl-C and SIGTERM.
///
/// ```swift
/// StopSignal.install()                     // in main, before training
/// if StopSignal.isRequested { ... }        // polled between steps
/// ```
public enum StopSignal {
    /// Routes SIGINT and SIGTERM to the stop flag (a second Ctrl-C exits at once, code 130), and
    /// unblocks them on the calling thread (call it from the main thread, before starting others).
    public static func install() {
        let handler: @convention(c) (Int32) -> Void = { _ in
            if stopRequested.add(1, ordering: .relaxed).newValue > 1 { _exit(130) }
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        // A parent can start us with the two blocked (a thread of a test runner or a service
        // manager that spawns from a thread blocking them): unblock them, or Ctrl-C never arrives.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
    }

    /// Whether a stop was requested.
    public static var isRequested: Bool { stopRequested.load(ordering: .relaxed) > 0 }

    /// Requests a stop (what the signal handler does; for tests and embedding programs).
    public static func request() { stopRequested.add(1, ordering: .relaxed) }

    /// Clears a request.
    public static func reset() { stopRequested.store(0, ordering: .relaxed) }
}
