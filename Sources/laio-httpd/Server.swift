#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CHTTPD
import LAIO
import SystemPackage

/// What the command line asks for (see `HTTPDCommand` for each flag).
struct ServerOptions {
    var root = ""
    var host = "127.0.0.1"
    var port: UInt16 = 8080
    var backend: BackendKind? = nil
    var network = NetworkMode.nonblocking
    var maxConnections = 256
    var idleTimeout: Duration = .seconds(30)
    var accessLog: String? = nil
    /// io_uring's bound on workers for blocking file work (`UringSettings.maximumFileWorkers`);
    /// nil: the library's default.
    var fileWorkers: Int? = nil
    /// The thread pool's workers; nil: the library's default (in `laio` network mode, one
    /// per connection).
    var poolWorkers: Int? = nil
}

/// What a background LAIO call was for.
enum Purpose {
    case connection(Connection)   // the connection's current phase
    case accept
    case signal
    case logWrite
    case discard                  // a close whose answer changes nothing
}

/// The event loop: one thread, LAIO for files (and sockets in `laio` mode). It owns the
/// context, the table of calls in the background and the connections, and hands each
/// completion and each ready socket to its owner: a connection, the listener, the access
/// log or the signal read.
final class Server {
    let options: ServerOptions
    let sockets: any SocketIO
    let laio: Context
    let rootFD: Int32
    /// The device of the root when it is on a local file system, whose close(2) of a file
    /// opened for reading does not wait for the storage (`localFileSystems`); nil otherwise.
    let quickCloseDevice: dev_t?
    let listener: Listener
    let signalFD: Int32
    let accessLog: AccessLog?
    var port: UInt16 { listener.port }

    var connections: [UInt64: Connection] = [:]
    var spareBodies = SpareBodies()
    var dateField = DateField()
    var pending: [Handle: Purpose] = [:]
    var completions: [Completion] = []
    /// Connection serials start above the epoll data of `NonblockingSocketIO.Source`.
    var nextSerial: UInt64 = 16
    var stopping = false
    /// Allocated last in init, after everything that can throw (a failed init runs no deinit).
    let signalBuffer: UnsafeMutableRawBufferPointer
    var signalInFlight = false
    let idleNanoseconds: Int64
    var nextSweep: Int64 = 0

    /// Connections over --max-connections that may be answering 503 at once.
    static let refusalsAtOnce = 64

    /// statfs(2) types of local file systems, where closing a file that was only read does
    /// no I/O: ext2/3/4, XFS, Btrfs, tmpfs, ramfs, F2FS, ZFS, overlayfs (containers), squashfs,
    /// EROFS. NFS, CIFS, FUSE and the rest may wait in close(2) for their server (NFS and FUSE
    /// send a flush) and are closed through LAIO.
    static let localFileSystems: Set<Int64> = [
        0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994, 0x8584_58F6, 0xF2F5_2010, 0x2FC1_2FC1,
        0x794C_7630, 0x7371_7368, 0xE0F5_E1E2,
    ]

    init(options: ServerOptions) throws {
        self.options = options
        let (seconds, attoseconds) = options.idleTimeout.components
        idleNanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        sockets = options.network.makeSocketIO()

        // SIGINT/SIGTERM arrive through a signalfd; blocked before LAIO starts its threads so
        // every thread inherits the mask. A peer that closes early must not kill us: no SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        sigaddset(&mask, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        signalFD = signalfd(-1, &mask, sockets.signalDescriptorFlags)
        guard signalFD >= 0 else { throw ServerError.system("signalfd", errno) }

        rootFD = open(options.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw ServerError.system("--root \(options.root)", errno) }
        var system = statfs()
        var root = Glibc.stat()
        quickCloseDevice = fstatfs(rootFD, &system) == 0 && Server.localFileSystems.contains(Int64(system.f_type))
            && fstat(rootFD, &root) == 0 ? root.st_dev : nil

        laio = try sockets.makeContext(options.backend ?? BackendKind.fromEnvironment(), options: options)
        listener = try Listener(host: options.host, port: options.port)
        accessLog = try options.accessLog.map { try AccessLog(path: $0) }
        completions.reserveCapacity(256)
        signalBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 128 * 4, alignment: 8)
    }

    deinit {
        signalBuffer.deallocate()
        spareBodies.deallocateAll()
    }

    // MARK: - The loop

    func run() throws {
        try sockets.start(self)
        while true {
            let now = monotonicNow()
            if now >= nextSweep { sweep(now) }
            if stopping && connections.isEmpty && pending.allSatisfy({ if case .connection = $0.value { false } else { true } }) {
                break
            }
            accessLog?.flush(self)
            try sockets.wait(self, timeout: max(min(nextSweep - now, 250_000_000), 0))
        }
        shutdownNow()
    }

    /// Takes what LAIO finished (waiting up to `timeout` for it) to the owners of the calls.
    func pollLAIO(timeout: Duration) {
        completions.removeAll(keepingCapacity: true)
        guard (try? laio.poll(into: &completions, maximum: 256, timeout: timeout)) != nil else { return }
        for completion in completions {
            guard let purpose = pending.removeValue(forKey: completion.handle) else { continue }
            switch purpose {
            case let .connection(connection):
                connection.inFlight = nil
                if connection.cancelled { connection.phase = .close } else { connection.finish(completion.result) }
                connection.drive()
            case .accept:
                listener.acceptInFlight = nil
                listener.acceptDone(self, completion.result)
                listener.acceptConnections(self)
            case .signal:
                signalInFlight = false
                if case .success = completion.result { beginStop() } else if !stopping { armSignal() }
            case .logWrite:
                accessLog?.writeDone(completion.result)
            case .discard:
                break
            }
        }
    }

    /// Issues `operation` through LAIO for `purpose`: the result now, or nil when it went to
    /// the background (then `pending` holds the purpose until poll reports it).
    func issue(_ operation: Operation, for purpose: Purpose) -> Result<Int, Errno>? {
        do {
            switch try laio.submit(operation) {
            case let .completed(result):
                return result
            case let .inProgress(handle):
                pending[handle] = purpose
                if case let .connection(connection) = purpose { connection.inFlight = handle }
                if case .accept = purpose { listener.acceptInFlight = handle }
                return nil
            }
        } catch {
            return .failure(error)
        }
    }

    /// Closes `fd` through LAIO; the answer changes nothing. When the context refuses the
    /// call (EAGAIN: at capacity; close(2) itself never answers that), directly, so that no
    /// descriptor leaks.
    func closeDescriptor(_ fd: Int32) {
        if case let .failure(error)? = issue(.close(fd: fd), for: .discard), error == .resourceTemporarilyUnavailable {
            _ = Glibc.close(fd)
        }
    }

    /// Takes an accepted socket: a new connection, answered 503 over --max-connections
    /// (and closed unanswered far over it).
    func admit(_ fd: Int32) {
        let refuse = connections.count >= options.maxConnections || stopping
        if refuse && connections.count >= options.maxConnections + Server.refusalsAtOnce {
            _ = Glibc.close(fd)   // far over the limit: no answer at all
            return
        }
        // No Nagle delay for a response's last segment (setsockopt never blocks; direct in both modes).
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let serial = nextSerial
        nextSerial += 1
        let connection = Connection(server: self, fd: fd, serial: serial, peer: accessLog != nil ? AccessLog.peerName(fd) : "",
                                    deadline: monotonicNow() + idleNanoseconds)
        connections[serial] = connection
        sockets.opened(connection)
        if refuse {
            // Refused cleanly: a 503, then the lingering close of any error response.
            connection.keepAlive = false
            connection.respondWithError(.unavailable)
        }
        connection.drive()
    }

    // MARK: - Time-outs and stopping

    /// Closes connections past their deadline: idle ones, and slow ones (a request's header
    /// must arrive, and each send must progress, within the idle time-out).
    func sweep(_ now: Int64) {
        nextSweep = now + min(max(idleNanoseconds / 4, 10_000_000), 250_000_000)
        for connection in connections.values where connection.deadline <= now && !connection.closed {
            connection.abandon()
        }
    }

    /// Reads the signalfd through LAIO (`laio` mode; epoll watches it in the other).
    func armSignal() {
        guard !signalInFlight else { return }
        if let result = issue(.read(fd: signalFD, buffer: signalBuffer), for: .signal) {
            if case .success = result { beginStop() } else { report("signalfd read failed: \(result); SIGINT/SIGTERM end the server at once") }
        } else {
            signalInFlight = true
        }
    }

    /// SIGINT/SIGTERM: stop accepting, let responses in progress finish, close idle
    /// connections; the loop ends when none is left. There is no fixed grace period: a
    /// response that keeps moving is not stuck, however slow the client's link, and one
    /// that stops moving is closed by the sweep once a send makes no progress within the
    /// idle time-out, as at any other time.
    func beginStop() {
        guard !stopping else { return }
        stopping = true
        report("stopping: no new connections; finishing \(connections.count) open ones")
        listener.stop(self)
        for connection in connections.values where connection.phase == .receive && connection.inputCount == 0 {
            connection.abandon()
        }
    }

    func shutdownNow() {
        for connection in connections.values { connection.phase = .close; connection.inFlight = nil; connection.close() }
        accessLog?.flushAtExit()
        laio.close()   // waits until no call runs, so no buffer is written after this
        pending.removeAll()
        _ = Glibc.close(listener.fd)
        _ = Glibc.close(rootFD)
        report("stopped" + (laio.statistics.map { "; LAIO calls: \($0)" } ?? ""))
    }
}

/// Why the server cannot start: bad usage, or a system call's error.
enum ServerError: Error, CustomStringConvertible {
    case usage(String)
    case system(String, Int32)

    var description: String {
        switch self {
        case let .usage(text): text
        case let .system(what, code): "\(what): \(Errno(rawValue: code))"
        }
    }
}

/// Nanoseconds on the standard library's monotonic clock (CLOCK_MONOTONIC) since its first
/// reading here: the clock of deadlines, sweeps and accept pauses, kept as integers.
func monotonicNow() -> Int64 {
    let (seconds, attoseconds) = clockOrigin.duration(to: .now).components
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
}

/// The first reading of the clock (made on first use).
private let clockOrigin = SuspendingClock.now

func report(_ text: String) {
    let line = "laio-httpd: \(text)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}
