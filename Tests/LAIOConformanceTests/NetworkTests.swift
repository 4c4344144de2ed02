#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

@Suite("Sockets")
struct NetworkTests {
    @Test("sendto and recvfrom with addresses over UDP: the sender's address and its length come back", arguments: allBackends)
    func datagramsWithAddresses(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        /// A UDP socket bound to 127.0.0.1 on an ephemeral port: (fd, address).
        func datagramSocket() throws -> (Int32, sockaddr_in) {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
                }
            }
            guard fd >= 0, bound else { throw TestFailure("UDP socket: \(Errno(rawValue: errno))") }
            return (fd, address)
        }
        let (sender, senderAddress) = try datagramSocket()
        let (receiver, receiverAddress) = try datagramSocket()
        defer { close(sender); close(receiver) }

        // Pointers that stay valid while a call may run in the background.
        let destination = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: 1)
        let source = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
        let sourceLength = UnsafeMutablePointer<socklen_t>.allocate(capacity: 1)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { destination.deallocate(); source.deallocate(); sourceLength.deallocate(); buffer.deallocate() }
        destination.initialize(to: receiverAddress)
        source.initialize(to: sockaddr_storage())
        sourceLength.pointee = socklen_t(MemoryLayout<sockaddr_storage>.size)

        let message = Array("datagram".utf8)
        try message.withUnsafeBytes { bytes throws in
            let sent = try destination.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try complete(.sendto(fd: sender, buffer: bytes, flags: 0, address: $0,
                                     length: socklen_t(MemoryLayout<sockaddr_in>.size)), in: laio)
            }
            #expect(sent == .success(message.count))
        }
        let received = try source.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            try complete(.recvfrom(fd: receiver, buffer: buffer, flags: 0, address: $0, length: sourceLength), in: laio)
        }
        #expect(received == .success(message.count))
        #expect(Array(buffer.prefix(message.count)) == message)
        #expect(sourceLength.pointee == socklen_t(MemoryLayout<sockaddr_in>.size), "the address length is written back")
        let from = UnsafeRawPointer(source).load(as: sockaddr_in.self)
        #expect(from.sin_family == sa_family_t(AF_INET))
        #expect(from.sin_port == senderAddress.sin_port)
        #expect(from.sin_addr.s_addr == senderAddress.sin_addr.s_addr)
    }

    @Test("connect, accept, send and recv over loopback", arguments: allBackends)
    func connectAcceptSendRecv(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (listener, address) = try makeListener()
        defer { close(listener) }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let addressStorage = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: 1)
        defer { addressStorage.deallocate() }
        addressStorage.initialize(to: address)
        let connected = try addressStorage.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            try complete(.connect(fd: client, address: $0, length: socklen_t(MemoryLayout<sockaddr_in>.size)), in: laio)
        }
        #expect(connected == .success(0))

        let peer = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: 1)
        let peerLength = UnsafeMutablePointer<socklen_t>.allocate(capacity: 1)
        defer { peer.deallocate(); peerLength.deallocate() }
        peerLength.pointee = socklen_t(MemoryLayout<sockaddr_in>.size)
        let accepted = try peer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            try complete(.accept(fd: listener, address: $0, length: peerLength, flags: Int32(SOCK_CLOEXEC.rawValue)), in: laio)
        }
        let server = Int32(try accepted.get())
        defer { close(server) }
        #expect(peer.pointee.sin_family == sa_family_t(AF_INET))
        #expect(peer.pointee.sin_addr.s_addr == inet_addr("127.0.0.1"))
        #expect(fcntl(server, F_GETFD) & FD_CLOEXEC != 0)

        let message = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        try message.withUnsafeBytes { bytes throws in
            #expect(try complete(.send(fd: client, buffer: bytes), in: laio) == .success(message.count))
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 1)
        defer { buffer.deallocate() }
        #expect(try complete(.recv(fd: server, buffer: buffer), in: laio) == .success(message.count))
        #expect(Array(buffer.prefix(message.count)) == message)

        // sendto/recvfrom on a connected stream, and sendmsg/recvmsg with two iovecs.
        try message.withUnsafeBytes { bytes throws in
            #expect(try complete(.sendto(fd: server, buffer: bytes, flags: 0, address: nil, length: 0), in: laio) == .success(message.count))
        }
        #expect(try complete(.recvfrom(fd: client, buffer: buffer, flags: 0, address: nil, length: nil), in: laio) == .success(message.count))
        #expect(Array(buffer.prefix(message.count)) == message)

        let parts = [Array("abc".utf8), Array("defgh".utf8)]
        let out = UnsafeMutablePointer<iovec>.allocate(capacity: 2)
        let header = UnsafeMutablePointer<msghdr>.allocate(capacity: 1)
        defer { out.deallocate(); header.deallocate() }
        try parts[0].withUnsafeBytes { a throws in
            try parts[1].withUnsafeBytes { b throws in
                out[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: a.baseAddress), iov_len: 3)
                out[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: 5)
                header.initialize(to: msghdr())
                header.pointee.msg_iov = out
                header.pointee.msg_iovlen = 2
                #expect(try complete(.sendmsg(fd: client, message: header), in: laio) == .success(8))
            }
        }
        out[0] = iovec(iov_base: buffer.baseAddress, iov_len: 4)
        out[1] = iovec(iov_base: buffer.baseAddress! + 100, iov_len: 100)
        header.initialize(to: msghdr())
        header.pointee.msg_iov = out
        header.pointee.msg_iovlen = 2
        #expect(try complete(.recvmsg(fd: server, message: header), in: laio) == .success(8))
        #expect(Array(buffer.prefix(4)) == Array("abcd".utf8))
        #expect(Array(buffer[100..<104]) == Array("efgh".utf8))
    }

    @Test("accept with no pending connection goes in progress until a client connects", arguments: asynchronousBackends)
    func acceptInProgress(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (listener, address) = try makeListener()
        defer { close(listener) }
        guard case let .inProgress(handle) = try laio.submit(.accept(fd: listener)) else {
            Issue.record("accept with an empty backlog completed synchronously")
            return
        }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        var target = address
        let rc = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(rc == 0)
        let server = try awaitCompletion(of: handle, in: laio)
        let fd = Int32(try server.get())
        #expect(fd >= 0)
        close(fd)
    }

    @Test("sendfile from a file to a socket (ENOSYS on uring)", arguments: allBackends)
    func sendfile(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { dir in
            let content = pattern(count: 48 * 1024, seed: 9)
            try writeFile("\(dir)/body", content)
            let file = open("\(dir)/body", O_RDONLY)
            defer { close(file) }
            let (client, server) = try makeSocketPair()
            defer { close(client); close(server) }
            let offset = UnsafeMutablePointer<off_t>.allocate(capacity: 1)
            defer { offset.deallocate() }
            offset.pointee = 1000
            // 40 KiB fits the loopback socket buffers, so the whole count goes at once.
            let sent = try complete(.sendfile(outFD: server, inFD: file, offset: offset, count: 40_000), in: laio)
            if !kind.runsAnySyscall {
                // io_uring has no sendfile opcode.
                #expect(sent == .failure(.noFunction))
                #expect(offset.pointee == 1000)
                return
            }
            #expect(sent == .success(40_000))
            #expect(offset.pointee == 41_000)
            var received = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while received.count < 40_000 {
                let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                received += chunk[0..<n]
            }
            #expect(received == Array(content[1000..<41_000]))
        }
    }

    @Test("splice from a pipe to a file, with and without offsets", arguments: allBackends)
    func splice(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { dir in
            let (r, w) = try makePipe()
            defer { close(r); close(w) }
            #expect(Glibc.write(w, "spliced!", 8) == 8)
            let out = open("\(dir)/spliced", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            defer { close(out) }
            #expect(try complete(.splice(inFD: r, inOffset: nil, outFD: out, outOffset: nil, count: 8), in: laio) == .success(8))
            var back = [UInt8](repeating: 0, count: 8)
            let fd = open("\(dir)/spliced", O_RDONLY)
            defer { close(fd) }
            #expect(back.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 8) } == 8)
            #expect(back == Array("spliced!".utf8))
            // With an output offset: the file is written there and the offset advances.
            #expect(Glibc.write(w, "XY", 2) == 2)
            let position = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
            defer { position.deallocate() }
            position.pointee = 3
            let other = open("\(dir)/spliced", O_WRONLY)
            defer { close(other) }
            #expect(try complete(.splice(inFD: r, inOffset: nil, outFD: other, outOffset: position, count: 2), in: laio) == .success(2))
            #expect(position.pointee == 5)
            #expect(pread(fd, &back, 8, 0) == 8)
            #expect(back == Array("splXYed!".utf8))
        }
    }
}
