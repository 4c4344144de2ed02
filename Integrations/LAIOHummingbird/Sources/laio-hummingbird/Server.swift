#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import Hummingbird
import LAIO
import LAIOHummingbird
import Logging
import NIOCore
import NIOPosix

// laio-hummingbird: a static file server on Hummingbird 2 whose FileMiddleware reads through
// LAIO (`--file-io laio`, LAIOFileSystem) or through Hummingbird's own LocalFileSystem on
// NIOFileSystem (`--file-io nio`), with everything else the same, for the side-by-side.

enum FileIO: String, ExpressibleByArgument, CaseIterable {
    case laio, nio
}

extension BackendKind: @retroactive ExpressibleByArgument {
    public init?(argument: String) {
        guard let kind = try? BackendKind(word: argument) else { return nil }
        self = kind
    }

    public static var allValueStrings: [String] { allCases.map(\.description) }
}

@main
struct HummingbirdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laio-hummingbird",
        abstract: "A static file server on Hummingbird, its files read through LAIO or through NIOFileSystem.",
        discussion: """
            Serves the files under --root with Hummingbird's FileMiddleware (index.html for a directory, \
            ranges, conditional requests). SIGINT or SIGTERM ends it gracefully.
            """)

    @Option(help: ArgumentHelp("Serve the files under DIR.", valueName: "dir"))
    var root: String

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "address"))
    var host = "127.0.0.1"

    @Option(help: ArgumentHelp("TCP port (0 picks a free one).", valueName: "n"))
    var port = 8080

    @Option(help: ArgumentHelp("""
        laio: LAIOFileSystem (opens, stats and reads through LAIO); \
        nio: Hummingbird's LocalFileSystem (NIOFileSystem on NIOThreadPool).
        """, valueName: "mode"))
    var fileIO = FileIO.laio

    @Option(help: ArgumentHelp("LAIO backend of --file-io laio (default: LAIO_BACKEND, else auto).", valueName: "word"))
    var backend: BackendKind?

    func validate() throws {
        guard port >= 0 && port <= 65535 else { throw ValidationError("--port must be 0...65535") }
        if backend != nil && fileIO != .laio {
            throw ValidationError("--backend applies to --file-io laio only")
        }
    }

    func run() async throws {
        var logger = Logger(label: "laio-hummingbird")
        logger.logLevel = .warning
        let router = Router()
        let description: String
        switch fileIO {
        case .laio:
            let files: LAIOFileSystem
            do {
                files = try LAIOFileSystem(rootFolder: root, context: LAIO.Context(backend: backend))
            } catch {
                throw ValidationError("\(error)")
            }
            router.add(middleware: FileMiddleware(fileProvider: files, searchForIndexHtml: true))
            description = "file-io laio, backend \(files.context.backendKind); \(files.context.details)"
        case .nio:
            var status = stat()
            guard stat(root, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                throw ValidationError("cannot serve \(root): not a directory")
            }
            router.add(middleware: FileMiddleware(root, searchForIndexHtml: true, logger: logger))
            description = "file-io nio (LocalFileSystem, NIOThreadPool of \(System.coreCount) threads)"
        }
        let host = host
        let root = root
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "laio-hummingbird"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? -1
                print("laio-hummingbird: listening on http://\(host):\(port)/ serving \(root)")
                print("laio-hummingbird: \(description)")
                fflush(nil)
            },
            logger: logger
        )
        try await app.runService()
    }
}
