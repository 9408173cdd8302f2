import Foundation

/// Turns training events into terminal feedback: on a terminal, one self-overwriting line with a
/// progress bar, step/total, smoothed loss, images/s and ETA; otherwise a plain line every
/// `every` steps (for logs and CI).
public final class ProgressPrinter {
    private let label: String
    private let total: Int
    private let every: Int
    private let isTerminal: Bool
    private var smoothed: Double? = nil
    private var speed: Double? = nil
    private var lastDraw = 0.0

    /// Whether standard output is a terminal the bar can redraw (``isTerminal(_:)``).
    public static var standardOutputIsTerminal: Bool { isTerminal(STDOUT_FILENO) }

    /// Whether `fileDescriptor` is a terminal a self-overwriting line can redraw. False under
    /// `mpirun` (Open MPI, or any launcher that sets `PMIX_RANK`/`PMI_RANK`): it hands each rank a
    /// pseudo-terminal even when its own output goes to a file, where a redrawn line would leave
    /// control characters, so ranks print plain lines.
    public static func isTerminal(_ fileDescriptor: Int32) -> Bool {
        let env = ProcessInfo.processInfo.environment
        if ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"].contains(where: { env[$0] != nil }) { return false }
        return isatty(fileDescriptor) != 0
    }

    /// A duration as every command prints it: `4.2 s` below ten seconds, `42 s` below two
    /// minutes, else `12.5 min`.
    public static func duration(_ seconds: Double) -> String {
        if seconds < 9.95 { return String(format: "%.1f s", seconds) }              // (9.96 s is "10 s", not "10.0 s")
        return seconds < 119.5 ? String(format: "%.0f s", seconds) : String(format: "%.1f min", seconds / 60)
    }

    /// A printer for a stage named `label` that runs to `total` steps.
    public init(label: String, total: Int, every: Int = 50, isTerminal: Bool = ProgressPrinter.standardOutputIsTerminal) {
        self.label = label; self.total = max(total, 1); self.every = max(every, 1); self.isTerminal = isTerminal
    }

    /// Handles one event of ``TrainingRun/train(on:trainSecondsLimit:events:)``.
    public func handle(_ event: TrainingRun.Event) {
        switch event {
        case .step(let r):
            if r.loss.isFinite { smoothed = smoothed.map { 0.95 * $0 + 0.05 * Double(r.loss) } ?? Double(r.loss) }
            speed = speed.map { 0.9 * $0 + 0.1 * r.imagesPerSecond } ?? r.imagesPerSecond
            let line = Self.format(label: label, step: r.step, total: total, loss: smoothed ?? .nan, imagesPerSecond: speed ?? 0,
                                   secondsPerStep: r.seconds, withBar: isTerminal)
            if isTerminal {
                redraw(line, now: r.step == total)
            } else if r.step % every == 0 || r.step == total {
                print(line); fflush(nil)
            }
        case .checkpoint(let url, let step):
            if !isTerminal { print("\(label): checkpoint at step \(step) -> \(url.path)"); fflush(nil) }
        case .samples(let url, let step):
            say("\(label): samples at step \(step) -> \(url.path)")
        case .scoring(let step, let phase, let done, let total):
            // Scores take minutes: the line says what is under way rather than standing still.
            if isTerminal {
                let what = phase == .sampling ? "drawing samples" : "Inception features"
                redraw("\(label): FID at step \(step): \(what) \(done)/\(total)\u{1B}[K", now: done == 0 || done == total)
            } else if phase == .sampling, done == 0 {
                print("\(label): scoring FID at step \(step) (\(total) samples)"); fflush(nil)
            }
        case .evaluation(let r, let best):
            say("\(label): " + String(format: "FID %.2f, KID %.4f", r.fid, r.kid)
                + " at step \(r.step) (\(r.samples) samples, \(Self.duration(r.seconds)))" + (best ? ", best so far" : ""))
        }
    }

    /// Ends the overwriting line (call before printing anything else).
    public func finish() { if isTerminal { print(""); fflush(nil) } }

    /// Overwrites the terminal line with `line` when `now` or when 0.2 s have passed since the last draw.
    private func redraw(_ line: String, now: Bool) {
        let time = Date().timeIntervalSince1970
        guard now || time - lastDraw > 0.2 else { return }
        print("\r" + line, terminator: "")
        fflush(nil)
        lastDraw = time
    }

    private func say(_ s: String) {
        if isTerminal { print("\r\u{1B}[K" + s) } else { print(s) }
        fflush(nil)
    }

    /// `m:ss` under an hour, `h:mm:ss` under 1000 hours, `over 999 h` beyond (a step count far
    /// past any run's), `?` when unknown.
    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        guard seconds < 1000 * 3600 else { return "over 999 h" }
        let s = Int(seconds)
        return s < 3600 ? String(format: "%d:%02d", s / 60, s % 60) : String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
    }

    /// `label [#####.....] 120/1000  loss 0.1234  85.1 img/s  ETA 12:34`.
    public static func format(label: String, step: Int, total: Int, loss: Double, imagesPerSecond: Double,
                              secondsPerStep: Double, withBar: Bool) -> String {
        let etaText = Self.clock(Double(max(total - step, 0)) * secondsPerStep)
        var s = label
        if withBar {
            let width = 24, filled = min(width, Int(Double(width) * Double(step) / Double(max(total, 1))))
            s += " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
        }
        s += String(format: " %d/%d  loss %.4f  %.1f img/s  ETA %@", step, total, loss, imagesPerSecond, etaText as NSString)
        return withBar ? s + "\u{1B}[K" : s
    }
}
