#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import Dispatch
import LAIO
import LAIONIOFiles
import LAIOVapor
import Logging
import Vapor

// laio-vapor: a static file server on Vapor 4 that serves --root through LAIOFileMiddleware
// (`--file-io laio`) or through Vapor's own FileMiddleware on NIOFileSystem (`--file-io nio`),
// with everything else the same, for the side-by-side. Besides the middleware, two routes
// reach the request helpers: /stream/PATH answers `req.laio.streamFile(at: ROOT/PATH)` (nio:
// `req.fileio.asyncStreamFile`) and /collect/PATH the body of `req.laio.collectFile` (nio:
// `req.fileio.collectFile`).

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
struct VaporCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laio-vapor",
        abstract: "A static file server on Vapor, its files read through LAIO or through NIOFileSystem.",
        discussion: """
            Serves the files under --root with a file middleware (index.html for a directory, the redirect \
            of a directory's path without a slash, ranges, conditional requests), as Vapor's FileMiddleware \
            does. SIGINT or SIGTERM ends it gracefully.
            """)

    @ArgumentParser.Option(help: ArgumentHelp("Serve the files under DIR.", valueName: "dir"))
    var root: String

    @ArgumentParser.Option(help: ArgumentHelp("Address to listen on.", valueName: "address"))
    var host = "127.0.0.1"

    @ArgumentParser.Option(help: ArgumentHelp("TCP port (0 picks a free one).", valueName: "n"))
    var port = 8080

    @ArgumentParser.Option(help: ArgumentHelp("""
        laio: LAIOFileMiddleware and req.laio (open, fstat and read through LAIO); \
        nio: Vapor's FileMiddleware and req.fileio (NIOFileSystem on NIOThreadPool).
        """, valueName: "mode"))
    var fileIO = FileIO.laio

    @ArgumentParser.Flag(help: "ETags from the SHA-256 of each file's bytes (the middlewares' advancedETagComparison).")
    var advancedEtag = false

    @ArgumentParser.Option(help: ArgumentHelp("Cache-Control: max-age=N and Age: 0 on every file (the middlewares' cache policy).",
                                              valueName: "seconds"))
    var maxAge: Int?

    @ArgumentParser.Option(help: ArgumentHelp("LAIO backend of --file-io laio (default: LAIO_BACKEND, else auto).", valueName: "word"))
    var backend: BackendKind?

    func validate() throws {
        guard port >= 0 && port <= 65535 else { throw ValidationError("--port must be 0...65535") }
        if let maxAge, maxAge < 0 { throw ValidationError("--max-age must be 0 or more") }
        if backend != nil && fileIO != .laio {
            throw ValidationError("--backend applies to --file-io laio only")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        // Production: errors answer "Something went wrong." rather than their description,
        // the same text over either file I/O. Vapor reads no command line of ours.
        let app = try await Application.make(Environment(name: "production", arguments: ["laio-vapor"]))
        do {
            try await serve(app)
        } catch {
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }

    private func serve(_ app: Application) async throws {
        var status = stat()
        guard stat(root, &status) == 0 else {
            throw ValidationError("cannot serve \(root): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw ValidationError("cannot serve \(root): not a directory")
        }
        let description: String
        switch fileIO {
        case .laio:
            let middleware: LAIOFileMiddleware
            do {
                middleware = try LAIOFileMiddleware(
                    publicDirectory: root, defaultFile: "index.html", directoryAction: .redirect,
                    advancedETagComparison: advancedEtag,
                    cachePolicy: maxAge.map { .cacheUpToDuration(.seconds(Int64($0))) } ?? .browserDefault,
                    context: LAIO.Context(backend: backend))
            } catch {
                throw ValidationError("\(error)")
            }
            app.middleware.use(middleware)
            app.laio.use(middleware.files)
            description = "file-io laio, backend \(middleware.files.context.backendKind); \(middleware.files.context.details)"
        case .nio:
            app.middleware.use(FileMiddleware(
                publicDirectory: root, defaultFile: "index.html", directoryAction: .redirect,
                advancedETagComparison: advancedEtag,
                cachePolicy: maxAge.map { .cacheUpToDuration(.seconds(Int64($0))) } ?? .browserDefault))
            description = "file-io nio (FileMiddleware, NIOThreadPool of \(app.threadPool.numberOfThreads) threads)"
        }
        let root = root.hasSuffix("/") ? root : root + "/"
        let fileIO = fileIO
        app.get("stream", "**") { request async throws -> Response in
            let path = try Self.path(root, request)
            return fileIO == .laio ? try await request.laio.streamFile(at: path)
                                   : try await request.fileio.asyncStreamFile(at: path)
        }
        app.get("collect", "**") { request async throws -> Response in
            let path = try Self.path(root, request)
            let bytes = fileIO == .laio ? try await request.laio.collectFile(at: path)
                                        : try await request.fileio.collectFile(at: path)
            return Response(status: .ok, body: .init(buffer: bytes))
        }

        // SIGINT and SIGTERM end the server: first handled here, not by the default action.
        let (stops, stop) = AsyncStream<Int32>.makeStream()
        let sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { stop.yield(number) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }

        try await app.server.start(address: .hostname(host, port: port))
        let port = app.http.server.shared.localAddress?.port ?? -1
        print("laio-vapor: listening on http://\(host):\(port)/ serving \(root)")
        print("laio-vapor: \(description)")
        fflush(nil)
        for await _ in stops { break }
        await app.server.shutdown()
    }

    /// ROOT/PATH for /stream/PATH and /collect/PATH; 403 for a `..` component (these routes
    /// are for tests and take paths as they are).
    private static func path(_ root: String, _ request: Request) throws -> String {
        let parts = request.parameters.getCatchall()
        guard !parts.contains("..") else { throw Abort(.forbidden) }
        return root + parts.joined(separator: "/")
    }
}
