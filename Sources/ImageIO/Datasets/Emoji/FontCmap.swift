// The `cmap` table: Unicode code point -> glyph id, from format 12 and format 4 subtables.

enum FontCmap {
    /// Code point -> glyph id from every Unicode subtable of format 4 (BMP) or 12 (full range).
    /// Format 12 entries override format 4 ones; glyph 0 (.notdef) is never mapped.
    static func parse(_ table: FontTable) throws(ImageIOError) -> [UInt32: Int] {
        let count = try table.u16(2)
        var format4: [Int] = [], format12: [Int] = []
        for i in 0..<count {
            let platform = try table.u16(4 + 8 * i), encoding = try table.u16(6 + 8 * i)
            let offset = try table.u32(8 + 8 * i)
            let unicode = platform == 0 || (platform == 3 && (encoding == 1 || encoding == 10))
            guard unicode else { continue }
            switch try table.u16(offset) {
            case 4: format4.append(offset)
            case 12: format12.append(offset)
            default: continue
            }
        }
        guard !format4.isEmpty || !format12.isEmpty else {
            throw table.error("no Unicode subtable of format 4 or 12")
        }
        var map: [UInt32: Int] = [:]
        for offset in Set(format4) { try parseFormat4(table, at: offset, into: &map) }
        for offset in Set(format12) { try parseFormat12(table, at: offset, into: &map) }
        return map
    }

    /// Segmented coverage: groups of (startChar, endChar, startGlyph).
    static func parseFormat12(_ table: FontTable, at offset: Int, into map: inout [UInt32: Int]) throws(ImageIOError) {
        let groups = try table.u32(offset + 12)
        try table.check(offset + 16, groups * 12)
        for g in 0..<groups {
            let p = offset + 16 + 12 * g
            let first = try table.u32(p), last = try table.u32(p + 4), glyph = try table.u32(p + 8)
            guard first <= last, last <= 0x10FFFF else {
                throw table.error("format 12 group \(g) has invalid range \(first)...\(last)")
            }
            for c in first...last where glyph + (c - first) != 0 {
                map[UInt32(c)] = glyph + (c - first)
            }
        }
    }

    /// Segment mapping to delta values (BMP only).
    static func parseFormat4(_ table: FontTable, at offset: Int, into map: inout [UInt32: Int]) throws(ImageIOError) {
        let segments = try table.u16(offset + 6) / 2
        let ends = offset + 14, starts = ends + 2 * segments + 2
        let deltas = starts + 2 * segments, rangeOffsets = deltas + 2 * segments
        try table.check(ends, 8 * segments + 2)
        for s in 0..<segments {
            let end = try table.u16(ends + 2 * s), start = try table.u16(starts + 2 * s)
            let delta = try table.u16(deltas + 2 * s)
            let rangePosition = rangeOffsets + 2 * s
            let rangeOffset = try table.u16(rangePosition)
            guard start <= end else { continue }
            for c in start...end where c != 0xFFFF {
                var glyph: Int
                if rangeOffset == 0 {
                    glyph = (c + delta) & 0xFFFF
                } else {
                    glyph = try table.u16(rangePosition + rangeOffset + 2 * (c - start))
                    if glyph != 0 { glyph = (glyph + delta) & 0xFFFF }
                }
                if glyph != 0 { map[UInt32(c)] = glyph }
            }
        }
    }
}
