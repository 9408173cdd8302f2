import Foundation
import NN
import Tensor
import Testing
@testable import ViTDiffusion

/// MaskedUViT against the PyTorch re-implementation of the reference network
/// (Tests/ViTDiffusionTests/Fixtures/parity_*, written by scripts/make_vit_fixtures.py in float64):
/// the output, the loss and every parameter gradient to 1e-4 of each tensor's max magnitude.
@Suite struct ParityTests {
    static func fixture(_ name: String) throws -> URL {
        try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
    }

    @Test(arguments: ["parity_basic", "parity_block2", "parity_odd", "parity_deep"])
    func outputLossAndGradientsMatchPyTorch(_ name: String) throws {
        let dir = try Self.fixture(name)
        let config = try MaskedUViTConfig.load(from: dir.appendingPathComponent("config.json"))
        var rng = RandomGenerator(seed: 0)
        let model = MaskedUViT(config: config, rng: &rng)
        try Checkpoint.load(from: dir.appendingPathComponent("weights.safetensors"), into: model.store)
        let got = try Interop.evaluate(model, inputs: dir.appendingPathComponent("inputs.safetensors"))
        let want = try SafetensorsFile(contentsOf: dir.appendingPathComponent("outputs.safetensors"))
        var checked = 0
        var worst: (String, Float) = ("", 0)
        for key in want.keys where key != "time_embed" {
            let w = try want.tensor(key)
            let g = try #require(got[key], "missing \(key)")
            #expect(g.count == w.count, "\(name) \(key): \(g.shape) vs \(w.shape)")
            let err = g.reshaped(to: w.shape).maxAbsDifference(w) / max(w.maxAbs(), 1e-12)
            if err > worst.1 { worst = (key, err) }
            checked += 1
        }
        #expect(worst.1 < 1e-4, "\(name): worst \(worst.0) relative error \(worst.1)")
        #expect(checked == 2 + model.store.parameters.count)
        // The time token: cos first, computed as PyTorch does.
        let te = try want.tensor("time_embed")
        let t = try SafetensorsFile(contentsOf: dir.appendingPathComponent("inputs.safetensors")).int64s("t").map(Float.init)
        #expect(sinusoidalTimeEmbedding(t, dimensions: config.embedDim).maxAbsDifference(te) < 1e-5)
    }

    @Test func forwardToolWritesFilesAndNamesBadInputs() throws {
        let dir = try Self.fixture("parity_block2")
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fwd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let out = tmp.appendingPathComponent("o.safetensors")
        try Interop.forward(weights: dir.appendingPathComponent("weights.safetensors"), config: dir.appendingPathComponent("config.json"),
                            inputs: dir.appendingPathComponent("inputs.safetensors"), output: out)
        let o = try SafetensorsFile(contentsOf: out)
        #expect(o.info("out")?.shape == [2, 8, 48] && o.keys.contains("loss") && o.keys.contains("grad.encoder.norm.weight"))
        // Missing x, wrong mask shape, a mask that drops the time token.
        let bad = tmp.appendingPathComponent("bad.safetensors")
        try Safetensors.write(["t": Tensor([1, 2])], to: bad)
        #expect { try Interop.forward(weights: dir.appendingPathComponent("weights.safetensors"), config: dir.appendingPathComponent("config.json"), inputs: bad, output: out) } throws: { "\($0)".contains("missing key 'x'") }
        try Safetensors.write(["x": .zeros([2, 3, 16, 16]), "t": Tensor([1, 2]), "mask": .zeros([2, 5])], to: bad)
        #expect { try Interop.forward(weights: dir.appendingPathComponent("weights.safetensors"), config: dir.appendingPathComponent("config.json"), inputs: bad, output: out) } throws: { "\($0)".contains("'mask' has shape [2, 5]") }
        var m = Tensor.zeros([2, 17]); m[0, 0] = 1
        try Safetensors.write(["x": .zeros([2, 3, 16, 16]), "t": Tensor([1, 2]), "mask": m], to: bad)
        #expect { try Interop.forward(weights: dir.appendingPathComponent("weights.safetensors"), config: dir.appendingPathComponent("config.json"), inputs: bad, output: out) } throws: { "\($0)".contains("time token") }
        try Safetensors.write(["x": .zeros([2, 3, 8, 16]), "t": Tensor([1, 2])], to: bad)
        #expect { try Interop.forward(weights: dir.appendingPathComponent("weights.safetensors"), config: dir.appendingPathComponent("config.json"), inputs: bad, output: out) } throws: { "\($0)".contains("'x' has shape [2, 3, 8, 16]") }
    }
}
