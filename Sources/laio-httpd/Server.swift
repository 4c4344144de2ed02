#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CHTTPD
import LAIO
import SystemPackage

/// How sockets are driven.
enum NetworkMode: String, CaseIterable {
    /// Every socket call through LAIO too (the paper's LAIO-LAIO server).
    case laio
    /// Non-blocking sockets on epoll; files through LAIO (the paper's NB-LAIO server).
    case nonblocking
}

struct ServerOptions {
    var root = ""
    var host = "127.0.0.1"
    var port: UInt16 = 8080
    var backend: BackendKind? = nil
    var network = NetworkMode.laio
    var maxConnections = 256
    var idleTimeout: Duration = .seconds(30)
    var accessLog: String? = nil
}

/// What a connection is doing.
enum Phase {
    case receive, parse, open, stat, read, send, done, close
    /// After an error that ends the connection: the write side is shut, and what the
    /// client still sends is read and dropped for a moment, so that closing does not reset
    /// the connection (and destroy the error response) while the client is still sending.
    case linger
}

/// What a background LAIO call was for.
enum Purpose {
    case connection(Connection)   // the connection's current phase
    case accept
    case signal
    case logWrite
    case discard                  // a close whose answer changes nothing
}

/// One client connection. Its buffers belong to the LAIO call in flight, if any: the object
/// (and so its memory) stays alive in `Server.pending` until that call is reported.
final class Connection {
    static let inputCapacity = 16 * 1024
    static let headerCapacity = 1024
    static let bodyCapacity = 64 * 1024

    let fd: Int32
    let serial: UInt64
    let peer: String
    var phase = Phase.receive
    /// A LAIO call of this connection is in flight (its handle), or nil.
    var inFlight: Handle? = nil
    /// Waiting for epoll (nonblocking mode).
    var waitingForSocket = false
    var deadline: Int64
    var closed = false
    var cancelled = false

    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: inputCapacity, alignment: 16)
    var inputCount = 0
    let header = UnsafeMutableRawBufferPointer.allocate(byteCount: headerCapacity, alignment: 16)
    var body: UnsafeMutableRawBufferPointer? = nil
    let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: 2)
    let message = UnsafeMutablePointer<msghdr>.allocate(capacity: 1)
    let stat = UnsafeMutablePointer<Glibc.stat>.allocate(capacity: 1)
    let how = UnsafeMutablePointer<OpenHow>.allocate(capacity: 1)
    /// The path being opened; copied to `pathBuffer`, which the open call reads.
    var path: [CChar] = []
    static let pathCapacity = HTTPParser.maximumTarget + 32
    let pathBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: pathCapacity)

    // The response in progress.
    var request = Request()
    var consumed = 0
    var file: Int32 = -1
    var triedIndex = false
    var status = Status.ok
    var keepAlive = true
    var fileOffset: Int64 = 0
    var fileRemaining: Int64 = 0
    var bytesSent = 0
    /// The length of the status line and header fields of the response in progress.
    var headerBytes = 0
    var lingered = 0

    init(fd: Int32, serial: UInt64, peer: String, deadline: Int64) {
        self.fd = fd
        self.serial = serial
        self.peer = peer
        self.deadline = deadline
        message.initialize(to: msghdr())
        vectors.initialize(repeating: iovec(), count: 2)
    }

    deinit {
        input.deallocate()
        header.deallocate()
        body?.deallocate()
        vectors.deallocate()
        message.deallocate()
        stat.deallocate()
        how.deallocate()
        pathBuffer.deallocate()
    }

}

/// The event loop: one thread, LAIO for files (and sockets in `laio` mode).
final class Server {
    let options: ServerOptions
    let laio: Context
    let rootFD: Int32
    let listenFD: Int32
    let signalFD: Int32
    var epollFD: Int32 = -1
    var port: UInt16 = 0

    var connections: [UInt64: Connection] = [:]
    /// Body buffers of finished responses, kept for the next ones (at most maximumSpareBodies).
    var spareBodies: [UnsafeMutableRawBufferPointer] = []
    static let maximumSpareBodies = 64
    var pending: [Handle: Purpose] = [:]
    var completions: [Completion] = []
    var nextSerial: UInt64 = 16
    var acceptInFlight: Handle? = nil
    var acceptPausedUntil: Int64 = 0
    var listening = true
    var stopping = false
    /// Allocated last in init, after everything that can throw (a failed init runs no deinit).
    let signalBuffer: UnsafeMutableRawBufferPointer
    var signalInFlight = false
    let idleNanoseconds: Int64
    var nextSweep: Int64 = 0

    // The access log: lines gather here and go to the file with one LAIO write at a time.
    var logFD: Int32 = -1
    var logLines: [UInt8] = []
    var logInFlight: UnsafeMutableRawBufferPointer? = nil
    var logInFlightSent = 0
    var logDropped = 0
    static let logLimit = 4 << 20
    /// Connections over --max-connections that may be answering 503 at once.
    static let refusalsAtOnce = 64

    // Date: cached per second.
    var dateSecond = 0
    var dateHeader = ""

    init(options: ServerOptions) throws {
        self.options = options
        idleNanoseconds = options.idleTimeout.nanoseconds

        // SIGINT/SIGTERM arrive through a signalfd; blocked before LAIO starts its threads so
        // every thread inherits the mask. A peer that closes early must not kill us: no SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        sigaddset(&mask, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        // In `laio` mode the signalfd is read through LAIO, so it must block (a non-blocking
        // one would answer EAGAIN at once); epoll reads it in `nonblocking` mode.
        signalFD = signalfd(-1, &mask, Int32(SFD_CLOEXEC) | (options.network == .nonblocking ? Int32(SFD_NONBLOCK) : 0))
        guard signalFD >= 0 else { throw ServerError.system("signalfd", errno) }

        rootFD = open(options.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw ServerError.system("--root \(options.root)", errno) }

        let kind = try options.backend ?? BackendKind.fromEnvironment()
        if kind == .blocking && options.network == .laio {
            throw ServerError.usage("--network laio needs a backend whose calls can go to the background; with --backend "
                + "blocking every idle socket would stall the server. Use --network nonblocking (the classic server that "
                + "blocks only on disk).")
        }
        laio = try Server.makeContext(kind, options: options)

        listenFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listenFD >= 0 else { throw ServerError.system("socket", errno) }
        var one: Int32 = 1
        setsockopt(listenFD, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = options.port.bigEndian
        guard inet_pton(AF_INET, options.host, &address.sin_addr) == 1 else { throw ServerError.usage("--host \(options.host) is not an IPv4 address") }
        let listener = listenFD
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw ServerError.system("bind \(options.host):\(options.port)", errno) }
        guard listen(listenFD, 1024) == 0 else { throw ServerError.system("listen", errno) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)

        if let path = options.accessLog {
            logFD = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard logFD >= 0 else { throw ServerError.system("--access-log \(path)", errno) }
        }
        completions.reserveCapacity(256)
        signalBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 128 * 4, alignment: 8)
    }

    /// The context; in `laio` mode an idle connection keeps a pool worker in recv on the
    /// `threads` backend (and on `auto` without io_uring), so the pool gets one per connection.
    static func makeContext(_ kind: BackendKind, options: ServerOptions) throws -> Context {
        let perConnection = ThreadPoolSettings(workers: min(options.maxConnections + 16, ThreadPoolSettings.maximumWorkers))
        switch (kind, options.network) {
        case (.threads, .laio):
            return try Context(backend: kind, threads: perConnection)
        case (.auto, .laio):
            let context = try Context(backend: .auto)
            if context.uringUnavailableReason == nil { return context }
            context.close()
            var settings = perConnection
            settings.idleSpin = .zero
            return try Context(backend: .auto, threads: settings)
        default:
            return try Context(backend: kind)
        }
    }

    deinit {
        signalBuffer.deallocate()
        logInFlight?.deallocate()
        for body in spareBodies { body.deallocate() }
    }

    // MARK: - The loop

    func run() throws {
        if options.network == .nonblocking {
            epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
            guard epollFD >= 0 else { throw ServerError.system("epoll_create1", errno) }
            _ = fcntl(listenFD, F_SETFL, fcntl(listenFD, F_GETFL) | O_NONBLOCK)
            watch(listenFD, data: 0, events: EPOLLIN.rawValue)
            watch(laio.notificationDescriptor, data: 1, events: EPOLLIN.rawValue)
            watch(signalFD, data: 2, events: EPOLLIN.rawValue)
        } else {
            armSignal()
            acceptConnections()
        }
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while true {
            let now = monotonicNanoseconds()
            if now >= nextSweep { sweep(now) }
            if stopping && connections.isEmpty && pending.allSatisfy({ if case .connection = $0.value { false } else { true } }) {
                break
            }
            flushLog()
            let wait = max(min(nextSweep - now, 250_000_000), 0)
            if options.network == .nonblocking {
                if listenerUnwatched && !acceptPaused && listening {
                    listenerUnwatched = false
                    watch(listenFD, data: 0, events: EPOLLIN.rawValue)
                    acceptConnections()
                }
                let count = epoll_wait(epollFD, &events, Int32(events.count), Int32(wait / 1_000_000))
                if count < 0 && errno != EINTR { throw ServerError.system("epoll_wait", errno) }
                for index in 0..<max(Int(count), 0) {
                    let event = events[index]
                    switch event.data.u64 {
                    case 0: acceptConnections()
                    case 1: pollLAIO(timeout: .zero)
                    case 2: readSignals()
                    default:
                        if let connection = connections[event.data.u64], connection.waitingForSocket {
                            connection.waitingForSocket = false
                            drive(connection)
                        }
                    }
                }
            } else {
                if acceptInFlight == nil { acceptConnections() }   // after a pause
                pollLAIO(timeout: .nanoseconds(wait))
            }
        }
        shutdownNow()
    }

    var acceptPaused: Bool { monotonicNanoseconds() < acceptPausedUntil }
    /// The listener is out of epoll while accepts pause (nonblocking mode).
    var listenerUnwatched = false

    func pollLAIO(timeout: Duration) {
        completions.removeAll(keepingCapacity: true)
        guard (try? laio.poll(into: &completions, maximum: 256, timeout: timeout)) != nil else { return }
        for completion in completions {
            guard let purpose = pending.removeValue(forKey: completion.handle) else { continue }
            switch purpose {
            case let .connection(connection):
                connection.inFlight = nil
                if connection.cancelled { connection.phase = .close } else { finish(connection, completion.result) }
                drive(connection)
            case .accept:
                acceptInFlight = nil
                acceptDone(completion.result)
                acceptConnections()
            case .signal:
                signalInFlight = false
                if case .success = completion.result { beginStop() } else if !stopping { armSignal() }
            case .logWrite:
                logWriteDone(completion.result)
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
                if case .accept = purpose { acceptInFlight = handle }
                return nil
            }
        } catch {
            return .failure(error)
        }
    }

    // MARK: - Connections

    /// Runs `connection` until it waits for LAIO or for its socket, or is closed.
    func drive(_ connection: Connection) {
        while !connection.closed && connection.inFlight == nil && !connection.waitingForSocket {
            if connection.phase == .close {
                closeConnection(connection)
                return
            }
            if connection.phase == .parse {
                parse(connection)
                continue
            }
            if connection.phase == .done {
                responseDone(connection)
                continue
            }
            guard let result = perform(connection) else { return }
            finish(connection, result)
        }
    }

    /// The system call of the connection's phase: its result, or nil if it is waiting.
    func perform(_ c: Connection) -> Result<Int, Errno>? {
        switch c.phase {
        case .receive, .linger:
            if c.phase == .linger { c.inputCount = 0 }
            let free = UnsafeMutableRawBufferPointer(rebasing: c.input[c.inputCount...])
            if options.network == .laio {
                return issue(.recv(fd: c.fd, buffer: free, flags: 0), for: .connection(c))
            }
            return socketResult(c, recv(c.fd, free.baseAddress, free.count, Int32(MSG_DONTWAIT)))
        case .open:
            guard c.path.count <= Connection.pathCapacity else { return .failure(Errno(rawValue: ENAMETOOLONG)) }
            c.path.withUnsafeBufferPointer { c.pathBuffer.update(from: $0.baseAddress!, count: $0.count) }
            // O_NONBLOCK: opening a FIFO under the root must not wait for a writer.
            c.how.pointee = OpenHow(flags: O_RDONLY | O_CLOEXEC | O_NONBLOCK, resolve: [.beneath, .noMagicLinks])
            return issue(.openat2(dirfd: rootFD, path: c.pathBuffer, how: c.how), for: .connection(c))
        case .stat:
            return issue(.fstat(fd: c.file, buffer: c.stat), for: .connection(c))
        case .read:
            let body = bodyBuffer(c)
            let count = Int(min(c.fileRemaining, Int64(body.count)))
            return issue(.pread(fd: c.file, buffer: UnsafeMutableRawBufferPointer(rebasing: body[..<count]), offset: c.fileOffset),
                         for: .connection(c))
        case .send:
            // The header vector, once sent, is skipped; the body vector is there while it has bytes.
            let first = c.vectors[0].iov_len == 0 ? 1 : 0
            c.message.pointee.msg_iov = c.vectors + first
            c.message.pointee.msg_iovlen = (c.vectors[1].iov_len > 0 ? 2 : 1) - first
            if options.network == .laio {
                return issue(.sendmsg(fd: c.fd, message: c.message, flags: Int32(MSG_NOSIGNAL)), for: .connection(c))
            }
            return socketResult(c, sendmsg(c.fd, c.message, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)))
        case .parse, .done, .close:
            return .success(0)
        }
    }

    /// A non-blocking socket call's answer: its result, or nil (waiting for epoll) on EAGAIN.
    func socketResult(_ c: Connection, _ answer: Int) -> Result<Int, Errno>? {
        if answer >= 0 { return .success(answer) }
        if errno == EAGAIN || errno == EWOULDBLOCK {
            c.waitingForSocket = true
            return nil
        }
        return .failure(Errno(rawValue: errno))
    }

    /// Takes the result of the connection's phase and moves it on.
    func finish(_ c: Connection, _ result: Result<Int, Errno>) {
        switch c.phase {
        case .receive:
            switch result {
            case let .success(count) where count > 0:
                c.inputCount += count
                c.phase = .parse
            default:
                c.phase = .close   // end of stream, reset, or cancelled
            }
        case .open:
            switch result {
            case let .success(fd):
                c.file = Int32(fd)
                c.phase = .stat
            case let .failure(error):
                switch error.rawValue {
                case ENOENT where c.triedIndex: respondWithError(c, .forbidden)  // a directory without index.html
                case ENOENT, ENOTDIR: respondWithError(c, .notFound)
                case EACCES, EPERM, EXDEV, ELOOP: respondWithError(c, .forbidden)
                case ENAMETOOLONG: respondWithError(c, .uriTooLong)
                case EMFILE, ENFILE, ENOMEM, EAGAIN: respondWithError(c, .unavailable)
                default: respondWithError(c, .internalError)
                }
            }
        case .stat:
            guard case .success = result else {
                closeFile(c)
                respondWithError(c, .internalError)
                return
            }
            fileOpened(c)
        case .read:
            guard case let .success(count) = result, count > 0 else {
                // The file shrank or failed under us: the promised length cannot be kept.
                closeFile(c)
                c.phase = .close
                return
            }
            c.vectors[1] = iovec(iov_base: c.body!.baseAddress, iov_len: count)
            c.fileOffset += Int64(count)
            c.fileRemaining -= Int64(count)
            c.phase = .send
        case .send:
            guard case var .success(sent) = result else {
                c.phase = .close    // the peer went away: only this connection pays
                return
            }
            c.bytesSent += sent
            c.deadline = monotonicNanoseconds() + idleNanoseconds
            for index in 0..<2 where sent > 0 {
                let take = min(sent, c.vectors[index].iov_len)
                c.vectors[index].iov_base = c.vectors[index].iov_base.map { $0 + take }
                c.vectors[index].iov_len -= take
                sent -= take
            }
            if c.vectors[0].iov_len > 0 || c.vectors[1].iov_len > 0 { return }  // send the rest
            c.phase = c.fileRemaining > 0 ? .read : .done
        case .linger:
            if case let .success(count) = result, count > 0, c.lingered < 1 << 20 {
                c.lingered += count   // dropped; keep reading until the client is done
            } else {
                c.phase = .close
            }
        case .parse, .done, .close:
            break
        }
    }

    func parse(_ c: Connection) {
        let buffered = UnsafeRawBufferPointer(rebasing: c.input[..<c.inputCount])
        switch HTTPParser.parse(buffered, logLine: logFD >= 0) {
        case .incomplete:
            if c.inputCount == c.input.count {
                respondWithError(c, .headersTooLarge)
            } else {
                c.phase = stopping && c.inputCount == 0 ? .close : .receive
            }
        case let .failure(status):
            c.request = Request()
            c.consumed = c.inputCount
            respondWithError(c, status)
        case let .request(request, consumed):
            c.request = request
            c.consumed = consumed
            c.keepAlive = request.keepAlive && !stopping
            c.triedIndex = false
            c.path = request.path.isEmpty ? [CChar(UInt8(ascii: "."))] : request.path.map { CChar(bitPattern: $0) }
            c.path.append(0)
            c.phase = .open
        }
    }

    /// The file is open and `c.stat` describes it: decide the response.
    func fileOpened(_ c: Connection) {
        let info = c.stat.pointee
        let type = info.st_mode & S_IFMT
        if type == S_IFDIR {
            closeFile(c)
            guard !c.triedIndex else { return respondWithError(c, .forbidden) }
            c.triedIndex = true
            c.path.removeLast()
            if c.path == [CChar(UInt8(ascii: "."))] { c.path = [] } else { c.path.append(CChar(UInt8(ascii: "/"))) }
            c.path.append(contentsOf: "index.html".utf8.map { CChar(bitPattern: $0) })
            c.path.append(0)
            c.request.path = c.path.dropLast().map { UInt8(bitPattern: $0) }
            c.phase = .open
            return
        }
        guard type == S_IFREG else {
            closeFile(c)
            return respondWithError(c, .forbidden)
        }
        let size = Int64(info.st_size)
        let modified = info.st_mtim.tv_sec
        var status = Status.ok
        var first: Int64 = 0, length = size
        if let since = c.request.ifModifiedSince, modified <= since {
            status = .notModified
            length = 0
        } else if let range = c.request.range {
            if let (a, b) = range.resolve(size: size) {
                status = .partialContent
                first = a
                length = b - a + 1
            } else {
                closeFile(c)
                return respond(c, .rangeNotSatisfiable, extra: "Content-Range: bytes */\(size)\r\n", body: "")
            }
        }
        var extra = "Content-Type: \(ContentType.of(path: c.request.path))\r\nLast-Modified: \(HTTPDate.format(modified))\r\n"
            + "Accept-Ranges: bytes\r\n"
        if status == .partialContent { extra += "Content-Range: bytes \(first)-\(first + length - 1)/\(size)\r\n" }
        c.status = status
        writeHeader(c, status, contentLength: status == .notModified ? nil : length, extra: extra)
        c.fileOffset = first
        c.fileRemaining = c.request.isHead || status == .notModified ? 0 : length
        if c.fileRemaining == 0 {
            closeFile(c)
            c.vectors[1] = iovec()
            c.phase = .send
        } else {
            c.phase = .read   // the first chunk goes out with the header in one sendmsg
        }
    }

    func respondWithError(_ c: Connection, _ status: Status) {
        let body = "\(status.rawValue) \(status.reason)\n"
        let extra = status == .methodNotAllowed ? "Allow: GET, HEAD\r\n" : ""
        respond(c, status, extra: extra, body: body)
    }

    /// A response whose body is in the header buffer (errors, 416).
    func respond(_ c: Connection, _ status: Status, extra: String, body: String) {
        if status.closesConnection { c.keepAlive = false }
        c.status = status
        let withType = body.isEmpty ? extra : extra + "Content-Type: text/plain; charset=utf-8\r\n"
        writeHeader(c, status, contentLength: Int64(body.utf8.count), extra: withType,
                    body: c.request.isHead ? "" : body)
        c.vectors[1] = iovec()
        c.fileRemaining = 0
        c.phase = .send
    }

    func writeHeader(_ c: Connection, _ status: Status, contentLength: Int64?, extra: String, body: String = "") {
        let now = time(nil)
        if now != dateSecond {
            dateSecond = now
            dateHeader = "Date: \(HTTPDate.format(now))\r\n"
        }
        var text = "HTTP/1.1 \(status.rawValue) \(status.reason)\r\nServer: laio-httpd\r\n" + dateHeader + extra
        if let contentLength { text += "Content-Length: \(contentLength)\r\n" }
        text += c.keepAlive ? (c.request.isHTTP10 ? "Connection: keep-alive\r\n\r\n" : "\r\n") : "Connection: close\r\n\r\n"
        text += body
        var utf8 = text.utf8.count
        if utf8 > c.header.count {  // only an oversized extra could do this; keep the status line
            text = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            c.keepAlive = false
            utf8 = text.utf8.count
        }
        _ = text.utf8.withContiguousStorageIfAvailable { c.header.copyMemory(from: UnsafeRawBufferPointer($0)) }
            ?? Array(text.utf8).withUnsafeBytes { c.header.copyMemory(from: $0) }
        c.vectors[0] = iovec(iov_base: c.header.baseAddress, iov_len: utf8)
        c.bytesSent = 0
        c.headerBytes = utf8 - body.utf8.count
    }

    /// The connection's body buffer for reading its file: one of the spares, or a new one.
    func bodyBuffer(_ c: Connection) -> UnsafeMutableRawBufferPointer {
        if let body = c.body { return body }
        let made = spareBodies.popLast()
            ?? UnsafeMutableRawBufferPointer.allocate(byteCount: Connection.bodyCapacity, alignment: 4096)
        c.body = made
        return made
    }

    /// Takes back a connection's body buffer once no call of its can use it (its response is
    /// sent, or it is closed with nothing in flight): connections waiting for a request hold
    /// none, so memory follows the responses in progress, not the connections open.
    func releaseBody(_ c: Connection) {
        guard let body = c.body else { return }
        c.body = nil
        if spareBodies.count < Server.maximumSpareBodies { spareBodies.append(body) } else { body.deallocate() }
    }

    func responseDone(_ c: Connection) {
        closeFile(c)
        releaseBody(c)
        if logFD >= 0 { log(c) }
        // Keep what follows this request (pipelining).
        let rest = c.inputCount - c.consumed
        if rest > 0 && c.consumed > 0 {
            c.input.baseAddress!.copyMemory(from: c.input.baseAddress! + c.consumed, byteCount: rest)
        }
        c.inputCount = max(rest, 0)
        c.consumed = 0
        c.request = Request()
        guard c.keepAlive && !stopping else {
            if c.status.closesConnection {
                // shutdown(2) never blocks; it is called directly in both network modes.
                _ = shutdown(c.fd, Int32(SHUT_WR))
                c.deadline = min(c.deadline, monotonicNanoseconds() + 2_000_000_000)
                c.phase = .linger
            } else {
                c.phase = .close
            }
            return
        }
        c.deadline = monotonicNanoseconds() + idleNanoseconds
        c.phase = c.inputCount > 0 ? .parse : .receive
    }

    func closeFile(_ c: Connection) {
        guard c.file >= 0 else { return }
        closeDescriptor(c.file)
        c.file = -1
    }

    /// Closes a descriptor: through LAIO in `laio` mode, where every call goes through it.
    func closeDescriptor(_ fd: Int32) {
        if options.network == .laio {
            _ = issue(.close(fd: fd), for: .discard)
        } else {
            _ = Glibc.close(fd)
        }
    }

    func closeConnection(_ c: Connection) {
        guard !c.closed else { return }
        if let handle = c.inFlight {
            // Its memory stays in use until the call is reported; close then.
            c.cancelled = true
            try? laio.cancel(handle)
            return
        }
        c.closed = true
        closeFile(c)
        releaseBody(c)
        if epollFD >= 0 { _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, c.fd, nil) }
        closeDescriptor(c.fd)
        connections[c.serial] = nil
    }

    // MARK: - Accepting

    func acceptConnections() {
        guard listening && !stopping && monotonicNanoseconds() >= acceptPausedUntil else { return }
        while listening && acceptInFlight == nil {
            let result: Result<Int, Errno>
            if options.network == .laio {
                guard let answer = issue(.accept(fd: listenFD, flags: Int32(SOCK_CLOEXEC.rawValue)), for: .accept) else { return }
                result = answer
            } else {
                let fd = laio_httpd_accept4(listenFD, Int32(SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue))
                if fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
                result = fd >= 0 ? .success(Int(fd)) : .failure(Errno(rawValue: errno))
            }
            if !acceptDone(result) { return }
        }
    }

    /// Takes an accepted connection. False when accepting should pause.
    @discardableResult
    func acceptDone(_ result: Result<Int, Errno>) -> Bool {
        switch result {
        case let .failure(error):
            switch error.rawValue {
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors or memory: stop accepting for a moment; the backlog waits.
                report("accept: \(error); pausing accepts for 100 ms")
                acceptPausedUntil = monotonicNanoseconds() + 100_000_000
                unwatchListener()
                return false
            case ECANCELED, EBADF, EINVAL:
                return false
            default:
                return true   // ECONNABORTED and the like: the next one
            }
        case let .success(value):
            let fd = Int32(value)
            let refuse = connections.count >= options.maxConnections || stopping
            if refuse && connections.count >= options.maxConnections + Server.refusalsAtOnce {
                _ = Glibc.close(fd)   // far over the limit: no answer at all
                return true
            }
            // No Nagle delay for a response's last segment (setsockopt never blocks; direct in both modes).
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let serial = nextSerial
            nextSerial += 1
            let connection = Connection(fd: fd, serial: serial, peer: logFD >= 0 ? peerName(fd) : "",
                                        deadline: monotonicNanoseconds() + idleNanoseconds)
            connections[serial] = connection
            if epollFD >= 0 {
                watch(fd, data: serial, events: EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue)
            }
            if refuse {
                // Refused cleanly: a 503, then the lingering close of any error response.
                connection.keepAlive = false
                respondWithError(connection, .unavailable)
            }
            drive(connection)
            return true
        }
    }

    /// Takes the listener out of epoll (nonblocking mode) while accepts pause or once
    /// stopping: level-triggered, it would wake epoll_wait at once, again and again.
    func unwatchListener() {
        guard epollFD >= 0 && !listenerUnwatched else { return }
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, listenFD, nil)
        listenerUnwatched = true
    }

    func watch(_ fd: Int32, data: UInt64, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = data
        _ = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
    }

    // MARK: - Time-outs and stopping

    /// Closes connections past their deadline: idle ones, and slow ones (a request's header
    /// must arrive, and each send must progress, within the idle time-out).
    func sweep(_ now: Int64) {
        nextSweep = now + min(max(idleNanoseconds / 4, 10_000_000), 250_000_000)
        for connection in connections.values where connection.deadline <= now && !connection.closed {
            abandon(connection)
        }
    }

    /// Closes a connection that waits (for LAIO or for its socket) without waiting more; a
    /// call in flight is cancelled and the connection closes when it is reported.
    func abandon(_ c: Connection) {
        c.phase = .close
        c.waitingForSocket = false
        closeConnection(c)
    }

    func armSignal() {
        guard !signalInFlight else { return }
        if let result = issue(.read(fd: signalFD, buffer: signalBuffer), for: .signal) {
            if case .success = result { beginStop() } else { report("signalfd read failed: \(result); SIGINT/SIGTERM end the server at once") }
        } else {
            signalInFlight = true
        }
    }

    func readSignals() {
        if read(signalFD, signalBuffer.baseAddress, signalBuffer.count) > 0 { beginStop() }
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
        listening = false
        if let handle = acceptInFlight { try? laio.cancel(handle) }
        unwatchListener()
        for connection in connections.values where connection.phase == .receive && connection.inputCount == 0 {
            abandon(connection)
        }
    }

    func shutdownNow() {
        for connection in connections.values { connection.phase = .close; connection.inFlight = nil; closeConnection(connection) }
        flushLog(final: true)
        laio.close()   // waits until no call runs, so no buffer is written after this
        pending.removeAll()
        _ = Glibc.close(listenFD)
        _ = Glibc.close(rootFD)
        report("stopped" + (laio.statistics.map { "; LAIO calls: \($0)" } ?? ""))
    }

    // MARK: - Access log

    func peerName(_ fd: Int32) -> String {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard ok == 0 else { return "-" }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &address.sin_addr, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func log(_ c: Connection) {
        // Common log format: the body bytes sent ("-" for none).
        let body = max(c.bytesSent - c.headerBytes, 0)
        let line = "\(c.peer) - - [\(HTTPDate.commonLogFormat(time(nil)))] \"\(c.request.line)\" \(c.status.rawValue) "
            + (body > 0 ? "\(body)\n" : "-\n")
        guard logLines.count + line.utf8.count <= Server.logLimit else {
            logDropped += 1   // the disk is slower than the traffic: bounded, counted
            return
        }
        logLines.append(contentsOf: line.utf8)
    }

    func flushLog(final: Bool = false) {
        guard logFD >= 0 else { return }
        if final {
            // At exit, after LAIO stopped: write what is left directly.
            if let inFlight = logInFlight, logInFlightSent < inFlight.count {
                _ = write(logFD, inFlight.baseAddress! + logInFlightSent, inFlight.count - logInFlightSent)
            }
            logLines.withUnsafeBytes { _ = write(logFD, $0.baseAddress, $0.count) }
            if logDropped > 0 { report("access log: \(logDropped) lines dropped (the log file could not keep up)") }
            return
        }
        if logInFlight == nil {
            guard !logLines.isEmpty else { return }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: logLines.count, alignment: 1)
            logLines.withUnsafeBytes { buffer.copyMemory(from: $0) }
            logLines.removeAll(keepingCapacity: true)
            logInFlight = buffer
            logInFlightSent = 0
        }
        guard let buffer = logInFlight, !logWriteInFlight else { return }
        let rest = UnsafeRawBufferPointer(rebasing: buffer[logInFlightSent...])
        if let result = issue(.write(fd: logFD, buffer: rest), for: .logWrite) {
            logWriteDone(result)
        } else {
            logWriteInFlight = true
        }
    }

    var logWriteInFlight = false

    func logWriteDone(_ result: Result<Int, Errno>) {
        logWriteInFlight = false
        guard let buffer = logInFlight else { return }
        switch result {
        case let .success(count) where count > 0:
            logInFlightSent += count
            if logInFlightSent >= buffer.count {
                buffer.deallocate()
                logInFlight = nil
            }
        default:
            report("access log: write failed (\(result)); dropping \(buffer.count - logInFlightSent) bytes")
            buffer.deallocate()
            logInFlight = nil
        }
    }
}

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

func report(_ text: String) {
    let line = "laio-httpd: \(text)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}
