import Foundation
import NN
import Tensor
import Testing
@testable import ViTDiffusion

@Suite struct ModelStructureTests {
    @Test func smallConfigHasTheReferenceParameterCountAndNames() {
        var rng = RandomGenerator(seed: 0)
        let model = MaskedUViT(config: .small(imageSize: 64), rng: &rng)
        #expect(model.parameterCount == 44_292_144)
        let names = Set(model.store.parameters.map(\.name))
        for key in ["encoder.encoder_pos_embed", "encoder.patch_embed.proj.weight", "encoder.patch_embed.proj.bias",
                    "encoder.in_blocks.0.norm1.weight", "encoder.in_blocks.5.attn.qkv.weight", "encoder.mid_block.mlp.fc2.bias",
                    "encoder.out_blocks.5.skip_linear.weight", "encoder.norm.bias", "encoder_to_output.weight"] {
            #expect(names.contains(key), "missing \(key)")
        }
        #expect(!names.contains("encoder.in_blocks.6.norm1.weight"))
        #expect(!names.contains("encoder.in_blocks.0.attn.qkv.bias"))
        #expect(!names.contains("encoder.in_blocks.0.skip_linear.weight"))
        #expect(model.store.parameter(named: "encoder.patch_embed.proj.weight")?.shape == [512, 3, 4, 4])
        #expect(model.store.parameter(named: "encoder.out_blocks.0.skip_linear.weight")?.shape == [512, 1024])
        #expect(model.store.parameter(named: "encoder.encoder_pos_embed")?.shape == [1, 257, 512])
    }

    @Test func otherConfigsAndDepthSemantics() {
        #expect(abs(Double(paramCount(.small(imageSize: 256))) / 1e6 - 46.26) < 0.005)   // "46.26M at 256 px"
        let base = paramCount(.base(imageSize: 256))
        #expect(abs(Double(base) / 1e6 - 102.42) < 0.01)
        var rng = RandomGenerator(seed: 0)
        let m12 = MaskedUViT(config: MaskedUViTConfig(imageSize: 8, embedDim: 8, depth: 12, heads: 2), rng: &rng)
        #expect(m12.inBlocks.count == 6 && m12.outBlocks.count == 6)
        let m4 = MaskedUViT(config: MaskedUViTConfig(imageSize: 8, embedDim: 8, depth: 4, heads: 2), rng: &rng)
        #expect(m4.inBlocks.count == 2 && m4.outBlocks.count == 2)
    }

    func paramCount(_ c: MaskedUViTConfig) -> Int {
        // Count analytically from the layer shapes (building a 100M model in a test is slow).
        let d = c.embedDim, h = c.mlpHiddenDimensions, n = c.patchCount, ppc = c.patchDimensions
        let block = 4 * d + 3 * d * d + (c.qkvBias ? 2 * d : 0) + d * d + d + d * h + h + h * d + d
        let blocks = (2 * (c.depth / 2) + 1) * block + (c.depth / 2) * (2 * d * d + d)
        return d * ppc + d + (1 + n) * d + blocks + 2 * d + d * ppc + ppc
    }

    @Test func analyticCountMatchesBuiltModel() {
        var rng = RandomGenerator(seed: 0)
        let c = MaskedUViTConfig(imageHeight: 12, imageWidth: 8, embedDim: 24, depth: 5, heads: 3, qkvBias: true)
        #expect(MaskedUViT(config: c, rng: &rng).parameterCount == paramCount(c))
        #expect(paramCount(.small(imageSize: 64)) == 44_292_144)
    }

    @Test func aCopyHasTheSameLayoutAndWeightsInItsOwnStore() {
        var rng = RandomGenerator(seed: 4)
        let c = MaskedUViTConfig(imageHeight: 12, imageWidth: 8, embedDim: 24, depth: 5, heads: 3, qkvBias: true)
        let model = MaskedUViT(config: c, rng: &rng)
        let copy = MaskedUViT(copying: model)
        #expect(copy.store.parameters == model.store.parameters)
        let values = { (m: MaskedUViT) in Array(UnsafeBufferPointer(start: m.store.values.base, count: m.store.count)) }
        #expect(values(copy) == values(model))
        #expect(!copy.store.hasGradients)
        copy.store.values.mutableBase[0] += 1                      // independent storage
        #expect(values(copy) != values(model))
    }

    @Test func configJSONUsesReferenceNamesAndValidates() throws {
        let json = #"{"img_size": [12, 8], "patch_size": 4, "in_chans": 3, "encoder_embed_dim": 24, "encoder_depth": 4, "encoder_heads": 3, "mlp_ratio": 4, "qkv_bias": true}"#
        let c = try JSONDecoder().decode(MaskedUViTConfig.self, from: Data(json.utf8))
        #expect(c.imageHeight == 12 && c.imageWidth == 8 && c.qkvBias && c.patchCount == 6)
        let back = try JSONDecoder().decode(MaskedUViTConfig.self, from: Data(c.json.utf8))
        #expect(back == c)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.json")
        try Data(#"{"img_size": 10, "patch_size": 4, "encoder_embed_dim": 8, "encoder_depth": 2, "encoder_heads": 2}"#.utf8).write(to: bad)
        #expect { try MaskedUViTConfig.load(from: bad) } throws: { "\($0)".contains("bad.json") && "\($0)".contains("not divisible") }
        let missing = dir.appendingPathComponent("missing.json")
        try Data(#"{"img_size": 8, "encoder_depth": 2, "encoder_heads": 2}"#.utf8).write(to: missing)
        #expect { try MaskedUViTConfig.load(from: missing) } throws: { "\($0)".contains("encoder_embed_dim") }
    }

    @Test func maskedForwardIsTheUnmaskedForwardOfVisibleTokensOnlyWhenAllVisible() {
        // With every patch visible (identity index lists) the masked path equals the unmasked one.
        var rng = RandomGenerator(seed: 5)
        let c = MaskedUViTConfig(imageSize: 8, embedDim: 16, depth: 3, heads: 2)
        let model = MaskedUViT(config: c, rng: &rng)
        let x = Tensor.randomNormal([2, 3, 8, 8], using: &rng)
        let full = model.tokens(x, timesteps: [3, 900], visiblePatches: nil, tape: nil).value
        let idx = model.tokens(x, timesteps: [3, 900], visiblePatches: [[0, 1, 2, 3], [0, 1, 2, 3]], tape: nil).value
        #expect(full.maxAbsDifference(idx) < 1e-6)
        let img = model.predictNoise(x, timesteps: [3, 900])
        #expect(img.shape == [2, 3, 8, 8])
        #expect(img.patchified(patch: 4).maxAbsDifference(full) == 0)
    }
}
