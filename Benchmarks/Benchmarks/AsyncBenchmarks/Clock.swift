import Dispatch

/// Nanoseconds of the monotonic clock (Dispatch's uptime clock is CLOCK_MONOTONIC on
/// Linux), for the async benchmarks' own timings.
func monotonicNanoseconds() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds) }
