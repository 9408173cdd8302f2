import Foundation
import Testing
@testable import ImageIO

@Suite struct PlotTests {
    static let red: RGBColor = (200, 30, 40)

    /// (x, y) of every pixel of `image` (RGB) with exactly `color`.
    func pixels(of color: RGBColor, in image: Image) -> [(x: Int, y: Int)] {
        var found: [(x: Int, y: Int)] = []
        for y in 0..<image.height {
            for x in 0..<image.width {
                let o = (y * image.width + x) * 3
                if image.pixels[o] == color.r && image.pixels[o + 1] == color.g && image.pixels[o + 2] == color.b {
                    found.append((x, y))
                }
            }
        }
        return found
    }

    /// Whether `step` is 1, 2 or 5 times a power of ten.
    func isOneTwoFive(_ step: Double) -> Bool {
        let k = floor(log10(step) + 1e-9)
        let m = step / pow(10, k)
        return [1.0, 2.0, 5.0].contains { abs(m - $0) < 1e-9 }
    }

    // MARK: Rendering

    @Test func renderedImageHasTheRequestedSize() {
        let plot = LinePlot(title: "t", xLabel: "x", yLabel: "y",
                            series: [.init(name: "a", values: [3, 1, 2])])
        for (w, h) in [(800, 500), (320, 200), (1000, 300), (64, 48), (7, 3), (1, 1), (0, 0)] {
            let image = plot.render(width: w, height: h)
            #expect(image.width == w && image.height == h && image.channels == 3, "\(w)x\(h)")
        }
        let image = plot.render()
        #expect(image.width == 800 && image.height == 500)
        #expect(image[x: 0, y: 0] == [255, 255, 255], "white background")
    }

    @Test func constantSeriesIsOneHorizontalRowAcrossThePlot() {
        let xs = (0..<100).map(Double.init)
        let plot = LinePlot(title: "constant", xLabel: "step", yLabel: "value",
                            series: [.init(name: "c", x: xs, y: xs.map { _ in 5 }, color: Self.red)],
                            showsLegend: false)
        let image = plot.render(width: 600, height: 400)
        let layout = plot.layout(width: 600, height: 400)
        let found = pixels(of: Self.red, in: image)
        let rows = Set(found.map(\.y))
        #expect(rows.count == 1)
        let row = Int(layout.py(5).rounded())
        #expect(rows.first == row)
        #expect(row > layout.frame.y0 && row < layout.frame.y1, "inside the axes")
        // The line runs from x = 0 to x = 99 without a hole.
        let columns = Set(found.map(\.x))
        let first = Int(layout.px(0).rounded()), last = Int(layout.px(99).rounded())
        #expect(columns == Set(first...last))
        #expect(first > layout.frame.x0 && last < layout.frame.x1)
        #expect(last - first > (layout.frame.x1 - layout.frame.x0) * 8 / 10, "spans most of the plot")

        // With the legend on, the only other pixels of the colour are the legend's sample.
        var withLegend = plot
        withLegend.showsLegend = true
        let legendImage = withLegend.render(width: 600, height: 400)
        let outside = pixels(of: Self.red, in: legendImage).filter { $0.y != row }
        #expect(!outside.isEmpty, "legend sample drawn")
        #expect(outside.allSatisfy { $0.x > layout.frame.x0 && $0.x < layout.frame.x1 })

        // A thicker line covers lineWidth rows.
        var thick = plot
        thick.series[0].lineWidth = 3
        #expect(Set(pixels(of: Self.red, in: thick.render(width: 600, height: 400)).map(\.y)) == [row - 1, row, row + 1])
    }

    @Test func nonFinitePointsLeaveGapsAndOddSeriesDoNotCrash() {
        let xs = (0..<100).map(Double.init)
        var ys = xs.map { _ in 2.0 }
        for i in 40..<60 { ys[i] = .nan }
        ys[80] = .infinity
        var points = zip(xs, ys).map { (x: $0, y: $1) }
        points[20].x = -.infinity
        let plot = LinePlot(series: [.init(name: "gappy", points: points, color: Self.red)], showsLegend: false)
        let image = plot.render(width: 600, height: 400)
        let layout = plot.layout(width: 600, height: 400)
        #expect(layout.xTicks.values.first! <= 0 && layout.xTicks.values.last! >= 99, "x range from finite points")
        let columns = Set(pixels(of: Self.red, in: image).map(\.x))
        func px(_ x: Double) -> Int { Int(layout.px(x).rounded()) }
        #expect(columns.contains(px(10)) && columns.contains(px(39)) && columns.contains(px(60)))
        #expect(columns.contains(px(70)) && columns.contains(px(79)) && columns.contains(px(81)))
        #expect(columns.isDisjoint(with: Set((px(39) + 1)..<px(60))), "NaN run 40..<60 is a gap")
        #expect(columns.isDisjoint(with: Set((px(79) + 1)..<px(81))), "infinite y at 80 is a gap")
        #expect(columns.isDisjoint(with: Set((px(19) + 1)..<px(21))), "infinite x at 20 is a gap")

        // Empty, all-NaN and single-point series, and log axes with y <= 0, render without crashing.
        let odd = LinePlot(title: "odd", logScaleY: true, series: [
            .init(name: "empty", points: []),
            .init(name: "nan", values: [.nan, .nan, -.infinity]),
            .init(name: "non-positive", values: [0, -1, 0]),
        ])
        #expect(odd.render(width: 300, height: 200).width == 300)
        #expect(LinePlot().render(width: 300, height: 200).height == 200)

        // A single point is a dot at its position.
        let single = LinePlot(series: [.init(name: "one", points: [(x: 3, y: 7)], color: Self.red)], showsLegend: false)
        let dot = pixels(of: Self.red, in: single.render(width: 300, height: 200))
        let l = single.layout(width: 300, height: 200)
        #expect(dot.count >= 9)
        #expect(dot.allSatisfy { abs($0.x - Int(l.px(3).rounded())) <= 3 && abs($0.y - Int(l.py(7).rounded())) <= 3 })
    }

    @Test func writesAPNGThatDecodesToTheRenderedImage() throws {
        let plot = LinePlot(title: "Loss", xLabel: "step", yLabel: "loss", logScaleY: true,
                            series: [.init(name: "loss", values: (1...50).map { 1 / Double($0) })])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("plot-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: url) }
        try plot.write(to: url, width: 400, height: 250)
        #expect(try Image(contentsOf: url) == plot.render(width: 400, height: 250))
    }

    // MARK: Ticks and labels

    @Test(arguments: [(0.0, 1.0), (0, 999), (0.013, 0.087), (-3, 7), (5.1, 14.9), (1200, 3400), (-0.5, -0.01),
                      (0.0001, 0.00093), (17, 17), (0, 0), (1e6, 1.3e6), (-250, 1e4), (0.995, 1.004)])
    func linearTicksAreOneTwoFiveStepsCoveringTheRange(lo: Double, hi: Double) {
        let ticks = LinePlot.niceTicks(covering: lo, hi)
        #expect((4...6).contains(ticks.count), "\(lo)...\(hi): \(ticks)")
        let step = ticks[1] - ticks[0]
        #expect(isOneTwoFive(step), "\(lo)...\(hi): step \(step)")
        for (a, b) in zip(ticks, ticks.dropFirst()) { #expect(abs((b - a) - step) <= 1e-9 * step) }
        for t in ticks { #expect(abs(t / step - (t / step).rounded()) < 1e-6, "\(t) is a multiple of \(step)") }
        let tolerance = 1e-12 * max(abs(lo), abs(hi), 1)
        #expect(ticks.first! <= lo + tolerance && ticks.last! >= hi - tolerance, "\(lo)...\(hi): \(ticks)")
        if lo < hi { #expect(ticks.last! - ticks.first! < 3 * (hi - lo), "not absurdly wide") }
    }

    @Test func linearTicksForTypicalRanges() {
        #expect(LinePlot.niceTicks(covering: 0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(LinePlot.niceTicks(covering: 0, 999) == [0, 200, 400, 600, 800, 1000])
        #expect(LinePlot.niceTicks(covering: 0.013, 0.087) == [0, 0.02, 0.04, 0.06, 0.08, 0.1])
        #expect(LinePlot.niceTicks(covering: 1200, 3400) == [1000, 1500, 2000, 2500, 3000, 3500])
        #expect(LinePlot.niceTicks(covering: 5, 5) == [4, 4.5, 5, 5.5, 6])
    }

    @Test func logTicksCoverTheRange() {
        #expect(LinePlot.niceTicks(covering: 1e-4, 10, logarithmic: true) == [1e-4, 1e-3, 0.01, 0.1, 1, 10])
        #expect(LinePlot.niceTicks(covering: 0.02, 1.5, logarithmic: true) == [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2])
        #expect(LinePlot.niceTicks(covering: 1e-8, 1, logarithmic: true) == [1e-8, 1e-6, 1e-4, 0.01, 1])
        #expect(LinePlot.niceTicks(covering: 0.3, 0.45, logarithmic: true) == [0.3, 0.35, 0.4, 0.45])
        for (lo, hi) in [(0.02, 1.5), (1e-4, 10), (3e-3, 0.8), (0.3, 0.45), (1e-3, 1e3), (5, 5), (1, 2e9)] {
            let ticks = LinePlot.niceTicks(covering: lo, hi, logarithmic: true)
            #expect((4...7).contains(ticks.count), "\(lo)...\(hi): \(ticks)")
            #expect(ticks.first! > 0 && ticks.first! <= lo * (1 + 1e-12) && ticks.last! >= hi * (1 - 1e-12))
            #expect(zip(ticks, ticks.dropFirst()).allSatisfy { $0 < $1 })
            // Powers of ten / the 1-2-5 sequence, or evenly spaced by a 1-2-5 step.
            let sequence = ticks.allSatisfy { isOneTwoFive($0) }
            let even = isOneTwoFive(ticks[1] - ticks[0])
                && zip(ticks, ticks.dropFirst()).allSatisfy { abs(($1 - $0) - (ticks[1] - ticks[0])) < 1e-9 * $1 }
            #expect(sequence || even, "\(lo)...\(hi): \(ticks)")
        }
    }

    @Test func tickLabelsAreCompact() {
        func labels(_ lo: Double, _ hi: Double, log: Bool = false) -> [String] {
            LinePlot.tickLabels(log ? LinePlot.logTicks(lo, hi) : LinePlot.linearTicks(lo, hi), logarithmic: log)
        }
        #expect(labels(0, 1) == ["0", "0.2", "0.4", "0.6", "0.8", "1"])
        #expect(labels(0, 999) == ["0", "200", "400", "600", "800", "1k"])
        #expect(labels(1200, 3400) == ["1k", "1.5k", "2k", "2.5k", "3k", "3.5k"])
        #expect(labels(-3, 7) == ["-5", "0", "5", "10"])
        #expect(labels(0.0001, 0.00093) == ["0", "2e-4", "4e-4", "6e-4", "8e-4", "1e-3"])
        #expect(labels(1e6, 1.3e6) == ["1M", "1.1M", "1.2M", "1.3M"])
        #expect(labels(1e-4, 10, log: true) == ["1e-4", "1e-3", "0.01", "0.1", "1", "10"])
        #expect(labels(0.02, 1.5, log: true) == ["0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"])
        #expect(labels(2e-3, 0.03, log: true).contains("5e-3"))
    }

    // MARK: Font

    @Test func fontMeasuresMonospacedGlyphs() {
        #expect(BitmapFont.width(of: "abc") == 3 * BitmapFont.glyphWidth + 2 * (BitmapFont.advance - BitmapFont.glyphWidth))
        #expect(BitmapFont.width(of: "abc") == 17)
        #expect(BitmapFont.width(of: "abc", scale: 2) == 34)
        #expect(BitmapFont.width(of: "a") == BitmapFont.glyphWidth)
        #expect(BitmapFont.width(of: "") == 0)
        #expect(BitmapFont.height(scale: 3) == 21)

        // Drawn "abc" stays within its measured width and the cap height.
        var image = Image(width: 40, height: 12, color: [255, 255, 255])
        BitmapFont.draw("abc", into: &image, x: 1, y: 1, color: (0, 0, 0))
        let ink = pixels(of: (0, 0, 0), in: image)
        #expect(ink.map(\.x).min() == 1 && ink.map(\.x).max() == 17)
        #expect(ink.allSatisfy { $0.y >= 1 && $0.y < 1 + BitmapFont.glyphHeight })
    }

    @Test func everyListedCharacterHasAGlyph() {
        let required = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,-+:/()%=_x×"
        for character in required {
            let glyph = BitmapFont.glyph(for: character)
            #expect(glyph != nil, "\(character)")
            guard let glyph else { continue }
            #expect(glyph.count == BitmapFont.glyphHeight || glyph.count == BitmapFont.glyphHeight + BitmapFont.descent)
            #expect(glyph.allSatisfy { $0 < 1 << BitmapFont.glyphWidth }, "\(character): 5 columns")
            if character == " " {
                #expect(glyph.allSatisfy { $0 == 0 })
            } else {
                #expect(glyph.contains { $0 != 0 }, "\(character) is blank")
            }
        }
        // Distinct glyphs for distinct characters (catches copy-paste slips).
        let bitmaps = BitmapFont.characters.map { BitmapFont.glyph(for: $0)! }
        #expect(Set(bitmaps).count == bitmaps.count)

        // An unknown character draws as the box.
        #expect(BitmapFont.glyph(for: "é") == nil)
        var image = Image(width: 8, height: 8, color: [255, 255, 255])
        BitmapFont.draw("é", into: &image, x: 0, y: 0, color: (0, 0, 0))
        let box = BitmapFont.unknownGlyph.reduce(0) { $0 + $1.nonzeroBitCount }
        #expect(pixels(of: (0, 0, 0), in: image).count == box && box > 0)
    }

    // MARK: Smoothing

    @Test func smoothingMatchesTensorBoard() {
        #expect(LinePlot.smoothed([0.7, 0.7, 0.7, 0.7]) == [0.7, 0.7, 0.7, 0.7])
        #expect(LinePlot.smoothed([3, 3, 3], weight: 0.99) == [3, 3, 3])
        #expect(LinePlot.smoothed([]) == [])
        // [0, 1] at weight 0.5: last = 0.5*0 + 0.5*0 = 0 -> 0 / (1 - 0.5) = 0;
        // last = 0.5*0 + 0.5*1 = 0.5 -> 0.5 / (1 - 0.25) = 2/3.
        let s = LinePlot.smoothed([0, 1], weight: 0.5)
        #expect(s.count == 2 && s[0] == 0 && abs(s[1] - 2.0 / 3.0) < 1e-15)
        // Weight 0 is the identity; non-finite values pass through without updating the average.
        #expect(LinePlot.smoothed([1, 5, 2], weight: 0) == [1, 5, 2])
        let gappy = LinePlot.smoothed([0, .nan, 1], weight: 0.5)
        #expect(gappy[0] == 0 && gappy[1].isNaN && abs(gappy[2] - 2.0 / 3.0) < 1e-15)
        // The first output is the first value (debiasing removes the pull towards 0).
        #expect(abs(LinePlot.smoothed([4, 8, 6], weight: 0.9)[0] - 4) < 1e-12)
    }
}
