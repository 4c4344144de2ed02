#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LAIO

/// The listening socket and accepting from it: as many connections as are ready, one
/// accept in flight at most (laio mode), and a pause of 100 ms when the process is out of
/// descriptors or memory (the backlog waits meanwhile) before accepting again.
final class Listener {
    static let pause: Int64 = 100_000_000

    let fd: Int32
    /// The bound port (the one asked for, or the one the kernel picked for 0).
    let port: UInt16
    /// The accept in flight (laio mode), or nil.
    var acceptInFlight: Handle? = nil
    var pausedUntil: Int64 = 0
    /// False once stopping: no new connections.
    var listening = true

    /// Listens on `host`:`port` (IPv4).
    init(host: String, port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerError.system("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw ServerError.usage("--host \(host) is not an IPv4 address") }
        let listener = fd
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw ServerError.system("bind \(host):\(port)", errno) }
        guard listen(fd, 1024) == 0 else { throw ServerError.system("listen", errno) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.port = UInt16(bigEndian: address.sin_port)
    }

    var paused: Bool { monotonicNow() < pausedUntil }

    /// Accepts every connection that is ready, until one goes to the background (laio
    /// mode), none is left (nonblocking mode), or accepting pauses.
    func acceptConnections(_ server: Server) {
        guard listening && !server.stopping && monotonicNow() >= pausedUntil else { return }
        while listening && acceptInFlight == nil {
            guard let result = server.sockets.accept(server) else { return }
            if !acceptDone(server, result) { return }
        }
    }

    /// Takes an accept's result. False when accepting should pause.
    @discardableResult
    func acceptDone(_ server: Server, _ result: Result<Int, Errno>) -> Bool {
        switch result {
        case let .failure(error):
            switch error.rawValue {
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors or memory: stop accepting for a moment; the backlog waits.
                report("accept: \(error); pausing accepts for 100 ms")
                pausedUntil = monotonicNow() + Listener.pause
                server.sockets.unwatchListener(server)
                return false
            case ECANCELED, EBADF, EINVAL:
                return false
            default:
                return true   // ECONNABORTED and the like: the next one
            }
        case let .success(value):
            server.admit(Int32(value))
            return true
        }
    }

    /// Stops accepting for good (SIGINT/SIGTERM): the accept in flight is cancelled.
    func stop(_ server: Server) {
        listening = false
        if let handle = acceptInFlight { try? server.laio.cancel(handle) }
        server.sockets.unwatchListener(server)
    }
}
