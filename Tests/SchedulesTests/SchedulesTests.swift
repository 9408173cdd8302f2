import Testing
@testable import Schedules
