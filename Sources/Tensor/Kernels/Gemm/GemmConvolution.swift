import CKernels

/// A 2-D convolution's input and shape, for ``Gemm/convolutionFullPrecision(m:weight:lda:input:geometry:into:ldc:biasReLU:instructionSet:)``:
/// the input is channel-major, (channels, batch, height, width), and the product's second
/// operand is its im2col matrix over the images `images`: row `(c, ki, kj)` (in that order),
/// column `(image, oy, ox)`, entry `input[c, image, oy * stride - padding.height + ki,
/// ox * stride - padding.width + kj]`, zero in the padding.
public struct ConvolutionGeometry: Sendable {
    /// Input channels, batch, height and width of the channel-major input.
    public var channels: Int, batch: Int, height: Int, width: Int
    /// Kernel height and width.
    public var kernel: (height: Int, width: Int)
    /// The stride on both axes.
    public var stride: Int
    /// Zeros added on both sides of each axis.
    public var padding: (height: Int, width: Int)
    /// The images of the batch the product covers (its columns).
    public var images: Range<Int>

    /// A geometry; `images` defaults to the whole batch.
    public init(channels: Int, batch: Int, height: Int, width: Int, kernel: (height: Int, width: Int), stride: Int = 1,
                padding: (height: Int, width: Int) = (0, 0), images: Range<Int>? = nil) {
        self.channels = channels; self.batch = batch; self.height = height; self.width = width
        self.kernel = kernel; self.stride = stride; self.padding = padding; self.images = images ?? 0..<batch
    }

    /// Output height and width (floor, as PyTorch).
    public var output: (height: Int, width: Int) {
        ((height + 2 * padding.height - kernel.height) / stride + 1, (width + 2 * padding.width - kernel.width) / stride + 1)
    }

    /// Rows of the im2col matrix: channels x kernel height x kernel width.
    public var rows: Int { channels * kernel.height * kernel.width }

    /// Columns of the im2col matrix: images x output height x output width.
    public var columns: Int { images.count * output.height * output.width }
}

extension Gemm {
    /// True when ``convolutionFullPrecision(m:weight:lda:input:geometry:into:ldc:biasReLU:instructionSet:)`` can run: the
    /// library's own fp32 kernels are in use (not OpenBLAS).
    public static var hasConvolutionKernel: Bool { usesOwnKernels }

    /// `C (m, geometry.columns) = weight (m, geometry.rows) x im2col(input)`, the im2col matrix
    /// never formed: each cache block of it is packed from `input` straight into the kernel's
    /// panels (see ``ConvolutionGeometry``). The values, and each sum's order, are those of
    /// kernel `isa`'s product on the formed matrix (for the default `isa`,
    /// ``sgemmFullPrecision(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``'s).
    /// Runs on `isa`, by default ``fullPrecisionInstructionSet`` (fp32 whatever the training
    /// precision), in the process's ``blocking``, the columns split over ``Parallel/threads``.
    /// C is not read.
    ///
    /// With `biasReLU` (m floats), each output row `i` becomes `max(C[i, j] + biasReLU[i], 0)`:
    /// a convolution's bias and ReLU, applied to each tile of C as its last depth block is stored
    /// (while the tile is in cache), with the values of a separate pass over C afterwards (NaN
    /// stays NaN).
    /// - Precondition: ``hasConvolutionKernel``; `isa` an fp32 kernel the CPU runs; a geometry
    ///   whose output is not empty and whose images lie inside the batch; `lda >= geometry.rows`,
    ///   `ldc >= geometry.columns`.
    public static func convolutionFullPrecision(m: Int, weight: UnsafePointer<Float>, lda: Int? = nil,
                                                input: UnsafePointer<Float>, geometry g: ConvolutionGeometry,
                                                into c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                                                biasReLU: UnsafePointer<Float>? = nil,
                                                instructionSet isa: InstructionSet = fullPrecisionInstructionSet) {
        convolution(m: m, weight: weight, lda: lda, input: input, geometry: g, into: c, ldc: ldc, biasReLU: biasReLU,
                    instructionSet: isa, blocking: nil)
    }

    /// ``convolutionFullPrecision(m:weight:lda:input:geometry:into:ldc:biasReLU:instructionSet:)``
    /// in a given ``Blocking`` of the AVX-512 kernels (nil: the process's), for the tests.
    static func convolution(m: Int, weight: UnsafePointer<Float>, lda: Int?, input: UnsafePointer<Float>,
                            geometry g: ConvolutionGeometry, into c: UnsafeMutablePointer<Float>, ldc: Int?,
                            biasReLU: UnsafePointer<Float>? = nil, instructionSet isa: InstructionSet, blocking: Blocking?) {
        precondition(hasConvolutionKernel, "Gemm.convolutionFullPrecision: needs the library's own kernels")
        precondition(isa != .none && isa.fullPrecision == isa && isaSupported(isa),
                     "Gemm.convolutionFullPrecision: \(isa.environmentName) is not an fp32 kernel this CPU runs")
        let k = g.rows, n = g.columns, (oh, ow) = g.output
        let la = lda ?? k, lc = ldc ?? n
        precondition(m >= 0 && oh > 0 && ow > 0 && g.images.lowerBound >= 0 && g.images.upperBound <= g.batch
                     && la >= k && lc >= n && g.stride >= 1 && g.padding.height >= 0 && g.padding.width >= 0,
                     "Gemm.convolutionFullPrecision: bad geometry \(g) for m \(m), lda \(la), ldc \(lc)")
        precondition(max(m, n, k, la, lc) <= Int(Int32.max), "Gemm.convolutionFullPrecision: sizes exceed Int32")
        if m == 0 || n == 0 { return }
        let code = blocking?.code(isa) ?? isa.rawValue
        let plan = GemmSplit(code: code, m: m, n: n, k: k, threads: Parallel.threads, byColumns: true)
        let perChunk = (maskdm_sgemm_workspace_size(Int32(m), Int32(plan.maxColumns), Int32(k)) + 15) / 16 * 16
        let geometry = maskdm_conv_geometry(
            x: input, channels: Int32(g.channels), batch: Int32(g.batch), height: Int32(g.height), width: Int32(g.width),
            kh: Int32(g.kernel.height), kw: Int32(g.kernel.width), stride: Int32(g.stride),
            ph: Int32(g.padding.height), pw: Int32(g.padding.width), oh: Int32(oh), ow: Int32(ow),
            b0: Int32(g.images.lowerBound), images: Int32(g.images.count))
        let wp = SendablePointer(weight), cp = SendablePointer(c), bias = biasReLU.map { SendablePointer($0) }
        withUnsafePointer(to: geometry) { gp in
            let geometryPointer = SendablePointer(gp)
            forEachBlock(of: plan, workspaceFloats: perChunk) { _, columns, workspace in
                maskdm_sgemm_conv_block(code, Int32(m), Int32(columns.count), Int32(k), wp.base, Int32(la),
                                        geometryPointer.base, columns.lowerBound, cp.base + columns.lowerBound, Int32(lc),
                                        bias?.base, workspace)
            }
        }
    }
}

extension Kernels {
    /// `x[r, j] = max(x[r, j] + bias[r], 0)` over a (rows, columns) matrix, in place: a
    /// convolution's bias and ReLU as a pass over its output, for products that do not apply them
    /// in their epilogue (OpenBLAS, plain GEMMs such as 1x1 convolutions). The values are those of
    /// ``Gemm/convolutionFullPrecision(m:weight:lda:input:geometry:into:ldc:biasReLU:instructionSet:)``'s
    /// epilogue (the same C routine): NaN stays NaN and -0 stays -0. Split over
    /// ``Parallel/threads`` in runs of about 64 Ki values.
    public static func biasReLU(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, columns: Int) {
        precondition(rows >= 0 && columns >= 0, "Kernels.biasReLU: negative size \(rows) x \(columns)")
        guard rows > 0 && columns > 0 else { return }
        let p = SendablePointer(x), bp = SendablePointer(bias)
        parallelFor(rows * columns, grain: 65_536) { range in
            // The range's part of each row it touches: a partial first and last row, whole rows between.
            var i = range.lowerBound
            while i < range.upperBound {
                let r = i / columns, j = i - r * columns
                if j == 0 && range.upperBound - i >= columns {
                    let whole = (range.upperBound - i) / columns
                    maskdm_bias_relu(Int32(whole), Int32(columns), bp.base + r, p.base + i, columns)
                    i += whole * columns
                } else {
                    let count = Swift.min(columns - j, range.upperBound - i)
                    maskdm_bias_relu(1, Int32(count), bp.base + r, p.base + i, columns)
                    i += count
                }
            }
        }
    }
}
