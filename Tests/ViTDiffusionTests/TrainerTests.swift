import Foundation
import Masking
import NN
import Schedules
import Tensor
import Testing
@testable import ViTDiffusion

/// A strategy defined outside the library: keep the first `keep` patches of a random row order.
struct KeepRandomRows: MaskingStrategy {
    let keepRows: Int
    func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { (gridHeight - keepRows) * gridWidth }
    func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) -> Mask {
        let visible = (0..<batchSize).map { _ -> [Int] in
            let rows = Array(0..<gridHeight).shuffled(using: &rng).prefix(keepRows).sorted()
            return rows.flatMap { r in (0..<gridWidth).map { r * gridWidth + $0 } }
        }
        return Mask(visible: visible, patchCount: gridHeight * gridWidth)
    }
}

@Suite struct TrainerTests {
    static let config = MaskedUViTConfig(imageSize: 8, embedDim: 32, depth: 3, heads: 2)

    /// Eight fixed 8x8 colour patterns in [-1, 1].
    static func toyData() -> TensorDataset {
        var rng = RandomGenerator(seed: 99)
        let base = Tensor.randomUniform([8, 3, 1, 1], low: -0.8, high: 0.8, using: &rng)
        let ramp = Tensor((0..<64).map { Float($0 % 8) / 7 - 0.5 }, shape: [1, 1, 8, 8])
        return TensorDataset(images: (base + ramp * 0.5).clamped(min: -1, max: 1))
    }

    func recipe(steps: Int, mask: String = "patch", ratio: Double = 0.5, lr: Float = 3e-3) -> TrainingRecipe {
        var r = TrainingRecipe.pretraining(batchSize: 16, steps: steps, mask: try! MaskSpec(name: mask, ratio: ratio))
        r.learningRate = lr
        r.seed = 5
        return r
    }

    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// Warm-up counts as the reference's LambdaLR: update k runs at lr * (k - 1) / warmup, so the
    /// first update leaves the weights unchanged (lr 0, decoupled decay scaled by lr too).
    @Test func warmupFollowsTheReferenceLambdaLR() throws {
        var r = recipe(steps: 4)
        r.warmupSteps = 4
        var rng = RandomGenerator(seed: 1)
        let trainer = try DiffusionTrainer(model: MaskedUViT(config: Self.config, rng: &rng), recipe: r)
        let data = Self.toyData()
        let before = snapshot(trainer.model.store)
        var rates: [Float] = []
        for k in 0..<3 {
            _ = try trainer.trainStep(dataset: data)
            rates.append(trainer.optimizer.learningRate)
            if k == 0 { #expect(snapshot(trainer.model.store) == before, "first update at lr 0 moved the weights") }
        }
        let expected: [Float] = [0, 0.003 / 4, 0.003 / 2]
        #expect(rates == expected)
        #expect(snapshot(trainer.model.store) != before)
    }

    @Test func killAndResumeReplaysTheUninterruptedRun() throws {
        let data = Self.toyData()
        var rng = RandomGenerator(seed: 1)
        let full = try DiffusionTrainer(model: MaskedUViT(config: Self.config, rng: &rng), recipe: recipe(steps: 8))
        let fullLosses = try full.run(dataset: data)

        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = dir.appendingPathComponent("run.safetensors")
        var rng2 = RandomGenerator(seed: 1)
        let first = try DiffusionTrainer(model: MaskedUViT(config: Self.config, rng: &rng2), recipe: recipe(steps: 4))
        let firstLosses = try first.run(dataset: data, checkpoint: ckpt)
        // A new process: different initial weights, everything comes from the checkpoint.
        var rng3 = RandomGenerator(seed: 77)
        let resumed = try DiffusionTrainer(model: MaskedUViT(config: Self.config, rng: &rng3), recipe: recipe(steps: 8))
        let restLosses = try resumed.run(dataset: data, checkpoint: ckpt, resume: true)
        #expect(resumed.step == 8)
        #expect(firstLosses + restLosses == fullLosses)
        #expect(same(resumed.model.store, full.model.store))
        #expect(same(resumed.ema.shadow, full.ema.shadow))
    }

    /// A checkpoint whose step does not match its optimizer state (edited or damaged metadata), or
    /// whose tensors hold NaN, is refused with an error naming the file and the key, before the
    /// trainer's step changes (a run folder then rewrites nothing).
    @Test func damagedCheckpointMetadataOrValuesAreRefused() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.safetensors")
        var rng = RandomGenerator(seed: 1)
        let t = try DiffusionTrainer(model: MaskedUViT(config: Self.config, rng: &rng), recipe: recipe(steps: 3))
        try t.run(dataset: Self.toyData(), checkpoint: good)
        let file = try SafetensorsFile(contentsOf: good)
        var tensors: [String: Tensor] = [:]
        for k in file.keys { tensors[k] = try file.tensor(k) }
        func variant(_ name: String, metadata edit: (inout [String: String]) -> Void = { _ in },
                     tensors change: (inout [String: Tensor]) -> Void = { _ in }) throws -> URL {
            var meta = file.metadata, ts = tensors
            edit(&meta); change(&ts)
            let url = dir.appendingPathComponent(name)
            try Safetensors.write(ts, metadata: meta, to: url)
            return url
        }
        func resumeError(_ url: URL) -> String? {
            var r = RandomGenerator(seed: 9)
            do {
                let fresh = try DiffusionTrainer(model: MaskedUViT(config: Self.config, rng: &r), recipe: recipe(steps: 6))
                _ = try fresh.resume(from: url)
                return nil
            } catch { return "\(error)" }
        }
        #expect(resumeError(good) == nil)
        for (name, value) in [("negative", "-5"), ("text", "abc"), ("far", "999999")] {
            let url = try variant("\(name).safetensors", metadata: { $0["step"] = value })
            let error = resumeError(url)
            #expect(error?.contains(url.path) == true && error?.contains("'step'") == true, "step \(value): \(error ?? "accepted")")
        }
        let skipped = try variant("skipped.safetensors", metadata: { $0["skipped_steps"] = "-1" })
        #expect(resumeError(skipped)?.contains("skipped_steps") == true)
        let optimizer = try variant("optimizer.safetensors", metadata: { $0["optimizer_step"] = "-2" })
        #expect(resumeError(optimizer)?.contains("optimizer_step") == true)
        let key = "ema." + t.model.store.parameters[0].name
        func withNaN(_ ts: inout [String: Tensor]) {
            var v = ts[key]!.scalars
            v[0] = .nan
            ts[key] = Tensor(v, shape: ts[key]!.shape)
        }
        // A damaged value: the recorded CRC-32 of the tensors no longer matches; without the
        // record (an older checkpoint) the NaN itself is refused, by its key.
        let nan = try variant("nan.safetensors", tensors: withNaN)
        #expect(resumeError(nan)?.contains("CRC-32") == true, "\(resumeError(nan) ?? "accepted")")
        let oldNaN = try variant("old-nan.safetensors", metadata: { $0[Safetensors.contentChecksumKey] = nil }, tensors: withNaN)
        #expect(resumeError(oldNaN)?.contains("key '\(key)' holds NaN or infinite values") == true, "\(resumeError(oldNaN) ?? "accepted")")
    }

    @Test func maskedPretrainingThenFinetuningLowersTheLossInBothStages() throws {
        let data = Self.toyData()
        var rng = RandomGenerator(seed: 2)
        let pre = try DiffusionTrainer(model: MaskedUViT(config: Self.config, rng: &rng), recipe: recipe(steps: 80))
        #expect(pre.masking is PatchMasking)
        let l1 = try pre.run(dataset: data)
        #expect(mean(l1.suffix(20)) < 0.7 * mean(l1.prefix(10)), "pre-training: \(mean(l1.prefix(10))) -> \(mean(l1.suffix(20)))")
        var fine = TrainingRecipe.finetuning(batchSize: 16, steps: 60, learningRate: 1e-3, flipProbability: 0.5)
        fine.seed = 6
        let ft = try pre.transferred(to: fine)
        // Transfer: online weights copied, fresh optimizer and EMA.
        #expect(same(ft.model.store, pre.model.store))
        #expect(ft.optimizer.step == 0 && ft.ema.updates == 0 && ft.masking is NoMasking)
        let l2 = try ft.run(dataset: data)
        #expect(mean(l2.suffix(20)) < mean(l2.prefix(10)), "fine-tuning: \(mean(l2.prefix(10))) -> \(mean(l2.suffix(20)))")
    }

    @Test func customStrategyFromOutsideTheLibraryTrains() throws {
        var rng = RandomGenerator(seed: 3)
        let c = MaskedUViTConfig(imageSize: 16, embedDim: 16, depth: 1, heads: 2)
        let t = try DiffusionTrainer(model: MaskedUViT(config: c, rng: &rng), recipe: recipe(steps: 3),
                                     masking: KeepRandomRows(keepRows: 2))
        let before = snapshot(t.model.store)
        var data = RandomGenerator(seed: 4)
        let loss = try t.trainStep(images: Tensor.randomUniform([4, 3, 16, 16], low: -1, high: 1, using: &data), using: &data)
        #expect(loss.isFinite && loss > 0)
        #expect(snapshot(t.model.store) != before)
    }

    /// A checkpoint trained with a custom strategy opens without it for sampling; a training step
    /// then asks for it, and another custom strategy than the recorded one is refused.
    @Test func customStrategyCheckpointOpensForSampling() throws {
        var rng = RandomGenerator(seed: 3)
        let c = MaskedUViTConfig(imageSize: 16, embedDim: 16, depth: 1, heads: 2)
        let t = try DiffusionTrainer(model: MaskedUViT(config: c, rng: &rng), recipe: recipe(steps: 3), masking: KeepRandomRows(keepRows: 2))
        var data = RandomGenerator(seed: 4)
        let images = Tensor.randomUniform([4, 3, 16, 16], low: -1, high: 1, using: &data)
        try t.trainStep(images: images, using: &data)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("custom-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try t.save(to: url)
        let reopened = try DiffusionTrainer(checkpoint: url)
        #expect(reopened.step == 1 && reopened.recipe.mask == t.recipe.mask)
        var sampling = RandomGenerator(seed: 5)
        #expect(try reopened.sample(count: 2, sampler: DDIMSampler(schedule: .linear(), steps: 2, eta: 0), using: &sampling).isFinite)
        #expect { try reopened.trainStep(images: images, using: &data) } throws: { "\($0)".contains("pass it again (masking:)") }
        #expect { _ = try DiffusionTrainer(checkpoint: url, masking: KeepRandomRows(keepRows: 3)) } throws: {
            "\($0)".contains("was trained with the custom strategy 'KeepRandomRows(keepRows: 2)'")
        }
        let same = try DiffusionTrainer(checkpoint: url, masking: KeepRandomRows(keepRows: 2))
        try same.trainStep(images: images, using: &data)
        #expect(same.step == 2)
    }

    /// A custom strategy that breaks the contract (it drops other counts than its maskedCount
    /// says, or returns another number of rows) stops the step with an error naming it, through
    /// both the dataset step and the step on given images; the weights are untouched.
    @Test func strategyThatBreaksItsContractIsRefused() throws {
        struct Liar: MaskingStrategy, CustomStringConvertible {
            let extraRows: Int
            var description: String { "liar" }
            func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { gridHeight * gridWidth / 2 }   // says half
            func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) -> Mask {
                let quarter = Array(0..<(gridHeight * gridWidth / 4))                             // drops a quarter
                return Mask(dropped: Array(repeating: extraRows > 0 ? quarter + quarter.map { $0 + quarter.count } : quarter,
                                            count: batchSize + extraRows), patchCount: gridHeight * gridWidth)
            }
        }
        var rng = RandomGenerator(seed: 3)
        let c = MaskedUViTConfig(imageSize: 16, embedDim: 16, depth: 1, heads: 2)
        var data = RandomGenerator(seed: 4)
        let images = Tensor.randomUniform([4, 3, 16, 16], low: -1, high: 1, using: &data)
        for liar in [Liar(extraRows: 0), Liar(extraRows: 1)] {
            let t = try DiffusionTrainer(model: MaskedUViT(config: c, rng: &rng), recipe: recipe(steps: 3), masking: liar)
            let before = snapshot(t.model.store)
            #expect { try t.trainStep(images: images, using: &data) } throws: { "\($0)".contains("the strategy liar returned") }
            #expect { try t.trainStep(dataset: TensorDataset(images: images)) } throws: { "\($0)".contains("where its maskedCount says 8") }
            #expect(snapshot(t.model.store) == before && t.step == 0)
        }
        // A strategy built on the checked initialisers throws its mistake: the step stops with it,
        // naming the strategy, before any weight changes (so a run can checkpoint and stop).
        struct Twice: MaskingStrategy, CustomStringConvertible {
            var description: String { "twice" }
            func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { gridHeight * gridWidth - 2 }
            func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) throws -> Mask {
                try Mask(checkedVisible: Array(repeating: [1, 1], count: batchSize), patchCount: gridHeight * gridWidth)
            }
        }
        let twice = try DiffusionTrainer(model: MaskedUViT(config: c, rng: &rng), recipe: recipe(steps: 3), masking: Twice())
        let before = snapshot(twice.model.store)
        for step in [{ try twice.trainStep(images: images, using: &data) }, { try twice.trainStep(dataset: TensorDataset(images: images)) }] {
            #expect { _ = try step() } throws: { error in
                guard let e = error as? ViTDiffusionError, e.leavesWeightsUntouched else { return false }
                return "\(e)".contains("the strategy twice failed to draw a mask: invalid mask: item 0 keeps patch 1 twice")
            }
        }
        #expect(snapshot(twice.model.store) == before && twice.step == 0)
        // A declared count outside the grid is refused up front, and so is a grid without patches.
        #expect(throws: MaskingError.self) { try KeepRandomRows(keepRows: 9).validateForTraining(gridHeight: 4, gridWidth: 4) }
        #expect(throws: MaskingError.unfitGrid(strategy: "none", gridHeight: 0, gridWidth: 0, problem: "the grid has no patches")) {
            try NoMasking().validateForTraining(gridHeight: 0, gridWidth: 0)
        }
    }

    /// A mask that cannot tile the model's patch grid, or that drops every patch, stops the first
    /// step that draws masks, naming the mask and the model's size, with the weights untouched
    /// (the first used to trap in `makeMask`, the second to stop on a NaN loss).
    @Test func maskThatDoesNotFitTheGridIsRefused() throws {
        var rng = RandomGenerator(seed: 3)
        let c = MaskedUViTConfig(imageSize: 12, patchSize: 2, embedDim: 16, depth: 1, heads: 2)   // a 6x6 grid
        var data = RandomGenerator(seed: 4)
        let images = Tensor.randomUniform([2, 3, 12, 12], low: -1, high: 1, using: &data)
        let block4 = try DiffusionTrainer(model: MaskedUViT(config: c, rng: &rng), recipe: recipe(steps: 3, mask: "block4", ratio: 0.9))
        let expected = ViTDiffusionError.invalidRecipe(
            field: "mask",
            problem: "masking strategy 'block4(0.9)' cannot mask a 6x6 patch grid: "
                + "4x4 blocks must tile it (both sides a multiple of 4) (the model: 12x12 px in patches of 2)")
        #expect(throws: expected) { try block4.validateMasking() }
        let before = snapshot(block4.model.store)
        #expect(throws: expected) { try block4.trainStep(images: images, using: &data) }
        #expect(snapshot(block4.model.store) == before && block4.step == 0)
        let crop7 = try DiffusionTrainer(model: MaskedUViT(config: c, rng: &rng), recipe: recipe(steps: 3), masking: CropMasking(cropSize: 7))
        #expect(throws: ViTDiffusionError.self) { try crop7.trainStep(images: images, using: &data) }
        let all = try DiffusionTrainer(model: MaskedUViT(config: c, rng: &rng), recipe: recipe(steps: 3, mask: "patch", ratio: 1))
        #expect { try all.validateMasking() } throws: { "\($0)".contains("drops all 36 patches") }
        // What does fit trains: block 3 and block 2 tile 6x6, a 6x6 crop fits.
        for masking in [BlockMasking(blockSize: 3, ratio: 0.5), BlockMasking(blockSize: 2, ratio: 0.9)] as [any MaskingStrategy] + [CropMasking(cropSize: 6)] {
            let t = try DiffusionTrainer(model: MaskedUViT(config: c, rng: &rng), recipe: recipe(steps: 1), masking: masking)
            var data = RandomGenerator(seed: 4)
            #expect(try t.trainStep(images: Tensor.randomUniform([2, 3, 12, 12], low: -1, high: 1, using: &data), using: &data).isFinite)
        }
    }

    @Test func nonFiniteLossStopsWithoutTouchingWeights() throws {
        var rng = RandomGenerator(seed: 3)
        let t = try DiffusionTrainer(model: MaskedUViT(config: Self.config, rng: &rng), recipe: recipe(steps: 3))
        let before = snapshot(t.model.store)
        let bad = Tensor.full([2, 3, 8, 8], .nan)
        var g = RandomGenerator(seed: 0)
        #expect { try t.trainStep(images: bad, using: &g) } throws: { "\($0)".contains("loss is nan") }
        #expect(snapshot(t.model.store) == before)
        #expect(t.step == 0)
        var skipping = recipe(steps: 3)
        skipping.skipNonFiniteSteps = true
        let s = try DiffusionTrainer(model: MaskedUViT(config: Self.config, rng: &rng), recipe: skipping)
        #expect(try s.trainStep(images: bad, using: &g).isNaN)
        #expect(s.skippedSteps == 1)
    }

    @Test func tinyModelLearnsAToyDistributionAndSamplesFromIt() throws {
        // Data: constant grey images at -0.5 or +0.5 (two modes, equal weight).
        var rng = RandomGenerator(seed: 10)
        var images = Tensor.zeros([64, 3, 8, 8])
        for i in 0..<64 { for j in 0..<192 { images[flat: i * 192 + j] = i % 2 == 0 ? -0.5 : 0.5 } }
        var r = TrainingRecipe.finetuning(batchSize: 32, steps: 2000, learningRate: 2e-3, flipProbability: 0)
        r.emaBeta = 0.99
        // Patch 2: the 12 values of a patch fit through the 32-wide residual stream.
        let c = MaskedUViTConfig(imageSize: 8, patchSize: 2, embedDim: 32, depth: 3, heads: 2)
        let t = try DiffusionTrainer(model: MaskedUViT(config: c, rng: &rng), recipe: r)
        let losses = try t.run(dataset: TensorDataset(images: images))
        #expect(losses.suffix(20).reduce(0, +) / 20 < 0.1, "final loss \(losses.suffix(20).reduce(0, +) / 20)")
        // Both the paper's sampler (DDIM, eta 1) and the fast one (DPM-Solver++ 2M, 20 calls)
        // put many samples on the two modes (pure noise, or a sampler that collapses to the mean,
        // puts none there), in about equal shares. The counts depend on the exact float rounding of
        // 2000 training steps: over model seeds 10-60 they ranged 34-47 (DDIM) and 29-59 (DPM++)
        // near a mode, 25-40 positive; hence the thresholds below.
        let samplers: [any DiffusionSampler] = [DDIMSampler(schedule: t.schedule, steps: 50, eta: 1),
                                                DPMSolverPlusPlus2M(schedule: t.schedule, steps: 20)]
        for sampler in samplers {
            var srng = RandomGenerator(seed: 11)
            let samples = try t.sample(count: 64, sampler: sampler, using: &srng)
            let perImage = samples.reshaped([64, 192]).mean(axis: 1).scalars
            let nearMode = perImage.filter { abs(abs($0) - 0.5) < 0.15 }.count
            let positive = perImage.filter { $0 > 0 }.count
            #expect(nearMode >= 24, "\(type(of: sampler)): only \(nearMode)/64 samples near a mode")
            #expect((20...44).contains(positive), "\(type(of: sampler)): \(positive)/64 samples in the positive mode")
        }
    }

    /// All parameter values in arena order (compared as one array, so failures print briefly).
    func snapshot(_ s: ParameterStore) -> [Float] { Array(UnsafeBufferPointer(start: s.values.base, count: s.count)) }
    func same(_ a: ParameterStore, _ b: ParameterStore) -> Bool { snapshot(a) == snapshot(b) }

    func mean(_ a: some Collection<Float>) -> Float { a.reduce(0, +) / Float(a.count) }
}
