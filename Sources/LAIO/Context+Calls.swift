#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LAIOCore
import SystemPackage

// The common system calls as async functions in swift-system's vocabulary. Each is a thin
// form of `perform`: it suspends only if its call goes to the background, its errors are the
// call's errno, and cancelling the task cancels the call. Memory passed in (buffers,
// addresses) must stay valid until the function returns, which it does only once the call
// is over; what a function copies (paths) or makes (the stat buffer) it frees itself.
extension Context {
    /// `read(2)`: up to `buffer.count` bytes from `fd`'s position into `buffer`. Returns the
    /// count read; 0 at end of file.
    nonisolated(nonsending)
    public func read(from fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) async throws(Errno) -> Int {
        try await perform(.read(fd: fd.rawValue, buffer: buffer))
    }

    /// `pread(2)`: up to `buffer.count` bytes of `fd` at `offset` into `buffer`, leaving the
    /// position alone. Returns the count read; 0 at end of file.
    nonisolated(nonsending)
    public func read(from fd: FileDescriptor, at offset: Int64,
                     into buffer: UnsafeMutableRawBufferPointer) async throws(Errno) -> Int {
        try await perform(.pread(fd: fd.rawValue, buffer: buffer, offset: offset))
    }

    /// `write(2)`: `buffer` to `fd` at its position. Returns the count written, which may
    /// be short (a pipe or socket with less room).
    nonisolated(nonsending)
    public func write(to fd: FileDescriptor, from buffer: UnsafeRawBufferPointer) async throws(Errno) -> Int {
        try await perform(.write(fd: fd.rawValue, buffer: buffer))
    }

    /// `pwrite(2)`: `buffer` to `fd` at `offset`, leaving the position alone. Returns the
    /// count written. `ESPIPE` for a pipe or socket.
    nonisolated(nonsending)
    public func write(to fd: FileDescriptor, at offset: Int64,
                      from buffer: UnsafeRawBufferPointer) async throws(Errno) -> Int {
        try await perform(.pwrite(fd: fd.rawValue, buffer: buffer, offset: offset))
    }

    /// `openat2(2)` (`openat(2)` when `resolve` is empty): opens `path`, relative to
    /// `directory` (nil: the working directory) when it is relative, and returns the new
    /// descriptor, which the caller closes. `resolve` limits the lookup (`.beneath` keeps it
    /// under `directory`: `EXDEV` otherwise). The path is copied for the call's duration.
    nonisolated(nonsending)
    public func open(_ path: FilePath, _ mode: FileDescriptor.AccessMode,
                     options: FileDescriptor.OpenOptions = [], permissions: FilePermissions? = nil,
                     resolve: ResolveFlags = [], relativeTo directory: FileDescriptor? = nil) async throws(Errno) -> FileDescriptor {
        let dirfd = directory?.rawValue ?? AT_FDCWD
        let flags = mode.rawValue | options.rawValue
        let permissions = permissions?.rawValue ?? 0
        let cPath = try Self.copy(path)
        defer { free(cPath) }
        if resolve.isEmpty {
            return FileDescriptor(rawValue: Int32(try await perform(.openat(dirfd: dirfd, path: cPath, flags: flags, mode: permissions))))
        }
        let how = UnsafeMutablePointer<OpenHow>.allocate(capacity: 1)
        defer { how.deallocate() }
        how.initialize(to: OpenHow(flags: flags, mode: permissions, resolve: resolve))
        return FileDescriptor(rawValue: Int32(try await perform(.openat2(dirfd: dirfd, path: cPath, how: how))))
    }

    /// `close(2)` of `fd` (not of the context: that is `close()`). The descriptor is gone
    /// afterwards even when it throws (`EINTR` and `EIO` are reports, not retries), and
    /// cancelling the task does not stop it: a close that did not happen would leak the
    /// descriptor. (`EBADF` after the context is closed: then close it with close(2).)
    nonisolated(nonsending)
    public func close(_ fd: FileDescriptor) async throws(Errno) {
        _ = try await run(.close(fd: fd.rawValue), cancellable: false)
    }

    /// `newfstatat(2)` (glibc's `fstatat`): the status of `path`, relative to `directory`
    /// (nil: the working directory) when it is relative; of a symbolic link itself with
    /// `followingSymlinks: false` (`AT_SYMLINK_NOFOLLOW`).
    nonisolated(nonsending)
    public func stat(_ path: FilePath, followingSymlinks: Bool = true,
                     relativeTo directory: FileDescriptor? = nil) async throws(Errno) -> stat {
        let cPath = try Self.copy(path)
        defer { free(cPath) }
        let buffer = UnsafeMutablePointer<Glibc.stat>.allocate(capacity: 1)
        defer { buffer.deallocate() }
        buffer.initialize(to: Glibc.stat())
        _ = try await perform(.newfstatat(dirfd: directory?.rawValue ?? AT_FDCWD, path: cPath, buffer: buffer,
                                          flags: followingSymlinks ? 0 : AT_SYMLINK_NOFOLLOW))
        return buffer.pointee
    }

    /// `fstat(2)`: the status of the file `fd` is open on.
    nonisolated(nonsending)
    public func stat(_ fd: FileDescriptor) async throws(Errno) -> stat {
        let buffer = UnsafeMutablePointer<Glibc.stat>.allocate(capacity: 1)
        defer { buffer.deallocate() }
        buffer.initialize(to: Glibc.stat())
        _ = try await perform(.fstat(fd: fd.rawValue, buffer: buffer))
        return buffer.pointee
    }

    /// `accept4(2)` on listening socket `fd` (`flags`: `SOCK_NONBLOCK`, `SOCK_CLOEXEC`):
    /// the connected socket, which the caller closes. Suspends until a client connects.
    nonisolated(nonsending)
    public func accept(_ fd: FileDescriptor, flags: Int32 = 0) async throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: Int32(try await perform(.accept(fd: fd.rawValue, address: nil, length: nil, flags: flags))))
    }

    /// `connect(2)` of socket `fd` to the `length` bytes of `address`. Suspends until the
    /// connection is made or refused (`ECONNREFUSED`, `ETIMEDOUT`, ...).
    nonisolated(nonsending)
    public func connect(_ fd: FileDescriptor, to address: UnsafePointer<sockaddr>, length: socklen_t) async throws(Errno) {
        _ = try await perform(.connect(fd: fd.rawValue, address: address, length: length))
    }

    /// `recv(2)`: up to `buffer.count` bytes from socket `fd` into `buffer`. Returns the
    /// count; 0 when the peer has shut down its side.
    nonisolated(nonsending)
    public func receive(from fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer,
                        flags: Int32 = 0) async throws(Errno) -> Int {
        try await perform(.recv(fd: fd.rawValue, buffer: buffer, flags: flags))
    }

    /// `send(2)`: `buffer` on socket `fd`. Returns the count sent, which may be short.
    /// (`MSG_NOSIGNAL` in `flags` turns a write to a closed peer into `EPIPE` without SIGPIPE.)
    nonisolated(nonsending)
    public func send(to fd: FileDescriptor, from buffer: UnsafeRawBufferPointer, flags: Int32 = 0) async throws(Errno) -> Int {
        try await perform(.send(fd: fd.rawValue, buffer: buffer, flags: flags))
    }

    /// A C copy of `path` that lives until freed (the call may outlive any scoped pointer).
    private static func copy(_ path: FilePath) throws(Errno) -> UnsafeMutablePointer<CChar> {
        guard let copy = path.withPlatformString({ strdup($0) }) else { throw .noMemory }
        return copy
    }
}
