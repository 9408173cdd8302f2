/// A pickle virtual machine for the subset PyTorch writes (protocol 2, plus the protocol 0-4
/// opcodes a checkpoint might reasonably hold).
///
/// Nothing is executed: `GLOBAL` only names a class or function, and `REDUCE`/`NEWOBJ` build
/// tensors, dicts and tuples for the callables PyTorch uses (see ``TorchPickleCalls``). A name
/// outside ``TorchCheckpointGlobals/allowed`` stops the load with an error. Storages come from `persistentLoad` (`BINPERSID`).
/// Every read is bounds-checked; a malformed pickle throws an error naming the entry, the
/// opcode and its byte offset.
struct TorchUnpickler {
    private let bytes: TorchByteView
    private let file: String
    private let entry: String
    private let persistentLoad: (PickleValue) throws -> PickleValue
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var position = 0
    private var opcodeStart = 0
    private var opcode: UInt8 = 0

    /// An unpickler for the pickle `bytes` of zip entry `entry` in `file`.
    init(bytes: TorchByteView, file: String, entry: String,
         persistentLoad: @escaping (PickleValue) throws -> PickleValue) {
        self.bytes = bytes
        self.file = file
        self.entry = entry
        self.persistentLoad = persistentLoad
    }

    /// Runs the pickle to its `STOP` and hands the result to `consume`; afterwards every object
    /// built is taken apart iteratively (so deep or cyclic structures are freed without recursion).
    mutating func load<T>(_ consume: (PickleValue) throws -> T) throws -> T {
        defer {
            var roots = stack
            roots.append(contentsOf: memo.values)
            stack = []
            memo = [:]
            PickleValue.dismantle(roots)
        }
        let value = try run()
        stack.append(value)
        return try consume(value)
    }

    // MARK: - The machine

    private mutating func run() throws -> PickleValue {
        while true {
            opcodeStart = position
            guard bytes.contains(position, 1) else {
                throw TorchCheckpointError(file: file, entry: entry,
                                           "pickle truncated: it ends at byte \(position) without a STOP opcode")
            }
            opcode = bytes.u8(position)
            position += 1
            switch opcode {
            case 0x80:                                                  // PROTO
                let version = try readByte()
                guard version <= 5 else { throw fail("unknown pickle protocol \(version)") }
            case 0x95: _ = try readU64()                                // FRAME (a length; ignored)
            case ascii("."):                                            // STOP
                return try pop()
            case ascii("("): marks.append(stack.count)                  // MARK
            case ascii("0"): _ = try pop()                              // POP
            case ascii("1"): _ = try popMark()                          // POP_MARK
            case ascii("2"): stack.append(try top())                    // DUP
            case ascii("}"): stack.append(.dict(PickleDict()))          // EMPTY_DICT
            case ascii("]"), 0x8F: stack.append(.list(PickleList()))    // EMPTY_LIST, EMPTY_SET (a set reads as a list)
            case ascii(")"): stack.append(.tuple(PickleList()))                 // EMPTY_TUPLE
            case ascii("t"): stack.append(.tuple(PickleList(try popMark())))// TUPLE
            case 0x85, 0x86, 0x87:                                      // TUPLE1, TUPLE2, TUPLE3
                let n = Int(opcode - 0x84)
                guard stack.count - (marks.last ?? 0) >= n else { throw underflow() }
                let items = Array(stack.suffix(n))
                stack.removeLast(n)
                stack.append(.tuple(PickleList(items)))
            case ascii("l"), 0x91: stack.append(.list(PickleList(try popMark())))  // LIST, FROZENSET
            case ascii("d"):                                            // DICT
                let items = try popMark()
                let dict = PickleDict()
                try setItems(dict, items)
                stack.append(.dict(dict))
            case ascii("a"):                                            // APPEND
                let value = try pop()
                try append([value])
            case ascii("e"), 0x90: try append(try popMark())            // APPENDS, ADDITEMS
            case ascii("s"):                                            // SETITEM
                let value = try pop()
                let key = try pop()
                try setItems(into: [key, value])
            case ascii("u"): try setItems(into: try popMark())          // SETITEMS
            case ascii("X"): stack.append(.string(try readString(length: Int(try readU32()))))   // BINUNICODE
            case 0x8C: stack.append(.string(try readString(length: Int(try readByte()))))       // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try readString(length: try readLength64())))        // BINUNICODE8
            case ascii("T"): stack.append(.string(try readLatin1(length: try readSignedLength32())))  // BINSTRING
            case ascii("U"): stack.append(.string(try readLatin1(length: Int(try readByte()))))  // SHORT_BINSTRING
            case ascii("B"): stack.append(.bytes(try readBytes(Int(try readU32()))))             // BINBYTES
            case ascii("C"): stack.append(.bytes(try readBytes(Int(try readByte()))))            // SHORT_BINBYTES
            case 0x8E, 0x96: stack.append(.bytes(try readBytes(try readLength64())))             // BINBYTES8, BYTEARRAY8
            case ascii("J"): stack.append(.int(Int(Int32(bitPattern: try readU32()))))           // BININT
            case ascii("K"): stack.append(.int(Int(try readByte())))                             // BININT1
            case ascii("M"): stack.append(.int(Int(try readU16())))                              // BININT2
            case 0x8A: stack.append(try readLong(length: Int(try readByte())))                   // LONG1
            case 0x8B: stack.append(try readLong(length: try readSignedLength32()))              // LONG4
            case ascii("I"): stack.append(try parseTextInt(try readLine()))                      // INT
            case ascii("L"): stack.append(try parseTextInt(try readLine()))                      // LONG
            case ascii("F"):                                                                     // FLOAT
                let line = try readLine()
                guard let d = Double(line) else { throw fail("FLOAT argument '\(line)' is not a number") }
                stack.append(.float(d))
            case ascii("G"): stack.append(.float(Double(bitPattern: UInt64(bigEndian: try readRawU64()))))  // BINFLOAT
            case 0x88: stack.append(.bool(true))                       // NEWTRUE
            case 0x89: stack.append(.bool(false))                      // NEWFALSE
            case ascii("N"): stack.append(.none)                       // NONE
            case ascii("q"): memo[Int(try readByte())] = try top()     // BINPUT
            case ascii("r"): memo[Int(try readU32())] = try top()      // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()                    // MEMOIZE
            case ascii("p"): memo[try parseMemoIndex(try readLine())] = try top()  // PUT
            case ascii("h"): stack.append(try memoGet(Int(try readByte())))        // BINGET
            case ascii("j"): stack.append(try memoGet(Int(try readU32())))         // LONG_BINGET
            case ascii("g"): stack.append(try memoGet(try parseMemoIndex(try readLine())))  // GET
            case ascii("c"):                                            // GLOBAL
                let module = try readLine()
                let name = try readLine()
                stack.append(.global(try allowedGlobal(module + "." + name)))
            case 0x93:                                                  // STACK_GLOBAL
                let name = try pop()
                let module = try pop()
                guard case .string(let n) = name, case .string(let m) = module else {
                    throw fail("STACK_GLOBAL needs two strings, got \(module.summary) and \(name.summary)")
                }
                stack.append(.global(try allowedGlobal(m + "." + n)))
            case ascii("R"):                                            // REDUCE
                let args = try pop()
                let callable = try pop()
                stack.append(TorchPickleCalls.reduce(callable, args))
            case ascii("b"):                                            // BUILD
                let state = try pop()
                TorchPickleCalls.build(try top(), state: state)
            case 0x81:                                                  // NEWOBJ
                _ = try pop()
                stack.append(TorchPickleCalls.newObject(try pop()))
            case 0x92:                                                  // NEWOBJ_EX
                _ = try pop()
                _ = try pop()
                stack.append(TorchPickleCalls.newObject(try pop()))
            case ascii("Q"):                                            // BINPERSID
                stack.append(try persistentLoad(try pop()))
            default:
                if let name = Self.unsupported[opcode] {
                    throw fail("opcode \(name) is not supported in PyTorch checkpoints")
                }
                throw TorchCheckpointError(
                    file: file, entry: entry,
                    "pickle: unknown opcode 0x\(String(opcode, radix: 16, uppercase: true)) at byte \(opcodeStart)")
            }
        }
    }

    /// Known opcodes this reader refuses (PyTorch never writes them).
    private static let unsupported: [UInt8: String] = [
        ascii("P"): "PERSID", ascii("i"): "INST", ascii("o"): "OBJ", ascii("S"): "STRING",
        ascii("V"): "UNICODE", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
        0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
    ]

    // MARK: - Stack

    private func fail(_ problem: String) -> TorchCheckpointError {
        let name = Self.names[opcode] ?? Self.unsupported[opcode] ?? "0x" + String(opcode, radix: 16, uppercase: true)
        return TorchCheckpointError(file: file, entry: entry, "pickle: \(problem) (opcode \(name) at byte \(opcodeStart))")
    }

    /// Names of the supported opcodes, for error messages.
    private static let names: [UInt8: String] = [
        0x80: "PROTO", 0x95: "FRAME", ascii("."): "STOP", ascii("("): "MARK", ascii("0"): "POP",
        ascii("1"): "POP_MARK", ascii("2"): "DUP", ascii("}"): "EMPTY_DICT", ascii("]"): "EMPTY_LIST",
        0x8F: "EMPTY_SET", ascii(")"): "EMPTY_TUPLE", ascii("t"): "TUPLE", 0x85: "TUPLE1", 0x86: "TUPLE2",
        0x87: "TUPLE3", ascii("l"): "LIST", 0x91: "FROZENSET", ascii("d"): "DICT", ascii("a"): "APPEND",
        ascii("e"): "APPENDS", 0x90: "ADDITEMS", ascii("s"): "SETITEM", ascii("u"): "SETITEMS",
        ascii("X"): "BINUNICODE", 0x8C: "SHORT_BINUNICODE", 0x8D: "BINUNICODE8", ascii("T"): "BINSTRING",
        ascii("U"): "SHORT_BINSTRING", ascii("B"): "BINBYTES", ascii("C"): "SHORT_BINBYTES", 0x8E: "BINBYTES8",
        0x96: "BYTEARRAY8", ascii("J"): "BININT", ascii("K"): "BININT1", ascii("M"): "BININT2", 0x8A: "LONG1",
        0x8B: "LONG4", ascii("I"): "INT", ascii("L"): "LONG", ascii("F"): "FLOAT", ascii("G"): "BINFLOAT",
        0x88: "NEWTRUE", 0x89: "NEWFALSE", ascii("N"): "NONE", ascii("q"): "BINPUT", ascii("r"): "LONG_BINPUT",
        0x94: "MEMOIZE", ascii("p"): "PUT", ascii("h"): "BINGET", ascii("j"): "LONG_BINGET", ascii("g"): "GET",
        ascii("c"): "GLOBAL", 0x93: "STACK_GLOBAL", ascii("R"): "REDUCE", ascii("b"): "BUILD", 0x81: "NEWOBJ",
        0x92: "NEWOBJ_EX", ascii("Q"): "BINPERSID",
    ]

    private func underflow() -> TorchCheckpointError { fail("stack underflow") }

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.popLast() else { throw underflow() }
        return v
    }

    private func top() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.last else { throw underflow() }
        return v
    }

    private mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw fail("no MARK on the stack") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    /// `name` if a checkpoint may name it (``TorchCheckpointGlobals``); otherwise the load stops here.
    private func allowedGlobal(_ name: String) throws -> String {
        guard TorchCheckpointGlobals.isAllowed(name) else {
            throw TorchCheckpointError(file: file, entry: entry,
                                       "refused: the pickle names '\(name)' at byte \(opcodeStart), which a tensor checkpoint does not use "
                                       + "(nothing was executed; only tensors, containers and numbers load)")
        }
        return name
    }

    private func memoGet(_ index: Int) throws -> PickleValue {
        guard let v = memo[index] else { throw fail("memo slot \(index) was never set") }
        return v
    }

    private mutating func append(_ items: [PickleValue]) throws {
        let target = try top()
        switch target {
        case .list(let list): list.items.append(contentsOf: items)
        case .object, .opaque: break                        // an unknown list-like class: items ignored
        default: throw fail("APPEND to \(target.summary)")
        }
    }

    private mutating func setItems(into items: [PickleValue]) throws {
        let target = try top()
        switch target {
        case .dict(let dict): try setItems(dict, items)
        case .object, .opaque: guard items.count % 2 == 0 else { throw fail("odd number of SETITEMS values") }
        default: throw fail("SETITEM on \(target.summary)")
        }
    }

    private func setItems(_ dict: PickleDict, _ items: [PickleValue]) throws {
        guard items.count % 2 == 0 else { throw fail("odd number of values (\(items.count)) for a dict") }
        for i in stride(from: 0, to: items.count, by: 2) { dict.set(items[i], items[i + 1]) }
    }

    // MARK: - Arguments

    private mutating func take(_ n: Int) throws -> Int {
        guard bytes.contains(position, n) else {
            throw fail("truncated: needs \(n) more bytes at byte \(position), but the pickle has \(bytes.count)")
        }
        defer { position += n }
        return position
    }

    private mutating func readByte() throws -> UInt8 { bytes.u8(try take(1)) }
    private mutating func readU16() throws -> UInt16 { bytes.u16(try take(2)) }
    private mutating func readU32() throws -> UInt32 { bytes.u32(try take(4)) }
    private mutating func readU64() throws -> UInt64 { bytes.u64(try take(8)) }
    private mutating func readRawU64() throws -> UInt64 {
        bytes.base.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self)
    }

    private mutating func readLength64() throws -> Int {
        let n = try readU64()
        guard n <= UInt64(bytes.count) else { throw fail("truncated: length \(n) is past the end") }
        return Int(n)
    }

    private mutating func readSignedLength32() throws -> Int {
        let n = Int32(bitPattern: try readU32())
        guard n >= 0 else { throw fail("negative length \(n)") }
        return Int(n)
    }

    private mutating func readBytes(_ n: Int) throws -> [UInt8] {
        let start = try take(n)
        return Array(UnsafeRawBufferPointer(start: bytes.base + start, count: n))
    }

    private mutating func readString(length n: Int) throws -> String {
        let start = try take(n)
        return String(decoding: UnsafeRawBufferPointer(start: bytes.base + start, count: n), as: UTF8.self)
    }

    private mutating func readLatin1(length n: Int) throws -> String {
        let start = try take(n)
        var s = String.UnicodeScalarView()
        for i in 0..<n { s.append(Unicode.Scalar(bytes.u8(start + i))) }
        return String(s)
    }

    /// A newline-terminated argument (GLOBAL, INT, ...), without the newline.
    private mutating func readLine() throws -> String {
        var end = position
        while end < bytes.count && bytes.u8(end) != 0x0A { end += 1 }
        guard end < bytes.count else { throw fail("truncated: no newline after a text argument") }
        let s = String(decoding: UnsafeRawBufferPointer(start: bytes.base + position, count: end - position),
                       as: UTF8.self)
        position = end + 1
        return s
    }

    /// A little-endian two's-complement integer of `n` bytes (LONG1/LONG4); too large for `Int` is opaque.
    private mutating func readLong(length n: Int) throws -> PickleValue {
        let start = try take(n)
        guard n > 0 else { return .int(0) }
        let negative = bytes.u8(start + n - 1) & 0x80 != 0
        let fill: UInt8 = negative ? 0xFF : 0x00
        if n > 8 {
            for i in 8..<n where bytes.u8(start + i) != fill {
                return .opaque("an integer of \(n) bytes")
            }
            guard (bytes.u8(start + 7) & 0x80 != 0) == negative else { return .opaque("an integer of \(n) bytes") }
        }
        var bits: UInt64 = negative ? ~0 : 0
        for i in 0..<min(n, 8) {
            bits &= ~(UInt64(0xFF) << (8 * UInt64(i)))
            bits |= UInt64(bytes.u8(start + i)) << (8 * UInt64(i))
        }
        return .int(Int(Int64(bitPattern: bits)))
    }

    private func parseTextInt(_ line: String) throws -> PickleValue {
        if opcode == ascii("I") && line == "00" { return .bool(false) }
        if opcode == ascii("I") && line == "01" { return .bool(true) }
        let digits = line.hasSuffix("L") ? String(line.dropLast()) : line
        guard let i = Int(digits) else {
            if digits.allSatisfy({ $0.isNumber || $0 == "-" }) && !digits.isEmpty {
                return .opaque("an integer of \(digits.count) digits")
            }
            throw fail("'\(line)' is not an integer")
        }
        return .int(i)
    }

    private func parseMemoIndex(_ line: String) throws -> Int {
        guard let i = Int(line), i >= 0 else { throw fail("memo index '\(line)' is not a non-negative integer") }
        return i
    }
}

/// The byte value of an ASCII character (for opcode cases).
private func ascii(_ c: Unicode.Scalar) -> UInt8 { UInt8(ascii: c) }

extension PickleValue {
    /// Releases the object graph reachable from `roots` without recursion: containers are
    /// emptied one at a time, so deep nesting cannot overflow the stack and cycles are broken.
    static func dismantle(_ roots: [PickleValue]) {
        var work = roots
        while let value = work.popLast() {
            switch value {
            case .tuple(let list), .list(let list):
                work.append(contentsOf: list.items)
                list.items = []
            case .dict(let dict):
                for (k, v) in dict.items { work.append(k); work.append(v) }
                dict.removeAll()
            case .object(let object):
                if let state = object.state { work.append(state) }
                object.state = nil
            default: break
            }
        }
    }
}
