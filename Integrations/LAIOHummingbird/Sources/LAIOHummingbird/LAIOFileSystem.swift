#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import Hummingbird
public import LAIO
public import LAIONIOFiles
import NIOCore
import Synchronization
import SystemPackage

/// A Hummingbird `FileProvider` that looks up, stats, opens and reads files through LAIO:
/// each call returns at once when it does not block (a cached open, `fstat` or `pread`
/// costs no thread hop) and suspends the request's task only when it does.
///
/// Use it in place of `LocalFileSystem`:
///
/// ```swift
/// let files = try LAIOFileSystem(rootFolder: "public")
/// router.add(middleware: FileMiddleware(fileProvider: files, searchForIndexHtml: true))
/// ```
///
/// The calls themselves (open beneath the root, `fstat`, chunks into `ByteBuffer`s, close)
/// are LAIONIOFiles', shared with LAIOVapor.
///
/// What it does differently from `LocalFileSystem`, on purpose:
/// - **Confined to the root.** Every path is opened with `openat2(2)` from the root's
///   descriptor with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: a symbolic link (absolute
///   or relative) that leads out of the root, or a path that climbs out, is not found
///   (404), where `LocalFileSystem` follows it.
/// - **One open per request.** `getAttributes` opens the file and `fstat`s it; `loadFile`
///   reads that same descriptor, so the body is the file the headers describe even if the
///   name is replaced in between. A request costs `openat2`, `fstat`, the `pread`s and a
///   `close` (`LocalFileSystem`: two `stat`s, `open`, the reads and `close`, each a hop to
///   NIOThreadPool).
/// - **Only regular files and directories.** A FIFO, socket or device under the root is
///   not found (reading one could wait forever).
/// - **A file that shrinks while it is sent** ends the response with an error (the
///   connection is closed) rather than sending fewer bytes than `Content-Length` promised.
///
/// Descriptors: the one opened for a request is closed when its body has been sent or has
/// failed, and otherwise (HEAD, 304, a redirect, an error) when the request's
/// ``FileIdentifier`` is released. A response holds one chunk (at most `chunkLength`
/// bytes) of the file at a time.
public struct LAIOFileSystem: FileProvider {
    /// What ``FileMiddleware`` needs to know of a file, from `fstat(2)`.
    public struct FileAttributes: Sendable, FileMiddlewareFileAttributes {
        public let isFolder: Bool
        public let size: Int
        /// The modification time in whole seconds, as `LocalFileSystem` gives it (so that
        /// the two give the same `ETag` and `Last-Modified` for a file).
        public let modificationDate: Date
    }

    /// A request's file: its path under the root and, once ``getAttributes(id:)`` has run,
    /// the descriptor it opened.
    public typealias FileIdentifier = OpenFile

    /// The LAIO context every call goes through.
    public var context: LAIO.Context { files.context }
    /// Bytes per `pread` and per body chunk (the last may be shorter).
    public var chunkLength: Int { files.chunkLength }
    private let files: LAIOFiles
    private let root: RootDirectory

    /// Serves the files under `rootFolder` through `context` (default: a new context of
    /// the backend `LAIO_BACKEND` names, else `auto`).
    ///
    /// Throws if the root cannot be opened as a directory, or the context cannot start.
    public init(rootFolder: String, context: LAIO.Context? = nil, chunkLength: Int = 128 * 1024) throws {
        precondition(chunkLength > 0, "LAIOFileSystem: chunkLength must be positive")
        self.files = LAIOFiles(context: try context ?? LAIO.Context(), chunkLength: chunkLength)
        self.root = try RootDirectory(path: rootFolder)
    }

    /// The request path as a path under the root: leading slashes dropped ("/" is the root
    /// itself). Nil (404) for a path with a NUL byte.
    public func getFileIdentifier(_ path: String) -> FileIdentifier? {
        guard !path.utf8.contains(0) else { return nil }
        let relative = path.drop(while: { $0 == "/" })
        return OpenFile(path: relative.isEmpty ? "." : String(relative))
    }

    /// Opens the file beneath the root and `fstat`s it. Nil (404) when it does not exist,
    /// lies outside the root, is neither a regular file nor a directory, or cannot be opened.
    public func getAttributes(id: FileIdentifier) async throws -> FileAttributes? {
        let opened: OpenDescriptor
        if let file = id.opened {
            opened = file
        } else {
            guard let file = try? await files.open(id.path, beneath: root) else { return nil }
            id.adopt(file)
            opened = file
        }
        guard let status = try? await files.status(of: opened), status.kind != .other else { return nil }
        id.setSize(status.size)
        return FileAttributes(isFolder: status.kind == .directory, size: status.size,
                              modificationDate: Date(timeIntervalSince1970: Double(status.modifiedSeconds)))
    }

    /// The whole file as a streamed body.
    public func loadFile(id: FileIdentifier, context: some RequestContext) async throws -> ResponseBody {
        let size = try await size(of: id, requestContext: context)
        guard size > 0 else {
            await close(id)
            return ResponseBody()
        }
        return body(of: id, range: 0...(size - 1))
    }

    /// Part of the file as a streamed body, the range clamped to the file as
    /// `LocalFileSystem` does.
    public func loadFile(id: FileIdentifier, range: ClosedRange<Int>, context: some RequestContext) async throws -> ResponseBody {
        let size = try await size(of: id, requestContext: context)
        guard size > 0 else {
            await close(id)
            return ResponseBody()
        }
        return body(of: id, range: range.clamped(to: 0...(size - 1)))
    }

    // MARK: The calls

    /// The file's size, from `getAttributes` or (when that did not run) from its own open
    /// and `fstat`; 404 as `LocalFileSystem` answers when it cannot.
    private func size(of file: OpenFile, requestContext: some RequestContext) async throws -> Int {
        if let size = file.size { return size }
        guard let attributes = try await getAttributes(id: file), !attributes.isFolder else {
            await close(file)
            requestContext.coreContext.endpointPath.value = "NotFound"
            throw HTTPError(.notFound)
        }
        return attributes.size
    }

    private func close(_ file: OpenFile) async {
        if let opened = file.take() { await files.close(opened) }
    }

    /// The body that reads `range` of the file chunk by chunk, each chunk read straight into
    /// the buffer that is written, and closes the descriptor when done or failed.
    private func body(of file: OpenFile, range: ClosedRange<Int>) -> ResponseBody {
        let files = files
        return ResponseBody(contentLength: range.count) { writer in
            guard let opened = file.take() else { throw Errno.badFileDescriptor }
            do {
                try await files.stream(opened, range: range.lowerBound..<(range.upperBound + 1), path: file.path) {
                    try await writer.write($0)
                }
            } catch {
                await files.close(opened)
                throw error
            }
            await files.close(opened)
            try await writer.finish(nil)
        }
    }
}

/// A request's file: a path under the root and the descriptor opened for it, closed when
/// the request's body is done or, if no body took it, when this is released.
public final class OpenFile: Sendable {
    /// The path relative to the root ("." for the root).
    public let path: String
    private struct State {
        var opened: OpenDescriptor?
        var size: Int?
    }
    private let state = Mutex(State())

    init(path: String) { self.path = path }

    var opened: OpenDescriptor? { state.withLock { $0.opened } }
    var size: Int? { state.withLock { $0.size } }

    /// Holds `file` for the request (releasing one held before closes it).
    func adopt(_ file: OpenDescriptor) { state.withLock { $0.opened = file } }

    func setSize(_ size: Int) { state.withLock { $0.size = size } }

    /// The open file, now the caller's to close (else it closes when released).
    func take() -> OpenDescriptor? {
        state.withLock { state in
            defer { state.opened = nil }
            return state.opened
        }
    }
}

/// The root folder could not be opened as a directory (LAIONIOFiles' `RootError`).
public typealias RootError = LAIONIOFiles.RootError
/// The file had fewer bytes than its headers promised (LAIONIOFiles' `FileShrank`).
public typealias FileShrank = LAIONIOFiles.FileShrank
