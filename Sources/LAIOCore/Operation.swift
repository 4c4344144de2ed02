#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import SystemPackage

/// One system call for LAIO to run, with its arguments.
///
/// Memory an operation points to (buffers, paths, `iovec` arrays, `stat` buffers, socket
/// addresses, message headers, offsets) belongs to the operation until it completes: until
/// `submit` returns `.completed`, or until `poll` reports its handle. The caller keeps it
/// alive and untouched for that long; the library never frees it.
///
/// Each case runs the system call named in its documentation. Results are what the
/// kernel returns (a count, a descriptor, or 0), errors are `Errno` values.
///
/// Not `Sendable`, like the pointers it holds (and swift-system's `IORing.Request`): an
/// operation that points into one task's memory, its stack say, cannot be handed to another
/// task without the compiler saying so. Make the operation where its memory lives; a
/// `Handle` is what crosses tasks and threads.
public enum Operation {

    /// `read(2)`.
    case read(fd: Int32, buffer: UnsafeMutableRawBufferPointer)
    /// `pread(2)` at `offset`.
    case pread(fd: Int32, buffer: UnsafeMutableRawBufferPointer, offset: Int64)
    /// `write(2)`.
    case write(fd: Int32, buffer: UnsafeRawBufferPointer)
    /// `pwrite(2)` at `offset`.
    case pwrite(fd: Int32, buffer: UnsafeRawBufferPointer, offset: Int64)
    /// `readv(2)`.
    case readv(fd: Int32, iovecs: UnsafeBufferPointer<iovec>)
    /// `writev(2)`.
    case writev(fd: Int32, iovecs: UnsafeBufferPointer<iovec>)
    /// `preadv(2)` at `offset`.
    case preadv(fd: Int32, iovecs: UnsafeBufferPointer<iovec>, offset: Int64)
    /// `pwritev(2)` at `offset`.
    case pwritev(fd: Int32, iovecs: UnsafeBufferPointer<iovec>, offset: Int64)
    /// `openat(2)`; the result is the new descriptor.
    case openat(dirfd: Int32, path: UnsafePointer<CChar>, flags: Int32, mode: mode_t = 0)
    /// `openat2(2)` with `how` (a `struct open_how`: flags, mode and `RESOLVE_*` bits, such
    /// as `RESOLVE_BENEATH` to keep a lookup under `dirfd`); the result is the new descriptor.
    case openat2(dirfd: Int32, path: UnsafePointer<CChar>, how: UnsafePointer<open_how>)
    /// `open(2)`, run as `openat(AT_FDCWD, ...)`.
    case open(path: UnsafePointer<CChar>, flags: Int32, mode: mode_t = 0)
    /// `close(2)`.
    case close(fd: Int32)
    /// `fstat(2)` into `buffer`.
    case fstat(fd: Int32, buffer: UnsafeMutablePointer<stat>)
    /// `stat(2)` into `buffer`, run as `newfstatat(AT_FDCWD, path, buffer, 0)`.
    case stat(path: UnsafePointer<CChar>, buffer: UnsafeMutablePointer<stat>)
    /// `newfstatat(2)` (glibc's `fstatat`) into `buffer`.
    case newfstatat(dirfd: Int32, path: UnsafePointer<CChar>, buffer: UnsafeMutablePointer<stat>, flags: Int32 = 0)
    /// `statx(2)` into `buffer`, which points to a `struct statx` (256 bytes).
    case statx(dirfd: Int32, path: UnsafePointer<CChar>, flags: Int32, mask: UInt32, buffer: UnsafeMutableRawPointer)
    /// `fsync(2)`.
    case fsync(fd: Int32)
    /// `fdatasync(2)`.
    case fdatasync(fd: Int32)
    /// `accept4(2)`; `accept(2)` is `flags: 0`. The result is the new descriptor.
    case accept(fd: Int32, address: UnsafeMutablePointer<sockaddr>? = nil,
                length: UnsafeMutablePointer<socklen_t>? = nil, flags: Int32 = 0)
    /// `connect(2)`.
    case connect(fd: Int32, address: UnsafePointer<sockaddr>, length: socklen_t)
    /// `recv(2)`, run as `recvfrom(fd, buffer, flags, NULL, NULL)`.
    case recv(fd: Int32, buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0)
    /// `recvfrom(2)`.
    case recvfrom(fd: Int32, buffer: UnsafeMutableRawBufferPointer, flags: Int32,
                  address: UnsafeMutablePointer<sockaddr>?, length: UnsafeMutablePointer<socklen_t>?)
    /// `send(2)`, run as `sendto(fd, buffer, flags, NULL, 0)`.
    case send(fd: Int32, buffer: UnsafeRawBufferPointer, flags: Int32 = 0)
    /// `sendto(2)`.
    case sendto(fd: Int32, buffer: UnsafeRawBufferPointer, flags: Int32,
                address: UnsafePointer<sockaddr>?, length: socklen_t)
    /// `recvmsg(2)`.
    case recvmsg(fd: Int32, message: UnsafeMutablePointer<msghdr>, flags: Int32 = 0)
    /// `sendmsg(2)`.
    case sendmsg(fd: Int32, message: UnsafePointer<msghdr>, flags: Int32 = 0)
    /// `sendfile(2)` of `count` bytes from `inFD` to `outFD`.
    case sendfile(outFD: Int32, inFD: Int32, offset: UnsafeMutablePointer<off_t>?, count: Int)
    /// `splice(2)`.
    case splice(inFD: Int32, inOffset: UnsafeMutablePointer<Int64>?, outFD: Int32,
                outOffset: UnsafeMutablePointer<Int64>?, count: Int, flags: UInt32 = 0)
    /// `unlinkat(2)`.
    case unlinkat(dirfd: Int32, path: UnsafePointer<CChar>, flags: Int32 = 0)
    /// `renameat(2)`, run as `renameat2(..., 0)`.
    case renameat(oldDirfd: Int32, oldPath: UnsafePointer<CChar>, newDirfd: Int32, newPath: UnsafePointer<CChar>)
    /// `mkdirat(2)`.
    case mkdirat(dirfd: Int32, path: UnsafePointer<CChar>, mode: mode_t)
    /// `nanosleep(2)` for `duration`; the result is 0.
    case nanosleep(Duration)
    /// Any system call by number, as `syscall(2)` would run it.
    case syscall(number: Int, arguments: SyscallArguments = SyscallArguments())
}

/// The six register arguments of a raw system call, as `long` values.
public struct SyscallArguments: Sendable, Hashable {
    public var a0, a1, a2, a3, a4, a5: Int

    /// Up to six arguments; missing ones are 0.
    public init(_ a0: Int = 0, _ a1: Int = 0, _ a2: Int = 0, _ a3: Int = 0, _ a4: Int = 0, _ a5: Int = 0) {
        (self.a0, self.a1, self.a2, self.a3, self.a4, self.a5) = (a0, a1, a2, a3, a4, a5)
    }
}

/// Linux system call numbers for this architecture, for `Operation.syscall` (Swift does
/// not import `<sys/syscall.h>`).
public enum SyscallNumber {
    public static let read = Int(LAIO_SYS_read)
    public static let write = Int(LAIO_SYS_write)
    public static let pread64 = Int(LAIO_SYS_pread64)
    public static let pwrite64 = Int(LAIO_SYS_pwrite64)
    public static let openat = Int(LAIO_SYS_openat)
    public static let close = Int(LAIO_SYS_close)
    public static let fstat = Int(LAIO_SYS_fstat)
    public static let newfstatat = Int(LAIO_SYS_newfstatat)
    public static let statx = Int(LAIO_SYS_statx)
    public static let nanosleep = Int(LAIO_SYS_nanosleep)
    public static let getpid = Int(LAIO_SYS_getpid)
    public static let exit = Int(LAIO_SYS_exit)
    public static let exitGroup = Int(LAIO_SYS_exit_group)
    public static let clone = Int(LAIO_SYS_clone)
    public static let execve = Int(LAIO_SYS_execve)
}

// MARK: - The opcode table: each operation as the system call that runs it

extension Operation {
    /// The system call number and arguments this operation runs as. `nanosleep` is the
    /// one case that needs storage of its own; it reports a null `req` here and `run()`
    /// supplies the `timespec`.
    @inlinable
    package var syscallRequest: (number: Int, arguments: SyscallArguments) {
        func p(_ pointer: UnsafeRawPointer?) -> Int { Int(bitPattern: pointer) }
        func i<T: BinaryInteger>(_ value: T) -> Int { Int(truncatingIfNeeded: value) }
        switch self {
        case let .read(fd, buffer):
            return (Int(LAIO_SYS_read), .init(i(fd), p(buffer.baseAddress), buffer.count))
        case let .pread(fd, buffer, offset):
            return (Int(LAIO_SYS_pread64), .init(i(fd), p(buffer.baseAddress), buffer.count, i(offset)))
        case let .write(fd, buffer):
            return (Int(LAIO_SYS_write), .init(i(fd), p(buffer.baseAddress), buffer.count))
        case let .pwrite(fd, buffer, offset):
            return (Int(LAIO_SYS_pwrite64), .init(i(fd), p(buffer.baseAddress), buffer.count, i(offset)))
        case let .readv(fd, iovecs):
            return (Int(LAIO_SYS_readv), .init(i(fd), p(iovecs.baseAddress), iovecs.count))
        case let .writev(fd, iovecs):
            return (Int(LAIO_SYS_writev), .init(i(fd), p(iovecs.baseAddress), iovecs.count))
        case let .preadv(fd, iovecs, offset):
            // The kernel takes the offset as (low, high) halves; on 64-bit the low half is all of it.
            return (Int(LAIO_SYS_preadv), .init(i(fd), p(iovecs.baseAddress), iovecs.count, i(offset), 0))
        case let .pwritev(fd, iovecs, offset):
            return (Int(LAIO_SYS_pwritev), .init(i(fd), p(iovecs.baseAddress), iovecs.count, i(offset), 0))
        case let .openat(dirfd, path, flags, mode):
            return (Int(LAIO_SYS_openat), .init(i(dirfd), p(path), i(flags), i(mode)))
        case let .openat2(dirfd, path, how):
            return (Int(LAIO_SYS_openat2), .init(i(dirfd), p(path), p(how), MemoryLayout<open_how>.size))
        case let .open(path, flags, mode):
            return (Int(LAIO_SYS_openat), .init(i(AT_FDCWD), p(path), i(flags), i(mode)))
        case let .close(fd):
            return (Int(LAIO_SYS_close), .init(i(fd)))
        case let .fstat(fd, buffer):
            return (Int(LAIO_SYS_fstat), .init(i(fd), p(buffer)))
        case let .stat(path, buffer):
            return (Int(LAIO_SYS_newfstatat), .init(i(AT_FDCWD), p(path), p(buffer), 0))
        case let .newfstatat(dirfd, path, buffer, flags):
            return (Int(LAIO_SYS_newfstatat), .init(i(dirfd), p(path), p(buffer), i(flags)))
        case let .statx(dirfd, path, flags, mask, buffer):
            return (Int(LAIO_SYS_statx), .init(i(dirfd), p(path), i(flags), i(mask), p(buffer)))
        case let .fsync(fd):
            return (Int(LAIO_SYS_fsync), .init(i(fd)))
        case let .fdatasync(fd):
            return (Int(LAIO_SYS_fdatasync), .init(i(fd)))
        case let .accept(fd, address, length, flags):
            return (Int(LAIO_SYS_accept4), .init(i(fd), p(address), p(length), i(flags)))
        case let .connect(fd, address, length):
            return (Int(LAIO_SYS_connect), .init(i(fd), p(address), i(length)))
        case let .recv(fd, buffer, flags):
            return (Int(LAIO_SYS_recvfrom), .init(i(fd), p(buffer.baseAddress), buffer.count, i(flags), 0, 0))
        case let .recvfrom(fd, buffer, flags, address, length):
            return (Int(LAIO_SYS_recvfrom),
                    .init(i(fd), p(buffer.baseAddress), buffer.count, i(flags), p(address), p(length)))
        case let .send(fd, buffer, flags):
            return (Int(LAIO_SYS_sendto), .init(i(fd), p(buffer.baseAddress), buffer.count, i(flags), 0, 0))
        case let .sendto(fd, buffer, flags, address, length):
            return (Int(LAIO_SYS_sendto),
                    .init(i(fd), p(buffer.baseAddress), buffer.count, i(flags), p(address), i(length)))
        case let .recvmsg(fd, message, flags):
            return (Int(LAIO_SYS_recvmsg), .init(i(fd), p(message), i(flags)))
        case let .sendmsg(fd, message, flags):
            return (Int(LAIO_SYS_sendmsg), .init(i(fd), p(message), i(flags)))
        case let .sendfile(outFD, inFD, offset, count):
            return (Int(LAIO_SYS_sendfile), .init(i(outFD), i(inFD), p(offset), count))
        case let .splice(inFD, inOffset, outFD, outOffset, count, flags):
            return (Int(LAIO_SYS_splice),
                    .init(i(inFD), p(inOffset), i(outFD), p(outOffset), count, i(flags)))
        case let .unlinkat(dirfd, path, flags):
            return (Int(LAIO_SYS_unlinkat), .init(i(dirfd), p(path), i(flags)))
        case let .renameat(oldDirfd, oldPath, newDirfd, newPath):
            return (Int(LAIO_SYS_renameat2), .init(i(oldDirfd), p(oldPath), i(newDirfd), p(newPath), 0))
        case let .mkdirat(dirfd, path, mode):
            return (Int(LAIO_SYS_mkdirat), .init(i(dirfd), p(path), i(mode)))
        case .nanosleep:
            return (Int(LAIO_SYS_nanosleep), .init())
        case let .syscall(number, arguments):
            return (number, arguments)
        }
    }

    /// Runs the operation on the calling thread, blocking if the call blocks.
    /// Returns the kernel's raw answer: the result, or -errno.
    @inlinable
    package func run() -> Int {
        if case let .nanosleep(duration) = self {
            var request = timespec(duration)
            // The pointer is used only during the call, while `request` is alive.
            return withUnsafePointer(to: &request) {
                laio_shim_syscall(Int(LAIO_SYS_nanosleep), Int(bitPattern: $0), 0, 0, 0, 0, 0)
            }
        }
        let (number, a) = syscallRequest
        return laio_shim_syscall(number, a.a0, a.a1, a.a2, a.a3, a.a4, a.a5)
    }

    /// Whether this call would take down a pool worker or the process image from under a
    /// pool (exit, clone, fork, exec, rt_sigreturn): backends that run calls on their own
    /// threads refuse these with `ENOSYS`.
    package var isUnsafeOffThread: Bool {
        guard case let .syscall(number, _) = self else { return false }
        return Operation.refusedOffThread.contains(number)
    }

    private static let refusedOffThread: Set<Int> = Set([
        LAIO_SYS_exit, LAIO_SYS_exit_group, LAIO_SYS_clone, LAIO_SYS_clone3, LAIO_SYS_execve,
        LAIO_SYS_execveat, LAIO_SYS_rt_sigreturn, LAIO_SYS_fork, LAIO_SYS_vfork,
    ].map { Int($0) }.filter { $0 >= 0 })
}

extension timespec {
    /// The `timespec` for a non-negative duration (negative durations become zero).
    @inlinable
    package init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) {
            self.init(tv_sec: 0, tv_nsec: 0)
        } else {
            self.init(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        }
    }
}
