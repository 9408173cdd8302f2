import Foundation
import ImageIO

/// `RUN/loss.png`: the raw per-step loss and its smoothed curve against the step.
public enum LossPlot {
    /// Draws `records` (log scale when the loss spans more than a factor of 20) to `url`.
    public static func write(records: [StepRecord], title: String, to url: URL) throws {
        let steps = records.map { Double($0.step) }
        let loss = records.map { Double($0.loss) }
        let plot = LinePlot(title: title, xLabel: "step", yLabel: "loss", logScaleY: logScale(loss), series: [
            .init(name: "loss (raw)", x: steps, y: loss, color: (174, 199, 232)),
            .init(name: "loss (smoothed)", x: steps, y: LinePlot.smoothed(loss, weight: min(0.98, max(0.6, 1 - 10 / Double(max(loss.count, 1))))), color: LinePlot.palette[0], lineWidth: 2),
        ])
        try plot.write(to: url)
    }

    /// True when the positive finite losses span more than a factor of 20 (a log-scale y axis).
    static func logScale(_ losses: [Double]) -> Bool {
        let finite = losses.filter { $0.isFinite && $0 > 0 }
        return (finite.max() ?? 1) / max(finite.min() ?? 1, 1e-12) > 20
    }
}

extension LossPlot {
    /// Draws the smoothed loss of several runs against the step on one chart (log scale when the
    /// losses span more than a factor of 20), one colour per run, to compare them: e.g. a run in
    /// mixed precision against the same run in fp32. `smoothing` is the moving average's weight
    /// (0: the raw losses).
    public static func writeComparison(runs: [(name: String, records: [StepRecord])], title: String,
                                       smoothing: Double = 0.9, to url: URL) throws {
        let logY = logScale(runs.flatMap { $0.records.map { Double($0.loss) } })
        let series = runs.enumerated().map { i, run in
            LinePlot.Series(name: run.name, x: run.records.map { Double($0.step) },
                            y: LinePlot.smoothed(run.records.map { Double($0.loss) }, weight: smoothing),
                            color: LinePlot.palette[i % LinePlot.palette.count], lineWidth: 2)
        }
        try LinePlot(title: title, xLabel: "step", yLabel: "loss", logScaleY: logY, series: series).write(to: url)
    }
}

/// `fid_vs_time.png` of `maskdm compare`: one FID curve per arm against training minutes.
public enum FIDPlot {
    /// Draws one series per arm (x: minutes of summed step time, y: FID).
    public static func write(series: [(name: String, x: [Double], y: [Double], colour: RGBColor)], to url: URL) throws {
        let plot = LinePlot(title: "FID vs training time (equal budget per arm)",
                            xLabel: "training time (minutes of summed step time)", yLabel: "FID",
                            series: series.map { .init(name: $0.name, x: $0.x, y: $0.y, color: $0.colour, lineWidth: 2) })
        try plot.write(to: url)
    }
}
