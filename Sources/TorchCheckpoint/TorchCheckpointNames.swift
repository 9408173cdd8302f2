/// Gives every tensor in an unpickled checkpoint its dotted name, as PyTorch's `state_dict()` would.
///
/// - dict (and `OrderedDict`) entries are named by their keys (str as is, int in decimal), nested
///   dicts joined with dots: `{'model': {'encoder.norm.weight': t}}` gives `model.encoder.norm.weight`;
/// - list and tuple items by their index (`opt.state.0.exp_avg`);
/// - TorchScript objects (`__torch__.*` classes) by their attributes, each object's own tensors
///   first and then its submodules, as `state_dict()` orders them;
/// - a bare tensor at the root has the empty key `""`.
///
/// Everything else is recorded with a description (and Python numbers with their value) so that
/// asking for it as a tensor says what it is. The first tensor with a name wins if two paths
/// spell the same name. Reference cycles and nesting deeper than ``maximumDepth`` are cut off; a
/// graph with more values than `maximumVisits` throws. Without shared containers every value costs
/// at least one pickle byte, so a limit of a few values per byte only stops a pickle that shares
/// containers over and over (n levels of two references to the level below: 2^n names).
struct TorchCheckpointNames {
    static let maximumDepth = 200

    private let maximumVisits: Int
    private let file: String
    /// The pickle entry the names come from (for error messages).
    let entry: String
    /// Tensor names in order.
    private(set) var keys: [String] = []
    private(set) var tensors: [String: TorchTensorRef] = [:]
    /// What each non-tensor name holds ("a dict with 4 entries", "the int 1000", ...).
    private(set) var descriptions: [String: String] = [:]
    /// Python ints, floats and bools by name.
    private(set) var numbers: [String: Double] = [:]
    private var visits = 0
    private var onPath: Set<ObjectIdentifier> = []

    /// Names for the pickle `entry` of `file`; more than `maximumVisits` values throw.
    init(file: String, entry: String, maximumVisits: Int) {
        self.maximumVisits = maximumVisits
        self.file = file
        self.entry = entry
    }

    /// Names `value` and everything under it; `name` is its dotted path ("" for the root).
    mutating func add(_ value: PickleValue, name: String, depth: Int = 0) throws {
        visits += 1
        guard visits <= maximumVisits else {
            throw TorchCheckpointError(file: file, entry: entry,
                                       "more than \(maximumVisits) values reachable from the root: the pickle shares "
                                       + "containers over and over (a malformed or hostile file?)")
        }
        guard depth <= Self.maximumDepth else {
            descriptions[name] = "a value nested more than \(Self.maximumDepth) levels deep (not read)"
            return
        }
        switch value {
        case .tensor(let t):
            if t.storage.dtype == nil {
                descriptions[name] = value.summary
            } else if tensors[name] == nil {
                keys.append(name)
                tensors[name] = t
            }
        case .invalidTensor(let why):
            throw TorchCheckpointError(file: file, entry: entry, key: name, why)
        case .dict(let dict):
            try enter(dict, name: name, value.summary) {
                for (k, v) in dict.items {
                    guard let n = Self.keyName(k) else { continue }
                    try $0.add(v, name: Self.join(name, n), depth: depth + 1)
                }
            }
        case .list(let list):
            try addItems(list.items, of: value, id: ObjectIdentifier(list), name: name, depth: depth)
        case .tuple(let tuple):
            try addItems(tuple.items, of: value, id: ObjectIdentifier(tuple), name: name, depth: depth)
        case .object(let object):
            guard object.isTorchScript, let state = Self.dictState(object.state) else {
                descriptions[name] = value.summary
                return
            }
            try enter(object, name: name, "a TorchScript object of class \(object.className)") {
                for pass in 0..<2 {                                 // own tensors, then submodules
                    for (k, v) in state.items where Self.isTensor(v) == (pass == 0) {
                        guard let n = Self.keyName(k) else { continue }
                        try $0.add(v, name: Self.join(name, n), depth: depth + 1)
                    }
                }
            }
        case .int(let i):
            numbers[name] = Double(i)
            descriptions[name] = value.summary
        case .float(let d):
            numbers[name] = d
            descriptions[name] = value.summary
        case .bool(let b):
            numbers[name] = b ? 1 : 0
            descriptions[name] = value.summary
        default:
            descriptions[name] = value.summary
        }
    }

    /// Lists and tuples: items by index; a list of plain values is described, not descended into.
    private mutating func addItems(_ items: [PickleValue], of value: PickleValue, id: ObjectIdentifier,
                                   name: String, depth: Int) throws {
        guard items.contains(where: Self.isContainerOrTensor) else {
            descriptions[name] = value.summary
            return
        }
        try enter(id, name: name, value.summary) {
            for (i, item) in items.enumerated() { try $0.add(item, name: Self.join(name, String(i)), depth: depth + 1) }
        }
    }

    private mutating func enter(_ object: AnyObject, name: String, _ summary: String,
                                _ body: (inout TorchCheckpointNames) throws -> Void) throws {
        try enter(ObjectIdentifier(object), name: name, summary, body)
    }

    /// Runs `body` with `id` marked as being visited; a container met again on its own path is a cycle.
    private mutating func enter(_ id: ObjectIdentifier, name: String, _ summary: String,
                                _ body: (inout TorchCheckpointNames) throws -> Void) throws {
        descriptions[name] = summary
        guard !onPath.contains(id) else {
            descriptions[name] = summary + " (a reference cycle; not read)"
            return
        }
        onPath.insert(id)
        defer { onPath.remove(id) }
        try body(&self)
    }

    private static func join(_ prefix: String, _ name: String) -> String {
        prefix.isEmpty ? name : prefix + "." + name
    }

    /// The name a dict key gives its value; nil for keys that are not str, int or bool.
    private static func keyName(_ key: PickleValue) -> String? {
        switch key {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return b ? "True" : "False"
        default: return nil
        }
    }

    /// The attribute dict of an object's state (`BUILD` with a dict, or a (dict, slots) pair).
    private static func dictState(_ state: PickleValue?) -> PickleDict? {
        switch state {
        case .dict(let d): return d
        case .tuple(let t): if let first = t.items.first, case .dict(let d) = first { return d }
        default: break
        }
        return nil
    }

    private static func isTensor(_ v: PickleValue) -> Bool {
        switch v {
        case .tensor, .invalidTensor: return true
        default: return false
        }
    }

    private static func isContainerOrTensor(_ v: PickleValue) -> Bool {
        switch v {
        case .tensor, .invalidTensor, .dict, .list, .tuple, .object: return true
        default: return false
        }
    }
}
