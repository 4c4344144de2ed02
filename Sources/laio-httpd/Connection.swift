#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HTTPParsing
import LAIO

/// What a connection is doing.
enum Phase {
    case receive, parse, open, stat, read, send, done, close
    /// After an error that ends the connection: the write side is shut, and what the
    /// client still sends is read and dropped for a moment, so that closing does not reset
    /// the connection (and destroy the error response) while the client is still sending.
    case linger
}

/// One client connection and its state machine: receive, parse, open, stat, read, send,
/// and again (keep-alive) or close. Its buffers belong to the LAIO call in flight, if any:
/// the object (and so its memory) stays alive in `Server.pending` until that call is
/// reported.
final class Connection {
    static let inputCapacity = 16 * 1024
    static let headerCapacity = 1024
    static let bodyCapacity = 64 * 1024

    /// The server's loop, which outlives every connection it holds.
    unowned let server: Server
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
    /// The file is on the root's device and that is a local file system
    /// (`Server.quickCloseDevice`): closing it does not wait for the storage. A file on
    /// another device (a mount under the root) is closed through LAIO.
    var fileClosesQuickly = false
    var triedIndex = false
    var status = Status.ok
    var keepAlive = true
    var fileOffset: Int64 = 0
    var fileRemaining: Int64 = 0
    var bytesSent = 0
    /// The length of the status line and header fields of the response in progress.
    var headerBytes = 0
    /// A response has been prepared and not yet logged: if the connection closes before it
    /// is done (the client left, a read failed mid-body, a time-out), it is logged then.
    var responding = false
    var lingered = 0

    init(server: Server, fd: Int32, serial: UInt64, peer: String, deadline: Int64) {
        self.server = server
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

    // MARK: - The machine

    /// Runs the connection until it waits for LAIO or for its socket, or is closed.
    func drive() {
        while !closed && inFlight == nil && !waitingForSocket {
            if phase == .close {
                close()
                return
            }
            if phase == .parse {
                parse()
                continue
            }
            if phase == .done {
                responseDone()
                continue
            }
            guard let result = perform() else { return }
            finish(result)
        }
    }

    /// The system call of the connection's phase: its result, or nil if it is waiting.
    func perform() -> Result<Int, Errno>? {
        switch phase {
        case .receive, .linger:
            if phase == .linger { inputCount = 0 }
            return server.sockets.receive(self, into: UnsafeMutableRawBufferPointer(rebasing: input[inputCount...]))
        case .open:
            guard path.count <= Connection.pathCapacity else { return .failure(Errno(rawValue: ENAMETOOLONG)) }
            path.withUnsafeBufferPointer { pathBuffer.update(from: $0.baseAddress!, count: $0.count) }
            // O_NONBLOCK: opening a FIFO under the root must not wait for a writer.
            how.pointee = OpenHow(flags: O_RDONLY | O_CLOEXEC | O_NONBLOCK, resolve: [.beneath, .noMagicLinks])
            return server.issue(.openat2(dirfd: server.rootFD, path: pathBuffer, how: how), for: .connection(self))
        case .stat:
            return server.issue(.fstat(fd: file, buffer: stat), for: .connection(self))
        case .read:
            let body = bodyBuffer()
            let count = Int(min(fileRemaining, Int64(body.count)))
            return server.issue(.pread(fd: file, buffer: UnsafeMutableRawBufferPointer(rebasing: body[..<count]), offset: fileOffset),
                                for: .connection(self))
        case .send:
            // The header vector, once sent, is skipped; the body vector is there while it has bytes.
            let first = vectors[0].iov_len == 0 ? 1 : 0
            message.pointee.msg_iov = vectors + first
            message.pointee.msg_iovlen = (vectors[1].iov_len > 0 ? 2 : 1) - first
            return server.sockets.send(self)
        case .parse, .done, .close:
            return .success(0)
        }
    }

    /// Takes the result of the connection's phase and moves it on.
    func finish(_ result: Result<Int, Errno>) {
        switch phase {
        case .receive:
            switch result {
            case let .success(count) where count > 0:
                inputCount += count
                phase = .parse
            default:
                phase = .close   // end of stream, reset, or cancelled
            }
        case .open:
            switch result {
            case let .success(fd):
                file = Int32(fd)
                phase = .stat
            case let .failure(error):
                switch error.rawValue {
                case ENOENT where triedIndex: respondWithError(.forbidden)  // a directory without index.html
                case ENOENT, ENOTDIR: respondWithError(.notFound)
                case EACCES, EPERM, EXDEV, ELOOP: respondWithError(.forbidden)
                case ENAMETOOLONG: respondWithError(.uriTooLong)
                case EMFILE, ENFILE, ENOMEM, EAGAIN: respondWithError(.unavailable)
                default: respondWithError(.internalError)
                }
            }
        case .stat:
            guard case .success = result else {
                closeFile()
                respondWithError(.internalError)
                return
            }
            fileOpened()
        case .read:
            guard case let .success(count) = result, count > 0 else {
                // The file failed (EIO from the storage) or shrank under us. While nothing of
                // the response has gone out (the first chunk goes with the header), it becomes
                // a 500, which closes the connection as every 500 does; after that the promised
                // length cannot be kept, and closing is the only way to tell the client.
                closeFile()
                if bytesSent == 0 { return respondWithError(.internalError) }
                phase = .close
                return
            }
            vectors[1] = iovec(iov_base: body!.baseAddress, iov_len: count)
            fileOffset += Int64(count)
            fileRemaining -= Int64(count)
            phase = .send
        case .send:
            guard case var .success(sent) = result else {
                phase = .close    // the peer went away: only this connection pays
                return
            }
            bytesSent += sent
            deadline = monotonicNow() + server.idleNanoseconds
            for index in 0..<2 where sent > 0 {
                let take = min(sent, vectors[index].iov_len)
                vectors[index].iov_base = vectors[index].iov_base.map { $0 + take }
                vectors[index].iov_len -= take
                sent -= take
            }
            if vectors[0].iov_len > 0 || vectors[1].iov_len > 0 { return }  // send the rest
            phase = fileRemaining > 0 ? .read : .done
        case .linger:
            if case let .success(count) = result, count > 0, lingered < 1 << 20 {
                lingered += count   // dropped; keep reading until the client is done
            } else {
                phase = .close
            }
        case .parse, .done, .close:
            break
        }
    }

    func parse() {
        let buffered = UnsafeRawBufferPointer(rebasing: input[..<inputCount])
        switch HTTPParser.parse(buffered, logLine: server.accessLog != nil) {
        case .incomplete:
            if inputCount == input.count {
                respondWithError(.headersTooLarge)
            } else {
                phase = server.stopping && inputCount == 0 ? .close : .receive
            }
        case let .failure(status):
            request = Request()
            consumed = inputCount
            respondWithError(status)
        case let .request(request, consumed):
            self.request = request
            self.consumed = consumed
            keepAlive = request.keepAlive && !server.stopping
            triedIndex = false
            path = request.path.isEmpty ? [CChar(UInt8(ascii: "."))] : request.path.map { CChar(bitPattern: $0) }
            path.append(0)
            phase = .open
        }
    }

    /// The file is open and `stat` describes it: decide the response.
    func fileOpened() {
        let info = stat.pointee
        fileClosesQuickly = info.st_dev == server.quickCloseDevice
        let type = info.st_mode & S_IFMT
        if type == S_IFDIR {
            closeFile()
            guard !triedIndex else { return respondWithError(.forbidden) }
            triedIndex = true
            path.removeLast()
            if path == [CChar(UInt8(ascii: "."))] { path = [] } else { path.append(CChar(UInt8(ascii: "/"))) }
            path.append(contentsOf: "index.html".utf8.map { CChar(bitPattern: $0) })
            path.append(0)
            request.path = path.dropLast().map { UInt8(bitPattern: $0) }
            phase = .open
            return
        }
        guard type == S_IFREG else {
            closeFile()
            return respondWithError(.forbidden)
        }
        let size = Int64(info.st_size)
        let modified = info.st_mtim.tv_sec
        var status = Status.ok
        var first: Int64 = 0, length = size
        if let since = request.ifModifiedSince, modified <= since {
            status = .notModified
            length = 0
        } else if let range = request.range {
            if let (a, b) = range.resolve(size: size) {
                status = .partialContent
                first = a
                length = b - a + 1
            } else {
                closeFile()
                return respond(.rangeNotSatisfiable, extra: "Content-Range: bytes */\(size)\r\n", body: "")
            }
        }
        var extra = "Content-Type: \(ContentType.of(path: request.path))\r\nLast-Modified: \(HTTPDate.format(modified))\r\n"
            + "Accept-Ranges: bytes\r\n"
        if status == .partialContent { extra += "Content-Range: bytes \(first)-\(first + length - 1)/\(size)\r\n" }
        self.status = status
        writeHeader(status, contentLength: status == .notModified ? nil : length, extra: extra)
        fileOffset = first
        fileRemaining = request.isHead || status == .notModified ? 0 : length
        if fileRemaining == 0 {
            closeFile()
            vectors[1] = iovec()
            phase = .send
        } else {
            phase = .read   // the first chunk goes out with the header in one sendmsg
        }
    }

    func respondWithError(_ status: Status) {
        let body = "\(status.rawValue) \(status.reason)\n"
        let extra = status == .methodNotAllowed ? "Allow: GET, HEAD\r\n" : ""
        respond(status, extra: extra, body: body)
    }

    /// A response whose body is in the header buffer (errors, 416).
    func respond(_ status: Status, extra: String, body: String) {
        if status.closesConnection { keepAlive = false }
        self.status = status
        let withType = body.isEmpty ? extra : extra + "Content-Type: text/plain; charset=utf-8\r\n"
        writeHeader(status, contentLength: Int64(body.utf8.count), extra: withType, body: request.isHead ? "" : body)
        vectors[1] = iovec()
        fileRemaining = 0
        phase = .send
    }

    func writeHeader(_ status: Status, contentLength: Int64?, extra: String, body: String = "") {
        var text = "HTTP/1.1 \(status.rawValue) \(status.reason)\r\nServer: laio-httpd\r\n" + server.dateField.current() + extra
        if let contentLength { text += "Content-Length: \(contentLength)\r\n" }
        text += keepAlive ? (request.isHTTP10 ? "Connection: keep-alive\r\n\r\n" : "\r\n") : "Connection: close\r\n\r\n"
        text += body
        var utf8 = text.utf8.count
        if utf8 > header.count {  // only an oversized extra could do this; keep the status line
            text = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            keepAlive = false
            utf8 = text.utf8.count
        }
        _ = text.utf8.withContiguousStorageIfAvailable { header.copyMemory(from: UnsafeRawBufferPointer($0)) }
            ?? Array(text.utf8).withUnsafeBytes { header.copyMemory(from: $0) }
        vectors[0] = iovec(iov_base: header.baseAddress, iov_len: utf8)
        bytesSent = 0
        headerBytes = utf8 - body.utf8.count
        responding = true
    }

    /// The body buffer for reading the file: one of the server's spares, or a new one.
    func bodyBuffer() -> UnsafeMutableRawBufferPointer {
        if let body { return body }
        let made = server.spareBodies.take()
        body = made
        return made
    }

    /// Gives the body buffer back once no call can use it (the response is sent, or the
    /// connection is closed with nothing in flight): connections waiting for a request
    /// hold none, so memory follows the responses in progress, not the connections open.
    func releaseBody() {
        guard let body else { return }
        self.body = nil
        server.spareBodies.giveBack(body)
    }

    func responseDone() {
        closeFile()
        releaseBody()
        responding = false
        server.accessLog?.append(self)
        // Keep what follows this request (pipelining).
        let rest = inputCount - consumed
        if rest > 0 && consumed > 0 {
            input.baseAddress!.copyMemory(from: input.baseAddress! + consumed, byteCount: rest)
        }
        inputCount = max(rest, 0)
        consumed = 0
        request = Request()
        guard keepAlive && !server.stopping else {
            if status.closesConnection {
                // shutdown(2) never blocks; it is called directly in both network modes.
                _ = shutdown(fd, Int32(SHUT_WR))
                deadline = min(deadline, monotonicNow() + 2_000_000_000)
                phase = .linger
            } else {
                phase = .close
            }
            return
        }
        deadline = monotonicNow() + server.idleNanoseconds
        phase = inputCount > 0 ? .parse : .receive
    }

    func closeFile() {
        guard file >= 0 else { return }
        server.sockets.closeFile(self)
        file = -1
        fileClosesQuickly = false
    }

    /// Closes the connection, or, with a call in flight, cancels it: its memory stays in
    /// use until the call is reported, and the connection closes then.
    func close() {
        guard !closed else { return }
        if let handle = inFlight {
            cancelled = true
            try? server.laio.cancel(handle)
            return
        }
        closed = true
        closeFile()
        releaseBody()
        if responding {
            responding = false
            server.accessLog?.append(self)   // cut short: its status, the body bytes that went out
        }
        server.sockets.closeSocket(self)
        server.connections[serial] = nil
    }

    /// Closes a connection that waits (for LAIO or for its socket) without waiting more; a
    /// call in flight is cancelled and the connection closes when it is reported.
    func abandon() {
        phase = .close
        waitingForSocket = false
        close()
    }
}

/// Body buffers of finished responses, kept for the next ones (at most `maximum`).
struct SpareBodies {
    static let maximum = 64
    private var buffers: [UnsafeMutableRawBufferPointer] = []

    /// A spare buffer, or a new one.
    mutating func take() -> UnsafeMutableRawBufferPointer {
        buffers.popLast() ?? UnsafeMutableRawBufferPointer.allocate(byteCount: Connection.bodyCapacity, alignment: 4096)
    }

    mutating func giveBack(_ buffer: UnsafeMutableRawBufferPointer) {
        if buffers.count < SpareBodies.maximum { buffers.append(buffer) } else { buffer.deallocate() }
    }

    func deallocateAll() {
        for buffer in buffers { buffer.deallocate() }
    }
}

/// The Date header field, formatted once per second.
struct DateField {
    private var second = 0
    private var field = ""

    mutating func current() -> String {
        let now = time(nil)
        if now != second {
            second = now
            field = "Date: \(HTTPDate.format(now))\r\n"
        }
        return field
    }
}
