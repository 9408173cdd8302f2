import Tensor
import Testing

// conv2d and pooling against PyTorch (float64) fixtures from scripts/make_golden.py, forward and backward.

private let tolerance: Float = 1e-5

@Suite("golden conv2d and pooling")
struct GoldenConvPoolTests {
    @Test("conv2d forward and backward match torch", arguments: ["golden_conv2d", "golden_conv2d_1x3"])
    func conv2d(_ name: String) throws {
        let fx = try GoldenFixture.load(name)
        let x = try fx.tensor("input"), w = try fx.tensor("weight"), b = try fx.tensor("bias")
        let stride = try fx.ints("stride"), padding = try fx.ints("padding")
        let y = x.conv2d(weight: w, bias: b, stride: (stride[0], stride[1]), padding: (padding[0], padding[1]))
        #expect(goldenRelativeError(y, try fx.tensor("output")) < tolerance)

        let (bs, cin, h, wd) = x.shape.dims4()
        let (cout, _, kh, kw) = w.shape.dims4()
        #expect(try fx.ints("kernel") == [kh, kw])
        let g = Conv2dGeometry(batch: bs, inChannels: cin, height: h, width: wd, outChannels: cout,
                               kernel: (kh, kw), stride: (stride[0], stride[1]), padding: (padding[0], padding[1]))
        let dOut = try fx.tensor("grad_output")
        var dx = Tensor.zeros(x.shape), dw = Tensor.zeros(w.shape), db = Tensor.zeros(b.shape)
        let (px, pw, pb) = (dx.mutablePointer(), dw.mutablePointer(), db.mutablePointer())
        withExtendedLifetime((x, w, dOut)) {
            Kernels.conv2dBackward(dInput: px, dWeight: pw, dBias: pb, dOut: dOut.storage.base,
                                   input: x.storage.base, weight: w.storage.base, g)
        }
        #expect(goldenRelativeError(dx, try fx.tensor("grad_input")) < tolerance)
        #expect(goldenRelativeError(dw, try fx.tensor("grad_weight")) < tolerance)
        #expect(goldenRelativeError(db, try fx.tensor("grad_bias")) < tolerance)
    }

    @Test("max_pool2d forward, indices and backward match torch")
    func maxPool() throws {
        let fx = try GoldenFixture.load("golden_max_pool2d")
        let x = try fx.tensor("input")
        let k = try fx.ints("kernel"), s = try fx.ints("stride"), p = try fx.ints("padding")
        let (y, indices) = x.maxPool2dWithIndices(kernel: (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]))
        #expect(goldenRelativeError(y, try fx.tensor("output")) < tolerance)
        #expect(indices.map(Float.init) == (try fx.tensor("indices")).scalars)

        let (b, c, h, w) = x.shape.dims4()
        let g = Pool2dGeometry(batch: b, channels: c, height: h, width: w,
                               kernel: (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]))
        let dOut = try fx.tensor("grad_output")
        var dx = Tensor.zeros(x.shape)
        let px = dx.mutablePointer()
        indices.withUnsafeBufferPointer { ip in
            withExtendedLifetime(dOut) {
                if let ib = ip.baseAddress { Kernels.maxPool2dBackward(dInput: px, dOut: dOut.storage.base, indices: ib, g) }
            }
        }
        #expect(goldenRelativeError(dx, try fx.tensor("grad_input")) < tolerance)
    }

    @Test("avg_pool2d forward and backward match torch",
          arguments: ["golden_avg_pool2d", "golden_avg_pool2d_exclude_pad"])
    func avgPool(_ name: String) throws {
        let fx = try GoldenFixture.load(name)
        let x = try fx.tensor("input")
        let k = try fx.ints("kernel"), s = try fx.ints("stride"), p = try fx.ints("padding")
        let include = try fx.bool("count_include_pad")
        let y = x.avgPool2d(kernel: (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]), countIncludePad: include)
        #expect(goldenRelativeError(y, try fx.tensor("output")) < tolerance)

        let (b, c, h, w) = x.shape.dims4()
        let g = Pool2dGeometry(batch: b, channels: c, height: h, width: w,
                               kernel: (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]))
        let dOut = try fx.tensor("grad_output")
        var dx = Tensor.zeros(x.shape)
        let px = dx.mutablePointer()
        withExtendedLifetime(dOut) {
            Kernels.avgPool2dBackward(dInput: px, dOut: dOut.storage.base, countIncludePad: include, g)
        }
        #expect(goldenRelativeError(dx, try fx.tensor("grad_input")) < tolerance)
    }

    @Test("every fixture loads with consistent shapes and typed parameters")
    func fixturesLoad() throws {
        for name in ["golden_softmax", "golden_layer_norm", "golden_gelu", "golden_attention", "golden_conv2d",
                     "golden_conv2d_1x3", "golden_max_pool2d", "golden_avg_pool2d", "golden_avg_pool2d_exclude_pad"] {
            let fx = try GoldenFixture.load(name)
            #expect(fx.entries["grad_output"] != nil, "\(name)")
            #expect(try fx.tensor("output").shape == (try fx.tensor("grad_output")).shape, "\(name)")
        }
        #expect(try GoldenFixture.load("golden_softmax").ints("axis") == [-1])
        #expect(try GoldenFixture.load("golden_layer_norm").double("eps") == 1e-5)
        #expect(try GoldenFixture.load("golden_avg_pool2d").bool("count_include_pad"))
        #expect(try !GoldenFixture.load("golden_avg_pool2d_exclude_pad").bool("count_include_pad"))
        #expect(try GoldenFixture.load("golden_attention").tensor("q").shape == [2, 2, 5, 8])
        #expect(throws: GoldenFixtureError.self) { try GoldenFixture.load("golden_no_such_op") }
        #expect(throws: GoldenFixtureError.self) { try GoldenFixture.load("golden_gelu").tensor("weight") }
    }
}
