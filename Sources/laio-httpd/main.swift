#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LAIO

// laio-httpd: a Flash-style event-driven static web server on LAIO. One event-loop thread;
// files (and, with --network laio, sockets) through LAIO.

let usage = """
    usage: laio-httpd --root DIR [--host 127.0.0.1] [--port 8080] [--backend auto|uring|threads|blocking]
                      [--network laio|nonblocking] [--max-connections N] [--idle-timeout SECONDS]
                      [--access-log FILE]

      --root DIR            serve the files under DIR (never anything outside it)
      --host ADDRESS        IPv4 address to listen on (default 127.0.0.1)
      --port N              TCP port (default 8080; 0 picks a free one)
      --backend WORD        LAIO backend (default: LAIO_BACKEND, else auto)
      --network MODE        laio: every socket call through LAIO too (default);
                            nonblocking: sockets non-blocking on epoll, files through LAIO
      --max-connections N   open connections at most (default 256); more are answered 503
      --idle-timeout S      close connections idle (or sending a request, or reading a
                            response, too slowly) for S seconds (default 30)
      --access-log FILE     append a line per response (common log format: peer, time,
                            request line, status, body bytes sent)

    """

func fail(_ message: String) -> Never {
    report(message)
    exit(2)
}

func parseOptions() -> ServerOptions {
var options = ServerOptions()
var arguments = CommandLine.arguments.dropFirst()
func value(_ flag: String) -> String {
    guard let next = arguments.popFirst() else { fail("\(flag) needs a value\n\(usage)") }
    return next
}
while let argument = arguments.popFirst() {
    switch argument {
    case "--root": options.root = value(argument)
    case "--host": options.host = value(argument)
    case "--port":
        guard let port = UInt16(value(argument)) else { fail("--port must be 0...65535") }
        options.port = port
    case "--backend":
        let word = value(argument)
        do { options.backend = try BackendKind(word: word) } catch { fail("\(error)") }
    case "--network":
        let word = value(argument)
        guard let mode = NetworkMode(rawValue: word) else { fail("--network must be laio or nonblocking, not '\(word)'") }
        options.network = mode
    case "--max-connections":
        guard let count = Int(value(argument)), count > 0, count <= 65536 else { fail("--max-connections must be 1...65536") }
        options.maxConnections = count
    case "--idle-timeout":
        guard let seconds = Double(value(argument)), seconds > 0, seconds <= 86400 else {
            fail("--idle-timeout must be a number of seconds in (0, 86400]")
        }
        options.idleTimeout = .nanoseconds(Int64(seconds * 1e9))
    case "--access-log": options.accessLog = value(argument)
    case "--help", "-h":
        print(usage, terminator: "")
        exit(0)
    default:
        fail("unknown argument '\(argument)'\n\(usage)")
    }
}
guard !options.root.isEmpty else { fail("--root is required\n\(usage)") }
return options
}

let options = parseOptions()

do {
    let server = try Server(options: options)
    print("laio-httpd: listening on http://\(options.host):\(server.port)/ serving \(options.root)")
    print("laio-httpd: backend \(server.laio.backendKind), network \(options.network); \(server.laio.details)")
    print("laio-httpd: routes: " + server.laio.routes.split(separator: "\n").joined(separator: ", "))
    fflush(nil)
    try server.run()
} catch {
    fail("\(error)")
}
