import Tensor
import Testing
@testable import NN

/// L1 and L2 losses against values computed by hand (PyTorch `F.l1_loss` / `F.mse_loss`, mean).
@Suite struct RegressionLossTests {
    let prediction = Tensor([0.5, -1, 2, 0.25, 3, -0.5], shape: [2, 3])
    let target = Tensor([0, 1, 2, -0.75, 1, 0.5], shape: [2, 3])

    @Test func l1ValueAndGradientMatchTheDefinition() {
        let tape = Tape()
        let leaf = tape.leaf(prediction)
        let loss = Functional.l1Loss(leaf, target: target, tape: tape)
        // |d| = 0.5, 2, 0, 1, 2, 1 -> mean 6.5 / 6
        #expect(abs(loss.value.item - 6.5 / 6) < 1e-6)
        // sign(d) / n, and 0 where prediction == target (PyTorch's sign(0) = 0)
        let grad = tape.backward(from: loss, keeping: [leaf])[0]
        let expected: [Float] = [1, -1, 0, 1, 1, -1].map { $0 / 6 }
        #expect(grad?.scalars == expected)
    }

    @Test func regressionLossDispatchesToL1AndL2() {
        let l2 = Functional.regressionLoss(.l2, Variable(prediction), target: target, tape: nil).value.item
        // d^2 = 0.25, 4, 0, 1, 4, 1 -> 10.25 / 6
        #expect(abs(l2 - 10.25 / 6) < 1e-6)
        let l1 = Functional.regressionLoss(.l1, Variable(prediction), target: target, tape: nil).value.item
        #expect(abs(l1 - 6.5 / 6) < 1e-6)
        #expect(RegressionLoss(rawValue: "l1") == .l1 && RegressionLoss(rawValue: "huber") == nil)
    }

    @Test func signIsPyTorchSign() {
        let x = Tensor((0..<40).map { Float($0 % 5) - 2 } + [0, -0.0, .nan], shape: [43])
        let s = x.sign().scalars
        for (v, r) in zip(x.scalars, s) { #expect(r == (v > 0 ? 1 : (v < 0 ? -1 : 0))) }
    }
}
