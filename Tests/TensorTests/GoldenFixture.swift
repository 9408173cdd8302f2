// Loader for the golden fixtures written by scripts/make_golden.py (PyTorch, float64).
//
// Files: Tests/TensorTests/Fixtures/golden_<name>.json, one case per file, bundled with
// `resources: [.copy("Fixtures")]`. Layout:
//
//     {
//       "op": "conv2d",                        // the torch op
//       "description": "...",                  // shapes and settings in one line
//       "generator": "scripts/make_golden.py (torch 2.13.0+cpu, float64)",
//       "seed": 5,
//       "params": {"stride": [2, 2], "padding": [1, 1], "count_include_pad": true, "eps": 1e-05},
//       "tensors": {
//         "input":  {"shape": [2, 3, 9, 7], "data": [... row-major ...]},
//         "output": {...}, "grad_output": {...}, "grad_input": {...}, ...
//       }
//     }
//
// "params" values are a bool, a number or a list of numbers. Tensor keys follow torch argument
// names: inputs ("input", "weight", "bias", "q", "k", "v"), "output", the upstream gradient
// "grad_output", and "grad_<input>" for each gradient; by-products are named plainly ("mean",
// "rstd", "indices"). Inputs are exactly float32; results are float64 rounded to 9 digits.
//
// ```swift
// let fx = try GoldenFixture.load("golden_conv2d")
// let x = try fx.tensor("input")                 // (2, 3, 9, 7)
// let stride = try fx.ints("stride")             // [2, 2]
// ```

import Foundation
import Tensor

/// Why a golden fixture could not be read; each message names the file and, where known, the key.
enum GoldenFixtureError: Error, CustomStringConvertible {
    case missingFile(String)
    case unreadable(String, underlying: String)
    case missingKey(file: String, key: String)
    case wrongType(file: String, key: String, expected: String)
    case badShape(file: String, key: String, shape: [Int], count: Int)

    var description: String {
        switch self {
        case .missingFile(let f): "golden fixture \(f).json not found in the test bundle's Fixtures directory"
        case .unreadable(let f, let e): "golden fixture \(f).json could not be decoded: \(e)"
        case .missingKey(let f, let k): "golden fixture \(f).json has no key \"\(k)\""
        case .wrongType(let f, let k, let t): "golden fixture \(f).json: \"\(k)\" is not \(t)"
        case .badShape(let f, let k, let s, let n):
            "golden fixture \(f).json: \"\(k)\" has shape \(s) but \(n) values"
        }
    }
}

/// One golden case: named tensors and parameters computed by PyTorch.
struct GoldenFixture {
    /// A "params" value.
    enum Param: Decodable {
        case bool(Bool), number(Double), numbers([Double]), string(String)

        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let d = try? c.decode(Double.self) { self = .number(d) }
            else if let a = try? c.decode([Double].self) { self = .numbers(a) }
            else { self = .string(try c.decode(String.self)) }
        }
    }

    /// A "tensors" value.
    struct Entry: Decodable {
        let shape: [Int]
        let data: [Double]
    }

    private struct File: Decodable {
        let op: String
        let description: String
        let params: [String: Param]
        let tensors: [String: Entry]
    }

    /// The fixture's file name without extension, e.g. "golden_conv2d".
    let name: String
    /// The torch op, e.g. "conv2d".
    let op: String
    /// Shapes and settings in one line.
    let description: String
    /// Scalar and list parameters.
    let params: [String: Param]
    /// Named tensors, row-major float64 values.
    let entries: [String: Entry]

    /// Reads `Fixtures/<name>.json` from the test bundle.
    static func load(_ name: String) throws -> GoldenFixture {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures") else {
            throw GoldenFixtureError.missingFile(name)
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
        } catch {
            throw GoldenFixtureError.unreadable(name, underlying: "\(error)")
        }
        for (key, e) in file.tensors where e.shape.reduce(1, *) != e.data.count {
            throw GoldenFixtureError.badShape(file: name, key: key, shape: e.shape, count: e.data.count)
        }
        return GoldenFixture(name: name, op: file.op, description: file.description,
                             params: file.params, entries: file.tensors)
    }

    /// The tensor `key` as Float32, with its shape.
    func tensor(_ key: String) throws -> Tensor {
        let e = try entry(key)
        return Tensor(e.data.map { Float($0) }, shape: Shape(e.shape))
    }

    /// The tensor `key` as its raw float64 values (row-major) and shape.
    func entry(_ key: String) throws -> Entry {
        guard let e = entries[key] else { throw GoldenFixtureError.missingKey(file: name, key: key) }
        return e
    }

    /// The parameter `key` as a list of integers (a single number becomes a one-element list).
    func ints(_ key: String) throws -> [Int] {
        switch try param(key) {
        case .numbers(let a) where a.allSatisfy { $0 == $0.rounded() }: return a.map { Int($0) }
        case .number(let d) where d == d.rounded(): return [Int(d)]
        default: throw GoldenFixtureError.wrongType(file: name, key: key, expected: "a list of integers")
        }
    }

    /// The parameter `key` as a number.
    func double(_ key: String) throws -> Double {
        guard case .number(let d) = try param(key) else {
            throw GoldenFixtureError.wrongType(file: name, key: key, expected: "a number")
        }
        return d
    }

    /// The parameter `key` as a bool.
    func bool(_ key: String) throws -> Bool {
        guard case .bool(let b) = try param(key) else {
            throw GoldenFixtureError.wrongType(file: name, key: key, expected: "a bool")
        }
        return b
    }

    private func param(_ key: String) throws -> Param {
        guard let p = params[key] else { throw GoldenFixtureError.missingKey(file: name, key: "params.\(key)") }
        return p
    }
}

/// `|a - b|` over all elements, relative to the largest magnitude in `expected` (at least 1e-6):
/// the error measure the golden tests compare with a tolerance.
func goldenRelativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
    precondition(actual.shape == expected.shape, "golden: shape \(actual.shape) vs expected \(expected.shape)")
    return actual.maxAbsDifference(expected) / Swift.max(expected.maxAbs(), 1e-6)
}
