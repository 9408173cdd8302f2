// swift-tools-version: 6.3
// Coverage-guided fuzzing of every file parser of MaskDM with libFuzzer and AddressSanitizer.
// A separate package (depending on the library by path) so that the main package's builds never
// see `-parse-as-library` or the sanitizer flags. Build and run with `make fuzz` (scripts/fuzz.sh).
import PackageDescription

let package = Package(
    name: "MaskDMFuzz",
    dependencies: [.package(name: "MaskDM", path: "..")],
    targets: [
        .executableTarget(
            name: "maskdm-fuzz",
            dependencies: [
                .product(name: "Tensor", package: "MaskDM"),
                .product(name: "TorchCheckpoint", package: "MaskDM"),
                .product(name: "ImageIO", package: "MaskDM"),
                .product(name: "Pipeline", package: "MaskDM"),
            ],
            // libFuzzer supplies main(); the harness only exports LLVMFuzzerTestOneInput.
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ]
)
