import Foundation

/// A bounds-checked, big-endian view of one table of an sfnt (TrueType/OpenType) font.
///
/// Every read checks that it lies inside the table; a read outside throws
/// ``ImageIOError/malformedFont(path:table:problem:)`` naming the table.
struct FontTable {
    /// The whole font file (shared, not copied).
    let bytes: [UInt8]
    /// The table's tag, e.g. "cmap".
    let tag: String
    /// The table's first byte in `bytes`.
    let offset: Int
    /// The table's length in bytes.
    let length: Int
    /// The font's path, for error messages.
    let path: String

    /// An error naming this table.
    func error(_ problem: String) -> ImageIOError {
        .malformedFont(path: path, table: tag, problem: problem)
    }

    /// Throws unless `size` bytes at table offset `at` lie inside the table.
    func check(_ at: Int, _ size: Int) throws(ImageIOError) {
        guard at >= 0, size >= 0, at <= length - size else {
            throw error("\(size)-byte read at offset \(at) is outside the table (\(length) bytes)")
        }
    }

    /// The unsigned byte at `at`.
    func u8(_ at: Int) throws(ImageIOError) -> Int {
        try check(at, 1)
        return Int(bytes[offset + at])
    }

    /// The signed byte at `at`.
    func i8(_ at: Int) throws(ImageIOError) -> Int {
        try check(at, 1)
        return Int(Int8(bitPattern: bytes[offset + at]))
    }

    /// The big-endian UInt16 at `at`.
    func u16(_ at: Int) throws(ImageIOError) -> Int {
        try check(at, 2)
        let p = offset + at
        return Int(bytes[p]) << 8 | Int(bytes[p + 1])
    }

    /// The big-endian UInt32 at `at`.
    func u32(_ at: Int) throws(ImageIOError) -> Int {
        try check(at, 4)
        let p = offset + at
        return Int(bytes[p]) << 24 | Int(bytes[p + 1]) << 16 | Int(bytes[p + 2]) << 8 | Int(bytes[p + 3])
    }

    /// A copy of `count` bytes at `at`.
    func slice(_ at: Int, count: Int) throws(ImageIOError) -> [UInt8] {
        try check(at, count)
        return Array(bytes[(offset + at)..<(offset + at + count)])
    }
}

/// The table directory of an sfnt font: tag -> table.
struct FontDirectory {
    /// Tables by tag.
    let tables: [String: FontTable]
    /// The font's path, for error messages.
    let path: String

    /// Parses the offset table and table records at the start of `bytes`.
    init(bytes: [UInt8], path: String) throws(ImageIOError) {
        self.path = path
        let file = FontTable(bytes: bytes, tag: "table directory", offset: 0, length: bytes.count, path: path)
        let version = try file.u32(0)
        guard version == 0x0001_0000 || version == 0x7472_7565 || version == 0x4F54_544F else {
            throw file.error(String(format: "unknown sfnt version 0x%08X (not a TrueType/OpenType font)", version))
        }
        let count = try file.u16(4)
        var tables: [String: FontTable] = [:]
        for i in 0..<count {
            let record = 12 + 16 * i
            let tagBytes = try file.slice(record, count: 4)
            let tag = String(decoding: tagBytes, as: UTF8.self)
            let offset = try file.u32(record + 8), length = try file.u32(record + 12)
            guard offset <= bytes.count, length <= bytes.count - offset else {
                throw ImageIOError.malformedFont(path: path, table: tag,
                    problem: "table at \(offset), \(length) bytes, runs past the end of the file (\(bytes.count) bytes)")
            }
            tables[tag] = FontTable(bytes: bytes, tag: tag, offset: offset, length: length, path: path)
        }
        self.tables = tables
    }

    /// The table with `tag`, or an error naming it as missing.
    func require(_ tag: String) throws(ImageIOError) -> FontTable {
        guard let table = tables[tag] else {
            throw ImageIOError.malformedFont(path: path, table: tag, problem: "table is missing")
        }
        return table
    }
}
