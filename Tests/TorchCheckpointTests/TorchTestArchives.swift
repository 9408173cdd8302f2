// Hand-built zip archives and pickles for the TorchCheckpoint tests (malformed inputs, ZIP64).

import Foundation

/// Builds a zip archive in memory the way PyTorch lays one out (entries STORED unless told).
struct TestZip {
    struct Item {
        var name: String
        var data: [UInt8]
        var method: UInt16 = 0
    }

    /// The archive bytes and where its records start.
    struct Built {
        var bytes: [UInt8]
        var centralOffset: Int
        var eocdOffset: Int
    }

    /// Local headers and data, the central directory, then (with `zip64`) a ZIP64 end record and
    /// locator whose plain end record holds only all-ones placeholders, as large archives do.
    static func build(_ items: [Item], zip64: Bool = false) -> Built {
        var out: [UInt8] = []
        var offsets: [Int] = []
        for item in items {
            offsets.append(out.count)
            out += le32(0x0403_4b50) + le16(20) + le16(0) + le16(item.method) + le16(0) + le16(0) + le32(0)
            out += le32(UInt32(item.data.count)) + le32(UInt32(item.data.count))
            out += le16(UInt16(item.name.utf8.count)) + le16(0) + Array(item.name.utf8) + item.data
        }
        let central = out.count
        for (item, offset) in zip(items, offsets) {
            let extra: [UInt8] = zip64
                ? le16(1) + le16(24) + le64(UInt64(item.data.count)) + le64(UInt64(item.data.count)) + le64(UInt64(offset))
                : []
            let size = zip64 ? 0xFFFF_FFFF : UInt32(item.data.count)
            out += le32(0x0201_4b50) + le16(20) + le16(45) + le16(0) + le16(item.method) + le16(0) + le16(0) + le32(0)
            out += le32(size) + le32(size) + le16(UInt16(item.name.utf8.count)) + le16(UInt16(extra.count))
            out += le16(0) + le16(0) + le16(0) + le32(0) + le32(zip64 ? 0xFFFF_FFFF : UInt32(offset))
            out += Array(item.name.utf8) + extra
        }
        let centralSize = out.count - central
        if zip64 {
            let record = out.count
            out += le32(0x0606_4b50) + le64(44) + le16(45) + le16(45) + le32(0) + le32(0)
            out += le64(UInt64(items.count)) + le64(UInt64(items.count)) + le64(UInt64(centralSize)) + le64(UInt64(central))
            out += le32(0x0706_4b50) + le32(0) + le64(UInt64(record)) + le32(1)
        }
        let eocd = out.count
        let count16: UInt16 = zip64 ? 0xFFFF : UInt16(items.count)
        out += le32(0x0605_4b50) + le16(0) + le16(0) + le16(count16) + le16(count16)
        out += le32(zip64 ? 0xFFFF_FFFF : UInt32(centralSize)) + le32(zip64 ? 0xFFFF_FFFF : UInt32(central)) + le16(0)
        return Built(bytes: out, centralOffset: central, eocdOffset: eocd)
    }

    /// A checkpoint archive `archive/` holding `pickle` as data.pkl and `storages` under data/.
    static func checkpoint(_ pickle: [UInt8], storages: [(String, [UInt8])] = [], zip64: Bool = false,
                           extra: [Item] = []) -> [UInt8] {
        var items = [Item(name: "archive/data.pkl", data: pickle), Item(name: "archive/byteorder", data: Array("little".utf8))]
        items += storages.map { Item(name: "archive/data/\($0.0)", data: $0.1) }
        return build(items + extra, zip64: zip64).bytes
    }
}

/// Protocol-2 pickle fragments as torch.save writes them.
enum TestPickle {
    static let header: [UInt8] = [0x80, 0x02]
    static let stop: [UInt8] = [UInt8(ascii: ".")]
    static let mark: [UInt8] = [UInt8(ascii: "(")]
    static let tuple: [UInt8] = [UInt8(ascii: "t")]

    /// BINUNICODE.
    static func string(_ s: String) -> [UInt8] { [UInt8(ascii: "X")] + le32(UInt32(s.utf8.count)) + Array(s.utf8) }
    /// BININT.
    static func int(_ i: Int32) -> [UInt8] { [UInt8(ascii: "J")] + le32(UInt32(bitPattern: i)) }
    /// GLOBAL.
    static func global(_ module: String, _ name: String) -> [UInt8] {
        [UInt8(ascii: "c")] + Array("\(module)\n\(name)\n".utf8)
    }
    /// A MARK ... TUPLE of ints.
    static func ints(_ values: [Int]) -> [UInt8] { mark + values.flatMap { int(Int32($0)) } + tuple }

    /// `_rebuild_tensor_v2(('storage', type, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`.
    static func tensor(type: String = "FloatStorage", key: String = "0", numel: Int, offset: Int = 0,
                       size: [Int], stride: [Int]) -> [UInt8] {
        var p = global("torch._utils", "_rebuild_tensor_v2") + mark
        p += mark + string("storage") + global("torch", type) + string(key) + string("cpu") + int(Int32(numel)) + tuple
        p += [UInt8(ascii: "Q")] + int(Int32(offset)) + ints(size) + ints(stride) + [0x89]
        p += global("collections", "OrderedDict") + [UInt8(ascii: ")"), UInt8(ascii: "R")] + tuple + [UInt8(ascii: "R")]
        return p
    }

    /// A whole pickle of a dict `{key: value, ...}`.
    static func dict(_ items: [(String, [UInt8])]) -> [UInt8] {
        header + [UInt8(ascii: "}")] + mark + items.flatMap { string($0.0) + $0.1 } + [UInt8(ascii: "u")] + stop
    }
}

/// Little-endian bytes.
func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

/// Float32 values as little-endian bytes.
func floatBytes(_ values: [Float]) -> [UInt8] { values.flatMap { le32($0.bitPattern) } }
