import Testing
@testable import DroverCommands

/// `drover map --timeout N%`: the limit as GNU parallel computes it.
@Suite("map --timeout N%")
struct MapTimeoutTests {
    @Test func theLimitIsThePercentageOfTheMedianOfTheSucceededRuntimes() {
        #expect(MapTimeout.limit(percent: 200, runtimes: []) == nil, "no limit before a job succeeded")
        #expect(MapTimeout.limit(percent: 200, runtimes: [3]) == 6, "parallel applies it from the first success")
        #expect(MapTimeout.limit(percent: 300, runtimes: [5, 1, 2]) == 6, "the median, not the mean")
        #expect(MapTimeout.limit(percent: 100, runtimes: [4, 1, 3, 2]) == 2, "of an even count the lower middle one, as parallel's remedian")
    }

    @Test func aPercentageIsAPositiveNumberAndSecondsAreLeftToTheAgent() throws {
        #expect(try MapTimeout.percent("200%") == 200)
        #expect(try MapTimeout.percent("12.5%") == 12.5)
        #expect(try MapTimeout.percent("60") == nil, "seconds: the agent's own timeout")
        for bad in ["x%", "0%", "-5%", "%"] {
            #expect(throws: MapTimeoutError.self, "\(bad)") { try MapTimeout.percent(bad) }
        }
    }
}
