#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import HTTPParsing
import LAIO

/// The access log (`--access-log`): a line per response in common log format, also for a
/// response cut short (the client left, the file's read failed after the header went out,
/// a time-out): that one is logged when its connection closes, with its status and the body
/// bytes that went out, fewer than its Content-Length. Lines gather in memory and go to the
/// file with one LAIO write at a time, so a slow disk never stalls the loop; what it cannot
/// keep up with is dropped and counted (bounded memory).
final class AccessLog {
    static let limit = 4 << 20

    let fd: Int32
    var lines: [UInt8] = []
    /// The bytes of the write in flight, and how many of them are written.
    var inFlight: UnsafeMutableRawBufferPointer? = nil
    var inFlightSent = 0
    var writeInFlight = false
    var dropped = 0

    init(path: String) throws {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ServerError.system("--access-log \(path)", errno) }
    }

    deinit {
        inFlight?.deallocate()
    }

    /// The peer's address, for the log (getpeername(2) never blocks: called directly).
    static func peerName(_ fd: Int32) -> String {
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

    /// The line of a finished response.
    func append(_ c: Connection) {
        // Common log format: the body bytes sent ("-" for none).
        let body = max(c.bytesSent - c.headerBytes, 0)
        let line = "\(c.peer) - - [\(HTTPDate.commonLogFormat(time(nil)))] \"\(c.request.line)\" \(c.status.rawValue) "
            + (body > 0 ? "\(body)\n" : "-\n")
        guard lines.count + line.utf8.count <= AccessLog.limit else {
            dropped += 1   // the disk is slower than the traffic: bounded, counted
            return
        }
        lines.append(contentsOf: line.utf8)
    }

    /// Starts the next write through the server's LAIO context, unless one is in flight.
    func flush(_ server: Server) {
        if inFlight == nil {
            guard !lines.isEmpty else { return }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: lines.count, alignment: 1)
            lines.withUnsafeBytes { buffer.copyMemory(from: $0) }
            lines.removeAll(keepingCapacity: true)
            inFlight = buffer
            inFlightSent = 0
        }
        guard let buffer = inFlight, !writeInFlight else { return }
        let rest = UnsafeRawBufferPointer(rebasing: buffer[inFlightSent...])
        if let result = server.issue(.write(fd: fd, buffer: rest), for: .logWrite) {
            writeDone(result)
        } else {
            writeInFlight = true
        }
    }

    /// At exit, after LAIO stopped: writes what is left directly.
    func flushAtExit() {
        if let inFlight, inFlightSent < inFlight.count {
            _ = write(fd, inFlight.baseAddress! + inFlightSent, inFlight.count - inFlightSent)
        }
        lines.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
        if dropped > 0 { report("access log: \(dropped) lines dropped (the log file could not keep up)") }
    }

    func writeDone(_ result: Result<Int, Errno>) {
        writeInFlight = false
        guard let buffer = inFlight else { return }
        switch result {
        case let .success(count) where count > 0:
            inFlightSent += count
            if inFlightSent >= buffer.count {
                buffer.deallocate()
                inFlight = nil
            }
        default:
            report("access log: write failed (\(result)); dropping \(buffer.count - inFlightSent) bytes")
            buffer.deallocate()
            inFlight = nil
        }
    }
}
