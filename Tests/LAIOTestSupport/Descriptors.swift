#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LAIO

/// A pipe: (read end, write end).
public func makePipe() throws -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw TestFailure("pipe: \(Errno(rawValue: errno))") }
    return (fds[0], fds[1])
}

/// A listening TCP socket on 127.0.0.1 with an ephemeral port: (fd, address).
public func makeListener(backlog: Int32 = 64) throws -> (Int32, sockaddr_in) {
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
    guard bound else {
        let error = Errno(rawValue: errno)
        close(fd)
        throw TestFailure("bind/listen: \(error)")
    }
    return (fd, address)
}

/// A connected loopback TCP pair made with plain libc calls: (client, server).
public func makeSocketPair() throws -> (Int32, Int32) {
    let (listener, address) = try makeListener()
    defer { close(listener) }
    let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard client >= 0 else { throw TestFailure("socket: \(Errno(rawValue: errno))") }
    var target = address
    let connected = withUnsafePointer(to: &target) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        let error = Errno(rawValue: errno)
        close(client)
        throw TestFailure("connect: \(error)")
    }
    let server = accept(listener, nil, nil)
    guard server >= 0 else {
        let error = Errno(rawValue: errno)
        close(client)
        throw TestFailure("accept: \(error)")
    }
    return (client, server)
}

/// Whether `fd` is readable now, or becomes readable within `milliseconds`.
public func isReadable(_ fd: Int32, waiting milliseconds: Int32 = 0) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, milliseconds) == 1 && entry.revents & Int16(POLLIN) != 0
}

/// How many descriptors this process has open, or, with `prefix`, how many of them refer to
/// paths that start with it (a count of all would see the tests that run meanwhile in the
/// same process). -1 when /proc/self/fd cannot be read.
public func openDescriptors(under prefix: String? = nil) -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    let listing = dirfd(directory)
    var count = 0
    var target = [CChar](repeating: 0, count: 4096)
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        // "." and "..", and the descriptor of this listing itself, are not the process's.
        guard let fd = Int32(name), fd != listing else { continue }
        if let prefix {
            let length = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
            guard length > 0 else { continue }
            target[length] = 0
            guard target.withUnsafeBufferPointer({ String(cString: $0.baseAddress!) }).hasPrefix(prefix) else { continue }
        }
        count += 1
    }
    return count
}
