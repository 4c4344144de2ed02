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
// It prints "laio-flash: listening on 127.0.0.1:PORT" once it accepts. On `blocking`
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
    func serve(_ connection: FileDescriptor) async {
        let request = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 1)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 4096)
        defer {
            request.deallocate()
            chunk.deallocate()
        }
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
            guard let end else { return await respondAndClose(connection, status: "431 Request Header Fields Too Large") }
            let header = String(decoding: request[..<end], as: UTF8.self)
            let keepAlive = await answer(header, on: connection, chunk: chunk)
            // What came after this request moves to the front.
            request.copyMemory(from: UnsafeRawBufferPointer(rebasing: request[end..<filled]))
            filled -= end
            if !keepAlive { return await close(connection) }
        }
    }

    /// Answers one request; returns whether the connection stays open.
    private func answer(_ header: String, on connection: FileDescriptor, chunk: UnsafeMutableRawBufferPointer) async -> Bool {
        let lines = header.split(separator: "\r\n", omittingEmptySubsequences: false)
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            await respondAndClose(connection, status: "400 Bad Request")
            return false
        }
        let method = parts[0]
        let closing = parts[2] == "HTTP/1.0" || lines.contains { $0.lowercased() == "connection: close" }
        guard method == "GET" || method == "HEAD" else {
            return await respond(connection, status: "405 Method Not Allowed", keepAlive: !closing) && !closing
        }
        var path = String(parts[1].prefix { $0 != "?" }.drop { $0 == "/" })
        if path.isEmpty || path.hasSuffix("/") { path += "index.html" }
        guard let file = try? await laio.open(FilePath(path), .readOnly, options: [.closeOnExec],
                                               resolve: [.beneath], relativeTo: root) else {
            return await respond(connection, status: "404 Not Found", keepAlive: !closing) && !closing
        }
        let kept = await send(file, head: method == "HEAD", closing: closing, on: connection, chunk: chunk)
        try? await laio.close(file)
        return kept
    }

    /// Answers with `file` (its header only for HEAD); returns whether the connection stays open.
    private func send(_ file: FileDescriptor, head: Bool, closing: Bool, on connection: FileDescriptor,
                      chunk: UnsafeMutableRawBufferPointer) async -> Bool {
        guard let status = try? await laio.stat(file), status.st_mode & S_IFMT == S_IFREG else {
            return await respond(connection, status: "404 Not Found", keepAlive: !closing) && !closing
        }
        let size = Int64(status.st_size)
        let header = "HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\nContent-Type: application/octet-stream\r\n"
            + (closing ? "Connection: close\r\n\r\n" : "\r\n")
        guard await sendAll(Array(header.utf8), on: connection) else { return false }
        if head { return !closing }
        var offset: Int64 = 0
        while offset < size {
            let want = Int(min(Int64(chunk.count), size - offset))
            let slice = UnsafeMutableRawBufferPointer(rebasing: chunk[..<want])
            guard let n = try? await laio.read(from: file, at: offset, into: slice), n > 0,
                  await sendAll(UnsafeRawBufferPointer(rebasing: chunk[..<n]), on: connection) else { return false }
            offset += Int64(n)
        }
        return !closing
    }

    /// A response without a body; returns whether it was sent.
    private func respond(_ connection: FileDescriptor, status: String, keepAlive: Bool) async -> Bool {
        let text = "HTTP/1.1 \(status)\r\nContent-Length: 0\r\n" + (keepAlive ? "\r\n" : "Connection: close\r\n\r\n")
        return await sendAll(Array(text.utf8), on: connection)
    }

    private func respondAndClose(_ connection: FileDescriptor, status: String) async {
        _ = await respond(connection, status: status, keepAlive: false)
        await close(connection)
    }

    private func sendAll(_ bytes: [UInt8], on connection: FileDescriptor) async -> Bool {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        defer { copy.deallocate() }
        copy.copyBytes(from: bytes)
        return await sendAll(UnsafeRawBufferPointer(copy), on: connection)
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

/// The end of the first request header in `buffer[..<filled]` (after its blank line), if whole.
func headerEnd(_ buffer: UnsafeMutableRawBufferPointer, _ filled: Int) -> Int? {
    guard filled >= 4 else { return nil }
    for i in 0...(filled - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
        return i + 4
    }
    return nil
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
