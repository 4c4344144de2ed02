#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CHTTPD
import LAIO

/// How sockets are driven (`--network`).
enum NetworkMode: String, CaseIterable {
    /// Every socket call through LAIO too (the paper's LAIO-LAIO server).
    case laio
    /// Non-blocking sockets on epoll; files through LAIO (the paper's NB-LAIO server).
    case nonblocking

    /// The socket I/O of this mode: the one place that asks which mode runs.
    func makeSocketIO() -> any SocketIO {
        switch self {
        case .laio: LAIOSocketIO()
        case .nonblocking: NonblockingSocketIO()
        }
    }
}

/// The socket calls of one network mode and the loop's wait, so that the loop and the
/// connections never ask which mode runs. A call that must wait answers nil: it went to
/// the background (its purpose is pending in the server) or the socket is not ready (the
/// connection waits for epoll).
protocol SocketIO: AnyObject {
    /// The flags of the signalfd the loop reads SIGINT/SIGTERM from.
    var signalDescriptorFlags: Int32 { get }
    /// The LAIO context for `kind`; throws `ServerError.usage` for a backend this mode
    /// cannot run on.
    func makeContext(_ kind: BackendKind, options: ServerOptions) throws -> Context
    /// Before the first turn of the loop: starts waiting for connections and signals.
    func start(_ server: Server) throws
    /// One turn of the loop: waits up to `timeout` nanoseconds for sockets, signals and
    /// LAIO completions, and hands each to its owner.
    func wait(_ server: Server, timeout: Int64) throws
    /// accept(2) on the server's listener: the new socket, or nil.
    func accept(_ server: Server) -> Result<Int, Errno>?
    /// Stops waiting for the listener while accepts pause or once stopping.
    func unwatchListener(_ server: Server)
    /// A connection was accepted.
    func opened(_ c: Connection)
    /// recv(2) into `buffer`: the bytes received, or nil.
    func receive(_ c: Connection, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno>?
    /// sendmsg(2) of the connection's prepared message: the bytes sent, or nil.
    func send(_ c: Connection) -> Result<Int, Errno>?
    /// Closes the connection's file; the answer changes nothing.
    func closeFile(_ c: Connection)
    /// Closes the connection's socket; the answer changes nothing.
    func closeSocket(_ c: Connection)
}

/// `--network laio`: every socket call through LAIO, and each turn of the loop is one
/// `poll`.
final class LAIOSocketIO: SocketIO {
    // The signalfd is read through LAIO, so it must block (a non-blocking one would answer
    // EAGAIN at once).
    var signalDescriptorFlags: Int32 { Int32(SFD_CLOEXEC) }

    /// On `threads` (and on `auto` without io_uring) an idle connection keeps a pool worker
    /// in recv, so the pool may grow to one per connection.
    func makeContext(_ kind: BackendKind, options: ServerOptions) throws -> Context {
        var perConnection = ThreadPoolSettings.forServer(options)
        if options.poolWorkers == nil {
            perConnection.maximumWorkers = min(max(perConnection.maximumWorkers, options.maxConnections + 16),
                                               ThreadPoolSettings.workerLimit)
        }
        let uring = UringSettings.forServer(options)
        switch kind {
        case .blocking:
            throw ServerError.usage("--network laio needs a backend whose calls can go to the background; with --backend "
                + "blocking every idle socket would stall the server. Use --network nonblocking (the classic server that "
                + "blocks only on disk).")
        case .threads:
            return try Context(backend: kind, threads: perConnection)
        case .auto:
            let context = try Context(backend: .auto, threads: options.poolWorkers.map { _ in .forServer(options) },
                                      uring: uring)
            if context.uringUnavailableReason == nil { return context }
            context.close()
            var settings = perConnection
            settings.idleSpin = .zero
            return try Context(backend: .auto, threads: settings, uring: uring)
        case .uring:
            return try Context(backend: kind, uring: uring)
        }
    }

    func start(_ server: Server) throws {
        server.armSignal()
        server.listener.acceptConnections(server)
    }

    func wait(_ server: Server, timeout: Int64) throws {
        if server.listener.acceptInFlight == nil { server.listener.acceptConnections(server) }   // after a pause
        server.pollLAIO(timeout: .nanoseconds(timeout))
    }

    func accept(_ server: Server) -> Result<Int, Errno>? {
        // When the call waits, `issue` keeps its handle in `listener.acceptInFlight`.
        server.issue(.accept(fd: server.listener.fd, flags: Int32(SOCK_CLOEXEC.rawValue)), for: .accept)
    }

    func unwatchListener(_ server: Server) {}

    func opened(_ c: Connection) {}

    func receive(_ c: Connection, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno>? {
        c.server.issue(.recv(fd: c.fd, buffer: buffer, flags: 0), for: .connection(c))
    }

    func send(_ c: Connection) -> Result<Int, Errno>? {
        c.server.issue(.sendmsg(fd: c.fd, message: c.message, flags: Int32(MSG_NOSIGNAL)), for: .connection(c))
    }

    func closeFile(_ c: Connection) {
        c.server.closeDescriptor(c.file)
    }

    func closeSocket(_ c: Connection) {
        c.server.closeDescriptor(c.fd)
    }
}

/// `--network nonblocking`: non-blocking sockets on epoll, which also watches the
/// context's notification descriptor and the signalfd; files still go through LAIO.
final class NonblockingSocketIO: SocketIO {
    /// epoll's data for the descriptors that are not connections (connections have their
    /// serial, which starts above these).
    enum Source: UInt64 {
        case listener = 0, completions = 1, signals = 2
    }

    var epollFD: Int32 = -1
    /// The listener is out of epoll while accepts pause or once stopping.
    var listenerUnwatched = false
    var events = [epoll_event](repeating: epoll_event(), count: 256)

    // epoll reads the signalfd, so it is non-blocking.
    var signalDescriptorFlags: Int32 { Int32(SFD_CLOEXEC) | Int32(SFD_NONBLOCK) }

    func makeContext(_ kind: BackendKind, options: ServerOptions) throws -> Context {
        try Context(backend: kind, threads: options.poolWorkers.map { _ in .forServer(options) },
                    uring: UringSettings.forServer(options))
    }

    func start(_ server: Server) throws {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw ServerError.system("epoll_create1", errno) }
        let listener = server.listener.fd
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
        watch(listener, data: Source.listener.rawValue, events: EPOLLIN.rawValue)
        watch(server.laio.notificationDescriptor, data: Source.completions.rawValue, events: EPOLLIN.rawValue)
        watch(server.signalFD, data: Source.signals.rawValue, events: EPOLLIN.rawValue)
    }

    func wait(_ server: Server, timeout: Int64) throws {
        let listener = server.listener
        if listenerUnwatched && !listener.paused && listener.listening {
            listenerUnwatched = false
            watch(listener.fd, data: Source.listener.rawValue, events: EPOLLIN.rawValue)
            listener.acceptConnections(server)
        }
        let count = epoll_wait(epollFD, &events, Int32(events.count), Int32(timeout / 1_000_000))
        if count < 0 && errno != EINTR { throw ServerError.system("epoll_wait", errno) }
        for index in 0..<max(Int(count), 0) {
            let data = events[index].data.u64
            switch Source(rawValue: data) {
            case .listener: listener.acceptConnections(server)
            case .completions: server.pollLAIO(timeout: .zero)
            case .signals:
                if read(server.signalFD, server.signalBuffer.baseAddress, server.signalBuffer.count) > 0 { server.beginStop() }
            case nil:
                if let connection = server.connections[data], connection.waitingForSocket {
                    connection.waitingForSocket = false
                    connection.drive()
                }
            }
        }
    }

    func accept(_ server: Server) -> Result<Int, Errno>? {
        let fd = laio_httpd_accept4(server.listener.fd, Int32(SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue))
        if fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
        return fd >= 0 ? .success(Int(fd)) : .failure(Errno(rawValue: errno))
    }

    /// Level-triggered, the listener would wake epoll_wait at once, again and again, while
    /// accepts pause or once stopping.
    func unwatchListener(_ server: Server) {
        guard epollFD >= 0 && !listenerUnwatched else { return }
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, server.listener.fd, nil)
        listenerUnwatched = true
    }

    func opened(_ c: Connection) {
        watch(c.fd, data: c.serial, events: EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue)
    }

    func receive(_ c: Connection, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno>? {
        answer(c, recv(c.fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)))
    }

    func send(_ c: Connection) -> Result<Int, Errno>? {
        answer(c, sendmsg(c.fd, c.message, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)))
    }

    /// A file on the root's local file system is closed directly (no I/O, cheaper than a
    /// LAIO call); any other through LAIO, as the file's other calls: on NFS or FUSE close(2)
    /// waits for the file system's server, and a slow one would hold up every connection.
    func closeFile(_ c: Connection) {
        if c.fileClosesQuickly { _ = Glibc.close(c.file) } else { c.server.closeDescriptor(c.file) }
    }

    func closeSocket(_ c: Connection) {
        if epollFD >= 0 { _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, c.fd, nil) }
        _ = Glibc.close(c.fd)
    }

    /// A non-blocking socket call's answer: its result, or nil (waiting for epoll) on EAGAIN.
    func answer(_ c: Connection, _ answer: Int) -> Result<Int, Errno>? {
        if answer >= 0 { return .success(answer) }
        if errno == EAGAIN || errno == EWOULDBLOCK {
            c.waitingForSocket = true
            return nil
        }
        return .failure(Errno(rawValue: errno))
    }

    func watch(_ fd: Int32, data: UInt64, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = data
        _ = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
    }
}

extension UringSettings {
    /// The defaults, with the server's bound on io_uring's file workers when it gives one.
    static func forServer(_ options: ServerOptions) -> UringSettings {
        var settings = UringSettings()
        if let workers = options.fileWorkers { settings.maximumFileWorkers = workers }
        return settings
    }
}

extension ThreadPoolSettings {
    /// The library's defaults, with `--pool-workers` as the bound on workers when given.
    static func forServer(_ options: ServerOptions) -> ThreadPoolSettings {
        var settings = ThreadPoolSettings()
        if let bound = options.poolWorkers {
            settings.maximumWorkers = bound
            settings.minimumWorkers = min(settings.minimumWorkers, bound)
        }
        return settings
    }
}
