import Foundation
import Tensor
import ViTDiffusion

/// Prepares the next step's batch on its own thread while the current step trains, so decoding
/// and batch assembly never stall the step. Each batch is a pure function of (seed, step, sample)
/// (``DiffusionTrainer/prepareBatch(forStep:from:)``), so prefetching changes no result.
final class BatchPrefetcher: @unchecked Sendable {
    // @unchecked Sendable: `slot` and `wanted` are only touched under `condition`'s lock; the
    // trainer's `prepareBatch` reads only the immutable recipe, and the dataset is Sendable.
    private let trainer: DiffusionTrainer
    private let dataset: any TrainingImages
    private let condition = NSCondition()
    private var wanted: Int? = nil
    private var slot: (step: Int, result: Result<DiffusionTrainer.PreparedBatch, Error>)? = nil
    private var stopped = false
    private var thread: Thread? = nil

    init(trainer: DiffusionTrainer, dataset: any TrainingImages) {
        self.trainer = trainer
        self.dataset = dataset
        let t = Thread { [unowned self] in self.loop() }
        t.name = "maskdm-prefetch"
        thread = t
        t.start()
    }

    /// Starts preparing `step` in the background (no-op if it is already ready or in progress).
    func prefetch(_ step: Int) {
        condition.lock()
        if slot?.step != step && wanted != step { wanted = step; condition.broadcast() }
        condition.unlock()
    }

    /// The batch of `step`: the prefetched one when ready, else it waits for it (or prepares it).
    func batch(_ step: Int) throws -> DiffusionTrainer.PreparedBatch {
        prefetch(step)
        condition.lock()
        while slot?.step != step { condition.wait() }
        let result = slot!.result
        slot = nil
        condition.unlock()
        return try result.get()
    }

    /// Ends the thread.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while wanted == nil && !stopped { condition.wait() }
            if stopped { condition.unlock(); return }
            let step = wanted!
            wanted = nil
            condition.unlock()
            let result = Result { try trainer.prepareBatch(forStep: step, from: dataset) }
            condition.lock()
            slot = (step, result)
            condition.broadcast()
            condition.unlock()
        }
    }
}
