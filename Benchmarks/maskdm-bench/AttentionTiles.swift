import Foundation
import Tensor

/// Tile-size sweep of the attention kernels on one shape, for tuning on a new machine:
/// `maskdm-bench attention-tiles B NH T HS [ROWS,KEYS,BROWS,BKEYS ...]` times forward and backward
/// of each tile configuration (forward rows x keys, backward rows x keys), plus the row-block
/// kernels (`rows`), alternating configurations round by round; one JSON line per configuration.
func benchAttentionTiles(_ args: [String], threads: Int) throws {
    guard args.count >= 4, let b = Int(args[0]), let nh = Int(args[1]), let t = Int(args[2]), let hs = Int(args[3]),
          b > 0, nh > 0, t > 0, hs > 0 else {
        throw BenchError.usage("attention-tiles B NH T HS [ROWS,KEYS,BROWS,BKEYS ...]")
    }
    var configs: [(forward: (rows: Int, keys: Int), backward: (rows: Int, keys: Int))?] = [nil]   // nil: row blocks
    let tiles = args.dropFirst(4).isEmpty ? ["96,128,192,256", "48,128,192,256", "96,256,192,512", "96,128,96,256"] : Array(args.dropFirst(4))
    for spec in tiles {
        let v = spec.split(separator: ",").compactMap { Int($0) }
        guard v.count == 4, v.allSatisfy({ $0 > 0 }) else { throw BenchError.invalid("attention-tiles: tile spec '\(spec)' is not four positive integers ROWS,KEYS,BROWS,BKEYS") }
        configs.append(((v[0], v[1]), (v[2], v[3])))
    }
    var rng = RandomGenerator(seed: 1)
    let data = AttentionBenchData(batch: b, heads: nh, tokens: t, headSize: hs, rng: &rng)
    let s = data.shape
    var forward = [[Double]](repeating: [], count: configs.count), backward = forward
    for _ in 0..<5 {
        for (i, c) in configs.enumerated() {
            Kernels.$tiledAttentionMinTokens.withValue(c == nil ? Int.max : 0) {
                Kernels.$tiledAttentionBlocks.withValue(c?.forward ?? Kernels.tiledAttentionBlocks) {
                    Kernels.$tiledAttentionBackwardBlocks.withValue(c?.backward ?? Kernels.tiledAttentionBackwardBlocks) {
                        let t0 = now()
                        data.forward()
                        let t1 = now()
                        data.backward()
                        let t2 = now()
                        forward[i].append((t1 - t0) * 1000)
                        backward[i].append((t2 - t1) * 1000)
                    }
                }
            }
        }
    }
    for (i, c) in configs.enumerated() {
        let f = forward[i].sorted()[2], bw = backward[i].sorted()[2]
        let tilesName = c.map { "\($0.forward.rows)x\($0.forward.keys) / \($0.backward.rows)x\($0.backward.keys)" } ?? "rows"
        emit([("name", "attention_tiles"), ("shape", "(\(b), \(nh), \(t), \(hs))"), ("tiles", tilesName), ("threads", threads),
              ("median_ms", f), ("backward_ms", bw), ("fwd_bwd_gflops", 3.5 * s.forwardFlops / (f + bw) / 1e6)])
    }
}

/// A command-line mistake, printed with the expected usage.
enum BenchError: Error, CustomStringConvertible {
    case usage(String)
    case invalid(String)
    var description: String {
        switch self {
        case .usage(let s): return "usage: maskdm-bench \(s)"
        case .invalid(let s): return "maskdm-bench \(s)"
        }
    }
}
