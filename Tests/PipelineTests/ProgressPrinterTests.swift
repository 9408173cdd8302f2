import Pipeline
import Testing

/// The progress line and the one duration format every command prints.
@Suite struct ProgressPrinterTests {
    @Test func durationsReadTheSameEverywhere() {
        #expect(ProgressPrinter.duration(0.04) == "0.0 s")
        #expect(ProgressPrinter.duration(4.25) == "4.2 s" || ProgressPrinter.duration(4.25) == "4.3 s")
        #expect(ProgressPrinter.duration(9.94) == "9.9 s")
        #expect(ProgressPrinter.duration(9.96) == "10 s")
        #expect(ProgressPrinter.duration(10) == "10 s")
        #expect(ProgressPrinter.duration(119.4) == "119 s")
        #expect(ProgressPrinter.duration(119.6) == "2.0 min")
        #expect(ProgressPrinter.duration(120) == "2.0 min")
        #expect(ProgressPrinter.duration(450) == "7.5 min")
    }

    @Test func plainLinesHaveNoControlCharacters() {
        let plain = ProgressPrinter.format(label: "pretrain", step: 120, total: 1000, loss: 0.12345, imagesPerSecond: 85.14,
                                           secondsPerStep: 0.5, withBar: false)
        #expect(plain == "pretrain 120/1000  loss 0.1235  85.1 img/s  ETA 7:20")
        let bar = ProgressPrinter.format(label: "pretrain", step: 500, total: 1000, loss: 0.5, imagesPerSecond: 10,
                                         secondsPerStep: 1, withBar: true)
        #expect(bar.hasPrefix("pretrain [############............] 500/1000"))
        #expect(bar.hasSuffix("ETA 8:20\u{1B}[K"))
    }

    /// The ETA of a long run reads in hours; one of a step count no run reaches (`--steps` at
    /// Int.max) does not overflow.
    @Test func longAndEndlessRunsHaveAnETA() {
        func eta(steps: Int, secondsPerStep: Double) -> String {
            let line = ProgressPrinter.format(label: "p", step: 0, total: steps, loss: 1, imagesPerSecond: 1,
                                              secondsPerStep: secondsPerStep, withBar: false)
            return String(line.split(separator: "ETA ").last ?? "")
        }
        #expect(eta(steps: 3599, secondsPerStep: 1) == "59:59")
        #expect(eta(steps: 200_000, secondsPerStep: 0.5) == "27:46:40")
        #expect(eta(steps: Int.max, secondsPerStep: 1) == "over 999 h")
        #expect(eta(steps: 10, secondsPerStep: .nan) == "?")
    }
}
