import Pipeline
import Tensor
import Testing
import ViTDiffusion

/// `MaskedUViTConfig.trainableParameterCount` (computed without building the network) against the
/// network itself.
@Suite struct ParameterCountTests {
    static let configs: [MaskedUViTConfig] = [
        MaskedUViTConfig(imageSize: 8, patchSize: 2, embedDim: 16, depth: 3, heads: 2),
        MaskedUViTConfig(imageSize: 8, patchSize: 2, embedDim: 16, depth: 3, heads: 2, qkvBias: true),
        MaskedUViTConfig(imageSize: 16, patchSize: 4, embedDim: 24, depth: 5, heads: 3, mlpRatio: 2.5, qkvBias: true),
        MaskedUViTConfig(imageSize: 12, patchSize: 3, embedDim: 8, depth: 1, heads: 1),
        MaskedUViTConfig(imageSize: 16, patchSize: 4, embedDim: 32, depth: 4, heads: 4),         // even depth
        MaskedUViTConfig(imageHeight: 8, imageWidth: 20, patchSize: 4, embedDim: 16, depth: 7, heads: 2),
        MaskedUViTConfig(imageHeight: 24, imageWidth: 12, patchSize: 2, inChannels: 1, embedDim: 12, depth: 3, heads: 3,
                         mlpRatio: 3, qkvBias: true),
    ]

    @Test(arguments: configs)
    func formulaMatchesBuiltNetwork(_ config: MaskedUViTConfig) {
        var rng = RandomGenerator(seed: 3)
        let model = MaskedUViT(config: config, rng: &rng)
        #expect(config.trainableParameterCount == model.parameterCount, "\(config)")
        #expect(model.store.parameters.reduce(0) { $0 + $1.count } == model.parameterCount)
    }

    @Test func smallAt64Pixels() {
        // U-ViT-S/4 at 64 px as MaskDM trains it (the reference prints 44,292,144).
        #expect(MaskedUViTConfig.small(imageSize: 64).trainableParameterCount == 44_292_144)
        #expect(ModelDescription(model: .small(imageSize: 64), recipe: TrainingRecipe(), source: "-").parameters == 44_292_144)
    }

    @Test func qkvBiasAddsTwoVectorsPerBlock() {
        let off = MaskedUViTConfig(imageSize: 16, patchSize: 4, embedDim: 32, depth: 5, heads: 4)
        var on = off
        on.qkvBias = true
        #expect(on.trainableParameterCount - off.trainableParameterCount == 5 * 2 * 32)
    }
}
