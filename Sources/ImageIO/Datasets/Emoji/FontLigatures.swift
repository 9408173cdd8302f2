// The `GSUB` table's ligature substitutions (lookup type 4, also behind type-7 extensions):
// component glyph sequence -> ligature glyph. Scripts and features are not consulted: every
// ligature lookup is taken, which is how colour emoji fonts form ZWJ sequences, flags,
// keycaps and skin-tone variants.

enum FontLigatures {
    /// All ligatures of all type-4 lookups; the first lookup that defines a sequence wins.
    static func parse(_ gsub: FontTable) throws(ImageIOError) -> [[Int]: Int] {
        let lookupList = try gsub.u16(8)
        let lookups = try gsub.u16(lookupList)
        var ligatures: [[Int]: Int] = [:]
        for l in 0..<lookups {
            let lookup = lookupList + (try gsub.u16(lookupList + 2 + 2 * l))
            let type = try gsub.u16(lookup), subtables = try gsub.u16(lookup + 4)
            for s in 0..<subtables {
                var subtable = lookup + (try gsub.u16(lookup + 6 + 2 * s))
                var subtableType = type
                if type == 7 {
                    subtableType = try gsub.u16(subtable + 2)
                    subtable += try gsub.u32(subtable + 4)
                }
                if subtableType == 4 { try ligatureSubtable(gsub, at: subtable, into: &ligatures) }
            }
        }
        return ligatures
    }

    static func ligatureSubtable(_ gsub: FontTable, at subtable: Int, into ligatures: inout [[Int]: Int]) throws(ImageIOError) {
        guard try gsub.u16(subtable) == 1 else { throw gsub.error("ligature subtable at \(subtable): unknown format") }
        let firstGlyphs = try coverage(gsub, at: subtable + (try gsub.u16(subtable + 2)))
        let sets = try gsub.u16(subtable + 4)
        guard sets <= firstGlyphs.count else {
            throw gsub.error("ligature subtable at \(subtable): \(sets) ligature sets for \(firstGlyphs.count) covered glyphs")
        }
        for i in 0..<sets {
            let set = subtable + (try gsub.u16(subtable + 6 + 2 * i))
            let count = try gsub.u16(set)
            for k in 0..<count {
                let ligature = set + (try gsub.u16(set + 2 + 2 * k))
                let glyph = try gsub.u16(ligature), components = try gsub.u16(ligature + 2)
                guard components >= 1 else { throw gsub.error("ligature at \(ligature) has no components") }
                var key = [firstGlyphs[i]]
                for m in 0..<(components - 1) { key.append(try gsub.u16(ligature + 4 + 2 * m)) }
                if ligatures[key] == nil { ligatures[key] = glyph }
            }
        }
    }

    /// The glyphs of a coverage table, in coverage-index order.
    static func coverage(_ gsub: FontTable, at offset: Int) throws(ImageIOError) -> [Int] {
        let format = try gsub.u16(offset), count = try gsub.u16(offset + 2)
        switch format {
        case 1:
            try gsub.check(offset + 4, 2 * count)
            var glyphs: [Int] = []
            for i in 0..<count { glyphs.append(try gsub.u16(offset + 4 + 2 * i)) }
            return glyphs
        case 2:
            try gsub.check(offset + 4, 6 * count)
            var glyphs: [Int] = []
            for r in 0..<count {
                let start = try gsub.u16(offset + 4 + 6 * r), end = try gsub.u16(offset + 6 + 6 * r)
                guard start <= end else { throw gsub.error("coverage range \(start)...\(end) at \(offset) is empty") }
                glyphs += Array(start...end)
            }
            return glyphs
        default:
            throw gsub.error("coverage table at \(offset) has unknown format \(format)")
        }
    }
}
