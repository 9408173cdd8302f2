import Tensor

/// A linear weight's input-column block, as `Functional` multiplies it.
struct PackedWeightKey: Hashable {
    let offset: Int, columnOffset: Int, width: Int
}

/// A weight's pack in an open scope: being packed by one thread, or ready for all.
enum PackedWeightEntry {
    case packing
    case ready(Gemm.PackedMatrix)
}

/// The packs of an open ``ParameterStore/withPackedWeights(upToRows:_:)`` scope.
struct PackedWeightScope {
    let maxRows: Int
    var packs: [PackedWeightKey: PackedWeightEntry] = [:]
}

extension ParameterStore {
    /// Runs `body` with every linear layer's weight packed for the GEMM kernel once, the first
    /// time a forward pass inside `body` multiplies by it, and reused by every later pass and
    /// every thread: a sampling run's forward passes then skip re-packing the weights (the
    /// batch's shares read one shared copy). `Sampling.sample` in ViTDiffusion does this for you.
    ///
    /// Only products of at most `maxRows` rows (tokens in the batch, or in one thread's share of
    /// it) use the packs: packing a weight costs about as much as multiplying a few hundred rows
    /// by it, so it pays at small batches (3-4% of a small@64 forward pass at 2 images per
    /// thread) and not at large ones, where skipping it also saves the memory.
    ///
    /// The packed copies are taken from the values at first use, so **the values must not change
    /// inside `body`** (no optimiser step, no loading): a pass would still multiply by the old
    /// weights. They are released when `body` returns; a nested call just runs its body. The
    /// results are the same, bit for bit, as without packing (but for the last-bit exception
    /// `Gemm.sgemm(m:a:packedB:c:bias:)` names: a weight of more than 2^20 values in a product
    /// that several threads split by rows). Costs one packed copy of the
    /// weights' memory (about the model's size); without the own GEMM kernels (see
    /// ``Gemm/usesOwnKernels``) nothing is packed.
    ///
    /// ```swift
    /// let eps = model.store.withPackedWeights {
    ///     (0..<4).map { _ in model.predictNoise(x, timesteps: [Float(500)]) }
    /// }
    /// ```
    public func withPackedWeights<R>(upToRows maxRows: Int = 4096, _ body: () throws -> R) rethrows -> R {
        let opened = Gemm.hasSerialKernel && packedWeights.withLock { scope in
            guard scope == nil else { return false }
            scope = PackedWeightScope(maxRows: maxRows)
            return true
        }
        defer { if opened { packedWeights.withLock { $0 = nil } } }
        return try body()
    }

    /// Bytes of weights packed by the enclosing ``withPackedWeights(upToRows:_:)`` so far (0
    /// outside one).
    public var packedWeightBytes: Int {
        packedWeights.withLock { scope in
            scope?.packs.values.reduce(0) { total, entry in
                if case .ready(let packed) = entry { return total + packed.byteCount }
                return total
            } ?? 0
        }
    }

    /// The packed op(B) = `W[:, columnOffset..<columnOffset + width]^T` of a linear weight (out,
    /// in) for a product of `rows` rows inside ``withPackedWeights(upToRows:_:)``, packed now if
    /// this is its first use; nil outside one, above its row limit, or while another thread is
    /// packing it (the caller then packs its B blocks itself, as without a scope, instead of
    /// waiting: the shares of a batch reach each weight at about the same time, so the first
    /// forward pass's packing is split between them rather than done by one while the others wait).
    func packedLinearWeight(_ weight: Parameter, columnOffset: Int, width: Int, rows: Int) -> Gemm.PackedMatrix? {
        let key = PackedWeightKey(offset: weight.offset, columnOffset: columnOffset, width: width)
        let outDim = weight.shape[0], inDim = weight.count / Swift.max(outDim, 1)
        guard outDim > 0, width > 0 else { return nil }
        // (the ready pack, or nil; whether this thread is to pack it now)
        let (ready, claimed) = packedWeights.withLock { scope -> (Gemm.PackedMatrix?, Bool) in
            guard let open = scope, rows <= open.maxRows else { return (nil, false) }
            switch open.packs[key] {
            case .ready(let packed)?: return (packed, false)
            case .packing?: return (nil, false)
            case nil:
                scope?.packs[key] = .packing
                return (nil, true)
            }
        }
        guard claimed else { return ready }
        let packed = Gemm.PackedMatrix(transposeB: true, n: outDim, k: width, b: pointer(weight) + columnOffset, ldb: inDim)
        packedWeights.withLock { $0?.packs[key] = .ready(packed) }
        return packed
    }
}
