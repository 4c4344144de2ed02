// One round: every backend stressed once, by the poll loop and the awaiting tasks together.
#if canImport(Glibc)
import Glibc
#endif
import CStressHeap
import LAIO
import LAIOTestSupport

/// Heap bytes in use (malloc's own count; exact, unlike the resident set).
func heapInUse() -> Int { Int(laio_stress_heap_in_use()) }
/// Whether `heapInUse` counts the heap (not under a sanitizer's allocator).
func heapIsCounted() -> Bool { laio_stress_heap_is_counted() != 0 }

/// The patterned file (1 MiB) and an empty scratch file, in /var/tmp.
func makeFiles() -> (String, String) {
    do {
        let file = try makeFile("stress", bytes: 1 << 20).path
        do { return (file, try makeFile("stress-scratch", bytes: 0).path) } catch { unlink(file); throw error }
    } catch {
        fail("cannot make the test files: \(error)")
    }
}

/// One round per backend, the poll loop and the awaiting tasks together; returns false if any
/// check failed. `quiet` prints only problems (the warm-up).
func round(_ options: Options, operations: Int, files: (String, String), quiet: Bool) -> Bool {
    var passed = true
    for (index, kind) in options.backends.enumerated() {
        let laio: Context
        do { laio = try Context(backend: kind) } catch {
            if !quiet { print("\(kind): skipped: \(error)") }
            continue
        }
        var roundOptions = options
        roundOptions.operations = operations
        let stress = Stress(laio: laio, options: roundOptions, seed: options.seed &+ UInt64(index) &* 0x9E37, filePath: files.0, scratchPath: files.1)
        let awaiting = AwaitingLoad(laio: laio, filePath: files.0, rounds: 250)
        awaiting.start()
        let elapsed = ContinuousClock().measure { stress.run() }
        (stress.awaited, stress.awaitedCancelled) = awaiting.finish()
        stress.errors += awaiting.problems.withLock { $0 }
        stress.checkNothingOutstanding()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        stress.closeWithCallsInFlight()
        stress.release()
        if !quiet || !stress.errors.isEmpty {
            let time = (seconds * 10).rounded() / 10
            var line = "\(kind): \(stress.submitted) operations in \(time) s: \(stress.synchronous) synchronous, "
            line += "\(stress.background) background (\(stress.reported) reported), \(stress.cancelsSent) cancels sent, "
            line += "\(stress.cancelled) cancelled, \(stress.payloadsFoundAfterCancel) cancelled reads' payloads found intact, "
            line += "\(stress.closedInFlight) in flight at close, \(stress.fromExitedThreads) submitted by exited threads; "
            line += "beside them \(stress.awaited) calls awaited by tasks (\(stress.awaitedCancelled) cancelled); "
            line += stress.errors.isEmpty ? "no problem" : "\(stress.errors.count) problem(s):"
            print(line)
        }
        for error in stress.errors { print("  \(error)") }
        if stress.background != stress.reported { print("  \(stress.background) went to the background but \(stress.reported) were reported") }
        passed = passed && stress.errors.isEmpty && stress.background == stress.reported
    }
    return passed
}
