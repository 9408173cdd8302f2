// swift-tools-version: 6.3
// MaskDM in Swift: masked diffusion pre-training and unmasked fine-tuning of pixel-space ViTs on CPU.
import PackageDescription

let package = Package(
    name: "MaskDM",
    products: [
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "TorchCheckpoint", targets: ["TorchCheckpoint"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Masking", targets: ["Masking"]),
        .library(name: "Schedules", targets: ["Schedules"]),
        .library(name: "ImageIO", targets: ["ImageIO"]),
        .library(name: "Metrics", targets: ["Metrics"]),
        .library(name: "ViTDiffusion", targets: ["ViTDiffusion"]),
        .library(name: "Pipeline", targets: ["Pipeline"]),
        .library(name: "MPI", targets: ["MPI"]),
        .executable(name: "maskdm", targets: ["maskdm"]),
        .executable(name: "maskdm-bench", targets: ["maskdm-bench"]),
        .executable(name: "two-stage", targets: ["two-stage"]),
        .executable(name: "custom-masking", targets: ["custom-masking"]),
    ],
    // `--traits MPI` links Open MPI (Debian libopenmpi-dev) for data-parallel training under
    // mpirun; without it the package needs no MPI and `MPICommunicator.isAvailable` is false.
    traits: [
        .trait(name: "MPI", description: "Data-parallel training, sampling and FID over Open MPI (libopenmpi-dev)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // System libraries, found through pkg-config; `scripts/setup.sh` installs them with apt.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // setjmp-guarded libjpeg/libpng calls: a corrupt image must throw, never exit the process.
        .target(name: "CImageCodecs", dependencies: ["CPNG", "CJPEG"]),

        // Open MPI behind the `MPI` trait: the C shim exports what Open MPI defines as macros.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(
            name: "CMPIShim",
            dependencies: [.target(name: "CMPI", condition: .when(traits: ["MPI"]))],
            cSettings: [.define("MASKDM_WITH_MPI", .when(traits: ["MPI"]))]),

        // Fp32 GEMM kernels (AVX2/AVX-512 by per-function target attributes, chosen at run time).
        .target(name: "CKernels"),
        // zlib for the CRC-32 that checkpoints record of their tensors.
        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels", "CZlib"]),
        // PyTorch `torch.save` / TorchScript reader (zip + pickle; STORED entries only; CRC-32 from Tensor).
        .target(name: "TorchCheckpoint", dependencies: ["Tensor"]),
        .target(name: "NN", dependencies: ["Tensor"]),
        .target(name: "Masking", dependencies: ["Tensor"]),
        .target(name: "Schedules", dependencies: ["Tensor"]),
        .target(name: "ImageIO", dependencies: ["Tensor", "CImageCodecs", "CZlib"]),
        .target(name: "Metrics", dependencies: ["Tensor", "TorchCheckpoint", "ImageIO", "CBLAS"]),
        .target(name: "ViTDiffusion", dependencies: ["Tensor", "NN", "Masking", "Schedules"]),
        // The `Communicator` of an mpirun job (data-parallel training over Open MPI).
        .target(name: "MPI", dependencies: ["Tensor", "CMPIShim"]),
        // Run folders, stage runs, data sources, reference YAML configs and checkpoints, the demo
        // and the comparison: everything the command line does, as a library.
        .target(
            name: "Pipeline",
            dependencies: [
                "Tensor", "TorchCheckpoint", "NN", "Masking", "Schedules", "ImageIO", "Metrics", "ViTDiffusion",
                .product(name: "Yams", package: "Yams"),
            ]),

        .executableTarget(
            name: "maskdm",
            dependencies: [
                "Tensor", "NN", "Masking", "Schedules", "ImageIO", "Metrics", "ViTDiffusion", "Pipeline", "MPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/maskdm"),
        // Small programs a user copies from: the two stages in public API, and a custom mask.
        .executableTarget(
            name: "two-stage",
            dependencies: ["Tensor", "Masking", "Schedules", "ImageIO", "Metrics", "ViTDiffusion", "Pipeline"],
            path: "Examples/two-stage"),
        .executableTarget(
            name: "custom-masking",
            dependencies: ["Tensor", "Masking", "ImageIO", "ViTDiffusion", "Pipeline"],
            path: "Examples/custom-masking"),
        .executableTarget(
            name: "maskdm-bench",
            dependencies: ["Tensor", "TorchCheckpoint", "NN", "Masking", "Schedules", "ViTDiffusion", "Metrics", "CBLAS", "CKernels"],
            path: "Benchmarks/maskdm-bench"),

        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CKernels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TorchCheckpointTests", dependencies: ["TorchCheckpoint", "Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "MaskingTests", dependencies: ["Masking", "Tensor"]),
        .testTarget(name: "SchedulesTests", dependencies: ["Schedules", "Tensor"]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO", "Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "ImageIO", "Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "ViTDiffusionTests", dependencies: ["ViTDiffusion", "NN", "Masking", "Schedules", "Tensor"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "MPITests", dependencies: ["MPI", "Tensor", "ImageIO", "Metrics", "ViTDiffusion", "Pipeline"]),
        .testTarget(
            name: "PipelineTests", dependencies: ["Pipeline", "ViTDiffusion", "NN", "Masking", "Schedules", "Tensor", "ImageIO"],
            resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v6]
)
