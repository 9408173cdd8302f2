/// The globals (classes and functions) a PyTorch tensor checkpoint may name.
///
/// Loading never executes anything: the unpickler only interprets these names. It still refuses,
/// at the first `GLOBAL` / `STACK_GLOBAL` opcode, any name outside this set (`os.system`,
/// `builtins.eval`, `subprocess.Popen`, a model class, ...), as PyTorch's `weights_only`
/// unpickler does: a file that names one is not a plain state dict, and saying so at once is
/// clearer than loading around it. TorchScript archives (`torch.jit.save`) name their module
/// classes as `__torch__.*`; those are allowed, since their code is never run here.
public enum TorchCheckpointGlobals {
    /// The allowed dotted names: the tensor and parameter rebuilders, storage classes, dtypes and
    /// layouts, the containers a state dict or an optimizer state uses, and numpy's scalar and
    /// dtype (data, as `weights_only` accepts them).
    public static let allowed: Set<String> = {
        var names: Set<String> = [
            "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state", "torch._tensor._rebuild_from_type",
            "torch._tensor._rebuild_from_type_v2", "torch.Size", "torch.Tensor", "torch.nn.parameter.Parameter",
            "torch.device", "torch.strided", "torch.serialization._get_layout", "torch.UntypedStorage",
            "torch.storage.UntypedStorage", "torch.storage.TypedStorage",
            "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_floatlist", "torch.jit._pickle.build_doublelist",
            "torch.jit._pickle.build_boollist", "torch.jit._pickle.build_tensorlist", "torch.jit._pickle.restore_type_tag",
            "collections.OrderedDict", "collections.defaultdict", "collections.Counter", "_codecs.encode",
            "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
        ]
        for kind in ["Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool", "ComplexFloat", "ComplexDouble"] {
            names.insert("torch.\(kind)Storage")
        }
        for dtype in ["float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long", "int32",
                      "int", "int16", "short", "int8", "uint8", "bool", "complex64", "complex128"] {
            names.insert("torch.\(dtype)")
        }
        for builtin in ["dict", "list", "tuple", "set", "frozenset", "bytearray", "complex", "int", "float", "bool", "str", "slice"] {
            names.insert("builtins.\(builtin)")
            names.insert("__builtin__.\(builtin)")
        }
        return names
    }()

    /// Whether a checkpoint may name `global`: a name in ``allowed``, or a TorchScript class
    /// (`__torch__.*`: a module type defined by the archive's own code, which is never run here).
    public static func isAllowed(_ global: String) -> Bool { allowed.contains(global) || global.hasPrefix("__torch__.") }
}
