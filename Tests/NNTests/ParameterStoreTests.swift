import Tensor
import Testing
@testable import NN

@Suite struct ParameterStoreTests {
    @Test func gradientArenaIsAllocatedOnFirstUseAndSizedExactly() {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 0)
        let fc = Linear(store.builder.scope("fc"), inputDimensions: 300, outputDimensions: 200, rng: &rng)
        #expect(!store.hasGradients)                     // an EMA shadow or inference model stays like this
        store.zeroGrad()
        #expect(!store.hasGradients)
        let g = store.gradientPointer(fc.weight)
        #expect(store.hasGradients && store.gradients.count == store.count)
        #expect((0..<store.count).allSatisfy { store.gradients.base[$0] == 0 })
        g[5] = 3
        // A parameter added later extends the arena, keeping what was accumulated.
        let extra = store.builder.parameter("extra", Tensor.full([7], 1))
        #expect(store.gradients.count == store.count)
        #expect(store.gradient(fc.weight).withUnsafeBufferPointer { $0[5] } == 3)
        #expect(store.gradient(extra).withUnsafeBufferPointer { Array($0) } == [Float](repeating: 0, count: 7))
        store.zeroGrad()
        #expect(store.gradient(fc.weight).withUnsafeBufferPointer { $0[5] } == 0)
    }
}

@Suite struct PlaceholderBuilderTests {
    @Test func placeholderBuilderRegistersZerosWithoutDrawingRandomNumbers() {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 9)
        var reference = RandomGenerator(seed: 9)
        let fc = Linear(store.placeholderBuilder.scope("fc"), inputDimensions: 5, outputDimensions: 3,
                        initializer: .kaimingUniform, rng: &rng)
        #expect(store.parameters.map(\.name) == ["fc.weight", "fc.bias"])
        #expect(store.value(fc.weight).shape == [3, 5])
        #expect(store.value(fc.weight).scalars == [Float](repeating: 0, count: 15))
        #expect(rng.next() == reference.next())            // the initialiser never ran
        // The normal builder draws and the shapes agree.
        let other = ParameterStore()
        let fc2 = Linear(other.builder.scope("fc"), inputDimensions: 5, outputDimensions: 3, initializer: .kaimingUniform, rng: &rng)
        #expect(other.value(fc2.weight).scalars.contains { $0 != 0 })
        #expect(other.parameters.map(\.shape) == store.parameters.map(\.shape))
    }
}
