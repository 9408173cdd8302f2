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

    /// `zeroGrad` defers its fill: every accessor still sees zeros, slices handed out for
    /// overwriting are not filled (and say so once), and parameters nobody wrote read as zero.
    @Test func zeroGradDefersTheFillButEveryAccessorSeesZeros() {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 1)
        let a = Linear(store.builder.scope("a"), inputDimensions: 6, outputDimensions: 4, rng: &rng)
        let b = Linear(store.builder.scope("b"), inputDimensions: 3, outputDimensions: 5, rng: &rng)
        func fillGarbage() { for i in 0..<store.count { store.gradients.mutableBase[i] = Float(i) + 0.5 } }

        fillGarbage()
        store.zeroGrad()
        #expect(store.gradient(b.weight).scalars == [Float](repeating: 0, count: 15))      // filled on demand
        #expect(store.gradientPointer(a.bias!)[3] == 0)
        #expect(store.trainableGradient(b.bias!)?[4] == 0)

        fillGarbage()
        store.zeroGrad()
        let overwrite = store.gradientForOverwrite(a.weight)
        #expect(overwrite?.accumulate == false && overwrite?.pointer == store.gradientPointer(a.weight))
        #expect(overwrite?.pointer[0] == Float(a.weight.offset) + 0.5)                   // left as it was: the caller assigns
        #expect(store.gradientForOverwrite(a.weight)?.accumulate == true)                 // now it holds a gradient
        // Everything else reads as zero, through the arena too.
        let arena = store.gradients
        let others = (0..<store.count).filter { !(a.weight.offset..<a.weight.offset + a.weight.count).contains($0) }
        #expect(others.allSatisfy { arena.base[$0] == 0 })
        #expect(store.gradientForOverwrite(b.weight)?.accumulate == true)                 // the arena read cleared it

        // Frozen parameters get no gradient; a parameter added after zeroGrad reads as zero.
        store.zeroGrad()
        store.freeze { $0 == "b.weight" }
        #expect(store.gradientForOverwrite(b.weight) == nil)
        let extra = store.builder.parameter("extra", Tensor.full([3], 2))
        #expect(store.gradientForOverwrite(extra)?.accumulate == true)
        #expect(store.gradient(extra).scalars == [0, 0, 0] && store.gradient(b.weight).scalars.allSatisfy { $0 == 0 })
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

/// The one strict loader (``ParameterStore/load(from:file:prefix:strict:rejectUnused:otherPrefixes:)``)
/// and the one gradient accessor (``ParameterStore/trainableGradient(_:)``).
@Suite struct StoreLoadingTests {
    func store() -> (ParameterStore, Linear) {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 1)
        return (store, Linear(store.builder.scope("fc"), inputDimensions: 3, outputDimensions: 2, rng: &rng))
    }

    @Test func loadsEveryKeyAndNamesTheFileAndKeyOfEachProblem() throws {
        let (s, fc) = store()
        let w = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]), b = Tensor([7, 8], shape: [2])
        try s.load(from: ["m.fc.weight": w, "m.fc.bias": b, "ema.fc.weight": w], file: "f.pt", prefix: "m.")
        #expect(s.value(fc.weight).scalars == w.scalars && s.value(fc.bias!).scalars == b.scalars)

        #expect(throws: CheckpointError(file: "f.pt", "missing key 'fc.bias'")) { try s.load(from: ["fc.weight": w], file: "f.pt") }
        #expect(throws: CheckpointError(file: "f.pt", "unused key 'fc.extra' (a network of another config?)")) {
            try s.load(from: ["fc.weight": w, "fc.bias": b, "fc.extra": b], file: "f.pt")
        }
        #expect(throws: CheckpointError(file: "f.pt", "key 'fc.bias' has shape [3], the model expects [2]")) {
            try s.load(from: ["fc.weight": w, "fc.bias": Tensor.zeros([3])], file: "f.pt", strict: false)
        }
        let lenient = try s.load(from: ["fc.weight": w, "x": b], file: "f.pt", strict: false)
        #expect(lenient.missing == ["fc.bias"] && lenient.unused == ["x"])
        // Keys under other prefixes (EMA weights, optimizer moments) are not "unused".
        try s.load(from: ["fc.weight": w, "fc.bias": b, "ema.fc.bias": b], file: "f.pt", otherPrefixes: ["ema."])
    }

    @Test func trainableGradientIsNilExactlyForFrozenParameters() {
        let (s, fc) = store()
        #expect(s.trainableGradient(fc.weight) == s.gradientPointer(fc.weight))
        s.freeze { $0.hasSuffix("bias") }
        #expect(s.trainableGradient(fc.bias!) == nil && s.isFrozen(fc.bias!) && !s.isFrozen(fc.weight))
        #expect(s.trainableGradient(fc.weight) != nil)
        s.unfreezeAll()
        #expect(s.trainableGradient(fc.bias!) != nil)
    }
}
