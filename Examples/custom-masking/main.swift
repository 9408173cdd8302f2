// A masking strategy defined outside the library and used for masked pre-training.
//
//     swift run -c release custom-masking [steps]
//
// `CenterBiasedMasking` keeps a random subset of patches, drawn with a preference for the centre
// of the image (where faces and emoji put their detail). Any type that conforms to
// `MaskingStrategy` works: it must drop the same number of patches in every image of the batch
// and draw all randomness from the generator it is given.
import Foundation
import ImageIO
import Masking
import Pipeline
import Tensor
import ViTDiffusion

struct CenterBiasedMasking: MaskingStrategy, CustomStringConvertible {
    /// Share of patches dropped.
    var ratio: Double
    /// How strongly the kept patches prefer the centre (0 = uniform).
    var sharpness: Double = 2

    func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { Int(ratio * Double(gridHeight * gridWidth)) }

    /// Its own parameters, checked before a run's first step (a NaN ratio would trap in `Int(...)`).
    func validate(gridHeight: Int, gridWidth: Int) throws {
        guard ratio >= 0 && ratio < 1, sharpness.isFinite, sharpness >= 0 else {
            throw MaskingError.unfitGrid(strategy: description, gridHeight: gridHeight, gridWidth: gridWidth,
                                         problem: "ratio must be in [0, 1) and sharpness finite and >= 0")
        }
    }

    func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) throws -> Mask {
        let n = gridHeight * gridWidth
        let keep = n - maskedCount(gridHeight: gridHeight, gridWidth: gridWidth)
        // Weight of each patch: exp(-sharpness * squared distance from the centre, in grid units).
        let weights = (0..<n).map { i -> Double in
            let dy = (Double(i / gridWidth) + 0.5) / Double(gridHeight) - 0.5
            let dx = (Double(i % gridWidth) + 0.5) / Double(gridWidth) - 0.5
            return Foundation.exp(-sharpness * 4 * (dx * dx + dy * dy))
        }
        let dropped = (0..<batchSize).map { _ -> [Int] in
            // Weighted sampling without replacement (Efraimidis-Spirakis keys u^(1/w)).
            let keys = weights.map { Foundation.pow(rng.nextUniformDouble(), 1 / $0) }
            let kept = Set(keys.indices.sorted { keys[$0] > keys[$1] }.prefix(keep))
            return (0..<n).filter { !kept.contains($0) }
        }
        return try Mask(checkedDropped: dropped, patchCount: n)      // a mistake here throws, naming the patch
    }

    var description: String { "center-biased(\(ratio), sharpness \(sharpness))" }
}

let steps = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 30
let strategy = CenterBiasedMasking(ratio: 0.75)
var rng = RandomGenerator(seed: 0)
try strategy.validateForTraining(gridHeight: 8, gridWidth: 8)
let preview = try strategy.makeMask(gridHeight: 8, gridWidth: 8, batchSize: 1, using: &rng)
print("\(strategy): keeps \(preview.visibleCount) of 64 patches, e.g. \(preview.visible[0])")

let images = try DataSource.bundled(.emojiOthers).load(size: 32).images
var recipe = TrainingRecipe.pretraining(batchSize: 32, steps: steps, mask: .none)
recipe.objective = .velocity
recipe.learningRate = 1e-3
recipe.beta1 = 0.9
let config = RunConfig(stage: .pretrain, model: .tiny(imageSize: 32), recipe: recipe, data: "emoji-others")
let folder = URL(fileURLWithPath: "runs/custom-masking-example")
try? FileManager.default.removeItem(at: folder)       // a fresh run each time
let run = try TrainingRun(folder: folder, config: config, masking: strategy)
let summary = try run.train(on: TensorDataset(images: Image.batch(images)))
// Mean loss over the first and the last few steps (windows that do not overlap, so a short run
// compares its start with its end rather than with itself).
let window = max(1, min(5, run.records.count / 2))
let losses = run.records.map(\.loss)
let first = losses.prefix(window).reduce(0, +) / Float(window)
let last = losses.suffix(window).reduce(0, +) / Float(window)
print(String(format: "%d masked steps with %@: loss %.4f (first %d) -> %.4f (last %d), recorded as %@", summary.step,
             strategy.description, first, window, last, window, run.trainer.recipe.mask.description))
