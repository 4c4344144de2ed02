#if canImport(Glibc)
import Glibc
#endif
import LAIO
import Testing
import SystemPackage

/// Which backends can start on this machine, and why the others cannot.
///
/// The conformance tests take their arguments from `startable`, so a backend joins every
/// test as soon as it can run here. A backend that cannot start is reported by
/// `BackendAvailabilityTests` as a skipped test with the reason, never as passed.
enum Backends {
    static let unavailable: [BackendKind: String] = {
        var reasons: [BackendKind: String] = [:]
        for kind in BackendKind.allCases {
            do {
                _ = try Context(backend: kind)
            } catch {
                reasons[kind] = "\(error)"
            }
        }
        return reasons
    }()

    static let startable = BackendKind.allCases.filter { unavailable[$0] == nil }
    /// The startable backends whose calls can go to the background.
    static let asynchronous = startable.filter { $0 != .blocking }

    static func skipReason(_ kind: BackendKind) -> Comment {
        Comment(rawValue: unavailable[kind] ?? "")
    }
}

extension BackendKind {
    /// Whether this backend runs any system call by number. `uring` runs only what io_uring
    /// has an opcode for and answers ENOSYS for the rest (getpid, sendfile, ...).
    var runsAnySyscall: Bool { self != .uring }

    /// What a raw getpid gives on this backend.
    var expectedGetpid: Result<Int, Errno> { runsAnySyscall ? .success(Int(getpid())) : .failure(.noFunction) }
}

/// Reads 8 bytes of /dev/zero through `laio` and checks the answer: a call every backend runs.
func expectWorkingCall(in laio: Context, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let fd = open("/dev/zero", O_RDONLY)
    defer { close(fd) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
    defer { buffer.deallocate() }
    #expect(try complete(.read(fd: fd, buffer: buffer), in: laio) == .success(8), sourceLocation: sourceLocation)
}

let allBackends = Backends.startable
let asynchronousBackends = Backends.asynchronous

/// A context on `kind` with test settings.
func makeContext(_ kind: BackendKind, threads: ThreadPoolSettings = ThreadPoolSettings()) throws -> Context {
    try Context(backend: kind, threads: threads)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls until `handle` is reported, or fails after `timeout`. Every completion seen is
/// checked against `expected` handles so that no stray or duplicate report goes unnoticed.
func awaitCompletion(of handle: Handle, in context: Context, timeout: Duration = .seconds(10)) throws -> Result<Int, Errno> {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let completions = try context.poll(maximum: 16, timeout: .milliseconds(100))
        for completion in completions {
            #expect(completion.handle == handle, "unexpected completion \(completion)")
            if completion.handle == handle { return completion.result }
        }
    }
    throw TestFailure("\(handle) was not reported within \(timeout)")
}

/// Submits a read that cannot finish yet (an empty pipe, an idle socket) and returns its
/// handle; a synchronous answer fails the test.
func submitBlockedRead(_ laio: Context, fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws -> Handle {
    switch try laio.submit(.read(fd: fd, buffer: buffer)) {
    case .inProgress(let handle): return handle
    case .completed(let result): throw TestFailure("a read with nothing to read completed synchronously: \(result)")
    }
}

/// Runs `operation` to its end, synchronously or through poll, and returns its result.
func complete(_ operation: Operation, in context: Context) throws -> Result<Int, Errno> {
    switch try context.submit(operation) {
    case let .completed(result): return result
    case let .inProgress(handle): return try awaitCompletion(of: handle, in: context)
    }
}

/// Asserts that nothing further is reported within `window`.
func expectNoCompletion(in context: Context, within window: Duration = .milliseconds(50)) throws {
    let extra = try context.poll(maximum: 16, timeout: window)
    #expect(extra.isEmpty, "unexpected completions \(extra)")
}

/// A temporary directory, removed (with its files) at the end of `body`.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/laio-test-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp: \(Errno(rawValue: errno))") }
    let path = String(cString: made)
    defer { _ = system("rm -rf '\(path)'") }
    return try body(path)
}

/// Deterministic file content: byte i is (i * 7 + i / 251) & 0xff.
func pattern(count: Int, seed: Int = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: ($0 + seed) &* 7 &+ ($0 + seed) / 251) }
}

/// Writes `bytes` to a new file at `path` with plain libc calls.
func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw TestFailure("open \(path): \(Errno(rawValue: errno))") }
    defer { close(fd) }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == bytes.count else { throw TestFailure("short write to \(path)") }
}

/// A pipe: (read end, write end).
func makePipe() throws -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw TestFailure("pipe: \(Errno(rawValue: errno))") }
    return (fds[0], fds[1])
}

/// A listening TCP socket on 127.0.0.1 with an ephemeral port: (fd, address).
func makeListener(backlog: Int32 = 64) throws -> (Int32, sockaddr_in) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(Errno(rawValue: errno))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && listen(fd, backlog) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw TestFailure("bind/listen: \(Errno(rawValue: errno))") }
    return (fd, address)
}

/// A connected loopback TCP pair made with plain libc calls: (client, server).
func makeSocketPair() throws -> (Int32, Int32) {
    let (listener, address) = try makeListener()
    defer { close(listener) }
    let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address2 = address
    let connected = withUnsafePointer(to: &address2) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw TestFailure("connect: \(Errno(rawValue: errno))") }
    let server = accept(listener, nil, nil)
    guard server >= 0 else { throw TestFailure("accept: \(Errno(rawValue: errno))") }
    return (client, server)
}

/// Whether `fd` is readable right now.
func isReadable(_ fd: Int32, waiting milliseconds: Int32 = 0) -> Bool {
    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&pfd, 1, milliseconds) == 1 && pfd.revents & Int16(POLLIN) != 0
}

/// Whether ThreadSanitizer's runtime is in this process. It does not support fork() in a
/// multithreaded process (the child can hang in the runtime's own locks), so the fork test
/// is skipped under it, with that reason; it runs in every other build.
let underThreadSanitizer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil
