import Testing
@testable import Masking
