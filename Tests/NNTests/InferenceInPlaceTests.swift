import Tensor
import Testing
@testable import NN

/// Without a tape, `Functional.gelu` and `Functional.add` reuse an input's storage that nothing
/// else holds instead of allocating their output. The values must be those of the out-of-place
/// operations, bit for bit, and an input some other tensor still holds must never change.
@Suite struct InferenceInPlaceTests {
    /// Values spanning GELU's regimes (large negative, around zero, large positive), long enough
    /// for several vector chunks and a ragged tail.
    func values(_ n: Int, seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor.randomNormal([n], using: &rng) * 3
    }

    @Test func geluOfAHeldInputLeavesItAndMatches() {
        let x = values(1000, seed: 1)
        let before = x.scalars
        let y = Functional.gelu(Variable(x), tape: nil)
        #expect(x.scalars == before)                   // `x` still holds the storage: not overwritten
        #expect(y.value.scalars == x.gelu().scalars)
        #expect(y.value.storage !== x.storage)
    }

    @Test func geluOfAFreshValueMatchesTheOutOfPlaceValues() {
        let expected = values(1000, seed: 2).gelu().scalars
        let y = Functional.gelu(Variable(values(1000, seed: 2)), tape: nil)
        #expect(y.value.scalars == expected)
        #expect(y.value.shape == [1000])
    }

    @Test func geluInPlaceOnATensorMatchesGelu() {
        var x = values(1037, seed: 3)
        let expected = x.gelu().scalars
        let shared = x                                  // a second holder: the first write must copy
        x.geluInPlace()
        #expect(x.scalars == expected)
        #expect(shared.scalars != expected)
        #expect(shared.scalars == values(1037, seed: 3).scalars)
    }

    @Test func addOfHeldInputsLeavesThemAndMatches() {
        let a = values(777, seed: 4), b = values(777, seed: 5)
        let (aBefore, bBefore) = (a.scalars, b.scalars)
        let y = Functional.add(Variable(a), Variable(b), tape: nil)
        #expect(a.scalars == aBefore && b.scalars == bBefore)
        #expect(y.value.scalars == (a + b).scalars)
    }

    @Test func addWithOneFreshInputMatchesEitherOrder() {
        let a = values(777, seed: 6)
        let expected = (a + values(777, seed: 7)).scalars
        let aBefore = a.scalars
        // The fresh value is `b` (a residual branch's output) or `a`: either may take the sum.
        let y1 = Functional.add(Variable(a), Variable(values(777, seed: 7)), tape: nil)
        let y2 = Functional.add(Variable(values(777, seed: 7)), Variable(a), tape: nil)
        #expect(y1.value.scalars == expected && y2.value.scalars == expected)
        #expect(a.scalars == aBefore)
    }

    @Test func addRejectsMismatchedShapesLikeTheTapedPath() async {
        // Shapes are checked before any in-place work: a (2, 3) and a (3, 2) never add.
        await #expect(processExitsWith: .failure) {
            _ = Functional.add(Variable(Tensor(repeating: 1, shape: [2, 3])),
                               Variable(Tensor(repeating: 1, shape: [3, 2])), tape: nil)
        }
    }

    /// A taped pass must not take the in-place path: its backward reads GELU's input.
    @Test func tapedGeluKeepsItsInputForBackward() {
        let tape = Tape()
        let x = tape.leaf(values(300, seed: 8))
        let before = x.value.scalars
        let y = Functional.gelu(x, tape: tape)
        #expect(x.value.scalars == before)
        #expect(y.value.scalars == x.value.gelu().scalars)
    }
}
