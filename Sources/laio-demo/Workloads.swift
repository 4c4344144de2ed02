#if canImport(Glibc)
import Glibc
#endif
import LAIO
import SystemPackage

struct CachedReadFigures {
    var nanosecondsPerCall: Double
    var synchronousFraction: Double
}

/// Cached 4 KiB preads through `laio`, one at a time, as an event loop issues them.
func cachedReads(_ laio: Context, fd: Int32, offsets: [Int64]) throws -> CachedReadFigures {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { buffer.deallocate() }
    var synchronous = 0
    var completions: [Completion] = []
    completions.reserveCapacity(4)
    let start = SuspendingClock.now
    for offset in offsets {
        switch try laio.submit(.pread(fd: fd, buffer: buffer, offset: offset)) {
        case .completed(let result):
            guard case .success(4096) = result else { throw DemoError("pread: \(result)") }
            synchronous += 1
        case .inProgress:
            completions.removeAll(keepingCapacity: true)
            _ = try laio.poll(into: &completions, maximum: 1, timeout: nil)
        }
    }
    let elapsed = (SuspendingClock.now - start) / .nanoseconds(1)
    return CachedReadFigures(nanosecondsPerCall: elapsed / Double(offsets.count),
                             synchronousFraction: Double(synchronous) / Double(offsets.count))
}

/// The same reads with pread(2) directly.
func rawCachedReads(fd: Int32, offsets: [Int64]) -> Double {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { buffer.deallocate() }
    let start = SuspendingClock.now
    for offset in offsets { _ = pread(fd, buffer.baseAddress, 4096, off_t(offset)) }
    return (SuspendingClock.now - start) / .nanoseconds(1) / Double(offsets.count)
}

/// Random reads with pread(2) directly, one at a time; returns reads per second.
func rawRandomReads(fd: Int32, offsets: [Int64]) -> Double {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { buffer.deallocate() }
    let start = SuspendingClock.now
    for offset in offsets { _ = pread(fd, buffer.baseAddress, 4096, off_t(offset)) }
    return Double(offsets.count) / ((SuspendingClock.now - start) / .seconds(1))
}

/// Pipe round trips: write a byte to an echo thread through LAIO and read its answer
/// through LAIO. Returns microseconds per round trip.
func pipeRoundTrips(_ laio: Context?, count: Int) throws -> Double {
    var toEcho: [Int32] = [0, 0], fromEcho: [Int32] = [0, 0]
    guard pipe(&toEcho) == 0, pipe(&fromEcho) == 0 else { throw Errno(rawValue: errno) }
    defer { for fd in toEcho + fromEcho { close(fd) } }
    let echo = EchoThread(input: toEcho[0], output: fromEcho[1])
    defer { echo.join() }
    let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
    defer { byte.deallocate() }
    byte[0] = 1
    var completions: [Completion] = []
    completions.reserveCapacity(4)
    let start = SuspendingClock.now
    for _ in 0..<count {
        if let laio {
            for operation in [Operation.write(fd: toEcho[1], buffer: UnsafeRawBufferPointer(byte)),
                              .read(fd: fromEcho[0], buffer: byte)] {
                if case .inProgress = try laio.submit(operation) {
                    completions.removeAll(keepingCapacity: true)
                    _ = try laio.poll(into: &completions, maximum: 1, timeout: nil)
                }
            }
        } else {
            _ = Glibc.write(toEcho[1], byte.baseAddress, 1)
            _ = Glibc.read(fromEcho[0], byte.baseAddress, 1)
        }
    }
    let elapsed = (SuspendingClock.now - start) / .nanoseconds(1)
    byte[0] = 0  // tells the echo thread to stop
    _ = Glibc.write(toEcho[1], byte.baseAddress, 1)
    return elapsed / Double(count) / 1000
}

/// Copies bytes from `input` to `output` until it reads a zero byte.
final class EchoThread: Sendable {
    private let thread: pthread_t

    init(input: Int32, output: Int32) {
        final class Ends: Sendable {
            let input: Int32, output: Int32
            init(_ input: Int32, _ output: Int32) { self.input = input; self.output = output }
        }
        var thread = pthread_t()
        // Retained here, taken back once by the new thread.
        let ends = Unmanaged.passRetained(Ends(input, output)).toOpaque()
        pthread_create(&thread, nil, { argument in
            let ends = Unmanaged<Ends>.fromOpaque(argument!).takeRetainedValue()
            var byte: UInt8 = 1
            while Glibc.read(ends.input, &byte, 1) == 1 && byte != 0 { _ = Glibc.write(ends.output, &byte, 1) }
            return nil
        }, ends)
        self.thread = thread
    }

    func join() { pthread_join(thread, nil) }
}

/// Writes a line to standard error.
func printError(_ message: String) {
    let line = message + "\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
