// laio-flash: a static file server in the manner of Flash (Pai, Druschel and Zwaenepoel,
// 1999) written with async/await: one task per connection, every socket and file call
// (accept, recv, send, openat2, fstat, pread, close) an `await` on LAIO, and every task on
// one `Context.executor`, whose one thread runs the tasks and reaps their calls in one wait.
// A call that does not block returns without suspending; one that blocks suspends its task
// and the thread runs the others. HTTP/1.1 GET and HEAD with keep-alive, files under --root
// only (RESOLVE_BENEATH).
//
//   laio-flash --root DIR [--port N] [--backend WORD]
//
// It prints "laio-flash: listening on 127.0.0.1:PORT" once it accepts; SIGINT or SIGTERM
// closes the context (cancelling every call in flight, so the port is free) and exits. On `blocking`
// every call runs inline on the executor's thread, so it serves one connection at a time:
// the baseline that shows what the other backends are for.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LAIO
import LAIOArguments

@main
struct Flash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laio-flash",
        abstract: "A static file server: a task per connection, every call an await on one Context.executor.")

    @Option(help: "Serve the files under this directory (never anything outside it).")
    var root: String

    @Option(help: "TCP port on 127.0.0.1 (0 picks a free one).")
    var port = 8080

    @Option(help: "The backend (default: LAIO_BACKEND, else auto).")
    var backend: BackendKind?

    func run() async throws {
        let laio = try Context(backend: backend)
        let directory = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw ValidationError("--root \(root): \(Errno(rawValue: errno))") }
        let listener = try listen(port: port)
        print("laio-flash: listening on 127.0.0.1:\(boundPort(listener)), backend \(laio.backendKind.rawValue)")
        fflush(nil)
        stopOnSignal(laio)
        let server = Server(laio: laio, root: FileDescriptor(rawValue: directory))
        await withTaskExecutorPreference(laio.executor) {
            // Child tasks inherit the preference: every connection runs on the executor.
            await withDiscardingTaskGroup { group in
                while true {
                    let connection: FileDescriptor
                    do throws(Errno) {
                        connection = try await laio.accept(FileDescriptor(rawValue: listener), flags: Int32(SOCK_CLOEXEC.rawValue))
                    } catch {
                        if error == .badFileDescriptor { return }
                        continue  // ECONNABORTED, EMFILE, ...: the next one
                    }
                    if laio.backendKind == .blocking {
                        await server.serve(connection)
                    } else {
                        group.addTask { await server.serve(connection) }
                    }
                }
            }
        }
    }
}

/// What every connection shares: the context and the root directory.
struct Server: Sendable {
    let laio: Context
    let root: FileDescriptor

    /// Requests on `connection` until the client closes it or asks to; then closes it.
    /// Everything a request needs is allocated once per connection: the request and
    /// response buffers, the path, the open_how and the stat record.
    func serve(_ connection: FileDescriptor) async {
        let buffers = Buffers()
        defer { buffers.free() }
        let request = buffers.request
        var filled = 0
        while true {
            // Until a whole header is in (a pipelined next request stays for its turn).
            var end = headerEnd(request, filled)
            while end == nil && filled < request.count {
                let slice = UnsafeMutableRawBufferPointer(rebasing: request[filled...])
                guard let n = try? await laio.receive(from: connection, into: slice), n > 0 else { return await close(connection) }
                filled += n
                end = headerEnd(request, filled)
            }
            guard let end else { return await respondAndClose(connection, status: .tooLarge, buffers) }
            let keepAlive = await answer(UnsafeRawBufferPointer(rebasing: request[..<end]), on: connection, buffers)
            // What came after this request moves to the front.
            if filled > end { request.copyMemory(from: UnsafeRawBufferPointer(rebasing: request[end..<filled])) }
            filled -= end
            if !keepAlive { return await close(connection) }
        }
    }

    /// Answers one request (`header`, up to its blank line); returns whether the connection stays open.
    private func answer(_ header: UnsafeRawBufferPointer, on connection: FileDescriptor, _ buffers: Buffers) async -> Bool {
        // The request line: METHOD SP TARGET SP HTTP/1.x CRLF.
        guard let lineEnd = header.firstIndex(of: 13), let space1 = header[..<lineEnd].firstIndex(of: 32),
              let space2 = header[(space1 + 1)..<lineEnd].firstIndex(of: 32),
              lineEnd - space2 - 1 == 8, header[(space2 + 1)..<(space2 + 8)].elementsEqual("HTTP/1.".utf8) else {
            await respondAndClose(connection, status: .badRequest, buffers)
            return false
        }
        let closing = header[space2 + 8] == UInt8(ascii: "0") || contains(header, lowercased: "\r\nconnection: close")
        let method = header[..<space1]
        let isHead = method.elementsEqual("HEAD".utf8)
        guard isHead || method.elementsEqual("GET".utf8) else {
            return await respond(connection, status: .notAllowed, closing: closing, buffers) && !closing
        }
        // The path, relative to the root: the target without its leading slashes and query.
        var path = header[(space1 + 1)..<space2]
        while path.first == UInt8(ascii: "/") { path = path.dropFirst() }
        if let query = path.firstIndex(of: UInt8(ascii: "?")) { path = path[..<query] }
        let index = path.isEmpty || path.last == UInt8(ascii: "/") ? "index.html".utf8.count : 0
        guard path.count + index < buffers.path.count else {
            return await respond(connection, status: .notFound, closing: closing, buffers) && !closing
        }
        let name = buffers.path
        UnsafeMutableRawBufferPointer(name).copyMemory(from: UnsafeRawBufferPointer(rebasing: path))
        if index > 0 { UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(name)[path.count...]).copyBytes(from: "index.html".utf8) }
        name[path.count + index] = 0
        let cName = UnsafeRawPointer(name.baseAddress!).assumingMemoryBound(to: CChar.self)
        guard let opened = try? await laio.perform(.openat2(dirfd: root.rawValue, path: cName, how: buffers.how)) else {
            return await respond(connection, status: .notFound, closing: closing, buffers) && !closing
        }
        let file = Int32(opened)
        let kept = await send(file, head: isHead, closing: closing, on: connection, buffers)
        try? await laio.close(FileDescriptor(rawValue: file))
        return kept
    }

    /// Answers with `file` (its header only for HEAD); returns whether the connection stays open.
    private func send(_ file: Int32, head: Bool, closing: Bool, on connection: FileDescriptor, _ buffers: Buffers) async -> Bool {
        guard (try? await laio.perform(.fstat(fd: file, buffer: buffers.status))) != nil,
              buffers.status.pointee.st_mode & S_IFMT == S_IFREG else {
            return await respond(connection, status: .notFound, closing: closing, buffers) && !closing
        }
        let size = Int64(buffers.status.pointee.st_size)
        let chunk = buffers.response
        // The header goes out with the first chunk of the body, in one send.
        var start = writeHeader(.ok, length: size, closing: closing, into: chunk)
        var offset: Int64 = 0
        repeat {
            let want = head ? 0 : Int(min(Int64(chunk.count - start), size - offset))
            var n = 0
            if want > 0 {
                let slice = UnsafeMutableRawBufferPointer(rebasing: chunk[start..<(start + want)])
                guard let read = try? await laio.read(from: FileDescriptor(rawValue: file), at: offset, into: slice), read > 0 else {
                    return false
                }
                n = read
            }
            guard await sendAll(UnsafeRawBufferPointer(rebasing: chunk[..<(start + n)]), on: connection) else { return false }
            offset += Int64(n)
            start = 0
        } while !head && offset < size
        return !closing
    }

    /// A response without a body; returns whether it was sent.
    private func respond(_ connection: FileDescriptor, status: Status, closing: Bool, _ buffers: Buffers) async -> Bool {
        let count = writeHeader(status, length: 0, closing: closing, into: buffers.response)
        return await sendAll(UnsafeRawBufferPointer(rebasing: buffers.response[..<count]), on: connection)
    }

    private func respondAndClose(_ connection: FileDescriptor, status: Status, _ buffers: Buffers) async {
        _ = await respond(connection, status: status, closing: true, buffers)
        await close(connection)
    }

    /// Sends all of `bytes` (send may be short); false when the peer is gone.
    private func sendAll(_ bytes: UnsafeRawBufferPointer, on connection: FileDescriptor) async -> Bool {
        var sent = 0
        while sent < bytes.count {
            guard let n = try? await laio.send(to: connection, from: UnsafeRawBufferPointer(rebasing: bytes[sent...]),
                                               flags: Int32(MSG_NOSIGNAL)), n > 0 else { return false }
            sent += n
        }
        return true
    }

    private func close(_ connection: FileDescriptor) async {
        try? await laio.close(connection)
    }
}

/// A connection's memory, allocated once and freed when it ends.
struct Buffers {
    let request = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 1)
    let response = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 4096)
    let path = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 4096)
    let how: UnsafeMutablePointer<OpenHow> = {
        let how = UnsafeMutablePointer<OpenHow>.allocate(capacity: 1)
        how.initialize(to: OpenHow(flags: O_RDONLY | O_CLOEXEC, resolve: [.beneath]))
        return how
    }()
    let status: UnsafeMutablePointer<stat> = {
        let status = UnsafeMutablePointer<stat>.allocate(capacity: 1)
        status.initialize(to: stat())
        return status
    }()

    /// Only once every call that used them has returned (perform returns only then).
    func free() {
        request.deallocate()
        response.deallocate()
        path.deallocate()
        how.deallocate()
        status.deallocate()
    }
}

/// The status lines laio-flash answers with.
enum Status {
    case ok, badRequest, notFound, notAllowed, tooLarge

    var line: StaticString {
        switch self {
        case .ok: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
        case .badRequest: "HTTP/1.1 400 Bad Request\r\nContent-Length: "
        case .notFound: "HTTP/1.1 404 Not Found\r\nContent-Length: "
        case .notAllowed: "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: "
        case .tooLarge: "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: "
        }
    }
}

/// Writes a response header with `length` to the front of `buffer`; returns its size.
func writeHeader(_ status: Status, length: Int64, closing: Bool, into buffer: UnsafeMutableRawBufferPointer) -> Int {
    var count = 0
    func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes in
            UnsafeMutableRawBufferPointer(rebasing: buffer[count...]).copyMemory(from: UnsafeRawBufferPointer(bytes))
            count += bytes.count
        }
    }
    append(status.line)
    // The decimal digits of the length, most significant first.
    var digits = 1
    var rest = length / 10
    while rest > 0 { digits += 1; rest /= 10 }
    var value = length
    for i in stride(from: count + digits - 1, through: count, by: -1) {
        buffer[i] = UInt8(ascii: "0") + UInt8(value % 10)
        value /= 10
    }
    count += digits
    append(closing ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n")
    return count
}

/// Whether `header` contains `pattern` (lowercase ASCII), ignoring the case of its letters.
func contains(_ header: UnsafeRawBufferPointer, lowercased pattern: StaticString) -> Bool {
    pattern.withUTF8Buffer { pattern in
        guard header.count >= pattern.count else { return false }
        for start in 0...(header.count - pattern.count) {
            var i = 0
            while i < pattern.count {
                var byte = header[start + i]
                if byte >= 65 && byte <= 90 { byte += 32 }
                if byte != pattern[i] { break }
                i += 1
            }
            if i == pattern.count { return true }
        }
        return false
    }
}

/// The end of the first request header in `buffer[..<filled]` (after its blank line), if whole.
func headerEnd(_ buffer: UnsafeMutableRawBufferPointer, _ filled: Int) -> Int? {
    guard filled >= 4 else { return nil }
    for i in 0...(filled - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
        return i + 4
    }
    return nil
}

/// The pipe SIGINT and SIGTERM write to (the write end; -1 until `stopOnSignal`).
/// nonisolated(unsafe): written once, before the handlers are installed; only they read it.
nonisolated(unsafe) var signalPipe: Int32 = -1

/// On SIGINT or SIGTERM: closes the context, which cancels the calls in flight (the accept
/// and the connections' receives, which hold their sockets) and waits for them, so the
/// port is free when the process ends; then exits.
func stopOnSignal(_ laio: Context) {
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { return }
    signalPipe = ends[1]
    let reader = ends[0]
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in
        var byte: UInt8 = 1
        _ = write(signalPipe, &byte, 1)
    }
    sigemptyset(&action.sa_mask)
    action.sa_flags = SA_RESTART
    sigaction(SIGINT, &action, nil)
    sigaction(SIGTERM, &action, nil)
    SignalWaiter(laio: laio, reader: reader).start()
}

/// The thread that waits for the signal.
final class SignalWaiter: Sendable {
    let laio: Context
    let reader: Int32

    init(laio: Context, reader: Int32) {
        self.laio = laio
        self.reader = reader
    }

    func start() {
        var thread = pthread_t()
        // Retained for good: the thread ends the process.
        let me = Unmanaged.passRetained(self).toOpaque()
        guard pthread_create(&thread, nil, { argument in
            let waiter = Unmanaged<SignalWaiter>.fromOpaque(argument!).takeUnretainedValue()
            var byte: UInt8 = 0
            while read(waiter.reader, &byte, 1) < 0 && errno == EINTR {}
            waiter.laio.close()
            fflush(nil)
            _exit(0)
        }, me) == 0 else { return }
        pthread_detach(thread)
    }
}

/// A listening TCP socket on 127.0.0.1:`port`.
func listen(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw Errno(rawValue: errno) }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, Glibc.listen(fd, 1024) == 0 else { throw Errno(rawValue: errno) }
    return fd
}

/// The port `fd` is bound to.
func boundPort(_ fd: Int32) -> Int {
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
