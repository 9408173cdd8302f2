/// What `REDUCE`, `NEWOBJ` and `BUILD` make of the callables and classes a PyTorch checkpoint names.
///
/// Recognised: the tensor rebuilders of `torch._utils` / `torch._tensor`, `collections.OrderedDict`
/// (and `defaultdict`, `dict`), `torch.Size` and `tuple`, the `torch.jit._pickle` list builders,
/// and `copyreg._reconstructor`. Any other callable yields an opaque value, so unrelated objects
/// (optimizer settings, an argparse `Namespace`, numpy scalars) never stop the tensors from loading.
enum TorchPickleCalls {
    /// The result of calling `callable(*args)`.
    static func reduce(_ callable: PickleValue, _ args: PickleValue) -> PickleValue {
        guard case .global(let name) = callable else {
            return .opaque("the result of calling \(callable.summary)")
        }
        let a: [PickleValue]
        switch args {
        case .tuple(let t): a = t.items
        case .list(let l): a = l.items
        default: return .opaque("the result of calling \(name) with \(args.summary)")
        }
        switch name {
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            return rebuildTensor(a, function: name)
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let data = a.first else { return .invalidTensor("\(name) called without arguments") }
            return data
        case "torch._tensor._rebuild_from_type_v2", "torch._tensor._rebuild_from_type":
            // (func, new_type, args, state): the tensor is func(*args); the subclass and state are dropped.
            guard a.count >= 3 else { return .invalidTensor("\(name) expects 4 arguments, got \(a.count)") }
            return reduce(a[0], a[2])
        case "collections.OrderedDict", "builtins.dict", "__builtin__.dict":
            let dict = PickleDict()
            if let pairs = a.first { fill(dict, pairs: pairs) }
            return .dict(dict)
        case "collections.defaultdict":
            return .dict(PickleDict())                      // a[0] is the default factory
        case "torch.Size", "builtins.tuple", "__builtin__.tuple":
            return .tuple(PickleList(elements(a.first) ?? []))
        case "builtins.list", "__builtin__.list", "builtins.set", "__builtin__.set", "builtins.frozenset":
            return .list(PickleList(elements(a.first) ?? []))
        case "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_floatlist",
             "torch.jit._pickle.build_doublelist", "torch.jit._pickle.build_boollist",
             "torch.jit._pickle.build_tensorlist", "torch.jit._pickle.restore_type_tag":
            return a.first ?? .none
        case "copyreg._reconstructor", "copy_reg._reconstructor":
            return newObject(a.first ?? .none)
        default:
            return .opaque("the result of calling \(name)")
        }
    }

    /// A new instance of `cls` (`NEWOBJ`), to be filled by `BUILD` or `SETITEMS`.
    static func newObject(_ cls: PickleValue) -> PickleValue {
        guard case .global(let name) = cls else { return .opaque("an instance of \(cls.summary)") }
        switch name {
        case "collections.OrderedDict", "collections.defaultdict", "builtins.dict": return .dict(PickleDict())
        case "builtins.list": return .list(PickleList())
        default: return .object(PickleObject(className: name))
        }
    }

    /// `BUILD`: sets an object's state. State given to anything else is dropped: for a dict it is
    /// its Python attributes (a state dict's `_metadata`), not items; for a tensor, its attributes.
    static func build(_ target: PickleValue, state: PickleValue) {
        if case .object(let object) = target { object.state = state }
    }

    /// `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`: a view checked to lie inside its storage.
    static func rebuildTensor(_ a: [PickleValue], function: String) -> PickleValue {
        guard a.count >= 4 else {
            return .invalidTensor("\(function) expects at least 4 arguments, got \(a.count)")
        }
        guard case .storage(let storage) = a[0] else {
            return .invalidTensor("\(function): the storage argument is \(a[0].summary), not a storage")
        }
        guard case .int(let offset) = a[1], offset >= 0 else {
            return .invalidTensor("\(function): storage offset is \(a[1].summary), not a non-negative int")
        }
        guard let shape = ints(a[2]), let strides = ints(a[3]) else {
            return .invalidTensor("\(function): size \(a[2].summary) or stride \(a[3].summary) is not a tuple of ints")
        }
        let where_ = "size \(shape), stride \(strides), offset \(offset)"
        guard shape.count == strides.count else {
            return .invalidTensor("size and stride have different lengths (\(where_))")
        }
        guard shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            return .invalidTensor("negative size or stride (\(where_))")
        }
        // The last element read is offset + sum((size_i - 1) * stride_i); nothing is read when a size is 0.
        var count = 1
        var last = offset
        for (n, s) in zip(shape, strides) {
            let (c, o1) = count.multipliedReportingOverflow(by: n)
            guard !o1 else { return .invalidTensor("element count overflows (\(where_))") }
            count = c
            if n > 0 {
                let (step, o2) = (n - 1).multipliedReportingOverflow(by: s)
                let (l, o3) = last.addingReportingOverflow(step)
                guard !o2 && !o3 else { return .invalidTensor("storage extent overflows (\(where_))") }
                last = l
            }
        }
        if count > 0 && last >= storage.count {
            return .invalidTensor("storage '\(storage.entry)' holds \(storage.count) elements, but the tensor "
                                  + "(\(where_)) needs \(last + 1)")
        }
        return .tensor(TorchTensorRef(storage: storage, storageOffset: offset, shape: shape, strides: strides))
    }

    private static func ints(_ v: PickleValue) -> [Int]? {
        guard let items = elements(v) else { return nil }
        var out: [Int] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .int(let i) = item else { return nil }
            out.append(i)
        }
        return out
    }

    private static func elements(_ v: PickleValue?) -> [PickleValue]? {
        switch v {
        case .tuple(let t): return t.items
        case .list(let l): return l.items
        default: return nil
        }
    }

    /// Fills `dict` from a list of (key, value) pairs (the old `OrderedDict` pickle form).
    private static func fill(_ dict: PickleDict, pairs: PickleValue) {
        for pair in elements(pairs) ?? [] {
            if let kv = elements(pair), kv.count == 2 { dict.set(kv[0], kv[1]) }
        }
    }
}
