import Tensor

/// An activation flowing through a model: a tensor plus, when recorded on a ``Tape``, the
/// identity the tape uses to route its gradient.
public struct Variable: Sendable {
    /// The forward value.
    public var value: Tensor
    /// The tape slot of this value; `nil` for constants and for inference (no tape).
    public let id: Int?

    /// A constant (no gradient flows into it).
    public init(_ value: Tensor) { self.value = value; self.id = nil }
    init(_ value: Tensor, id: Int?) { self.value = value; self.id = id }

    /// Shape of the value.
    public var shape: Shape { value.shape }
}

/// A per-step reverse-mode autodiff tape over fused primitives.
///
/// Each primitive records one backward closure; ``backward(from:)`` replays them in reverse.
/// Activation gradients live in the tape and are released as soon as the op that produced the
/// activation has consumed them; parameter gradients accumulate straight into the
/// ``ParameterStore``'s gradient arena. Pass `tape: nil` to a model for inference: no closures
/// and no caches are kept.
///
/// Adding a primitive takes a forward computation and a backward closure:
/// ```swift
/// func square(_ x: Variable, tape: Tape?) -> Variable {
///     let y = x.value * x.value
///     return Tape.record(y, inputs: [x], on: tape) { dy, tape in
///         tape.accumulate(dy * x.value * 2, into: x)
///     }
/// }
/// ```
public final class Tape {
    private var nextID = 0
    private var records: [(output: Int, backward: (Tensor, Tape) -> Void)] = []
    private var grads: [Int: Tensor] = [:]

    /// An empty tape.
    public init() {}

    /// Number of recorded primitives.
    public var count: Int { records.count }

    /// Records a primitive whose output is `value` (when `tape` is non-nil and some input is
    /// tracked or `tracked` is set) and returns the output variable. `backward` receives the
    /// gradient of the output and must accumulate into the inputs and parameters.
    public static func record(_ value: Tensor, inputs: [Variable], tracked: Bool = false, on tape: Tape?,
                              backward: @escaping (Tensor, Tape) -> Void) -> Variable {
        guard let tape, tracked || inputs.contains(where: { $0.id != nil }) else { return Variable(value) }
        let id = tape.nextID
        tape.nextID += 1
        tape.records.append((id, backward))
        return Variable(value, id: id)
    }

    /// Adds `gradient` into the gradient of `variable` (ignored for constants).
    public func accumulate(_ gradient: Tensor, into variable: Variable) {
        guard let id = variable.id else { return }
        precondition(gradient.shape == variable.shape,
                     "Tape.accumulate: gradient \(gradient.shape) for a variable of shape \(variable.shape)")
        if var g = grads.removeValue(forKey: id) {
            g.addInPlace(gradient)
            grads[id] = g
        } else {
            grads[id] = gradient
        }
    }

    /// A zero-initialised (or existing) gradient buffer of `variable` for kernels that accumulate
    /// in place; `nil` for constants. Valid until the next call that touches this variable's gradient.
    public func gradientPointer(for variable: Variable) -> UnsafeMutablePointer<Float>? {
        guard let buffer = gradientBuffer(for: variable) else { return nil }
        if !buffer.accumulate { buffer.pointer.update(repeating: 0, count: variable.shape.count) }
        return buffer.pointer
    }

    /// Where a kernel writes `variable`'s gradient, and how: `accumulate` is true when a gradient
    /// has already flowed into the buffer (add to it), false when the buffer is new and
    /// uninitialised (the kernel must assign every element, as a GEMM with beta 0 does). Saves
    /// the zero fill, and the kernel's read of it, that ``gradientPointer(for:)`` costs for the
    /// first gradient of a variable. `nil` for constants. Valid until the next call that touches
    /// this variable's gradient.
    public func gradientBuffer(for variable: Variable) -> (pointer: UnsafeMutablePointer<Float>, accumulate: Bool)? {
        guard let id = variable.id else { return nil }
        if grads[id] != nil { return (grads[id]!.mutablePointer(), true) }
        var fresh = Tensor(uninitialized: variable.shape)
        let pointer = fresh.mutablePointer()
        grads[id] = fresh
        return (pointer, false)
    }

    /// The accumulated gradient of `variable`, if any flowed into it (for tests and inspection).
    public func gradient(of variable: Variable) -> Tensor? {
        variable.id.flatMap { grads[$0] }
    }

    /// Runs every recorded backward closure in reverse order, seeded with `seed` times ones for
    /// `output` (normally a scalar loss). Clears the tape.
    public func backward(from output: Variable, seed: Float = 1) {
        guard let id = output.id else { return }
        grads[id] = Tensor.full(output.shape, seed)
        while let rec = records.popLast() {
            guard let g = grads.removeValue(forKey: rec.output) else { continue }
            rec.backward(g, self)
        }
        grads.removeAll()
    }

    /// Like ``backward(from:seed:)`` but keeps the gradients of the given variables (e.g. inputs).
    public func backward(from output: Variable, keeping kept: [Variable]) -> [Tensor?] {
        guard let id = output.id else { return kept.map { _ in nil } }
        let keep = Set(kept.compactMap(\.id))
        var saved: [Int: Tensor] = [:]
        grads[id] = Tensor.full(output.shape, 1)
        while let rec = records.popLast() {
            guard let g = grads.removeValue(forKey: rec.output) else { continue }
            if keep.contains(rec.output) { saved[rec.output] = g }
            rec.backward(g, self)
        }
        for k in keep where grads[k] != nil { saved[k] = grads[k] }
        grads.removeAll()
        return kept.map { $0.id.flatMap { saved[$0] } }
    }

    /// Starts tracking a tensor as a differentiable leaf (for gradient checks with respect to inputs).
    public func leaf(_ value: Tensor) -> Variable {
        let id = nextID
        nextID += 1
        return Variable(value, id: id)
    }
}
