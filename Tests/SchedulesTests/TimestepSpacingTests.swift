import Testing
@testable import Schedules

@Suite struct TimestepSpacingTests {
    @Test func uniformMatchesTorchLinspaceInt() throws {
        let f = try #require(ScheduleFixtures.shared)
        for c in f.ddimTimes {
            let times = TimestepSpacing.uniform.timesteps(steps: c.S, trainingSteps: c.T)
            #expect(times.count == c.S + 1)
            #expect(Array(times[c.offset..<(c.offset + c.times.count)]) == c.times, "T=\(c.T) S=\(c.S)")
        }
        let s250 = TimestepSpacing.uniform.timesteps(steps: 250, trainingSteps: 1000)
        #expect(s250.prefix(3) == [999, 995, 991] && s250.suffix(2) == [3, -1])
        #expect(TimestepSpacing.uniform.timesteps(steps: 1000, trainingSteps: 1000) == Array((-1...999).reversed()))
    }

    @Test func quadraticMatchesScript() throws {
        let f = try #require(ScheduleFixtures.shared)
        for c in f.quadTimes {
            #expect(TimestepSpacing.quadratic.timesteps(steps: c.S, trainingSteps: c.T) == c.times, "S=\(c.S)")
        }
    }

    @Test(arguments: [1, 2, 7, 20, 60, 400, 1000])
    func everySpacingDescendsStrictlyToMinusOne(_ steps: Int) {
        for spacing in [TimestepSpacing.uniform, .quadratic] {
            let t = spacing.timesteps(steps: steps, trainingSteps: 1000)
            #expect(t.count == steps + 1 && t.first == 999 && t.last == -1)
            #expect(zip(t, t.dropFirst()).allSatisfy { $0 > $1 })
        }
    }
}
