import Foundation
import Tensor
import ViTDiffusion

/// Prepares the next step's batch on its own thread while the current step trains, so decoding
/// and batch assembly never stall the step. Each batch is a pure function of (seed, step, sample)
/// (``DiffusionTrainer/prepareBatch(forStep:from:)``), so prefetching changes no result.
///
/// The thread holds only the shared state (never the prefetcher), so it may start after the
/// prefetcher is gone; ``stop()``, or dropping the prefetcher, ends it.
final class BatchPrefetcher: Sendable {
    private let shared: Shared

    /// What the caller and the thread share.
    private final class Shared: @unchecked Sendable {
        // @unchecked Sendable: `slot`, `wanted` and `stopped` are only touched under `condition`'s
        // lock; the trainer's `prepareBatch` reads only the immutable recipe and its epoch-order
        // cache (locked), and the dataset is Sendable.
        let trainer: DiffusionTrainer
        let dataset: any TrainingImages
        let condition = NSCondition()
        var wanted: Int? = nil
        var slot: (step: Int, result: Result<DiffusionTrainer.PreparedBatch, Error>)? = nil
        var stopped = false

        init(trainer: DiffusionTrainer, dataset: any TrainingImages) {
            self.trainer = trainer
            self.dataset = dataset
        }

        func loop() {
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

    init(trainer: DiffusionTrainer, dataset: any TrainingImages) {
        let shared = Shared(trainer: trainer, dataset: dataset)
        self.shared = shared
        let t = Thread { shared.loop() }
        t.name = "maskdm-prefetch"
        t.start()
    }

    /// Starts preparing `step` in the background (no-op if it is already ready or in progress).
    func prefetch(_ step: Int) {
        let s = shared
        s.condition.lock()
        if s.slot?.step != step && s.wanted != step { s.wanted = step; s.condition.broadcast() }
        s.condition.unlock()
    }

    /// The batch of `step`: the prefetched one when ready, else it waits for it (or prepares it).
    func batch(_ step: Int) throws -> DiffusionTrainer.PreparedBatch {
        prefetch(step)
        let s = shared
        s.condition.lock()
        while s.slot?.step != step { s.condition.wait() }
        let result = s.slot!.result
        s.slot = nil
        s.condition.unlock()
        return try result.get()
    }

    /// Ends the thread (after the batch it may be preparing).
    func stop() {
        let s = shared
        s.condition.lock()
        s.stopped = true
        s.condition.broadcast()
        s.condition.unlock()
    }

    deinit { stop() }
}
