import LAIO
public import LAIONIOFiles
public import NIOCore
import SystemPackage
public import Vapor

/// A Vapor middleware that serves the files of a public directory as Vapor's
/// `FileMiddleware` does, its opens, stats and reads going through LAIO: each returns at
/// once when it does not block (a cached file costs no thread hop) and suspends the
/// request's task only when it does.
///
/// Use it in place of `FileMiddleware`, with the same options:
///
/// ```swift
/// app.middleware.use(try LAIOFileMiddleware(publicDirectory: app.directory.publicDirectory,
///                                           defaultFile: "index.html", directoryAction: .redirect))
/// ```
///
/// It answers as `FileMiddleware` does: 400 for a path that does not percent-decode, 403 for
/// one with `../`, the default file of a directory, the directory redirect, `ETag` (plain or
/// `advancedETagComparison`), `If-None-Match` (304), `Last-Modified`, `Accept-Ranges`, a
/// single range (206) and 400 for a bad one, the cache policy, and the request passed on
/// (Vapor's 404) when nothing is there. What differs, on purpose:
/// - **Confined to the root.** Every path is opened with `openat2(2)` from the root's
///   descriptor with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: a symbolic link (absolute
///   or relative) that leads out of the root is not followed, and the request is passed on
///   (404), where `FileMiddleware` serves what it leads to.
/// - **Only regular files and directories.** A FIFO, socket or device is passed on (404);
///   `FileMiddleware` would try to stream it (a FIFO's open waits for a writer). So is a
///   default file that is a directory.
/// - **One open per request.** `FileMiddleware` costs two or three `stat`s, an `open`, the
///   reads and a `close`, each a hop to NIO's thread pool; this costs `openat2`, `fstat`, the
///   `pread`s and a `close`, and the body is the file its headers describe even if the name
///   is replaced in between.
/// - **A file that shrinks while it is sent** ends the response with an error (a 500 when
///   it is read before the response, as a GET of at most one chunk is). So does a range
///   that ends at the file's size (`bytes=0-N` of an N-byte file), which `FileMiddleware`
///   accepts, announcing one byte more than it then sends.
///
/// Descriptors: the one opened for a request is closed when its body has been sent or has
/// failed, or when the response is released unsent (HEAD, 304, an error). A response holds
/// one chunk (at most `chunkLength` bytes) of the file at a time; a GET of at most one chunk
/// is read before the response is made and sent from that one buffer.
public final class LAIOFileMiddleware: AsyncMiddleware {
    /// What to do with a directory's path that has no trailing slash.
    public enum DirectoryAction: Sendable {
        /// Pass the request on.
        case none
        /// Redirect (301) to the same URL with a slash appended.
        case redirect
    }

    /// The `Cache-Control` and `Age` headers of every file response (as
    /// `FileMiddleware.CachePolicy`).
    public struct CachePolicy: Sendable {
        /// The `Cache-Control` header; nil removes it.
        public var cacheControl: HTTPHeaders.CacheControl?
        /// The `Age` header in seconds; nil removes it.
        public var age: Int?

        /// A policy of one's own.
        public init(cacheControl: HTTPHeaders.CacheControl?, age: Int? = nil) {
            self.cacheControl = cacheControl
            self.age = age
        }

        /// Neither header: the browser decides.
        public static let browserDefault = CachePolicy(cacheControl: nil)
        /// `Cache-Control: no-cache`.
        public static let noCache = CachePolicy(cacheControl: .init(noCache: true))
        /// `Cache-Control: max-age=N` and `Age: 0`.
        public static func cacheUpToDuration(_ duration: TimeAmount) -> CachePolicy {
            CachePolicy(cacheControl: .init(maxAge: Int(duration.nanoseconds / 1_000_000_000)), age: 0)
        }
    }

    /// The directory served, as given.
    public let publicDirectory: String
    /// The file calls (and the LAIO context they go through).
    public let files: LAIOFiles
    private let root: RootDirectory
    /// `publicDirectory` with one trailing slash: the prefix of the paths a response names
    /// (the `Content-Type` comes from the text after the last dot of that path).
    private let prefix: String
    private let defaultFile: String?
    private let directoryAction: DirectoryAction
    private let advancedETagComparison: Bool
    private let cachePolicy: CachePolicy

    /// Serves the files under `publicDirectory`.
    ///
    /// - Parameters:
    ///   - defaultFile: served for a directory's path that ends in a slash; a leading slash
    ///     makes it a path from the public directory, else from the directory asked for.
    ///   - directoryAction: what a directory's path without a trailing slash gets.
    ///   - advancedETagComparison: `ETag` from the SHA-256 of the file's bytes (read in
    ///     full per request) rather than its modification time and size.
    ///   - context: the LAIO context (default: a new one of the backend `LAIO_BACKEND`
    ///     names, else `auto`).
    ///   - chunkLength: bytes per `pread` and per body chunk.
    ///
    /// Throws ``RootError`` when `publicDirectory` cannot be opened as a directory, or the
    /// context's error when it cannot start.
    public init(
        publicDirectory: String,
        defaultFile: String? = nil,
        directoryAction: DirectoryAction = .none,
        advancedETagComparison: Bool = false,
        cachePolicy: CachePolicy = .browserDefault,
        context: LAIO.Context? = nil,
        chunkLength: Int = 128 * 1024
    ) throws {
        self.root = try RootDirectory(path: publicDirectory)
        self.files = LAIOFiles(context: try context ?? LAIO.Context(), chunkLength: chunkLength)
        self.publicDirectory = publicDirectory
        self.prefix = publicDirectory.hasSuffix("/") ? publicDirectory : publicDirectory + "/"
        self.defaultFile = defaultFile
        self.directoryAction = directoryAction
        self.advancedETagComparison = advancedETagComparison
        self.cachePolicy = cachePolicy
    }

    /// The file, default file or redirect the request's path names under the public
    /// directory, else `next`'s answer.
    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard let decoded = request.url.path.removingPercentEncoding else { throw Abort(.badRequest) }
        let path = String(decoded.drop(while: { $0 == "/" }))
        guard !path.contains("../") else { throw Abort(.forbidden) }

        switch try await lookUp(path) {
        case .missing:
            break
        case .file(let file, let status):
            return try await serve(file, status: status, path: path, to: request)
        case .directory:
            if path.isEmpty || path.hasSuffix("/") {
                guard let defaultFile else { break }
                let target = defaultFile.hasPrefix("/") ? String(defaultFile.drop(while: { $0 == "/" })) : path + defaultFile
                if case .file(let file, let status) = try await lookUp(target) {
                    return try await serve(file, status: status, path: target, to: request)
                }
            } else if directoryAction == .redirect {
                var url = request.url
                url.path += "/"
                return request.redirect(to: url.string, redirectType: .permanent)
            }
        }
        return try await next.respond(to: request)
    }

    private enum Found {
        case missing
        case directory
        case file(OpenDescriptor, FileStatus)
    }

    /// Opens `path` beneath the root and `fstat`s it. Missing when it does not exist, leads
    /// out of the root, or is neither a regular file nor a directory; any other failure
    /// (`ENOTDIR`, `EACCES`, `ELOOP`...) throws (500), as `FileMiddleware`'s `stat` does.
    private func lookUp(_ path: String) async throws(Errno) -> Found {
        // FilePath ends a path at a NUL byte, as NIOFileSystem's does; and the one path with
        // `..` that passes the `../` check, the public directory's parent, is a directory
        // (opened beneath the root it would fail with EXDEV).
        let name = FilePath(path).string
        if name == ".." { return .directory }
        let file: OpenDescriptor
        do {
            file = try await files.open(name, beneath: root)
        } catch .noSuchFileOrDirectory, .improperLink {
            return .missing
        }
        let status: FileStatus
        do {
            status = try await files.status(of: file)
        } catch {
            await files.close(file)
            throw error
        }
        switch status.kind {
        case .regular:
            return .file(file, status)
        case .directory:
            await files.close(file)
            return .directory
        case .other:
            await files.close(file)
            return .missing
        }
    }

    private func serve(_ file: OpenDescriptor, status: FileStatus, path: String, to request: Request) async throws -> Response {
        let response = try await files.response(to: request, for: file, status: status, path: prefix + path,
                                                mediaType: nil, advancedETagComparison: advancedETagComparison,
                                                bufferedUpTo: files.chunkLength, onCompleted: { _ in })
        response.headers.cacheControl = cachePolicy.cacheControl
        if let age = cachePolicy.age {
            response.headers.replaceOrAdd(name: .age, value: String(age))
        } else {
            response.headers.remove(name: .age)
        }
        return response
    }
}
