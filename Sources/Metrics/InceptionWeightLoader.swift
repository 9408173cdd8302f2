// The FID Inception-v3 graph (module names, strides, paddings) and the loading of its weights
// from a TorchScript archive whose module tree is the TF graph's (`mixed_4.tower_1.conv_2`).
import Tensor
import TorchCheckpoint

/// Reads the conv units of the FID Inception-v3 from a checkpoint, remembering which keys it used.
struct InceptionWeightLoader {
    /// The checkpoint.
    let checkpoint: TorchCheckpoint
    /// The dotted prefix of the layers (`net.layers`).
    let prefix: String
    /// Keys read so far.
    private(set) var used: Set<String> = []

    init(checkpoint: TorchCheckpoint, prefix: String) {
        self.checkpoint = checkpoint
        self.prefix = prefix
    }

    private func key(_ name: String, _ tensor: String) -> String {
        (prefix.isEmpty ? "" : prefix + ".") + name + "." + tensor
    }

    /// Tensor `name.tensor`; throws when it is missing.
    private mutating func read(_ name: String, _ tensor: String) throws -> Tensor {
        let k = key(name, tensor)
        guard checkpoint.info(k) != nil else {
            throw MetricsError.badWeights(path: checkpoint.name, key: k,
                                          problem: "missing (each conv unit needs weight, beta, mean and var)")
        }
        used.insert(k)
        return try checkpoint.tensor(k)
    }

    /// Tensor `name.tensor`, or nil when the checkpoint has none.
    private mutating func readIfPresent(_ name: String, _ tensor: String) throws -> Tensor? {
        checkpoint.info(key(name, tensor)) == nil ? nil : try read(name, tensor)
    }

    /// The conv unit `name` (weight (Cout, Cin, KH, KW); beta, mean, var and optional gamma (Cout)).
    mutating func conv(_ name: String, stride: Int = 1, padding: (Int, Int) = (0, 0)) throws -> InceptionOp {
        let weight = try read(name, "weight")
        guard weight.rank == 4 else {
            throw MetricsError.badWeights(path: checkpoint.name, key: key(name, "weight"),
                                          problem: "shape \(weight.shape) is not (Cout, Cin, KH, KW)")
        }
        let cout = weight.shape.dims[0]
        let bn = [try read(name, "beta"), try read(name, "mean"), try read(name, "var")]
        let gamma = try readIfPresent(name, "gamma")
        for (t, v) in zip(["beta", "mean", "var", "gamma"], bn + (gamma.map { [$0] } ?? [])) where v.shape != [cout] {
            throw MetricsError.badWeights(path: checkpoint.name, key: key(name, t),
                                          problem: "shape \(v.shape), expected (\(cout)) to match the weight \(weight.shape)")
        }
        return .conv(FoldedConv(name: name, weight: weight, mean: bn[1], variance: bn[2], beta: bn[0], gamma: gamma,
                                stride: stride, padding: padding))
    }

    /// conv (3x3 /2), conv_1 (3x3), conv_2 (3x3 pad 1), pool0 (max 3 /2), conv_3 (1x1),
    /// conv_4 (3x3), pool1 (max 3 /2): (3, 299, 299) -> (192, 35, 35).
    mutating func stem() throws -> [InceptionOp] {
        [try conv("conv", stride: 2), try conv("conv_1"), try conv("conv_2", padding: (1, 1)),
         .maxPool(kernel: 3, stride: 2, padding: 0),
         try conv("conv_3"), try conv("conv_4"),
         .maxPool(kernel: 3, stride: 2, padding: 0)]
    }

    /// mixed, mixed_1, mixed_2 (A), mixed_3 (B), mixed_4 ... mixed_7 (C), mixed_8 (D),
    /// mixed_9 (E_1), mixed_10 (E_2).
    mutating func blocks() throws -> [InceptionBlock] {
        var blocks: [InceptionBlock] = []
        for name in ["mixed", "mixed_1", "mixed_2"] { blocks.append(try blockA(name)) }
        blocks.append(try blockB("mixed_3"))
        for name in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] { blocks.append(try blockC(name)) }
        blocks.append(try blockD("mixed_8"))
        blocks.append(try blockE("mixed_9", maxPoolBranch: false))
        blocks.append(try blockE("mixed_10", maxPoolBranch: true))
        return blocks
    }

    /// 35x35 block: 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 | avg pool 3 (excl. pad), 1x1.
    mutating func blockA(_ n: String) throws -> InceptionBlock {
        InceptionBlock(name: n, branches: [
            InceptionBranch([try conv("\(n).conv")]),
            InceptionBranch([try conv("\(n).tower.conv"), try conv("\(n).tower.conv_1", padding: (2, 2))]),
            InceptionBranch([try conv("\(n).tower_1.conv"), try conv("\(n).tower_1.conv_1", padding: (1, 1)),
                             try conv("\(n).tower_1.conv_2", padding: (1, 1))]),
            InceptionBranch([.avgPool(kernel: 3, stride: 1, padding: 1), try conv("\(n).tower_2.conv")]),
        ])
    }

    /// 35x35 -> 17x17 reduction: 3x3 /2 | 1x1, 3x3, 3x3 /2 | max pool 3 /2.
    mutating func blockB(_ n: String) throws -> InceptionBlock {
        InceptionBlock(name: n, branches: [
            InceptionBranch([try conv("\(n).conv", stride: 2)]),
            InceptionBranch([try conv("\(n).tower.conv"), try conv("\(n).tower.conv_1", padding: (1, 1)),
                             try conv("\(n).tower.conv_2", stride: 2)]),
            InceptionBranch([.maxPool(kernel: 3, stride: 2, padding: 0)]),
        ])
    }

    /// 17x17 block with factorised 7x7: 1x1 | 1x1, 1x7, 7x1 | 1x1, 7x1, 1x7, 7x1, 1x7 |
    /// avg pool 3 (excl. pad), 1x1.
    mutating func blockC(_ n: String) throws -> InceptionBlock {
        let row = (0, 3), column = (3, 0)
        return InceptionBlock(name: n, branches: [
            InceptionBranch([try conv("\(n).conv")]),
            InceptionBranch([try conv("\(n).tower.conv"), try conv("\(n).tower.conv_1", padding: row),
                             try conv("\(n).tower.conv_2", padding: column)]),
            InceptionBranch([try conv("\(n).tower_1.conv"), try conv("\(n).tower_1.conv_1", padding: column),
                             try conv("\(n).tower_1.conv_2", padding: row), try conv("\(n).tower_1.conv_3", padding: column),
                             try conv("\(n).tower_1.conv_4", padding: row)]),
            InceptionBranch([.avgPool(kernel: 3, stride: 1, padding: 1), try conv("\(n).tower_2.conv")]),
        ])
    }

    /// 17x17 -> 8x8 reduction: 1x1, 3x3 /2 | 1x1, 1x7, 7x1, 3x3 /2 | max pool 3 /2.
    mutating func blockD(_ n: String) throws -> InceptionBlock {
        InceptionBlock(name: n, branches: [
            InceptionBranch([try conv("\(n).tower.conv"), try conv("\(n).tower.conv_1", stride: 2)]),
            InceptionBranch([try conv("\(n).tower_1.conv"), try conv("\(n).tower_1.conv_1", padding: (0, 3)),
                             try conv("\(n).tower_1.conv_2", padding: (3, 0)), try conv("\(n).tower_1.conv_3", stride: 2)]),
            InceptionBranch([.maxPool(kernel: 3, stride: 2, padding: 0)]),
        ])
    }

    /// 8x8 block with split heads: 1x1 | 1x1 -> (1x3, 3x1) | 1x1, 3x3 -> (1x3, 3x1) |
    /// pool 3 (average excl. pad in E_1, max in E_2), 1x1.
    mutating func blockE(_ n: String, maxPoolBranch: Bool) throws -> InceptionBlock {
        let pool: InceptionOp = maxPoolBranch ? .maxPool(kernel: 3, stride: 1, padding: 1)
                                              : .avgPool(kernel: 3, stride: 1, padding: 1)
        return InceptionBlock(name: n, branches: [
            InceptionBranch([try conv("\(n).conv")]),
            InceptionBranch([try conv("\(n).tower_conv")],
                            heads: [try conv("\(n).tower_mixed_conv", padding: (0, 1)),
                                    try conv("\(n).tower_mixed_conv_1", padding: (1, 0))]),
            InceptionBranch([try conv("\(n).tower_1_conv"), try conv("\(n).tower_1_conv_1", padding: (1, 1))],
                            heads: [try conv("\(n).tower_1_mixed_conv", padding: (0, 1)),
                                    try conv("\(n).tower_1_mixed_conv_1", padding: (1, 0))]),
            InceptionBranch([pool, try conv("\(n).tower_2_conv")]),
        ])
    }

    /// Throws when a tensor under the prefix was not used (strict loading).
    func checkAllUsed() throws {
        let scope = prefix.isEmpty ? "" : prefix + "."
        let unused = checkpoint.keys.filter { $0.hasPrefix(scope) && !used.contains($0) }
        if let first = unused.first {
            throw MetricsError.badWeights(path: checkpoint.name, key: first,
                                          problem: "unexpected tensor (\(unused.count) unused under '\(prefix)')")
        }
        if used.isEmpty {
            throw MetricsError.badWeights(path: checkpoint.name, key: prefix, problem: "no tensors under this prefix")
        }
    }
}
