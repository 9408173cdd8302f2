import ArgumentParser
import Foundation
import Pipeline

/// `maskdm plot-loss`: the loss curves of several training runs on one chart.
struct PlotLoss: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot-loss",
        abstract: "Plot the smoothed loss of several runs (their log.jsonl) against the step on one chart.",
        discussion: "For example a run in mixed precision against the same run in fp32: "
            + "maskdm plot-loss runs/fp32 runs/bf16 --out loss.png")

    @Argument(help: "Run folders (each with a log.jsonl) or log files.") var runs: [String]
    @Option(help: "Output PNG.") var out: String
    @Option(parsing: .unconditional, help: "Moving-average weight of the curves, 0 (raw) to below 1.") var smoothing = 0.9
    @Option(help: "Chart title.") var title = "training loss"

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("name at least one run folder or log file") }
        guard (0..<1).contains(smoothing) else { throw ValidationError("--smoothing \(smoothing) is not in 0..<1") }
    }

    func run() throws {
        let curves = try runs.map { path -> (name: String, records: [StepRecord]) in
            var url = URL(fileURLWithPath: path)
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
                url = url.appendingPathComponent("log.jsonl")
            }
            let text: String
            do {
                text = String(decoding: try Data(contentsOf: url), as: UTF8.self)   // a damaged line costs only itself
            } catch {
                throw PlotLossError(description: "cannot read \(url.path): \(error.localizedDescription)")
            }
            let records = StepRecord.parseLog(text)
            guard !records.isEmpty else {
                throw PlotLossError(description: "\(url.path) holds no step records (JSON lines of a run's log.jsonl, each with step, "
                                    + "loss, learning_rate, grad_norm, seconds, images_per_second and train_seconds)")
            }
            // The legend names the run folder (also for a path to a run's log.jsonl), else the file.
            let name = url.lastPathComponent == "log.jsonl" ? url.deletingLastPathComponent().lastPathComponent
                : url.deletingPathExtension().lastPathComponent
            return (name, records)
        }
        try LossPlot.writeComparison(runs: curves, title: title, smoothing: smoothing, to: URL(fileURLWithPath: out))
        for c in curves {
            let last = c.records.suffix(max(1, c.records.count / 10)).map(\.loss)
            print("\(c.name): \(c.records.count) steps, mean loss of the last \(last.count): \(last.reduce(0, +) / Float(last.count))")
        }
        print("wrote \(out)")
    }
}

/// A run `maskdm plot-loss` cannot read, with the cause.
struct PlotLossError: Error, CustomStringConvertible {
    let description: String
}
