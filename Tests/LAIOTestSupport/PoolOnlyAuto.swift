#if canImport(Glibc)
import Glibc
#endif
import LAIO

/// Checks an `auto` context that has no ring (io_uring switched off or blocked): every kind
/// routed to the pool, cached reads answered inline, a blocked read on the pool with a
/// tagged handle, completions delivered once.
public func checkPoolOnlyAuto(_ laio: Context) throws {
    for kind in OperationKind.allCases where laio.route(for: kind).destination != .threads {
        throw TestFailure("\(kind) goes to \(laio.route(for: kind).destination), not the pool")
    }
    let (path, content) = try makeFile("auto-pool", bytes: 8192, seed: 9)
    defer { unlink(path) }
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw TestFailure("open \(path): \(Errno(rawValue: errno))") }
    defer { close(fd) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { buffer.deallocate() }
    for round in 0..<50 {
        let result = try complete(.pread(fd: fd, buffer: buffer, offset: 4096), in: laio)
        guard result == .success(4096) else { throw TestFailure("cached pread \(round): \(result)") }
    }
    guard Array(buffer) == Array(content[4096...]) else { throw TestFailure("cached preads read wrong bytes") }
    let inline = laio.statistics?.inline ?? 0
    guard inline >= 45 else { throw TestFailure("only \(inline) of 50 cached preads answered inline") }

    let fds = try makePipe()
    defer { close(fds.0); close(fds.1) }
    guard case let .inProgress(handle) = try laio.submit(.read(fd: fds.0, buffer: buffer)) else {
        throw TestFailure("a read of an empty pipe completed at once")
    }
    guard handle.rawValue >> 63 == 1 else { throw TestFailure("a pool handle without bit 63: \(handle)") }
    guard write(fds.1, "pong", 4) == 4 else { throw TestFailure("write to the pipe: \(Errno(rawValue: errno))") }
    let result = try collect([handle], in: laio)[handle]
    guard result == .success(4) else { throw TestFailure("the blocked read: \(String(describing: result))") }
    let background = laio.statistics?.threadsBackground
    guard background == 1 else { throw TestFailure("threadsBackground is \(String(describing: background)), not 1") }
    guard laio.outstandingCount == 0 else { throw TestFailure("\(laio.outstandingCount) calls still outstanding") }
}
