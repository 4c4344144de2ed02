import LAIO
public import LAIONIOFiles
import SystemPackage
public import Vapor

extension Application {
    /// LAIO's file calls for this application's route handlers (`req.laio`).
    public var laio: LAIOApplication { LAIOApplication(application: self) }
}

/// Where `req.laio` takes its ``LAIOFiles`` from: the one given to ``use(_:)`` at start-up,
/// else one on a new context (of the backend `LAIO_BACKEND` names, else `auto`) made at the
/// first use.
public struct LAIOApplication: Sendable {
    let application: Application

    private struct Key: StorageKey, LockKey {
        typealias Value = LAIOFiles
    }

    /// The file calls `req.laio` uses.
    public var files: LAIOFiles {
        get throws {
            try application.locks.lock(for: Key.self).withLock {
                if let files = application.storage[Key.self] { return files }
                let files = LAIOFiles(context: try LAIO.Context())
                application.storage[Key.self] = files
                return files
            }
        }
    }

    /// Makes `req.laio` use `files` (set it before the server starts).
    public func use(_ files: LAIOFiles) {
        application.locks.lock(for: Key.self).withLock { application.storage[Key.self] = files }
    }
}

extension Request {
    /// File responses and reads through LAIO, with the answers of `req.fileio`.
    public var laio: LAIOFileIO { LAIOFileIO(request: self) }
}

/// `req.fileio`'s `asyncStreamFile` and `collectFile` over LAIO: the same responses and
/// errors, from one open and `fstat` of the file, its bytes read into the buffers written.
/// Paths are the caller's (absolute, or from the working directory) and symbolic links are
/// followed, as under `req.fileio`; for a confined public directory use
/// ``LAIOFileMiddleware``.
public struct LAIOFileIO: Sendable {
    let request: Request

    /// The file at `path` as a response, as `req.fileio.asyncStreamFile(at:)`: `ETag`
    /// (modification time and size, or with `advancedETagComparison` the SHA-256 of the
    /// bytes), `Last-Modified`, 304 for a matching `If-None-Match`, a single range (206; 400
    /// for a bad one) and a `Content-Type` from the path's extension or `mediaType`.
    ///
    /// Throws `Abort(.internalServerError)` when there is no file at `path`, and the errno
    /// (500) when it cannot be opened. `onCompleted` learns how the body ended. The
    /// descriptor is closed when the body ends or fails, or when the response is released
    /// unsent.
    public func streamFile(
        at path: String,
        mediaType: HTTPMediaType? = nil,
        advancedETagComparison: Bool = false,
        onCompleted: @escaping @Sendable (Result<Void, any Error>) async throws -> Void = { _ in }
    ) async throws -> Response {
        let files = try request.application.laio.files
        let (file, status) = try await open(path, files)
        return try await files.response(to: request, for: file, status: status, path: path, mediaType: mediaType,
                                        advancedETagComparison: advancedETagComparison, onCompleted: onCompleted)
    }

    /// The whole file at `path` in one buffer, as `req.fileio.collectFile(at:)`. Throws
    /// `Abort(.internalServerError)` when there is no file at `path`, and the errno when it
    /// cannot be opened or read (`EISDIR` for a directory).
    public func collectFile(at path: String) async throws -> ByteBuffer {
        let files = try request.application.laio.files
        let (file, status) = try await open(path, files)
        let bytes = try await files.read(file, range: 0..<status.size, path: path)
        await files.close(file)
        return bytes
    }

    private func open(_ path: String, _ files: LAIOFiles) async throws -> (OpenDescriptor, FileStatus) {
        let file: OpenDescriptor
        do {
            file = try await files.open(path)
        } catch .noSuchFileOrDirectory {
            throw Abort(.internalServerError)
        }
        do {
            return (file, try await files.status(of: file))
        } catch {
            await files.close(file)
            throw error
        }
    }
}
