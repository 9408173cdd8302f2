import Tensor

/// A named parameter: a slice of the ``ParameterStore`` arena.
public struct Parameter: Sendable, Hashable {
    /// The full dotted name, e.g. `encoder.in_blocks.0.attn.qkv.weight` (the PyTorch state-dict key).
    public let name: String
    /// The parameter's shape.
    public let shape: Shape
    /// Offset of the first element in the arena.
    public let offset: Int
    /// Number of elements.
    public var count: Int { shape.count }
}

/// All parameters of a model in one flat Float32 arena, with a parallel gradient arena.
///
/// Layers are built through a name-scoped ``ParameterBuilder`` so that names are the PyTorch
/// state-dict keys of the layer tree. `zeroGrad` defers its fill to each slice's first use (a
/// backward pass that assigns a gradient whole never fills it); optimizers and gradient clipping
/// are single loops over the arenas.
///
/// ```swift
/// let store = ParameterStore()
/// var rng = RandomGenerator(seed: 0)
/// let fc = Linear(store.builder.scope("mlp.fc1"), inputDimensions: 4, outputDimensions: 8, rng: &rng)
/// store.parameters.map(\.name)   // ["mlp.fc1.weight", "mlp.fc1.bias"]
/// ```
public final class ParameterStore: @unchecked Sendable {
    // @unchecked Sendable: a store belongs to one training loop, whose thread alone calls its
    // methods (the gradient accessors update the stale-slice bookkeeping); kernels write disjoint
    // slices.
    /// The parameters in creation order.
    public private(set) var parameters: [Parameter] = []
    private var index: [String: Int] = [:]
    /// Parameters excluded from optimisation (by name).
    public private(set) var frozen: Set<String> = []
    /// Number of Float32 values in the arena.
    public private(set) var count = 0
    /// The parameter values (the first ``count`` elements are in use).
    public private(set) var values = TensorStorage(uninitializedCount: 0)
    private var gradientArena: TensorStorage?
    /// Parameters (by index) whose gradients ``zeroGrad()`` cleared but whose slices still hold
    /// old values: every accessor zero-fills them before handing the arena out, except
    /// ``gradientForOverwrite(_:)``, whose caller writes every element instead.
    private var stale: [Bool] = []
    private var staleCount = 0
    /// Linear weights packed for the GEMM kernel inside ``withPackedWeights(upToRows:_:)`` (nil
    /// outside one).
    let packedWeights = PthreadLock<PackedWeightScope?>(nil)

    /// An empty store.
    public init() {}

    /// The root builder (no name prefix).
    public var builder: ParameterBuilder { ParameterBuilder(store: self, prefix: "") }

    /// A root builder that registers zeros instead of running initialisers, for a layer tree whose
    /// weights are copied or loaded next (see ``ParameterBuilder/initializesValues``).
    public var placeholderBuilder: ParameterBuilder { ParameterBuilder(store: self, prefix: "", initializesValues: false) }

    /// The gradients, same layout as ``values``: exactly ``count`` values, allocated (zeroed) on
    /// first use, so a store that is never differentiated (an EMA shadow, an inference model)
    /// holds no gradient memory.
    public var gradients: TensorStorage {
        if staleCount > 0 { clearStaleGradients() }
        return sizedArena()
    }

    /// The gradient arena, allocated or grown (zero-filled past the old end) to ``count`` values.
    private func sizedArena() -> TensorStorage {
        if let g = gradientArena, g.count >= count { return g }
        let g = TensorStorage(count: count, repeating: 0)
        if let old = gradientArena { g.mutableBase.update(from: old.base, count: old.count) }
        gradientArena = g
        return g
    }

    /// Whether the gradient arena has been allocated (by ``gradients`` or a gradient pointer).
    public var hasGradients: Bool { gradientArena != nil }

    /// Registers a parameter with an initial value; the name must be new.
    @discardableResult
    public func add(_ name: String, _ initial: Tensor) -> Parameter {
        let p = reserve(name, shape: initial.shape)
        initial.withUnsafeBufferPointer { src in
            if let b = src.baseAddress { pointer(p).update(from: b, count: p.count) }
        }
        return p
    }

    /// Registers a zero-valued parameter of `shape` (for weights that are loaded or copied next).
    @discardableResult
    public func add(_ name: String, zerosOf shape: Shape) -> Parameter {
        let p = reserve(name, shape: shape)
        pointer(p).update(repeating: 0, count: p.count)
        return p
    }

    /// Appends a parameter slot (values uninitialised).
    private func reserve(_ name: String, shape: Shape) -> Parameter {
        precondition(index[name] == nil, "ParameterStore: duplicate parameter name \(name)")
        let p = Parameter(name: name, shape: shape, offset: count)
        let newCount = count + p.count
        if newCount > values.count {
            // Grow geometrically so building a model copies the arena O(log n) times; the pages
            // past `count` are never touched, so the slack costs address space, not memory.
            let capacity = Swift.max(newCount, 2 * values.count, 1024)
            let v = TensorStorage(uninitializedCount: capacity)
            v.mutableBase.update(from: values.base, count: count)
            values = v
        }
        count = newCount
        index[name] = parameters.count
        parameters.append(p)
        if !stale.isEmpty { stale.append(false) }     // a new slice is zeroed when the arena grows
        return p
    }

    /// The parameter with this name, if any.
    public func parameter(named name: String) -> Parameter? { index[name].map { parameters[$0] } }

    /// Pointer to a parameter's values (valid until the next `add`).
    @inlinable public func pointer(_ p: Parameter) -> UnsafeMutablePointer<Float> { values.mutableBase + p.offset }
    /// Pointer to a parameter's gradient (valid until the next `add`; its contents until the next
    /// ``zeroGrad()``, after which ask again), frozen or not.
    public func gradientPointer(_ p: Parameter) -> UnsafeMutablePointer<Float> {
        let g = sizedArena().mutableBase + p.offset
        if takeStale(p) { g.update(repeating: 0, count: p.count) }
        return g
    }

    /// Whether `zeroGrad()` left `p`'s slice stale; clears the mark (the caller fills or assigns it).
    private func takeStale(_ p: Parameter) -> Bool {
        guard staleCount > 0, let i = index[p.name], stale[i] else { return false }
        stale[i] = false
        staleCount -= 1
        return true
    }

    /// Where a backward pass accumulates this parameter's gradient: its slice of the gradient
    /// arena, or nil when the parameter is frozen (its gradient is then not computed). Layers ask
    /// this, and only this, before writing a parameter gradient.
    public func trainableGradient(_ p: Parameter) -> UnsafeMutablePointer<Float>? {
        frozen.isEmpty || !frozen.contains(p.name) ? gradientPointer(p) : nil
    }

    /// ``trainableGradient(_:)`` for a kernel that may assign the gradient instead of adding to it:
    /// `accumulate` is false when ``zeroGrad()`` cleared it and nothing has been written since
    /// (the caller must then write every element, as a GEMM with beta 0 does, which saves the
    /// zero fill and the kernel's read of it); true when it holds a gradient to add to.
    public func gradientForOverwrite(_ p: Parameter) -> (pointer: UnsafeMutablePointer<Float>, accumulate: Bool)? {
        guard !isFrozen(p) else { return nil }
        let assign = takeStale(p)
        return (sizedArena().mutableBase + p.offset, !assign)
    }

    /// Whether the parameter is excluded from optimisation (see ``freeze(where:)``).
    public func isFrozen(_ p: Parameter) -> Bool { !frozen.isEmpty && frozen.contains(p.name) }

    /// A copy of a parameter's value as a tensor.
    public func value(_ p: Parameter) -> Tensor { Tensor(copying: values, offset: p.offset, shape: p.shape) }

    /// A copy of a parameter's gradient as a tensor.
    public func gradient(_ p: Parameter) -> Tensor { Tensor(copying: gradients, offset: p.offset, shape: p.shape) }

    /// Overwrites a parameter's value; the shape must match.
    public func setValue(_ p: Parameter, _ t: Tensor) {
        precondition(t.shape == p.shape, "setValue \(p.name): expected \(p.shape), got \(t.shape)")
        t.withUnsafeBufferPointer { if let b = $0.baseAddress { pointer(p).update(from: b, count: p.count) } }
    }

    /// Sets every gradient to zero. The fill is deferred: each parameter's slice is zeroed when
    /// something first asks for it (``gradients``, ``gradientPointer(_:)``, ``gradient(_:)``), or
    /// never, when a backward pass assigns it whole through ``gradientForOverwrite(_:)``. So a
    /// gradient pointer or arena obtained before this call must be asked for again afterwards:
    /// writing through the old one may be lost.
    public func zeroGrad() {
        guard gradientArena != nil else { return }
        stale = [Bool](repeating: true, count: parameters.count)
        staleCount = parameters.count
    }

    /// Zero-fills the slices ``zeroGrad()`` left stale, one fill per run of adjacent parameters.
    private func clearStaleGradients() {
        guard let arena = gradientArena else { staleCount = 0; return }
        let g = arena.mutableBase, valid = Swift.min(count, arena.count)
        var i = 0
        while i < parameters.count {
            guard stale[i] else { i += 1; continue }
            var j = i
            while j < parameters.count && stale[j] { stale[j] = false; j += 1 }
            let start = parameters[i].offset, end = parameters[j - 1].offset + parameters[j - 1].count
            if start < valid { (g + start).update(repeating: 0, count: Swift.min(end, valid) - start) }
            i = j
        }
        staleCount = 0
    }

    /// Excludes parameters whose names satisfy `predicate` from optimisation.
    public func freeze(where predicate: (String) -> Bool) {
        for p in parameters where predicate(p.name) { frozen.insert(p.name) }
    }

    /// Re-enables optimisation of every parameter.
    public func unfreezeAll() { frozen.removeAll() }

    /// All values as a name -> tensor dictionary (copies), e.g. for checkpoints.
    public func stateDict() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, value($0)) })
    }

    /// Makes this store read and write `other`'s values, keeping its own gradient arena: a
    /// replica for data parallelism inside one process (each thread differentiates its share of a
    /// batch into its own arena; the arenas are then summed). Both stores must hold the same
    /// parameters in the same order (build the same layer tree on both); the frozen set is copied.
    /// The link holds until either store registers another parameter. Calling it again on a
    /// linked store is cheap (the names are compared only when the storage changes): a trainer
    /// calls it every step to pick up freezing changes.
    public func shareValues(with other: ParameterStore) {
        precondition(other.count == count && other.parameters.count == parameters.count,
                     "shareValues: the stores hold different parameters (\(parameters.count) and \(other.parameters.count))")
        if values !== other.values {
            precondition(other.parameters.map(\.name) == parameters.map(\.name),
                         "shareValues: the stores hold different parameter names")
            values = other.values
        }
        frozen = other.frozen
    }

    /// Copies every value from another store with the same layout.
    public func copyValues(from other: ParameterStore) {
        precondition(other.count == count, "copyValues: stores hold \(other.count) and \(count) values")
        Kernels.copy(other.values.base, into: values.mutableBase, count: count)
    }
}

/// Creates parameters under a dotted name prefix (`store.builder.scope("encoder").scope("norm")`).
public struct ParameterBuilder {
    /// The store parameters are added to.
    public let store: ParameterStore
    /// The dotted prefix ("" at the root).
    public let prefix: String
    /// False for a layer tree whose weights are copied or loaded right after it is built (an EMA
    /// shadow, a transferred model): ``parameter(_:shape:initializer:)`` then registers zeros
    /// without running the initialiser (no random numbers drawn).
    public let initializesValues: Bool

    /// A builder for `store` under `prefix`.
    public init(store: ParameterStore, prefix: String, initializesValues: Bool = true) {
        self.store = store
        self.prefix = prefix
        self.initializesValues = initializesValues
    }

    /// A builder one level deeper: `prefix.name`.
    public func scope(_ name: String) -> ParameterBuilder {
        ParameterBuilder(store: store, prefix: prefix.isEmpty ? name : prefix + "." + name,
                         initializesValues: initializesValues)
    }

    /// A builder for the `i`-th element of a list (`prefix.i`).
    public func scope(_ i: Int) -> ParameterBuilder { scope(String(i)) }

    /// Adds the parameter `prefix.name` with the given initial value.
    public func parameter(_ name: String, _ initial: Tensor) -> Parameter {
        store.add(prefix.isEmpty ? name : prefix + "." + name, initial)
    }

    /// Adds the parameter `prefix.name` of `shape`, initialised by `initializer` unless this builder
    /// does not ``initializesValues`` (then zeros, and `initializer` is not evaluated).
    public func parameter(_ name: String, shape: Shape, initializer: @autoclosure () -> Tensor) -> Parameter {
        let full = prefix.isEmpty ? name : prefix + "." + name
        guard initializesValues else { return store.add(full, zerosOf: shape) }
        let initial = initializer()
        precondition(initial.shape == shape, "parameter \(full): initialiser gave \(initial.shape), expected \(shape)")
        return store.add(full, initial)
    }
}
