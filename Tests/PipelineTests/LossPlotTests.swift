import Foundation
import ImageIO
import Pipeline
import Testing

/// `LossPlot.writeComparison` (`maskdm plot-loss`): one curve per run, in its own colour.
@Suite struct LossPlotTests {
    static func records(_ loss: (Int) -> Float, steps: Int) -> [StepRecord] {
        (1...steps).map { StepRecord(step: $0, loss: loss($0), learningRate: 1e-3, gradientNorm: 1, seconds: 0.1,
                                     imagesPerSecond: 100, trainSeconds: Double($0) / 10) }
    }

    /// Pixels of `image` in `colour` (exactly).
    static func count(_ colour: RGBColor, in image: Image) -> Int {
        var n = 0
        for y in 0..<image.height {
            for x in 0..<image.width where image[x: x, y: y].prefix(3).elementsEqual([colour.r, colour.g, colour.b]) { n += 1 }
        }
        return n
    }

    @Test func eachRunGetsItsOwnCurve() throws {
        try withTemporaryFolder("lossplot") { tmp in
            let url = tmp.appendingPathComponent("loss.png")
            let a = Self.records({ 1 / Float($0) }, steps: 200), b = Self.records({ 0.5 + 0.001 * Float($0) }, steps: 150)
            try LossPlot.writeComparison(runs: [("fp32", a), ("bf16", b)], title: "two runs", to: url)
            let image = try Image(contentsOf: url)
            #expect(image.width == 800 && image.height == 500)
            // Both series' colours are drawn, a third palette colour is not.
            #expect(Self.count(LinePlot.palette[0], in: image) > 200)
            #expect(Self.count(LinePlot.palette[1], in: image) > 200)
            #expect(Self.count(LinePlot.palette[2], in: image) == 0)
            // One run: only the first colour.
            try LossPlot.writeComparison(runs: [("fp32", a)], title: "one run", smoothing: 0, to: url)
            let single = try Image(contentsOf: url)
            #expect(Self.count(LinePlot.palette[0], in: single) > 200)
            #expect(Self.count(LinePlot.palette[1], in: single) == 0)
        }
    }
}
