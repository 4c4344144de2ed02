#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import LAIO
import LAIOArguments

// laio-httpd: a Flash-style event-driven static web server on LAIO. One event-loop thread;
// files (and, with --network laio, sockets) through LAIO.

extension NetworkMode: ExpressibleByArgument {}

/// laio-httpd's command line.
struct HTTPDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laio-httpd",
        abstract: "A Flash-style event-driven static web server on LAIO.",
        discussion: """
            One event-loop thread; files (and, with --network laio, sockets) through LAIO. \
            SIGINT or SIGTERM stops accepting and ends the server once the responses in progress are sent.
            """)

    @Option(help: ArgumentHelp("Serve the files under DIR (never anything outside it).", valueName: "dir"))
    var root: String

    @Option(help: ArgumentHelp("IPv4 address to listen on.", valueName: "address"))
    var host = "127.0.0.1"

    @Option(help: ArgumentHelp("TCP port (0 picks a free one).", valueName: "n"))
    var port = 8080

    @Option(help: ArgumentHelp("LAIO backend (default: LAIO_BACKEND, else auto).", valueName: "word"))
    var backend: BackendKind?

    @Option(help: ArgumentHelp("""
        nonblocking: sockets non-blocking on epoll, files through LAIO (the paper's NB-LAIO); \
        laio: every socket call through LAIO too (LAIO-LAIO).
        """, valueName: "mode"))
    var network = NetworkMode.nonblocking

    @Option(help: ArgumentHelp("Open connections at most; more are answered 503.", valueName: "n"))
    var maxConnections = 256

    @Option(help: ArgumentHelp("""
        Close connections idle (or sending a request, or reading a response, too slowly) for this long.
        """, valueName: "seconds"))
    var idleTimeout = 30.0

    @Option(help: ArgumentHelp("""
        Append a line per response (common log format: peer, time, request line, status, body bytes sent).
        """, valueName: "file"))
    var accessLog: String?

    @Option(help: ArgumentHelp("""
        The most io_uring workers for blocking file work (opens, stats, reads of files without a non-blocking form) \
        on uring and auto (default: the library's).
        """, valueName: "n"))
    var fileWorkers: Int?

    @Option(help: ArgumentHelp("""
        The most thread-pool workers on threads and auto; the pool grows to it while calls wait (default: the \
        library's bound; with --network laio at least one per connection).
        """, valueName: "n"))
    var poolWorkers: Int?

    func validate() throws {
        guard !root.isEmpty else { throw ValidationError("--root is required") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard (1...65536).contains(maxConnections) else { throw ValidationError("--max-connections must be 1...65536") }
        guard idleTimeout > 0 && idleTimeout <= 86400 else {
            throw ValidationError("--idle-timeout must be a number of seconds in (0, 86400]")
        }
        if let fileWorkers, !(1...UringSettings.fileWorkerLimit).contains(fileWorkers) {
            throw ValidationError("--file-workers must be 1...\(UringSettings.fileWorkerLimit)")
        }
        if let poolWorkers, !(1...ThreadPoolSettings.workerLimit).contains(poolWorkers) {
            throw ValidationError("--pool-workers must be 1...\(ThreadPoolSettings.workerLimit)")
        }
    }

    var options: ServerOptions {
        ServerOptions(root: root, host: host, port: UInt16(port), backend: backend, network: network,
                      maxConnections: maxConnections, idleTimeout: .nanoseconds(Int64(idleTimeout * 1e9)),
                      accessLog: accessLog, fileWorkers: fileWorkers, poolWorkers: poolWorkers)
    }
}

func fail(_ message: String) -> Never {
    report(message)
    exit(2)
}

let options = HTTPDCommand.parseCommandLine().options

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
