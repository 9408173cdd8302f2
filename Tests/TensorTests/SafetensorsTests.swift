import Foundation
import Testing
@testable import Tensor

/// A safetensors file built by hand: 8-byte little-endian header length, header, data.
private func rawFile(_ header: String, _ data: [UInt8] = []) -> [UInt8] {
    let h = Array(header.utf8)
    return rawFile(headerBytes: h, data)
}

private func rawFile(headerBytes h: [UInt8], _ data: [UInt8] = []) -> [UInt8] {
    var out = [UInt8]()
    var n = UInt64(h.count)
    for _ in 0..<8 { out.append(UInt8(truncatingIfNeeded: n)); n >>= 8 }
    return out + h + data
}

/// Little-endian bytes of fixed-width integers.
private func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { v in (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

/// The message of the error `bytes` throws when opened, or nil if they open fine.
private func openError(_ bytes: [UInt8], name: String = "case.safetensors") -> String? {
    do {
        _ = try SafetensorsFile(bytes: bytes, name: name)
        return nil
    } catch let error as SafetensorsError {
        return error.description
    } catch {
        return "unexpected error type: \(error)"
    }
}

/// A fresh temporary directory, removed by the caller.
private func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private func bitsEqual(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { $0.bitPattern == $1.bitPattern }
}

/// One malformed file and the words its error message must contain.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let words: [String]
    var testDescription: String { name }

    init(_ name: String, _ bytes: [UInt8], _ words: String...) {
        self.name = name
        self.bytes = bytes
        self.words = words
    }
    init(_ name: String, header: String, data: [UInt8] = [], _ words: String...) {
        self.name = name
        self.bytes = rawFile(header, data)
        self.words = words
    }
}

private func entry(_ key: String, _ dtype: String = "F32", _ shape: String = "[2]", _ offsets: String = "[0,8]") -> String {
    "\"\(key)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
}

private let malformedCases: [MalformedCase] = [
    MalformedCase("empty file", [], "0 bytes", "shorter than"),
    MalformedCase("7 bytes", [1, 0, 0, 0, 0, 0, 0], "7 bytes", "shorter than"),
    MalformedCase("header length past EOF", le([UInt64(100)]) + Array("{}".utf8), "header length 100", "past the end of the file"),
    MalformedCase("header length huge", le([UInt64.max]) + Array("{}".utf8), "absurd"),
    MalformedCase("header length just over 100 MB", le([UInt64(100_000_001)]), "absurd"),
    MalformedCase("non-JSON header", header: "{not json}", "not valid JSON"),
    MalformedCase("invalid UTF-8", rawFile(headerBytes: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]), "UTF-8"),
    MalformedCase("JSON array header", header: "[1, 2]", "array", "not an object"),
    MalformedCase("JSON string header", header: "\"x\"", "JSON"),
    MalformedCase("entry not an object", header: "{\"w\": 5}", "'w'", "not a JSON object"),
    MalformedCase("missing dtype", header: "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", data: .init(repeating: 0, count: 8),
                  "'w'", "missing dtype"),
    MalformedCase("missing shape", header: "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", data: .init(repeating: 0, count: 8),
                  "'w'", "missing shape"),
    MalformedCase("missing data_offsets", header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", data: .init(repeating: 0, count: 8),
                  "'w'", "missing data_offsets"),
    MalformedCase("dtype not a string", header: "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}",
                  data: .init(repeating: 0, count: 8), "'w'", "dtype is not a string"),
    MalformedCase("unknown dtype", header: "{" + entry("w", "F17") + "}", data: .init(repeating: 0, count: 8), "'w'", "unknown", "F17"),
    MalformedCase("unsupported sub-byte dtype", header: "{" + entry("w", "F4") + "}", data: .init(repeating: 0, count: 8), "'w'", "F4"),
    MalformedCase("shape/size mismatch", header: "{" + entry("w", "F32", "[3]", "[0,8]") + "}", data: .init(repeating: 0, count: 8),
                  "'w'", "size mismatch", "needs 12"),
    MalformedCase("offsets past end", header: "{" + entry("w", "F32", "[2]", "[0,8]") + "}", data: .init(repeating: 0, count: 4),
                  "'w'", "past the end of the data section"),
    MalformedCase("begin > end", header: "{" + entry("w", "F32", "[1]", "[8,4]") + "}", data: .init(repeating: 0, count: 8),
                  "'w'", "begin 8 > end 4"),
    MalformedCase("overlapping offsets", header: "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}",
                  data: .init(repeating: 0, count: 12), "'b'", "overlap", "'a'"),
    MalformedCase("zero-size tensor inside another", header: "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("z", "F32", "[0]", "[4,4]") + "}",
                  data: .init(repeating: 0, count: 8), "'z'", "overlap"),
    MalformedCase("hole between tensors", header: "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]") + "}",
                  data: .init(repeating: 0, count: 12), "'b'", "hole"),
    MalformedCase("trailing bytes", header: "{" + entry("a", "F32", "[1]", "[0,4]") + "}", data: .init(repeating: 0, count: 8), "trailing"),
    MalformedCase("negative dim", header: "{" + entry("w", "F32", "[-2]", "[0,8]") + "}", data: .init(repeating: 0, count: 8),
                  "'w'", "negative dimension"),
    MalformedCase("non-integer dim", header: "{" + entry("w", "F32", "[2.5]", "[0,8]") + "}", data: .init(repeating: 0, count: 8),
                  "'w'", "not an integer"),
    MalformedCase("boolean dim", header: "{" + entry("w", "F32", "[true]", "[0,4]") + "}", data: .init(repeating: 0, count: 4),
                  "'w'", "not an integer"),
    MalformedCase("shape not an array", header: "{" + entry("w", "F32", "2", "[0,8]") + "}", data: .init(repeating: 0, count: 8),
                  "'w'", "shape is not a JSON array"),
    MalformedCase("non-integer offsets", header: "{" + entry("w", "F32", "[2]", "[0,7.5]") + "}", data: .init(repeating: 0, count: 8),
                  "'w'", "data_offsets", "not non-negative integers"),
    MalformedCase("float-spelled integer offsets", header: "{" + entry("w", "F32", "[2]", "[0,8.0]") + "}", data: .init(repeating: 0, count: 8),
                  "'w'", "data_offsets", "not non-negative integers"),
    MalformedCase("string offsets", header: "{" + entry("w", "F32", "[2]", "[\"0\",\"8\"]") + "}", data: .init(repeating: 0, count: 8),
                  "'w'", "data_offsets"),
    MalformedCase("one offset", header: "{" + entry("w", "F32", "[0]", "[0]") + "}", "'w'", "two integers"),
    MalformedCase("negative offsets", header: "{" + entry("w", "F32", "[0]", "[-4,-4]") + "}", "'w'", "negative"),
    MalformedCase("size overflow", header: "{" + entry("w", "F32", "[4611686018427387904,4611686018427387904]", "[0,0]") + "}",
                  "'w'", "too large"),
    MalformedCase("metadata not strings", header: "{\"__metadata__\":{\"step\":1000}}", "__metadata__", "'step'", "not a string"),
    MalformedCase("metadata not an object", header: "{\"__metadata__\":[\"a\"]}", "__metadata__", "not a JSON object"),
    MalformedCase("duplicate key", header: "{" + entry("w", "F32", "[1]", "[0,4]") + "," + entry("w", "F32", "[1]", "[4,8]") + "}",
                  data: .init(repeating: 0, count: 8), "duplicate key"),
]

@Suite struct SafetensorsTests {
    // MARK: round trip

    @Test func otherKindsOfFileAreNamed() throws {
        let cases: [([UInt8], String)] = [
            ([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13], "a PNG image"),
            ([0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 0x4A, 0x46, 0x49, 0x46], "a JPEG image"),
            ([0x50, 0x4B, 0x03, 0x04, 20, 0, 0, 0, 0, 0], "a zip archive"),
            (Array("model:\n  img_size: 32\n".utf8), "a text file"),
        ]
        for (bytes, kind) in cases {
            #expect { _ = try SafetensorsFile(bytes: bytes, name: "x.safetensors") } throws: { error in
                "\(error)".contains("this is \(kind)") && "\(error)".contains("not a safetensors file")
            }
        }
        // Readable reasons for failed file operations, not Foundation's error numbers.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (target, reason) in [(dir.path, "it is a folder"), (dir.path + "/no/such.png", "does not exist")] {
            do { try Data([1]).write(to: URL(fileURLWithPath: target)); Issue.record("\(target) was written") } catch {
                #expect(fileProblem(error, at: target).contains(reason), "\(fileProblem(error, at: target))")
            }
        }
    }

    @Test func roundTripThroughBytesAndFile() throws {
        var rng = RandomGenerator(seed: 7)
        let tensors: [String: Tensor] = [
            "matrix": Tensor.randomNormal([3, 5], using: &rng),
            "scalar": Tensor(scalar: -0.0),
            "empty": Tensor.zeros([2, 0, 3]),
            "special": Tensor([.infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude, Float.leastNormalMagnitude / 3]),
            "blocks.0.weight": Tensor.randomNormal([2, 2, 2], using: &rng),
        ]
        let ints: [String: Safetensors.Int64Tensor] = [
            "timesteps": .init([0, 1, 999, Int64.max, Int64.min]),
            "rank0": .init(shape: [], values: [42]),
            "none": .init(shape: [0], values: []),
        ]
        let metadata = ["format": "maskdm", "config": "{\"d\": 256,\n\t\"x\": \"\\u00e9\"}", "ü": "∑ \u{1}"]
        let bytes = try Safetensors.encode(tensors, int64s: ints, metadata: metadata)

        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ckpt.safetensors")
        try Safetensors.write(tensors, int64s: ints, metadata: metadata, to: url)
        #expect(try [UInt8](Data(contentsOf: url)) == bytes)

        for file in [try SafetensorsFile(bytes: bytes, name: "mem"), try SafetensorsFile(contentsOf: url)] {
            #expect(file.metadata == metadata)
            #expect(file.keys == (Array(tensors.keys) + Array(ints.keys)).sorted())
            for (key, t) in tensors {
                let read = try file.tensor(key)
                #expect(bitsEqual(read, t), "\(key)")
                #expect(file.info(key)?.dtype == .f32)
                #expect(file.info(key)?.shape == t.shape.dims)
            }
            for (key, t) in ints {
                #expect(try file.int64s(key) == t.values)
                #expect(file.info(key)?.dtype == .i64)
                #expect(file.info(key)?.shape == t.shape)
            }
            #expect(try file.tensor("rank0").shape == [])
            #expect(try file.tensor("rank0").item == 42)
            #expect(try file.tensor("timesteps").scalars == [0, 1, 999, 9.223372e18, -9.223372e18])
            #expect(try file.bytes("scalar") == [0, 0, 0, 0x80])
        }
    }

    @Test func encodeMatchesTheOfficialWriterByteForByte() throws {
        // Output of safetensors 0.8.0 `safetensors.numpy.save` for the same tensors and metadata.
        let header = #"{"__metadata__":{"k":"v \"q\""},"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"#
            + #""b":{"dtype":"F32","shape":[3,1],"data_offsets":[16,28]},"s":{"dtype":"F32","shape":[],"data_offsets":[28,32]}}   "#
        let data: [UInt8] = [7, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255,
                             0, 0, 192, 63, 0, 0, 0, 192, 0, 0, 128, 62, 0, 0, 64, 64]
        let official = rawFile(header, data)
        #expect(Array(header.utf8).count == 200)
        let ours = try Safetensors.encode(["b": Tensor([1.5, -2, 0.25], shape: [3, 1]), "s": Tensor(scalar: 3)],
                                          int64s: ["a": .init([7, -1])], metadata: ["k": "v \"q\""])
        #expect(ours == official)
    }

    @Test func headerIsPaddedToEightBytesAndOffsetsAreContiguous() throws {
        for n in 0..<9 {
            let bytes = try Safetensors.encode(["x" + String(repeating: "y", count: n): Tensor.zeros([n])])
            let file = try SafetensorsFile(bytes: bytes, name: "pad")
            let headerLength = Int(bytes[0]) | Int(bytes[1]) << 8
            #expect(headerLength % 8 == 0)
            let header = bytes[8..<(8 + headerLength)]
            let spaces = header.reversed().prefix { $0 == UInt8(ascii: " ") }.count
            #expect(spaces < 8 && header[header.endIndex - spaces - 1] == UInt8(ascii: "}"))
            #expect(file.info(file.keys[0])?.dataOffsets == 0..<(4 * n))
        }
        let file = try SafetensorsFile(bytes: Safetensors.encode(["b": .zeros([3]), "a": .zeros([2])],
                                                                 int64s: ["c": .init([1])]), name: "order")
        #expect(file.keys == ["a", "b", "c"])
        #expect(file.info("a")?.dataOffsets == 0..<8)
        #expect(file.info("b")?.dataOffsets == 8..<20)
        #expect(file.info("c")?.dataOffsets == 20..<28)
    }

    // MARK: dtypes

    @Test func fixtureFromTheOfficialLibraryReadsExactly() throws {
        let fixtures = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures")
        let file = try SafetensorsFile(contentsOf: fixtures.appendingPathComponent("safetensors_dtypes.safetensors"))
        let json = try Data(contentsOf: fixtures.appendingPathComponent("safetensors_dtypes.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let expected = try #require(root["tensors"] as? [String: [String: Any]])
        #expect(file.metadata == (root["metadata"] as? [String: String]))
        #expect(file.keys == expected.keys.sorted())
        #expect(Set(expected.values.compactMap { $0["dtype"] as? String }) == Set(SafetensorsDType.allCases.map(\.rawValue)))

        for (key, want) in expected {
            let info = try #require(file.info(key))
            #expect(info.dtype.rawValue == want["dtype"] as? String, "\(key)")
            #expect(info.shape == want["shape"] as? [Int], "\(key)")
            let offsets = try #require(want["data_offsets"] as? [Int])
            #expect(info.dataOffsets == offsets[0]..<offsets[1], "\(key)")

            let bits = try #require(want["f32_bits"] as? [UInt32])
            let got = try file.tensor(key)
            #expect(got.shape.dims == info.shape)
            for (i, (g, w)) in zip(got.scalars, bits).enumerated() {
                let wf = Float(bitPattern: w)
                #expect(g.bitPattern == w || (g.isNaN && wf.isNaN), "\(key)[\(i)]: \(g) vs \(wf)")
            }
            if let ints = want["int64"] as? [NSNumber] {
                #expect(try file.int64s(key) == ints.map(\.int64Value), "\(key)")
            } else if info.dtype.isInteger {
                #expect(throws: SafetensorsError.self) { try file.int64s(key) }
            } else {
                let error = #expect(throws: SafetensorsError.self) { try file.int64s(key) }
                #expect(error?.description.contains("not an integer type") == true)
            }
        }
        let u64 = #expect(throws: SafetensorsError.self) { try file.int64s("u64") }
        #expect(u64?.description.contains("Int64.max") == true)
    }

    @Test func everyDTypeFromHandBuiltBytes() throws {
        let parts: [(key: String, dtype: String, shape: [Int], bytes: [UInt8], want: [Float])] = [
            ("a_f32", "F32", [2], le([Float(1.5).bitPattern, Float(-0.0).bitPattern]), [1.5, -0.0]),
            ("b_f64", "F64", [3], le([Double(0.1).bitPattern, Double(1e300).bitPattern, Double(-2).bitPattern]), [0.1, .infinity, -2]),
            ("c_f16", "F16", [8], le([UInt16(0x3C00), 0x0001, 0x03FF, 0x7BFF, 0x7C00, 0xFC00, 0x8000, 0xC100]),
             [1, 0x1p-24, 0x1.ff8p-15, 65504, .infinity, -.infinity, -0.0, -2.5]),
            ("d_bf16", "BF16", [5], le([UInt16(0x3F80), 0x0001, 0x7F80, 0xC020, 0x0080]), [1, 0x1p-133, .infinity, -2.5, 0x1p-126]),
            ("e_i64", "I64", [2], le([Int64(-3), 1 << 40]), [-3, 0x1p40]),
            ("f_i32", "I32", [2], le([Int32.min, 5]), [-2147483648, 5]),
            ("g_i16", "I16", [2], le([Int16.min, 300]), [-32768, 300]),
            ("h_i8", "I8", [2], le([Int8(-128), 127]), [-128, 127]),
            ("i_u8", "U8", [2], [255, 3], [255, 3]),
            ("j_bool", "BOOL", [3], [1, 0, 2], [1, 0, 1]),
            ("k_u16", "U16", [1], le([UInt16(65535)]), [65535]),
            ("l_u32", "U32", [1], le([UInt32.max]), [4294967296]),
            ("m_u64", "U64", [1], le([UInt64(1) << 63]), [0x1p63]),
            ("n_f8e4m3", "F8_E4M3", [5], [0x38, 0x7E, 0x01, 0xB8, 0x7F], [1, 448, 0x1p-9, -1, .nan]),
            ("o_f8e5m2", "F8_E5M2", [4], [0x3C, 0x7B, 0x01, 0x7C], [1, 57344, 0x1p-16, .infinity]),
        ]
        var header: [String] = []
        var data: [UInt8] = []
        for p in parts {
            header.append(entry(p.key, p.dtype, "[" + p.shape.map(String.init).joined(separator: ",") + "]",
                                "[\(data.count),\(data.count + p.bytes.count)]"))
            data += p.bytes
        }
        let file = try SafetensorsFile(bytes: rawFile("{" + header.joined(separator: ",") + "}", data), name: "hand")
        for p in parts {
            let got = try file.tensor(p.key).scalars
            #expect(got.count == p.want.count)
            for (g, w) in zip(got, p.want) {
                #expect(g.bitPattern == w.bitPattern || (g.isNaN && w.isNaN), "\(p.key): \(g) vs \(w)")
            }
        }
        #expect(try file.int64s("e_i64") == [-3, 1 << 40])
        #expect(try file.int64s("f_i32") == [Int64(Int32.min), 5])
        #expect(try file.int64s("j_bool") == [1, 0, 1])
        #expect(try file.int64s("l_u32") == [Int64(UInt32.max)])
        #expect(try file.bytes("i_u8") == [255, 3])
    }

    @Test func halfConversionIsExactForAllBitPatterns() {
        for bits in 0...UInt16.max {
            let ours = FloatConversion.float(fromHalfBits: bits)
            let reference = Float(Float16(bitPattern: bits))
            if reference.isNaN {
                #expect(ours.isNaN)
                // quiet NaNs keep sign and payload: converting back gives the same half
                if bits & 0x0200 != 0 { #expect(Float16(ours).bitPattern == bits) }
            } else if ours.bitPattern != reference.bitPattern {
                Issue.record("half 0x\(String(bits, radix: 16)): \(ours) vs \(reference)")
            }
            let bf = FloatConversion.float(fromBFloat16Bits: bits)
            if UInt16(bf.bitPattern >> 16) != bits || bf.bitPattern & 0xFFFF != 0 {
                Issue.record("bf16 0x\(String(bits, radix: 16))")
            }
        }
    }

    // MARK: malformed files

    @Test(arguments: malformedCases)
    func malformedFileThrowsANamedError(_ c: MalformedCase) {
        let message = openError(c.bytes, name: "bad.safetensors")
        #expect(message != nil, "\(c.name) was accepted")
        guard let message else { return }
        #expect(message.contains("bad.safetensors"), "\(message)")
        for word in c.words {
            #expect(message.contains(word), "\(c.name): \"\(message)\" lacks \"\(word)\"")
        }
    }

    @Test func everyTruncationThrows() throws {
        var rng = RandomGenerator(seed: 1)
        let bytes = try Safetensors.encode(["w": Tensor.randomNormal([3, 2], using: &rng), "s": Tensor(scalar: 1)],
                                           int64s: ["t": .init([5, 6])], metadata: ["step": "3"])
        #expect(openError(bytes) == nil)
        for n in 0..<bytes.count {
            #expect(openError(Array(bytes.prefix(n))) != nil, "prefix of \(n) bytes was accepted")
        }
        // Every single-byte corruption either throws or still reads in bounds (never crashes).
        for i in 0..<bytes.count {
            var bad = bytes
            bad[i] ^= 0x5A
            if let file = try? SafetensorsFile(bytes: bad, name: "flip") {
                for key in file.keys { _ = try? file.tensor(key) }
            }
        }
    }

    @Test func acceptedEdgeCases() throws {
        let empty = try SafetensorsFile(bytes: rawFile("{}      "), name: "empty")
        #expect(empty.keys.isEmpty && empty.metadata.isEmpty)
        let nullMetadata = try SafetensorsFile(bytes: rawFile("{\"__metadata__\":null}"), name: "null")
        #expect(nullMetadata.metadata.isEmpty)
        let lenient = try SafetensorsFile(
            bytes: rawFile(" {\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"extra\":[1]}}", [9, 8]), name: "x")
        #expect(try lenient.int64s("w") == [9, 8])
        #expect(lenient.info("w") == .init(dtype: .u8, shape: [2], dataOffsets: 0..<2))
        // A string value containing '{', ',' and '"' does not confuse the duplicate-key scan.
        let tricky = try SafetensorsFile(bytes: rawFile("{\"__metadata__\":{\"a\":\"{,\\\"b\\\":\"},\"w,\\\"\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}", [1]),
                                         name: "tricky")
        #expect(tricky.keys == ["w,\""])
        #expect(tricky.metadata == ["a": "{,\"b\":"])
    }

    @Test func missingKeysAndWrongTypesThrow() throws {
        let file = try SafetensorsFile(bytes: Safetensors.encode(["w": .ones([2])]), name: "m.safetensors")
        let missing = #expect(throws: SafetensorsError.self) { try file.tensor("nope") }
        #expect(missing?.description.contains("'nope'") == true)
        #expect(missing?.description.contains("m.safetensors") == true)
        let notInt = #expect(throws: SafetensorsError.self) { try file.int64s("w") }
        #expect(notInt?.description.contains("F32") == true)
        #expect(file.info("nope") == nil)

        let noFile = #expect(throws: SafetensorsError.self) {
            try SafetensorsFile(contentsOf: URL(fileURLWithPath: "/nonexistent/dir/x.safetensors"))
        }
        #expect(noFile?.description.contains("/nonexistent/dir/x.safetensors") == true)
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let notRegular = #expect(throws: SafetensorsError.self) { try SafetensorsFile(contentsOf: dir) }
        #expect(notRegular?.description.contains("not a regular file") == true)
        let emptyURL = dir.appendingPathComponent("empty.safetensors")
        try Data().write(to: emptyURL)
        let emptyFile = #expect(throws: SafetensorsError.self) { try SafetensorsFile(contentsOf: emptyURL) }
        #expect(emptyFile?.description.contains("0 bytes") == true)
    }

    // MARK: atomic writes

    private func listing(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }

    /// The temporary files of writes whose process died (here: one that has exited) are removed;
    /// those of a running process, of another host, or of another destination are kept.
    @Test func staleTemporariesOfDeadWritersAreRemoved() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ckpt.safetensors")
        try Safetensors.write(["w": Tensor([1, 2, 3])], to: url)
        let exited = Process()
        exited.executableURL = URL(fileURLWithPath: "/bin/true")
        try exited.run()
        exited.waitUntilExit()
        let dead = exited.processIdentifier, host = Safetensors.localHost
        let stale = [".ckpt.safetensors.tmp-\(host)-\(dead)-abc", ".ckpt.safetensors.tmp-\(dead)-def"]
        let kept = [".ckpt.safetensors.tmp-\(host)-\(getpid())-ghi",        // this process: a write in progress
                    ".ckpt.safetensors.tmp-\(host)-1-jkl",                   // init runs
                    ".ckpt.safetensors.tmp-other_host-\(dead)-mno",          // another host's writer
                    ".other.safetensors.tmp-\(host)-\(dead)-pqr",            // another destination
                    ".ckpt.safetensors.tmp-\(host)-notapid-stu"]
        for name in stale + kept { try Data([1, 2]).write(to: dir.appendingPathComponent(name)) }
        #expect(Safetensors.removeStaleTemporaries(of: url) == stale.sorted())
        #expect(try listing(dir) == (kept + ["ckpt.safetensors"]).sorted())
        #expect(Safetensors.removeStaleTemporaries(of: url).isEmpty)
        #expect(try SafetensorsFile(contentsOf: url).tensor("w").scalars == [1, 2, 3])
        // A folder that does not exist has nothing to remove.
        #expect(Safetensors.removeStaleTemporaries(of: dir.appendingPathComponent("none/ckpt.safetensors")).isEmpty)
    }

    @Test func failedWriteLeavesThePreviousFileIntact() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ckpt.safetensors")
        try Safetensors.write(["w": Tensor([1, 2, 3])], metadata: ["v": "1"], to: url)
        let before = try Data(contentsOf: url)

        // Failure after the temporary file is fully written and fsynced, just before the rename.
        struct Injected: Error {}
        let newBytes = try Safetensors.encode(["w": Tensor([9, 9, 9])], metadata: ["v": "2"])
        #expect(throws: Injected.self) {
            try Safetensors.writeAtomically(to: url, beforeRename: { throw Injected() }) { emit in
                try newBytes.withUnsafeBytes(emit)
            }
        }
        #expect(try Data(contentsOf: url) == before)
        #expect(try listing(dir) == ["ckpt.safetensors"])

        // Failure while producing the data.
        #expect(throws: Injected.self) {
            try Safetensors.writeAtomically(to: url) { emit in
                try newBytes.prefix(10).withUnsafeBytes(emit)
                throw Injected()
            }
        }
        #expect(try Data(contentsOf: url) == before)
        #expect(try listing(dir) == ["ckpt.safetensors"])

        // A failing encode (reserved key; a key used twice) never touches the file.
        let reserved = #expect(throws: SafetensorsError.self) {
            try Safetensors.write(["__metadata__": Tensor([1])], to: url)
        }
        #expect(reserved?.description.contains("reserved") == true)
        let twice = #expect(throws: SafetensorsError.self) {
            try Safetensors.write(["t": Tensor([1])], int64s: ["t": .init([1])], to: url)
        }
        #expect(twice?.description.contains("'t'") == true)
        #expect(try Data(contentsOf: url) == before)
        #expect(try listing(dir) == ["ckpt.safetensors"])

        // A real OS failure: the destination is a non-empty directory, so rename fails.
        let blocker = dir.appendingPathComponent("blocked.safetensors")
        try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)
        try Data([1]).write(to: blocker.appendingPathComponent("inside"))
        let renameError = #expect(throws: SafetensorsError.self) {
            try Safetensors.write(["w": Tensor([1])], to: blocker)
        }
        #expect(renameError?.description.contains("blocked.safetensors") == true)
        #expect(try listing(dir) == ["blocked.safetensors", "ckpt.safetensors"])
        #expect(try listing(blocker) == ["inside"])

        // A missing directory.
        let nowhere = dir.appendingPathComponent("missing/ckpt.safetensors")
        let missingDir = #expect(throws: SafetensorsError.self) { try Safetensors.write(["w": Tensor([1])], to: nowhere) }
        #expect(missingDir?.description.contains("missing") == true)
        #expect(try listing(dir) == ["blocked.safetensors", "ckpt.safetensors"])
        #expect(try SafetensorsFile(contentsOf: url).tensor("w").scalars == [1, 2, 3])
    }

    @Test func overwriteKeepsOpenMappingsValid() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ckpt.safetensors")
        try Safetensors.write(["w": Tensor([1, 2, 3])], to: url)
        let old = try SafetensorsFile(contentsOf: url)
        try Safetensors.write(["w": Tensor([4, 5, 6, 7])], metadata: ["v": "2"], to: url)
        #expect(try old.tensor("w").scalars == [1, 2, 3])          // old inode stays mapped
        let new = try SafetensorsFile(contentsOf: url)
        #expect(try new.tensor("w").scalars == [4, 5, 6, 7])
        #expect(new.metadata == ["v": "2"])
        #expect(try listing(dir) == ["ckpt.safetensors"])
    }
}
