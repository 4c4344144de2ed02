import LAIOCore
import Testing

@Suite("clock")
struct ClockTests {
    @Test("Duration.nanoseconds is exact within range and saturates beyond it")
    func durationNanoseconds() {
        #expect(Duration.zero.nanoseconds == 0)
        #expect(Duration.seconds(3).nanoseconds == 3_000_000_000)
        #expect(Duration.microseconds(10).nanoseconds == 10_000)
        #expect(Duration.nanoseconds(-7).nanoseconds == -7)
        #expect((Duration.seconds(2) + .nanoseconds(5)).nanoseconds == 2_000_000_005)
        #expect(Duration.seconds(Int64.max / 1_000_000_000 + 1).nanoseconds == .max)
        #expect(Duration.seconds(Int64.min / 1_000_000_000 - 1).nanoseconds == .min)
    }

    @Test("monotonicNanoseconds never goes back")
    func monotonic() {
        var last = monotonicNanoseconds()
        for _ in 0..<10_000 {
            let now = monotonicNanoseconds()
            #expect(now >= last)
            last = now
        }
    }
}
