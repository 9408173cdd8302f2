import Tensor

/// A value built by ``TorchUnpickler``: the Python objects a PyTorch checkpoint holds, with tensors
/// and storages resolved and every other object kept as an opaque description.
///
/// Lists, dicts and objects are reference types, as in Python: the pickle memo and the stack share
/// them, and `APPEND`/`SETITEM`/`BUILD` fill them in place. Tuples are too, so that every
/// container can be emptied when the graph is released (``dismantle(_:)``).
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// A tuple (a reference type only so that a deep graph can be taken apart without recursion).
    case tuple(PickleList)
    case list(PickleList)
    case dict(PickleDict)
    /// A class or function named by `GLOBAL`/`STACK_GLOBAL` (`module.name`).
    case global(String)
    /// A storage named by a persistent id.
    case storage(TorchStorageRef)
    /// A tensor rebuilt by `torch._utils._rebuild_tensor_v2` (or its relatives).
    case tensor(TorchTensorRef)
    /// A tensor whose rebuild arguments are inconsistent (the reason; thrown with the key).
    case invalidTensor(String)
    /// An instance made with `NEWOBJ` (a TorchScript module or any other class), state set by `BUILD`.
    case object(PickleObject)
    /// Anything else, described in words (an unknown callable's result, a huge integer, ...).
    case opaque(String)

    /// A short description for error messages ("a dict with 3 entries", "the int 42", ...).
    var summary: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return "the bool \(b ? "True" : "False")"
        case .int(let i): return "the int \(i)"
        case .float(let d): return "the float \(d)"
        case .string(let s): return "the string '\(s.count > 40 ? String(s.prefix(40)) + "..." : s)'"
        case .bytes(let b): return "\(b.count) bytes"
        case .tuple(let t): return "a tuple of \(t.items.count)"
        case .list(let l): return "a list of \(l.items.count)"
        case .dict(let d): return "a dict with \(d.items.count) entries"
        case .global(let g): return "the global \(g)"
        case .storage(let s): return "a bare storage (\(s.typeName), key '\(s.key)')"
        case .tensor(let t):
            if t.storage.dtype == nil { return "a tensor of unsupported storage type \(t.storage.typeName)" }
            return "a tensor"
        case .invalidTensor(let why): return "an invalid tensor (\(why))"
        case .object(let o): return "an object of class \(o.className)"
        case .opaque(let d): return "an unsupported object (\(d))"
        }
    }
}

/// A Python list (shared, filled in place), or the items of a tuple.
final class PickleList {
    var items: [PickleValue]
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A Python dict in insertion order (shared, filled in place); a repeated str/int key replaces the
/// earlier value, as in Python.
final class PickleDict {
    private(set) var items: [(key: PickleValue, value: PickleValue)] = []
    private var positions: [String: Int] = [:]

    func set(_ key: PickleValue, _ value: PickleValue) {
        let id: String?
        switch key {
        case .string(let s): id = "s" + s
        case .int(let i): id = "i\(i)"
        case .bool(let b): id = b ? "i1" : "i0"          // True == 1 in Python
        default: id = nil
        }
        if let id, let p = positions[id] {
            items[p].value = value
            return
        }
        if let id { positions[id] = items.count }
        items.append((key, value))
    }

    /// Empties the dict (used when taking an object graph apart).
    func removeAll() {
        items = []
        positions = [:]
    }
}

/// An instance of a class made by `NEWOBJ` (or `copyreg._reconstructor`); `BUILD` sets its state.
final class PickleObject {
    /// `module.name` of the class, e.g. `__torch__.torch.nn.modules.linear.Linear`.
    let className: String
    var state: PickleValue?
    init(className: String) { self.className = className }

    /// True for TorchScript classes (`torch.jit.save` writes modules as `__torch__.*` objects).
    var isTorchScript: Bool { className.hasPrefix("__torch__.") }
}

/// A storage named by the persistent id `('storage', type, key, location, numel)`, located in the
/// archive. `dtype` is nil for a storage type this reader cannot convert.
struct TorchStorageRef {
    /// The persistent-id key (the entry is `<archive>/data/<key>`).
    let key: String
    /// The zip entry holding the bytes.
    let entry: String
    /// `torch.FloatStorage` etc.
    let typeName: String
    let dtype: SafetensorsDType?
    /// Number of elements the persistent id declares.
    let count: Int
    /// Absolute byte offset of element 0 in the file.
    let dataStart: Int
}

/// A tensor view of a storage: sizes, strides (in elements) and the storage offset, checked to lie
/// inside the storage.
struct TorchTensorRef {
    let storage: TorchStorageRef
    let storageOffset: Int
    let shape: [Int]
    let strides: [Int]
}
