import Testing
@testable import ViTDiffusion
