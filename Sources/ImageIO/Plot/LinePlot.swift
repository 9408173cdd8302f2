import Foundation
import Tensor

/// A line chart rendered into an RGB ``Image`` (and PNG) by the library itself: no Python,
/// no font files, no external tools. Meant for training curves: loss against step, raw and
/// smoothed, optionally on a logarithmic y axis.
///
/// The chart has a title, axis labels, 4–6 "nice" ticks per axis (steps of 1, 2 or 5 x 10^k;
/// a logarithmic axis may use up to 7 ticks of the 1-2-5 sequence), light grey grid lines and a
/// legend placed in the corner the lines cross least. Each axis is extended to whole ticks so
/// the ticks cover the data. Points with a non-finite coordinate (and, on a logarithmic axis,
/// y <= 0) are skipped and leave a gap in their line; an isolated point is drawn as a dot.
/// Text uses the built-in ``BitmapFont``, scaled with the image size.
///
/// ```swift
/// let loss: [Double] = ...                                  // one value per step
/// var plot = LinePlot(title: "Training loss", xLabel: "step", yLabel: "loss", logScaleY: true)
/// plot.series.append(.init(name: "loss", values: loss, color: (174, 199, 232)))
/// plot.series.append(.init(name: "loss (EMA 0.9)", values: LinePlot.smoothed(loss, weight: 0.9),
///                          color: (31, 119, 180), lineWidth: 2))
/// try plot.write(to: URL(fileURLWithPath: "loss.png"))  // 800 x 500 PNG
/// ```
public struct LinePlot: Sendable {
    /// One line of the chart: named points in a colour.
    public struct Series: Sendable {
        /// The name shown in the legend; series with an empty name are left out of the legend.
        public var name: String
        /// The points, joined in this order. Non-finite coordinates leave a gap.
        public var points: [(x: Double, y: Double)]
        /// Line colour.
        public var color: RGBColor
        /// Line thickness in pixels (at least 1).
        public var lineWidth: Int

        /// A series of `points`, joined in order.
        public init(name: String, points: [(x: Double, y: Double)],
                    color: RGBColor = LinePlot.palette[0], lineWidth: Int = 1) {
            self.name = name
            self.points = points
            self.color = color
            self.lineWidth = max(1, lineWidth)
        }

        /// A series from parallel coordinate arrays; `x.count` must equal `y.count`.
        public init(name: String, x: [Double], y: [Double],
                    color: RGBColor = LinePlot.palette[0], lineWidth: Int = 1) {
            precondition(x.count == y.count, "LinePlot.Series: \(x.count) x values but \(y.count) y values")
            self.init(name: name, points: zip(x, y).map { (x: $0, y: $1) }, color: color, lineWidth: lineWidth)
        }

        /// A series of `values` at x = 0, 1, 2, ... (e.g. one loss value per step).
        public init(name: String, values: [Double],
                    color: RGBColor = LinePlot.palette[0], lineWidth: Int = 1) {
            self.init(name: name, points: values.enumerated().map { (x: Double($0.offset), y: $0.element) },
                      color: color, lineWidth: lineWidth)
        }
    }

    /// Text centred above the chart; empty for none.
    public var title: String
    /// Text centred below the x axis; empty for none.
    public var xLabel: String
    /// Text written upwards along the y axis; empty for none.
    public var yLabel: String
    /// Whether the y axis is logarithmic (base 10). Points with y <= 0 are then skipped.
    public var logScaleY: Bool
    /// The lines, drawn in order (later ones on top).
    public var series: [Series]
    /// Whether to draw the legend (it is also omitted when no series has a name).
    public var showsLegend: Bool

    /// Ten distinct line colours (matplotlib's "tab10"): blue, orange, green, red, purple, ...
    public static let palette: [RGBColor] = [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ]

    /// A chart with the given texts and series.
    public init(title: String = "", xLabel: String = "", yLabel: String = "", logScaleY: Bool = false,
                series: [Series] = [], showsLegend: Bool = true) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.logScaleY = logScaleY
        self.series = series
        self.showsLegend = showsLegend
    }

    /// The chart as a `width` x `height` RGB image on white.
    ///
    /// Images too small for the decorations (below about 60 x 40 pixels) get the lines only.
    public func render(width: Int = 800, height: Int = 500) -> Image {
        precondition(width >= 0 && height >= 0, "LinePlot.render: negative size \(width)x\(height)")
        var canvas = Canvas(width: width, height: height, background: Style.background)
        guard width > 0, height > 0 else { return canvas.image }
        let layout = layout(width: width, height: height)
        let f = layout.frame
        let interior = Rect(x0: f.x0 + 1, y0: f.y0 + 1, x1: f.x1 - 1, y1: f.y1 - 1)

        // Grid lines at the ticks (not on the frame itself).
        if layout.decorated {
            for x in layout.xTicks.values {
                let px = Int(layout.px(x).rounded())
                if px > f.x0 && px < f.x1 { canvas.fill(Rect(x0: px, y0: f.y0, x1: px, y1: f.y1), Style.grid) }
            }
            for y in layout.yTicks.values {
                let py = Int(layout.py(y).rounded())
                if py > f.y0 && py < f.y1 { canvas.fill(Rect(x0: f.x0, y0: py, x1: f.x1, y1: py), Style.grid) }
            }
        }

        // The lines: runs of consecutive drawable points, an isolated point as a dot.
        for s in series {
            var run: [(Double, Double)] = []
            func flush() {
                if run.count == 1 {
                    canvas.dot(run[0], lineWidth: s.lineWidth, color: s.color, clip: interior)
                } else {
                    for i in 1..<max(1, run.count) {
                        canvas.line(from: run[i - 1], to: run[i], width: s.lineWidth, color: s.color, clip: interior)
                    }
                }
                run.removeAll(keepingCapacity: true)
            }
            for p in s.points {
                if drawable(p) { run.append((layout.px(p.x), layout.py(p.y))) } else { flush() }
            }
            flush()
        }

        guard layout.decorated else { return canvas.image }
        let s = layout.textScale, h = BitmapFont.height(scale: s)

        // Frame, tick marks and tick labels.
        canvas.frame(f, Style.ink)
        // Label every tick, or every n-th one if the labels would touch (narrow images).
        let xs = layout.xTicks.values
        let spacing = max(1.0, layout.px(xs[1]) - layout.px(xs[0]))
        let widest = layout.xTickLabels.map { BitmapFont.width(of: $0, scale: s) }.max() ?? 0
        let every = Int((Double(widest + 2 * layout.gap) / spacing).rounded(.up))
        for (i, (x, label)) in zip(xs, layout.xTickLabels).enumerated() {
            let px = Int(layout.px(x).rounded())
            canvas.fill(Rect(x0: px, y0: f.y1 + 1, x1: px, y1: f.y1 + layout.tickLength), Style.ink)
            guard i % max(1, every) == 0 else { continue }
            let w = BitmapFont.width(of: label, scale: s)
            canvas.text(label, x: px - w / 2, y: f.y1 + layout.tickLength + layout.gap, scale: s, color: Style.ink)
        }
        for (y, label) in zip(layout.yTicks.values, layout.yTickLabels) {
            let py = Int(layout.py(y).rounded())
            canvas.fill(Rect(x0: f.x0 - layout.tickLength, y0: py, x1: f.x0 - 1, y1: py), Style.ink)
            let w = BitmapFont.width(of: label, scale: s)
            canvas.text(label, x: f.x0 - layout.tickLength - layout.gap - w, y: py - h / 2, scale: s,
                        color: Style.ink)
        }

        // Title, axis labels.
        // Centred on the axes, but kept inside the image.
        func centred(_ w: Int, _ centre: Int, _ limit: Int) -> Int {
            max(layout.padding, min(centre - w / 2, limit - layout.padding - w))
        }
        let centreX = (f.x0 + f.x1) / 2
        if !title.isEmpty {
            let (text, ts) = layout.title
            canvas.text(text, x: centred(BitmapFont.width(of: text, scale: ts), centreX, width), y: layout.padding,
                        scale: ts, color: Style.ink)
        }
        if !xLabel.isEmpty {
            let (text, xs) = layout.xLabel
            canvas.text(text, x: centred(BitmapFont.width(of: text, scale: xs), centreX, width),
                        y: f.y1 + layout.tickLength + layout.gap + h + layout.gap * 2, scale: xs, color: Style.ink)
        }
        if !yLabel.isEmpty {
            let (text, ys) = layout.yLabel
            let w = BitmapFont.width(of: text, scale: ys)
            canvas.textUpwards(text, x: layout.padding, bottom: height - centred(w, height - (f.y0 + f.y1) / 2, height),
                               scale: ys, color: Style.ink)
        }

        if let legend = legendBox(layout: layout, canvas: canvas) { drawLegend(in: legend, layout: layout, canvas: &canvas) }
        return canvas.image
    }

    /// Renders the chart (see ``render(width:height:)``) and writes it to `url`, atomically:
    /// PNG, or JPEG for `.jpg` / `.jpeg` paths.
    /// - Throws: ``ImageIOError`` if encoding or writing fails.
    public func write(to url: URL, width: Int = 800, height: Int = 500) throws(ImageIOError) {
        try render(width: width, height: height).write(to: url)
    }

    /// Exponential moving average of `values` with TensorBoard's debiasing, for smoothed curves.
    ///
    /// With `last` starting at 0 and `n` counting the finite values so far, each finite value
    /// `v` gives `last = weight * last + (1 - weight) * v` and the output `last / (1 - weight^n)`,
    /// so early outputs are not pulled towards 0. Non-finite values are passed through unchanged
    /// and do not update the average; a constant sequence is returned as it is.
    /// `weight` must lie in `0..<1`; 0 returns `values`.
    public static func smoothed(_ values: [Double], weight: Double = 0.9) -> [Double] {
        precondition(weight >= 0 && weight < 1, "LinePlot.smoothed: weight \(weight) is not in 0..<1")
        guard let first = values.first else { return [] }
        if values.allSatisfy({ $0 == first }) { return values }
        var last = 0.0, n = 0.0
        return values.map { v in
            guard v.isFinite else { return v }
            last = last * weight + (1 - weight) * v
            n += 1
            return last / (1 - pow(weight, n))
        }
    }

    /// The ticks this chart uses for an axis spanning `lo...hi`: ascending values that cover the
    /// range (first <= `lo`, last >= `hi`).
    ///
    /// Linear: 4 to 6 ticks evenly spaced by 1, 2 or 5 x 10^k; a zero-width range is widened
    /// first. Logarithmic (`lo` must be > 0): of powers of ten (every decade or every few),
    /// the 1-2-5 sequence (1, 2, 5, 10, 20, ...) and evenly spaced ticks, the set of 4 to 7 ticks
    /// spanning the fewest decades.
    public static func niceTicks(covering lo: Double, _ hi: Double, logarithmic: Bool = false) -> [Double] {
        precondition(lo.isFinite && hi.isFinite && lo <= hi,
                     "LinePlot.niceTicks: \(lo)...\(hi) is not a finite range")
        precondition(!logarithmic || lo > 0, "LinePlot.niceTicks: logarithmic range \(lo)...\(hi) must be > 0")
        return (logarithmic ? logTicks(lo, hi) : linearTicks(lo, hi)).values
    }
}

// MARK: - Layout

/// Colours of the chart's furniture.
enum Style {
    static let background: RGBColor = (255, 255, 255)
    static let grid: RGBColor = (224, 224, 224)
    static let ink: RGBColor = (0, 0, 0)
    static let legendBorder: RGBColor = (170, 170, 170)
}

/// An inclusive pixel rectangle.
struct Rect: Equatable {
    var x0, y0, x1, y1: Int
    var isEmpty: Bool { x1 < x0 || y1 < y0 }
}

/// Tick values of one axis and, when evenly spaced, their step.
struct AxisTicks: Equatable {
    var values: [Double]
    var step: Double?
}

/// Where everything goes for one image size, and the data-to-pixel mapping.
struct PlotLayout {
    /// The axes frame (its border pixels are the frame lines).
    var frame: Rect
    /// Whether texts, ticks and frame are drawn (false for tiny images).
    var decorated: Bool
    var xTicks: AxisTicks, yTicks: AxisTicks
    var xTickLabels: [String], yTickLabels: [String]
    var logScaleY: Bool
    var textScale: Int
    /// Title and axis labels with the scale they fit at (shortened with ".." if need be).
    var title: (text: String, scale: Int), xLabel: (text: String, scale: Int), yLabel: (text: String, scale: Int)
    var padding: Int, gap: Int, tickLength: Int
    /// Pixels between the frame and the first / last tick.
    var inset: Int

    private var x0: Double { xTicks.values.first! }
    private var x1: Double { xTicks.values.last! }
    private var t0: Double { logScaleY ? log10(yTicks.values.first!) : yTicks.values.first! }
    private var t1: Double { logScaleY ? log10(yTicks.values.last!) : yTicks.values.last! }

    /// Pixel column (fractional) of data x.
    func px(_ x: Double) -> Double {
        let a = Double(frame.x0 + inset), b = Double(frame.x1 - inset)
        return a + (x - x0) / (x1 - x0) * (b - a)
    }

    /// Pixel row (fractional) of data y; NaN for y <= 0 on a logarithmic axis.
    func py(_ y: Double) -> Double {
        let t = logScaleY ? (y > 0 ? log10(y) : .nan) : y
        let a = Double(frame.y1 - inset), b = Double(frame.y0 + inset)
        return a + (t - t0) / (t1 - t0) * (b - a)
    }
}

extension LinePlot {
    /// Whether a point can be drawn: finite, and y > 0 on a logarithmic axis.
    func drawable(_ p: (x: Double, y: Double)) -> Bool {
        p.x.isFinite && p.y.isFinite && (!logScaleY || p.y > 0)
    }

    /// The layout at `width` x `height`: ticks from the data, margins from the texts.
    func layout(width: Int, height: Int) -> PlotLayout {
        // Data ranges over the drawable points (defaults when there are none).
        var xlo = Double.infinity, xhi = -Double.infinity, ylo = Double.infinity, yhi = -Double.infinity
        for s in series { for p in s.points where drawable(p) {
            xlo = min(xlo, p.x); xhi = max(xhi, p.x); ylo = min(ylo, p.y); yhi = max(yhi, p.y)
        } }
        if xlo > xhi { (xlo, xhi) = (0, 1) }
        if ylo > yhi { (ylo, yhi) = logScaleY ? (1, 10) : (0, 1) }
        let xTicks = Self.linearTicks(xlo, xhi)
        let yTicks = logScaleY ? Self.logTicks(ylo, yhi) : Self.linearTicks(ylo, yhi)
        let xLabels = Self.tickLabels(xTicks, logarithmic: false)
        let yLabels = Self.tickLabels(yTicks, logarithmic: logScaleY)

        let s = max(1, (min(width, height) + 100) / 250)
        let h = BitmapFont.height(scale: s)
        let padding = 4 * s + 2, gap = 2 * s + 1, tickLength = 2 * s + 2
        let yLabelWidth = yLabels.map { BitmapFont.width(of: $0, scale: s) }.max() ?? 0
        let lastXLabelWidth = BitmapFont.width(of: xLabels.last ?? "", scale: s)

        // The title keeps a tenth of the width clear, so a long one does not run edge to edge.
        let title = Self.fit(self.title, in: width - 2 * padding - width / 10, scale: s + 1)
        let top = padding + (self.title.isEmpty ? h / 2 : BitmapFont.height(scale: title.scale) + 2 * padding)
        let left = padding + (yLabel.isEmpty ? 0 : h + 2 * gap) + yLabelWidth + gap + tickLength
        let bottomMargin = padding + tickLength + gap + h + (xLabel.isEmpty ? 0 : 2 * gap + h)
        let rightMargin = max(padding, lastXLabelWidth / 2 + 2)
        var frame = Rect(x0: left, y0: top, x1: width - 1 - rightMargin, y1: height - 1 - bottomMargin)
        let decorated = frame.x1 - frame.x0 >= 40 && frame.y1 - frame.y0 >= 24
        if !decorated { frame = Rect(x0: 0, y0: 0, x1: width - 1, y1: height - 1) }
        let inset = decorated ? min(2 * s + 4, (frame.x1 - frame.x0) / 20, (frame.y1 - frame.y0) / 20) : 0
        return PlotLayout(frame: frame, decorated: decorated, xTicks: xTicks, yTicks: yTicks,
                          xTickLabels: xLabels, yTickLabels: yLabels, logScaleY: logScaleY,
                          textScale: s, title: title,
                          xLabel: Self.fit(xLabel, in: width - 2 * padding, scale: s),
                          yLabel: Self.fit(yLabel, in: height - 2 * padding, scale: s),
                          padding: padding, gap: gap, tickLength: tickLength,
                          inset: max(0, inset))
    }

    /// `text` at the largest scale <= `scale` at which it is at most `width` pixels wide; at
    /// scale 1 and still too wide, cut and ended with "..".
    static func fit(_ text: String, in width: Int, scale: Int) -> (text: String, scale: Int) {
        var scale = max(1, scale)
        while scale > 1 && BitmapFont.width(of: text, scale: scale) > width { scale -= 1 }
        guard BitmapFont.width(of: text, scale: scale) > width else { return (text, scale) }
        let keep = max(0, (width + 1) / BitmapFont.advance - 2)
        return (String(text.prefix(keep)) + "..", 1)
    }

    /// The legend's rectangle: of the corners (and top / bottom centre) of the axes, the one
    /// covering the fewest line pixels already drawn; nil when there is no legend to draw.
    func legendBox(layout: PlotLayout, canvas: Canvas) -> Rect? {
        let names = series.map(\.name).filter { !$0.isEmpty }
        guard showsLegend, layout.decorated, !names.isEmpty else { return nil }
        let s = layout.textScale, h = BitmapFont.height(scale: s)
        let pad = 2 * s + 2, rowGap = 2 * s + 1, sample = 8 * s + 8
        let width = pad + sample + 2 * layout.gap + (names.map { BitmapFont.width(of: $0, scale: s) }.max() ?? 0) + pad
        let height = 2 * pad + names.count * h + (names.count - 1) * rowGap
        let f = layout.frame, m = 2 * s + 4
        let left = f.x0 + m, right = f.x1 - m - width, middle = (f.x0 + f.x1 - width) / 2
        let upper = f.y0 + m, lower = f.y1 - m - height
        guard right >= left, lower >= upper else { return nil }  // does not fit
        let candidates = [(right, upper), (left, upper), (right, lower), (left, lower), (middle, upper), (middle, lower)]
            .map { Rect(x0: $0.0, y0: $0.1, x1: $0.0 + width - 1, y1: $0.1 + height - 1) }
        // Count line pixels (neither background nor grid) under each; the first minimum wins.
        return candidates.min { canvas.count(in: $0, excluding: [Style.background, Style.grid])
            < canvas.count(in: $1, excluding: [Style.background, Style.grid]) }
    }

    /// Draws the legend: white box, grey border, a line sample and the name per named series.
    func drawLegend(in box: Rect, layout: PlotLayout, canvas: inout Canvas) {
        let s = layout.textScale, h = BitmapFont.height(scale: s)
        let pad = 2 * s + 2, rowGap = 2 * s + 1, sample = 8 * s + 8
        canvas.fill(box, Style.background)
        canvas.frame(box, Style.legendBorder)
        var y = box.y0 + pad
        for entry in series where !entry.name.isEmpty {
            let mid = Double(y + h / 2), x = Double(box.x0 + pad)
            canvas.line(from: (x, mid), to: (x + Double(sample - 1), mid), width: entry.lineWidth,
                        color: entry.color, clip: box)
            canvas.text(entry.name, x: box.x0 + pad + sample + 2 * layout.gap, y: y, scale: s, color: Style.ink)
            y += h + rowGap
        }
    }
}

// MARK: - Ticks and labels

extension LinePlot {
    /// `m` x 10^`k`, computed so that decimal values such as 0.3 come out correctly rounded.
    static func decimal(_ m: Int, _ k: Int) -> Double {
        k >= 0 ? Double(m) * pow(10, Double(k)) : Double(m) / pow(10, Double(-k))
    }

    /// 4 to 6 ticks spaced by 1, 2 or 5 x 10^k whose ends enclose `lo...hi`.
    static func linearTicks(_ lo: Double, _ hi: Double) -> AxisTicks {
        var lo = lo, hi = hi
        if !(hi - lo > 1e-9 * max(abs(lo), abs(hi))) {
            let pad = lo == 0 ? 1 : abs(lo) * 0.2
            (lo, hi) = (lo - pad, hi + pad)
        }
        guard (hi - lo).isFinite else { return AxisTicks(values: [lo, hi], step: nil) }
        // Start well below the answer (>= 100 intervals) and grow the step until at most 5 intervals.
        var k = Int(floor(log10(hi - lo))) - 2
        while true {
            for m in [1, 2, 5] {
                let step = decimal(m, k)
                var i0 = Int(floor(lo / step + 1e-9)), i1 = Int(ceil(hi / step - 1e-9))
                guard i1 - i0 <= 5 else { continue }
                // Only 3 ticks (a step of 2 gave 7): add one on the side with less room, never
                // crossing zero from data all on one side of it.
                while i1 - i0 < 3 {
                    if i0 == 0 && lo >= 0 { i1 += 1 }
                    else if i1 == 0 && hi <= 0 { i0 -= 1 }
                    else if lo - Double(i0) * step < Double(i1) * step - hi { i0 -= 1 }
                    else { i1 += 1 }
                }
                return AxisTicks(values: (i0...i1).map { decimal(m * $0, k) }, step: step)
            }
            k += 1
        }
    }

    /// Ticks for a logarithmic axis over `lo...hi` (`lo` > 0): see ``niceTicks(covering:_:logarithmic:)``.
    static func logTicks(_ lo: Double, _ hi: Double) -> AxisTicks {
        var lo = lo, hi = hi
        if !(hi / lo > 1 + 1e-9) { (lo, hi) = (lo / 2, hi * 2) }
        let l0 = log10(lo), l1 = log10(hi)
        var candidates: [AxisTicks] = []

        // Powers of ten, every decade and every m decades for the smallest m (1, 2, 5, 10, ...) giving <= 6.
        func decades(_ m: Int) -> AxisTicks {
            let e0 = Int(floor(l0 / Double(m) + 1e-9)) * m, e1 = Int(ceil(l1 / Double(m) - 1e-9)) * m
            return AxisTicks(values: stride(from: e0, through: e1, by: m).map { decimal(1, $0) }, step: nil)
        }
        candidates.append(decades(1))
        var m = 1, scale = 1
        while candidates.last!.values.count > 6 {
            m = [2, 5, 10][[1, 2, 5].firstIndex(of: m)!]
            if m == 10 { (m, scale) = (1, scale * 10) }
            candidates.append(decades(m * scale))
        }

        // The 1-2-5 sequence from the last value <= lo to the first >= hi.
        let k0 = Int(floor(l0 + 1e-9)), k1 = Int(floor(l1 + 1e-9))
        if k1 - k0 <= 3 {
            let sequence = (k0...(k1 + 1)).flatMap { k in [1, 2, 5].map { decimal($0, k) } }
            if let a = sequence.lastIndex(where: { $0 <= lo * (1 + 1e-9) }),
               let b = sequence.firstIndex(where: { $0 >= hi * (1 - 1e-9) }) {
                candidates.append(AxisTicks(values: Array(sequence[a...b]), step: nil))
            }
        }

        // Evenly spaced ticks, for ranges narrower than a decade.
        let linear = linearTicks(lo, hi)
        if linear.values.first! > 0 { candidates.append(linear) }

        func span(_ t: AxisTicks) -> Double { log10(t.values.last! / t.values.first!) }
        let fitting = candidates.filter { (4...7).contains($0.values.count) }
        if let best = fitting.min(by: { (span($0), $0.values.count) < (span($1), $1.values.count) }) {
            return best
        }
        func miss(_ t: AxisTicks) -> Int { max(0, 4 - t.values.count, t.values.count - 7) }
        return candidates.min { (miss($0), span($0)) < (miss($1), span($1)) }!
    }

    /// Compact labels: "0", "0.05", "2.5", "200", "1.2k", "3M", and "1e-3" / "2.5e-4" for values
    /// below 0.01 on logarithmic axes (on linear axes when every tick is below 0.01).
    static func tickLabels(_ ticks: AxisTicks, logarithmic: Bool) -> [String] {
        let largest = ticks.values.map(abs).max() ?? 0
        let scientificBelow = logarithmic ? 0.01 : (largest < 0.01 ? Double.infinity : 0)
        return ticks.values.map { v in
            let resolution = ticks.step ?? (v == 0 ? 1 : decimal(1, Int(floor(log10(abs(v)) + 1e-9))))
            return formatTick(v, resolution: resolution, scientificBelow: scientificBelow)
        }
    }

    /// `v` with as many decimals as `resolution` (the tick step) needs; see ``tickLabels(_:logarithmic:)``.
    static func formatTick(_ v: Double, resolution: Double, scientificBelow: Double) -> String {
        guard v != 0, v.isFinite else { return v.isFinite ? "0" : "\(v)" }
        func fixed(_ x: Double, _ r: Double) -> String {
            let decimals = min(12, max(0, -Int(floor(log10(r) + 1e-9))))
            var text = String(format: "%.\(decimals)f", x)
            if text.contains(".") {
                while text.hasSuffix("0") { text.removeLast() }
                if text.hasSuffix(".") { text.removeLast() }
            }
            return text == "-0" ? "0" : text
        }
        let a = abs(v)
        if a < scientificBelow || a >= 1e15 {
            let e = Int(floor(log10(a) + 1e-9))
            let unit = decimal(1, e)
            return fixed(v / unit, min(1, resolution / unit)) + "e\(e)"
        }
        for (unit, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] where a >= unit * (1 - 1e-12) {
            return fixed(v / unit, resolution / unit) + suffix
        }
        return fixed(v, resolution)
    }
}

// MARK: - Raster

/// An RGB drawing surface with clipped primitives.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int, background: RGBColor) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(Rect(x0: 0, y0: 0, x1: width - 1, y1: height - 1), background)
    }

    var image: Image { Image(width: width, height: height, channels: 3, pixels: pixels) }

    func color(x: Int, y: Int) -> RGBColor {
        let o = (y * width + x) * 3
        return (pixels[o], pixels[o + 1], pixels[o + 2])
    }

    mutating func set(_ x: Int, _ y: Int, _ c: RGBColor) {
        guard x >= 0, x < width, y >= 0, y < height else { return }
        let o = (y * width + x) * 3
        pixels[o] = c.r; pixels[o + 1] = c.g; pixels[o + 2] = c.b
    }

    mutating func fill(_ r: Rect, _ c: RGBColor) {
        let x0 = max(0, r.x0), x1 = min(width - 1, r.x1), y0 = max(0, r.y0), y1 = min(height - 1, r.y1)
        guard x0 <= x1, y0 <= y1 else { return }
        for y in y0...y1 { for x in x0...x1 { set(x, y, c) } }
    }

    /// The 1-pixel border of `r`.
    mutating func frame(_ r: Rect, _ c: RGBColor) {
        fill(Rect(x0: r.x0, y0: r.y0, x1: r.x1, y1: r.y0), c)
        fill(Rect(x0: r.x0, y0: r.y1, x1: r.x1, y1: r.y1), c)
        fill(Rect(x0: r.x0, y0: r.y0, x1: r.x0, y1: r.y1), c)
        fill(Rect(x0: r.x1, y0: r.y0, x1: r.x1, y1: r.y1), c)
    }

    /// Pixels inside `r` whose colour is none of `excluded`.
    func count(in r: Rect, excluding excluded: [RGBColor]) -> Int {
        let x0 = max(0, r.x0), x1 = min(width - 1, r.x1), y0 = max(0, r.y0), y1 = min(height - 1, r.y1)
        guard x0 <= x1, y0 <= y1 else { return 0 }
        var n = 0
        for y in y0...y1 {
            for x in x0...x1 {
                let c = color(x: x, y: y)
                if !excluded.contains(where: { $0 == c }) { n += 1 }
            }
        }
        return n
    }

    mutating func text(_ s: String, x: Int, y: Int, scale: Int, color: RGBColor) {
        BitmapFont.forEachPixel(of: s, scale: scale) { dx, dy in set(x + dx, y + dy, color) }
    }

    /// Text rotated a quarter turn anticlockwise, reading upwards from (`x`, `bottom`); the glyph
    /// tops face left, so the text occupies columns `x ..< x + 7 * scale`.
    mutating func textUpwards(_ s: String, x: Int, bottom: Int, scale: Int, color: RGBColor) {
        BitmapFont.forEachPixel(of: s, scale: scale) { dx, dy in set(x + dy, bottom - dx, color) }
    }

    /// Pixel offsets of a round brush `width` pixels across.
    static func brush(_ width: Int) -> [(Int, Int)] {
        let lo = -(width - 1) / 2, hi = width / 2
        let c = Double(lo + hi) / 2, r = Double(width) / 2
        var offsets: [(Int, Int)] = []
        for dy in lo...hi { for dx in lo...hi {
            let ex = Double(dx) - c, ey = Double(dy) - c
            if width <= 2 || ex * ex + ey * ey <= r * r + 0.25 { offsets.append((dx, dy)) }
        } }
        return offsets
    }

    /// A `width`-pixel line (Bresenham, stamped with a round brush) between two fractional pixel
    /// positions, clipped to `clip`.
    mutating func line(from a: (Double, Double), to b: (Double, Double), width: Int, color: RGBColor, clip: Rect) {
        guard !clip.isEmpty,
              let (p, q) = Canvas.clipped(a, b, to: (Double(clip.x0) - 0.5, Double(clip.y0) - 0.5,
                                                     Double(clip.x1) + 0.5, Double(clip.y1) + 0.5))
        else { return }
        let brush = Canvas.brush(width)
        var x = Int(p.0.rounded()), y = Int(p.1.rounded())
        let x1 = Int(q.0.rounded()), y1 = Int(q.1.rounded())
        let dx = abs(x1 - x), dy = -abs(y1 - y), sx = x < x1 ? 1 : -1, sy = y < y1 ? 1 : -1
        var err = dx + dy
        while true {
            stamp(x, y, brush, color, clip)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    /// A filled disc marking an isolated point, a little wider than the line.
    mutating func dot(_ p: (Double, Double), lineWidth: Int, color: RGBColor, clip: Rect) {
        guard p.0.isFinite, p.1.isFinite, p.0 >= Double(clip.x0) - 0.5, p.0 <= Double(clip.x1) + 0.5,
              p.1 >= Double(clip.y0) - 0.5, p.1 <= Double(clip.y1) + 0.5 else { return }
        stamp(Int(p.0.rounded()), Int(p.1.rounded()), Canvas.brush(lineWidth + 4), color, clip)
    }

    private mutating func stamp(_ x: Int, _ y: Int, _ brush: [(Int, Int)], _ c: RGBColor, _ clip: Rect) {
        for (dx, dy) in brush {
            let u = x + dx, v = y + dy
            if u >= clip.x0 && u <= clip.x1 && v >= clip.y0 && v <= clip.y1 { set(u, v, c) }
        }
    }

    /// The part of segment `a`-`b` inside the box (Liang-Barsky), or nil.
    static func clipped(_ a: (Double, Double), _ b: (Double, Double),
                        to box: (Double, Double, Double, Double)) -> ((Double, Double), (Double, Double))? {
        guard a.0.isFinite, a.1.isFinite, b.0.isFinite, b.1.isFinite else { return nil }
        let dx = b.0 - a.0, dy = b.1 - a.1
        var t0 = 0.0, t1 = 1.0
        for (p, q) in [(-dx, a.0 - box.0), (dx, box.2 - a.0), (-dy, a.1 - box.1), (dy, box.3 - a.1)] {
            if p == 0 {
                if q < 0 { return nil }
            } else {
                let t = q / p
                if p < 0 { if t > t1 { return nil }; t0 = max(t0, t) } else { if t < t0 { return nil }; t1 = min(t1, t) }
            }
        }
        return ((a.0 + t0 * dx, a.1 + t0 * dy), (a.0 + t1 * dx, a.1 + t1 * dy))
    }
}
