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
    public let context: LAIO.Context
    /// Bytes per `pread` and per body chunk (the last may be shorter).
    public let chunkLength: Int
    private let root: RootDirectory

    /// Serves the files under `rootFolder` through `context` (default: a new context of
    /// the backend `LAIO_BACKEND` names, else `auto`).
    ///
    /// Throws if the root cannot be opened as a directory, or the context cannot start.
    public init(rootFolder: String, context: LAIO.Context? = nil, chunkLength: Int = 128 * 1024) throws {
        precondition(chunkLength > 0, "LAIOFileSystem: chunkLength must be positive")
        self.context = try context ?? LAIO.Context()
        self.chunkLength = chunkLength
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
        guard let fd = try? await openedOrOpen(id) else { return nil }
        guard let status = try? await context.stat(fd) else { return nil }
        let type = status.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFDIR else { return nil }
        id.setSize(Int(status.st_size))
        return FileAttributes(isFolder: type == S_IFDIR, size: Int(status.st_size),
                              modificationDate: Date(timeIntervalSince1970: Double(status.st_mtim.tv_sec)))
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

    private func openedOrOpen(_ file: OpenFile) async throws(Errno) -> FileDescriptor {
        if let fd = file.descriptor { return fd }
        let fd = try await context.open(FilePath(file.path), .readOnly, options: [.closeOnExec, .nonBlocking],
                                        resolve: [.beneath, .noMagicLinks], relativeTo: root.descriptor)
        file.adopt(fd)
        return fd
    }

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
        if let fd = file.take() { try? await context.close(fd) }
    }

    /// The body that reads `range` of the file chunk by chunk, each chunk read straight into
    /// the buffer that is written, and closes the descriptor when done or failed.
    private func body(of file: OpenFile, range: ClosedRange<Int>) -> ResponseBody {
        let laio = context
        let chunkLength = chunkLength
        return ResponseBody(contentLength: range.count) { writer in
            guard let fd = file.take() else { throw Errno.badFileDescriptor }
            do {
                var offset = range.lowerBound
                let end = range.upperBound + 1
                while offset < end {
                    let want = min(chunkLength, end - offset)
                    var buffer = ByteBufferAllocator().buffer(capacity: want)
                    // The pointer outlives the closure: `buffer` is this loop's own unique
                    // storage, untouched until the read returns, and `read` returns only
                    // once the call is over (also when the task is cancelled).
                    let space = buffer.withUnsafeMutableWritableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]) }
                    let got = try await laio.read(from: fd, at: Int64(offset), into: space)
                    guard got > 0 else { throw FileShrank(path: file.path, missing: end - offset) }
                    buffer.moveWriterIndex(forwardBy: got)
                    offset += got
                    try await writer.write(buffer)
                }
            } catch {
                try? await laio.close(fd)
                throw error
            }
            try? await laio.close(fd)
            try await writer.finish(nil)
        }
    }
}

/// The error that ends a body when the file has fewer bytes than its headers promised.
public struct FileShrank: Error, CustomStringConvertible {
    public let path: String
    public let missing: Int
    public var description: String { "\(path): the file ended \(missing) bytes before its Content-Length" }
}

/// A request's file: a path under the root and the descriptor opened for it, closed when
/// the request's body is done or, if no body took it, when this is released.
public final class OpenFile: Sendable {
    /// The path relative to the root ("." for the root).
    public let path: String
    private struct State {
        var descriptor: FileDescriptor?
        var size: Int?
    }
    private let state = Mutex(State())

    init(path: String) { self.path = path }

    deinit {
        // Nothing else can hold the descriptor now: no body took it, so close it here.
        // close(2) of a descriptor opened for reading does not wait for storage.
        if let fd = state.withLock({ $0.descriptor }) { _ = Glibc.close(fd.rawValue) }
    }

    var descriptor: FileDescriptor? { state.withLock { $0.descriptor } }
    var size: Int? { state.withLock { $0.size } }

    func adopt(_ fd: FileDescriptor) {
        let previous = state.withLock { state in
            defer { state.descriptor = fd }
            return state.descriptor
        }
        if let previous { _ = Glibc.close(previous.rawValue) }
    }

    func setSize(_ size: Int) { state.withLock { $0.size = size } }

    /// The descriptor, now the caller's to close.
    func take() -> FileDescriptor? {
        state.withLock { state in
            defer { state.descriptor = nil }
            return state.descriptor
        }
    }
}

/// The root's descriptor, open for as long as a provider uses it.
final class RootDirectory: Sendable {
    let descriptor: FileDescriptor

    init(path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw RootError(path: path, errno: Errno(rawValue: errno)) }
        descriptor = FileDescriptor(rawValue: fd)
    }

    deinit { _ = Glibc.close(descriptor.rawValue) }
}

/// The root folder could not be opened as a directory.
public struct RootError: Error, CustomStringConvertible {
    public let path: String
    public let errno: Errno
    public var description: String { "cannot serve \(path): \(errno)" }
}
