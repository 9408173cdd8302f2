import Foundation
import Tensor
import Testing
@testable import TorchCheckpoint

/// One malformed checkpoint and the words its error message must contain.
struct TorchMalformedCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let words: [String]
    var testDescription: String { name }

    init(_ name: String, _ bytes: [UInt8], _ words: String...) {
        self.name = name
        self.bytes = bytes
        self.words = words
    }
}

/// A valid one-tensor checkpoint: `w` = [[0, 1, 2], [3, 4, 5]].
private let goodPickle = TestPickle.dict([("w", TestPickle.tensor(numel: 6, size: [2, 3], stride: [3, 1]))])
private let goodStorage = floatBytes([0, 1, 2, 3, 4, 5])

/// A checkpoint whose data.pkl is `pickle` and whose storage `0` holds six floats.
private func withPickle(_ pickle: [UInt8]) -> [UInt8] {
    TestZip.checkpoint(pickle, storages: [("0", goodStorage)])
}

/// `w` rebuilt with the given view of storage `0` (six floats unless `bytes` says otherwise).
private func withView(numel: Int = 6, offset: Int = 0, size: [Int], stride: [Int], bytes: [UInt8] = goodStorage) -> [UInt8] {
    let p = TestPickle.dict([("w", TestPickle.tensor(numel: numel, offset: offset, size: size, stride: stride))])
    return TestZip.checkpoint(p, storages: [("0", bytes)])
}

private func patched(_ bytes: [UInt8], at offset: Int, _ values: [UInt8]) -> [UInt8] {
    var b = bytes
    b.replaceSubrange(offset..<(offset + values.count), with: values)
    return b
}

/// `bytes` with the CRC-32 of every central-directory record set to 0 (as an archive written
/// with `torch.serialization.set_crc32_options(False)` has them).
private func withoutCRCs(_ bytes: [UInt8]) -> [UInt8] {
    var b = bytes
    var p = 0
    while p + 20 <= b.count {
        if b[p] == 0x50 && b[p + 1] == 0x4B && b[p + 2] == 0x01 && b[p + 3] == 0x02 {
            b.replaceSubrange((p + 16)..<(p + 20), with: [0, 0, 0, 0])
        }
        p += 1
    }
    return b
}

private let plain = TestZip.build([.init(name: "archive/data.pkl", data: goodPickle),
                                   .init(name: "archive/data/0", data: goodStorage)])
private let zip64 = TestZip.build([.init(name: "archive/data.pkl", data: goodPickle),
                                   .init(name: "archive/data/0", data: goodStorage)], zip64: true)

private let malformedCases: [TorchMalformedCase] = {
    let p = TestPickle.self
    let h = p.header
    let c = { (s: Unicode.Scalar) in UInt8(ascii: s) }
    return [
        .init("empty file", [], "empty"),
        .init("not a zip", Array("this is a text file, certainly not a zip archive".utf8), "not a zip archive"),
        .init("legacy torch.save pickle", [0x80, 0x02, 0x8A, 0x0A] + Array(repeating: 0, count: 30), "legacy"),
        .init("EOCD directory offset past the end", patched(plain.bytes, at: plain.eocdOffset + 16, le32(0x7FFF_0000)),
              "central directory", "outside the file"),
        .init("EOCD directory size past the end", patched(plain.bytes, at: plain.eocdOffset + 12, le32(0x10_0000)),
              "central directory", "outside the file"),
        .init("EOCD entry count too large", patched(plain.bytes, at: plain.eocdOffset + 10, le16(0xFFF0)), "cannot hold"),
        .init("ZIP64 record offset past the end", patched(zip64.bytes, at: zip64.eocdOffset - 12, le64(1 << 40)),
              "ZIP64", "outside the file"),
        .init("ZIP64 directory offset past the end",
              patched(zip64.bytes, at: zip64.eocdOffset - 20 - 56 + 48, le64(1 << 33)), "ZIP64", "past the end"),
        .init("bad central directory signature", patched(plain.bytes, at: plain.centralOffset, [0, 0, 0, 0]),
              "bad signature"),
        .init("local header offset past the end",
              patched(plain.bytes, at: plain.centralOffset + 42, le32(0x00FF_FFFF)), "exceed the file"),
        .init("local header offset at no header", patched(plain.bytes, at: plain.centralOffset + 42, le32(3)),
              "archive/data.pkl", "local header", "bad signature"),
        .init("no data.pkl entry",
              TestZip.build([.init(name: "archive/weights.bin", data: goodStorage)]).bytes,
              "data.pkl", "not a PyTorch checkpoint", "archive/weights.bin"),
        .init("zip with no entries", TestZip.build([]).bytes, "no entries"),
        .init("DEFLATE-compressed data.pkl",
              TestZip.build([.init(name: "archive/data.pkl", data: goodPickle, method: 8)]).bytes,
              "archive/data.pkl", "compressed entry not supported"),
        .init("big-endian byte order",
              TestZip.build([.init(name: "archive/data.pkl", data: goodPickle),
                             .init(name: "archive/byteorder", data: Array("big".utf8))]).bytes,
              "archive/byteorder", "little-endian"),
        .init("unknown pickle opcode", withPickle(h + [0xFF]), "archive/data.pkl", "unknown opcode 0xFF at byte 2"),
        .init("unknown pickle protocol", withPickle([0x80, 9] + p.stop), "protocol 9"),
        .init("unsupported opcode INST", withPickle(h + [c("i")]), "INST", "not supported"),
        .init("pickle truncated in an argument", withPickle(h + [c("X"), 0x10, 0, 0, 0, c("a"), c("b")]),
              "truncated", "BINUNICODE at byte 2"),
        .init("pickle truncated in a length", withPickle(h + [c("X"), 0x10]), "truncated"),
        .init("pickle truncated before STOP", withPickle(h + [c("}")]), "truncated", "without a STOP"),
        .init("pickle cut in half", withPickle(Array(goodPickle.prefix(goodPickle.count / 2))), "truncated"),
        .init("TUPLE without MARK", withPickle(h + p.tuple + p.stop), "no MARK"),
        .init("memo slot never set", withPickle(h + [c("h"), 5] + p.stop), "memo slot 5", "BINGET at byte 2"),
        .init("STOP on an empty stack", withPickle(h + p.stop), "stack underflow"),
        .init("STACK_GLOBAL of ints", withPickle(h + [c("K"), 1, c("K"), 2, 0x93] + p.stop), "STACK_GLOBAL"),
        .init("odd SETITEMS", withPickle(h + [c("}")] + p.mark + p.string("a") + [c("u")] + p.stop), "odd number"),
        .init("persistent id to a missing storage", TestZip.checkpoint(goodPickle),
              "archive/data.pkl", "storage '0'", "no entry 'archive/data/0'"),
        .init("persistent id of the wrong form",
              withPickle(h + p.mark + p.string("storage") + p.tuple + [c("Q")] + p.stop), "persistent id"),
        .init("storage entry shorter than its numel", withView(size: [6], stride: [1], bytes: floatBytes([1, 2, 3, 4])),
              "archive/data/0", "holds 16 bytes", "6 elements"),
        .init("storage smaller than size x stride", withView(size: [3, 4], stride: [4, 1]),
              "key 'w'", "holds 6 elements", "needs 12"),
        .init("transposed view past its storage", withView(size: [3, 2], stride: [1, 4]), "key 'w'", "needs 7"),
        .init("storage offset past its storage", withView(offset: 5, size: [2], stride: [1]), "key 'w'", "needs 7"),
        .init("negative stride", withView(size: [2, 3], stride: [3, -1]), "key 'w'", "negative"),
        .init("size and stride of different lengths", withView(size: [2, 3], stride: [3]), "different lengths"),
        .init("huge sizes", withView(size: [1 << 30, 1 << 30, 1 << 30], stride: [1, 1, 1]), "key 'w'", "overflow"),
    ]
}()

extension TorchCheckpointTests {
    @Suite struct Malformed {
        @Test(arguments: malformedCases)
        func malformedInputThrowsAClearError(_ c: TorchMalformedCase) throws {
            let message = try #require(torchOpenError(c.bytes), "\(c.name) opened without an error")
            #expect(message.contains("'case.pt'"), "\(message)")
            for word in c.words {
                #expect(message.contains(word), "\(c.name): '\(word)' not in: \(message)")
            }
        }

        @Test func handBuiltArchivesOpen() throws {
            for bytes in [plain.bytes, zip64.bytes] {
                let ckpt = try TorchCheckpoint(bytes: bytes, name: "hand.pt")
                #expect(ckpt.keys == ["w"])
                #expect(try ckpt.tensor("w").scalars == [0, 1, 2, 3, 4, 5])
                #expect(ckpt.info("w")?.storageEntry == "archive/data/0")
            }
            let transposed = try TorchCheckpoint(bytes: withView(size: [3, 2], stride: [1, 3]), name: "t.pt")
            #expect(try transposed.tensor("w").scalars == [0, 3, 1, 4, 2, 5])
            // torch.save(tensor): a bare tensor at the root has the empty key.
            let bare = TestPickle.header + TestPickle.tensor(numel: 6, offset: 1, size: [2, 2], stride: [1, 2]) + TestPickle.stop
            let root = try TorchCheckpoint(bytes: withPickle(bare), name: "bare.pt")
            #expect(root.keys == [""])
            #expect(try root.tensor("").scalars == [1, 3, 2, 4])
        }

        @Test func protocol0TextOpcodes() throws {
            let p = TestPickle.self
            func text(_ s: String) -> [UInt8] { Array(s.utf8) }
            let pickle = [UInt8(ascii: "}")] + p.mark
                + p.string("a") + text("I42\n") + p.string("b") + text("I01\n")
                + p.string("c") + text("L12345678901234L\n") + p.string("d") + text("F-1.5\n")
                + p.string("e") + text("I5\np7\n") + p.string("f") + text("g7\n")
                + p.string("h") + text("L123456789012345678901234567890L\n")
                + p.string("i") + [UInt8(ascii: "U"), 2, 0x41, 0xE9] + [UInt8(ascii: "u")] + p.stop
            let ckpt = try TorchCheckpoint(bytes: withPickle(pickle), name: "p0.pt")
            #expect(ckpt.keys.isEmpty)
            #expect(ckpt.number("a") == 42 && ckpt.number("b") == 1 && ckpt.number("c") == 12_345_678_901_234)
            #expect(ckpt.number("d") == -1.5 && ckpt.number("e") == 5 && ckpt.number("f") == 5)
            #expect(ckpt.describe("h")?.contains("integer of 30 digits") == true)
            #expect(ckpt.describe("i") == "the string 'A\u{E9}'")
        }

        @Test func everyTruncationThrows() throws {
            let bytes = Array(try Data(contentsOf: try fixtureURL("torch_dtypes.pt")))
            var opened = 0
            for length in stride(from: 0, to: bytes.count, by: 3) {
                if let message = torchOpenError(Array(bytes.prefix(length))) {
                    #expect(message.hasPrefix("torch checkpoint 'case.pt'"), "\(message)")
                } else {
                    opened += 1
                }
            }
            #expect(opened == 0)
        }

        @Test func corruptedBytesNeverCrash() throws {
            let bytes = Array(try Data(contentsOf: try fixtureURL("torch_nested.pt")))
            var rng = RandomGenerator(seed: 11)
            var failures = 0
            for _ in 0..<150 {
                // Half the copies without their CRCs, so damage reaches the parsers behind the check.
                var b = rng.nextInt(below: 2) == 0 ? bytes : withoutCRCs(bytes)
                for _ in 0..<4 { b[rng.nextInt(below: b.count)] = UInt8(truncatingIfNeeded: rng.nextInt(below: 256)) }
                do {
                    let ckpt = try TorchCheckpoint(bytes: b, name: "fuzz.pt")
                    for key in ckpt.keys { _ = try ckpt.tensor(key) }
                } catch {
                    failures += 1
                    #expect(error is TorchCheckpointError)
                }
            }
            #expect(failures > 0)
        }

        @Test func damagedDataIsCaughtByItsCRC() throws {
            #expect(Array("123456789".utf8).withUnsafeBytes { CRC32.update(0, $0) } == 0xCBF4_3926)   // the check value
            #expect(Array("6789".utf8).withUnsafeBytes { CRC32.update(Array("12345".utf8).withUnsafeBytes { CRC32.update(0, $0) }, $0) } == 0xCBF4_3926)
            #expect(CRC32.hex(0xCBF) == "0x00000cbf")

            let bytes = Array(try Data(contentsOf: try fixtureURL("torch_dtypes.pt")))
            let good = try TorchCheckpoint(bytes: bytes, name: "dtypes.pt")
            let key = try #require(good.keys.first(where: { (try? good.tensor($0).scalars.count) ?? 0 > 0 }))
            let zip = try bytes.withUnsafeBytes { raw in
                try TorchZipArchive(TorchByteView(base: raw.baseAddress!, count: raw.count), file: "dtypes.pt")
            }
            // One bit of one storage flipped: the archive still parses, and the values would be wrong.
            let entry = try #require(zip.entries.first(where: { $0.name.contains("/data/") && $0.compressedSize > 0 }))
            #expect(entry.crc32 != 0)                             // torch.save records them
            let start = try bytes.withUnsafeBytes { raw in
                try zip.dataRange(of: entry.name, in: TorchByteView(base: raw.baseAddress!, count: raw.count)).lowerBound
            }
            var damaged = bytes
            damaged[start] ^= 0x10
            do {
                let ckpt = try TorchCheckpoint(bytes: damaged, name: "dtypes.pt")
                for k in ckpt.keys { _ = try ckpt.tensor(k) }
                Issue.record("a flipped bit in \(entry.name) was not noticed")
            } catch let error as TorchCheckpointError {
                #expect(error.entry == entry.name)
                #expect(error.description.contains("damaged"), "\(error)")
                #expect(error.description.contains("CRC-32"), "\(error)")
            }
            // Without recorded CRCs (set_crc32_options(False) writes 0) nothing is checked.
            let unchecked = try TorchCheckpoint(bytes: withoutCRCs(damaged), name: "dtypes.pt")
            #expect(try unchecked.tensor(key).shape == good.tensor(key).shape)
            // Nor when the caller asks for no check.
            _ = try TorchCheckpoint(bytes: damaged, name: "dtypes.pt", verifyingChecksums: false)
        }

        @Test func unknownStorageTypesAreOpaqueAndUnknownGlobalsRefused() throws {
            let p = TestPickle.self
            let pickle = p.dict([
                ("w", p.tensor(numel: 6, size: [2, 3], stride: [3, 1])),
                ("z", p.tensor(type: "ComplexFloatStorage", key: "1", numel: 1, size: [1], stride: [1])),
            ])
            let ckpt = try TorchCheckpoint(
                bytes: TestZip.checkpoint(pickle, storages: [("0", goodStorage), ("1", floatBytes([1, 2]))]),
                name: "opaque.pt")
            #expect(ckpt.keys == ["w"])
            #expect(try ckpt.tensor("w").scalars == [0, 1, 2, 3, 4, 5])
            #expect(ckpt.describe("z")?.contains("torch.ComplexFloatStorage") == true)
            #expect(throws: TorchCheckpointError.self) { try ckpt.tensor("z") }

            // A class of the training code (not a tensor, container or number): refused at its opcode.
            let call = p.global("mytrainer.config", "Config") + [UInt8(ascii: ")"), UInt8(ascii: "R")]
            let withConfig = p.dict([("w", p.tensor(numel: 6, size: [2, 3], stride: [3, 1])), ("config", call)])
            #expect {
                _ = try TorchCheckpoint(bytes: TestZip.checkpoint(withConfig, storages: [("0", goodStorage)]), name: "config.pt")
            } throws: { "\($0)".contains("refused: the pickle names 'mytrainer.config.Config'") }
        }

        @Test func deepNestingAndCyclesAreCutOff() throws {
            let c = { (s: Unicode.Scalar) in UInt8(ascii: s) }
            // 200,000 nested 1-tuples: freed without recursion, named down to the depth limit only.
            let deep = TestPickle.header + [c(")")] + Array(repeating: 0x85, count: 200_000) + TestPickle.stop
            let a = try TorchCheckpoint(bytes: withPickle(deep), name: "deep.pt")
            #expect(a.keys.isEmpty)
            // A list that contains itself.
            let cycle = TestPickle.header + [c("]"), c("q"), 0, c("h"), 0, c("a")] + TestPickle.stop
            let b = try TorchCheckpoint(bytes: withPickle(cycle), name: "cycle.pt")
            #expect(b.keys.isEmpty)
            #expect(b.describe("0")?.contains("cycle") == true)
            // One list shared twice per level, 40 levels deep: 2^40 paths, cut off by the visit limit.
            var shared = TestPickle.header + [c("]"), c("q"), 0]
            for i in 0..<40 {
                shared += [c("h"), UInt8(i), c("h"), UInt8(i), 0x86, c("q"), UInt8(i + 1)]
            }
            shared += TestPickle.stop
            #expect(torchOpenError(withPickle(shared))?.contains("more than") == true)
        }
    }
}
