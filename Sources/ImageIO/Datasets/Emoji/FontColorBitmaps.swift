// The `CBLC` (colour bitmap location) and `CBDT` (colour bitmap data) tables: PNG strikes.

/// One PNG bitmap of a colour bitmap font strike.
public struct EmojiBitmap: Sendable {
    /// The glyph id.
    public let glyphID: Int
    /// Width in pixels, from the glyph metrics.
    public let width: Int
    /// Height in pixels, from the glyph metrics.
    public let height: Int
    /// The PNG file of the glyph.
    public let png: [UInt8]
}

/// One bitmap size (strike) of a `CBLC` table.
public struct EmojiStrike: Sendable {
    /// Horizontal pixels per em.
    public let ppemX: Int
    /// Vertical pixels per em.
    public let ppemY: Int
    /// Bits per pixel (32 for colour PNG strikes).
    public let bitDepth: Int
    /// First and last glyph id the strike covers.
    public let glyphRange: ClosedRange<Int>
}

enum FontColorBitmaps {
    /// The strikes listed in `CBLC`.
    static func strikes(_ cblc: FontTable) throws(ImageIOError) -> [EmojiStrike] {
        let count = try cblc.u32(4)
        try cblc.check(8, count * 48)
        var strikes: [EmojiStrike] = []
        for i in 0..<count {
            let p = 8 + 48 * i
            let first = try cblc.u16(p + 40), last = try cblc.u16(p + 42)
            guard first <= last else { throw cblc.error("strike \(i): glyph range \(first)...\(last) is empty") }
            strikes.append(EmojiStrike(ppemX: try cblc.u8(p + 44), ppemY: try cblc.u8(p + 45),
                                       bitDepth: try cblc.u8(p + 46), glyphRange: first...last))
        }
        return strikes
    }

    /// Where a glyph's data lives in `CBDT`, and its metrics when the index subtable holds them.
    struct Location {
        var glyphID: Int
        var imageFormat: Int
        var offset: Int
        var length: Int
        var metrics: (width: Int, height: Int)?
    }

    /// The bitmaps of strike `index`, in glyph order.
    static func bitmaps(cblc: FontTable, cbdt: FontTable, strike index: Int) throws(ImageIOError) -> [EmojiBitmap] {
        let p = 8 + 48 * index
        let arrayOffset = try cblc.u32(p), subtables = try cblc.u32(p + 8)
        try cblc.check(arrayOffset, subtables * 8)
        var locations: [Location] = []
        for k in 0..<subtables {
            let entry = arrayOffset + 8 * k
            let first = try cblc.u16(entry), last = try cblc.u16(entry + 2)
            let header = arrayOffset + (try cblc.u32(entry + 4))
            guard first <= last else { throw cblc.error("index subtable \(k): glyph range \(first)...\(last) is empty") }
            locations += try indexSubtable(cblc, at: header, first: first, last: last)
        }
        var bitmaps: [EmojiBitmap] = []
        bitmaps.reserveCapacity(locations.count)
        for location in locations.sorted(by: { $0.glyphID < $1.glyphID }) where location.length > 0 {
            bitmaps.append(try glyph(cbdt, location))
        }
        return bitmaps
    }

    /// The glyph locations of one index subtable (formats 1 to 5).
    static func indexSubtable(_ cblc: FontTable, at header: Int, first: Int, last: Int) throws(ImageIOError) -> [Location] {
        let indexFormat = try cblc.u16(header), imageFormat = try cblc.u16(header + 2)
        let dataOffset = try cblc.u32(header + 4)
        let n = last - first + 1
        var out: [Location] = []
        switch indexFormat {
        case 1, 3:
            let size = indexFormat == 1 ? 4 : 2
            try cblc.check(header + 8, (n + 1) * size)
            for i in 0..<n {
                let a = indexFormat == 1 ? try cblc.u32(header + 8 + 4 * i) : try cblc.u16(header + 8 + 2 * i)
                let b = indexFormat == 1 ? try cblc.u32(header + 12 + 4 * i) : try cblc.u16(header + 10 + 2 * i)
                guard b >= a else { throw cblc.error("index format \(indexFormat): offsets of glyph \(first + i) decrease") }
                out.append(Location(glyphID: first + i, imageFormat: imageFormat, offset: dataOffset + a,
                                    length: b - a, metrics: nil))
            }
        case 2:
            let size = try cblc.u32(header + 8)
            let metrics = (width: try cblc.u8(header + 13), height: try cblc.u8(header + 12))
            for i in 0..<n {
                out.append(Location(glyphID: first + i, imageFormat: imageFormat, offset: dataOffset + i * size,
                                    length: size, metrics: metrics))
            }
        case 4:
            let count = try cblc.u32(header + 8)
            try cblc.check(header + 12, (count + 1) * 4)
            for i in 0..<count {
                let glyph = try cblc.u16(header + 12 + 4 * i)
                let a = try cblc.u16(header + 14 + 4 * i), b = try cblc.u16(header + 18 + 4 * i)
                guard b >= a else { throw cblc.error("index format 4: offsets of glyph \(glyph) decrease") }
                out.append(Location(glyphID: glyph, imageFormat: imageFormat, offset: dataOffset + a,
                                    length: b - a, metrics: nil))
            }
        case 5:
            let size = try cblc.u32(header + 8)
            let metrics = (width: try cblc.u8(header + 13), height: try cblc.u8(header + 12))
            let count = try cblc.u32(header + 20)
            try cblc.check(header + 24, count * 2)
            for i in 0..<count {
                out.append(Location(glyphID: try cblc.u16(header + 24 + 2 * i), imageFormat: imageFormat,
                                    offset: dataOffset + i * size, length: size, metrics: metrics))
            }
        default:
            throw cblc.error("unsupported index subtable format \(indexFormat)")
        }
        return out
    }

    /// Reads one glyph's PNG (image formats 17, 18, 19) from `CBDT`.
    static func glyph(_ cbdt: FontTable, _ location: Location) throws(ImageIOError) -> EmojiBitmap {
        let o = location.offset
        try cbdt.check(o, location.length)
        let width: Int, height: Int, dataStart: Int
        switch location.imageFormat {
        case 17:
            (height, width, dataStart) = (try cbdt.u8(o), try cbdt.u8(o + 1), o + 5)
        case 18:
            (height, width, dataStart) = (try cbdt.u8(o), try cbdt.u8(o + 1), o + 8)
        case 19:
            guard let metrics = location.metrics else {
                throw cbdt.error("glyph \(location.glyphID): image format 19 without index-subtable metrics")
            }
            (width, height, dataStart) = (metrics.width, metrics.height, o)
        default:
            throw cbdt.error("glyph \(location.glyphID): unsupported image format \(location.imageFormat) (not PNG)")
        }
        let length = try cbdt.u32(dataStart)
        guard length <= location.length - (dataStart + 4 - o) else {
            throw cbdt.error("glyph \(location.glyphID): PNG of \(length) bytes overruns its \(location.length)-byte slot")
        }
        return EmojiBitmap(glyphID: location.glyphID, width: width, height: height,
                           png: try cbdt.slice(dataStart + 4, count: length))
    }
}
