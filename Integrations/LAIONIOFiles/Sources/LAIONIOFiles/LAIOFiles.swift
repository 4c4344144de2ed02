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
public import LAIO
public import NIOCore
import Synchronization
public import SystemPackage

/// What the NIO-based integrations (LAIOHummingbird, LAIOVapor) do per request, in one
/// place: open a file beneath a root with `openat2(2)`, `fstat(2)` the descriptor, read its
/// bytes through LAIO straight into the `ByteBuffer`s that are written, and close it at the
/// end or on failure. Each call returns at once when it does not block (a cached `pread`
/// costs no thread hop) and suspends the task only when it does.
public struct LAIOFiles: Sendable {
    /// The LAIO context every call goes through.
    public let context: LAIO.Context
    /// Bytes per `pread` and per chunk handed on (the last may be shorter).
    public let chunkLength: Int

    /// File calls through `context`, reading at most `chunkLength` bytes per `pread`.
    public init(context: LAIO.Context, chunkLength: Int = 128 * 1024) {
        precondition(chunkLength > 0, "LAIOFiles: chunkLength must be positive")
        self.context = context
        self.chunkLength = chunkLength
    }

    /// `openat2(2)` of `path` relative to `root` with `RESOLVE_BENEATH |
    /// RESOLVE_NO_MAGICLINKS`, read-only, close-on-exec and non-blocking (so that a FIFO
    /// cannot hold the open). A path that climbs out of the root, or a symbolic link
    /// (absolute or relative) that leads out of it, fails with `EXDEV`.
    nonisolated(nonsending)
    public func open(_ path: String, beneath root: RootDirectory) async throws(Errno) -> OpenDescriptor {
        let fd = try await context.open(FilePath(path.isEmpty ? "." : path), .readOnly,
                                        options: [.closeOnExec, .nonBlocking],
                                        resolve: [.beneath, .noMagicLinks], relativeTo: root.descriptor)
        return OpenDescriptor(fd)
    }

    /// `openat(2)` of `path` (relative paths from the working directory), read-only,
    /// close-on-exec and non-blocking, following symbolic links.
    nonisolated(nonsending)
    public func open(_ path: String) async throws(Errno) -> OpenDescriptor {
        OpenDescriptor(try await context.open(FilePath(path), .readOnly, options: [.closeOnExec, .nonBlocking]))
    }

    /// `fstat(2)` of the open file.
    nonisolated(nonsending)
    public func status(of file: OpenDescriptor) async throws(Errno) -> FileStatus {
        guard let fd = file.descriptor else { throw .badFileDescriptor }
        return FileStatus(try await context.stat(fd))
    }

    /// Closes the file now, through LAIO (a no-op when it was closed or taken already).
    nonisolated(nonsending)
    public func close(_ file: OpenDescriptor) async {
        if let fd = file.take() { try? await context.close(fd) }
    }

    /// One `pread(2)` of up to `length` bytes at `offset`, straight into a new buffer's
    /// storage. The buffer is empty at end of file.
    nonisolated(nonsending)
    public func read(from fd: FileDescriptor, at offset: Int, length: Int) async throws(Errno) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: length)
        // The pointer outlives the closure: `buffer` is this function's own unique storage,
        // untouched until the read returns, and `read` returns only once the call is over
        // (also when the task is cancelled).
        let space = buffer.withUnsafeMutableWritableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[0..<length]) }
        let got = try await context.read(from: fd, at: Int64(offset), into: space)
        buffer.moveWriterIndex(forwardBy: got)
        return buffer
    }

    /// Reads `range` of the file chunk by chunk and hands each chunk to `write` before it
    /// reads the next, so that one chunk at a time is held whatever the file's size. Throws
    /// ``FileShrank`` if the file ends before the range does; the file stays open (the
    /// caller closes it, also on failure).
    nonisolated(nonsending)
    public func stream(_ file: OpenDescriptor, range: Range<Int>, path: String,
                       write: (ByteBuffer) async throws -> Void) async throws {
        guard let fd = file.descriptor else { throw Errno.badFileDescriptor }
        var offset = range.lowerBound
        while offset < range.upperBound {
            let chunk = try await read(from: fd, at: offset, length: min(chunkLength, range.upperBound - offset))
            guard chunk.readableBytes > 0 else { throw FileShrank(path: path, missing: range.upperBound - offset) }
            offset += chunk.readableBytes
            try await write(chunk)
        }
    }

    /// `range` of the file in one buffer, read in chunks of at most `chunkLength`. Throws
    /// ``FileShrank`` if the file ends first.
    nonisolated(nonsending)
    public func read(_ file: OpenDescriptor, range: Range<Int>, path: String) async throws -> ByteBuffer {
        guard let fd = file.descriptor else { throw Errno.badFileDescriptor }
        var buffer = ByteBufferAllocator().buffer(capacity: range.count)
        while buffer.readableBytes < range.count {
            let want = min(chunkLength, range.count - buffer.readableBytes)
            let offset = range.lowerBound + buffer.readableBytes
            // As in `read(from:at:length:)`: `buffer` is uniquely ours and untouched until
            // the read returns, which happens only once the call is over.
            let space = buffer.withUnsafeMutableWritableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]) }
            let got = try await context.read(from: fd, at: Int64(offset), into: space)
            guard got > 0 else { throw FileShrank(path: path, missing: range.upperBound - offset) }
            buffer.moveWriterIndex(forwardBy: got)
        }
        return buffer
    }
}

/// A file's status, from `fstat(2)`: what a file server needs of it.
public struct FileStatus: Sendable, Equatable {
    /// The file's type, from `st_mode & S_IFMT`.
    public enum Kind: Sendable, Equatable {
        /// `S_IFREG`.
        case regular
        /// `S_IFDIR`.
        case directory
        /// A FIFO, socket, device or anything else a file server does not read.
        case other
    }

    public let kind: Kind
    /// `st_size`, in bytes.
    public let size: Int
    /// The modification time: whole seconds since 1970 and the nanoseconds past them.
    public let modifiedSeconds: Int
    public let modifiedNanoseconds: Int

    /// The fields of a `stat` buffer.
    public init(_ status: stat) {
        switch status.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
        size = Int(status.st_size)
        modifiedSeconds = Int(status.st_mtim.tv_sec)
        modifiedNanoseconds = Int(status.st_mtim.tv_nsec)
    }

    /// The modification time to the nanosecond.
    public var modificationDate: Date {
        Date(timeIntervalSince1970: Double(modifiedSeconds) + Double(modifiedNanoseconds) / 1e9)
    }
}

/// A descriptor that is closed exactly once: by whoever ``take()``s it, or, if nobody did,
/// when this is released (a response that was never sent: HEAD, 304, a dropped connection).
public final class OpenDescriptor: Sendable {
    private let slot: Mutex<FileDescriptor?>

    /// Owns `fd` from now on.
    public init(_ fd: FileDescriptor) { slot = Mutex(fd) }

    deinit {
        // Nothing else can hold the descriptor now. close(2) of a descriptor opened for
        // reading does not wait for storage, so it may run on whatever thread this is.
        if let fd = slot.withLock({ $0 }) { _ = Glibc.close(fd.rawValue) }
    }

    /// The descriptor while it is open here (nil once taken).
    public var descriptor: FileDescriptor? { slot.withLock { $0 } }

    /// The descriptor, now the caller's to close; nil if it was taken before.
    public func take() -> FileDescriptor? {
        slot.withLock { slot in
            defer { slot = nil }
            return slot
        }
    }
}

/// The root's descriptor, open for as long as something serves beneath it.
public final class RootDirectory: Sendable {
    /// The path it was opened with.
    public let path: String
    /// The directory's descriptor (`O_RDONLY | O_DIRECTORY | O_CLOEXEC`), closed on release.
    public let descriptor: FileDescriptor

    /// `open(2)` of `path` as a directory (`O_DIRECTORY`). Throws ``RootError`` naming the
    /// path and the errno (`ENOENT`, `ENOTDIR`, `EACCES`...).
    public init(path: String) throws(RootError) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw RootError(path: path, errno: Errno(rawValue: errno)) }
        self.path = path
        descriptor = FileDescriptor(rawValue: fd)
    }

    deinit { _ = Glibc.close(descriptor.rawValue) }
}

/// The root folder could not be opened as a directory.
public struct RootError: Error, CustomStringConvertible {
    /// The root folder as given.
    public let path: String
    /// Why `open(2)` refused it.
    public let errno: Errno
    public var description: String { "cannot serve \(path): \(errno)" }
}

/// The error that ends a body when the file has fewer bytes than its headers promised.
public struct FileShrank: Error, CustomStringConvertible {
    /// The file's path as the request named it.
    public let path: String
    /// The bytes that were promised and not there.
    public let missing: Int
    public var description: String { "\(path): the file ended \(missing) bytes before its Content-Length" }
}
