#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims

extension Operation {
    /// Whether raw calls numbered `number` have a typed form (`canonical` turns them into
    /// one when their arguments can be represented).
    package static func hasTypedForm(_ number: Int) -> Bool { typedNumbers.contains(number) }

    // Every number whose raw call, with non-null pointers and small counts, becomes typed.
    // Two probes: the fifth argument is a pointer for statx (it must be non-null) and the
    // flags for renameat2 (it must be zero). The fourth is openat2's size of `open_how`.
    private static let typedNumbers: Set<Int> = Set((0..<1024).filter { number in
        let size = MemoryLayout<open_how>.size
        return [SyscallArguments(8, 8, 8, size, 0, 8), SyscallArguments(8, 8, 8, size, 8, 8)].contains { arguments in
            if case .syscall = Operation.syscall(number: number, arguments: arguments).canonical { return false }
            return true
        }
    })

    /// The typed form of a raw `.syscall` whose number LAIO knows (`SYS_pread64` becomes
    /// `.pread`, `SYS_stat` becomes `.stat`, `SYS_unlink` becomes `.unlinkat(AT_FDCWD, ...)`),
    /// so that a backend that maps operations to something other than syscall(2) runs
    /// both forms alike. Typed operations, unknown numbers and raw calls whose arguments
    /// cannot be represented (a null buffer with a non-zero length, a length beyond
    /// `Int.max`) come back unchanged.
    package var canonical: Operation {
        guard case let .syscall(number, a) = self else { return self }
        func fd(_ value: Int) -> Int32 { Int32(truncatingIfNeeded: value) }
        func int32(_ value: Int) -> Int32 { Int32(truncatingIfNeeded: value) }
        func path(_ value: Int) -> UnsafePointer<CChar>? { UnsafePointer(bitPattern: value) }
        func mutableBuffer(_ base: Int, _ count: Int) -> UnsafeMutableRawBufferPointer? {
            guard count >= 0, base != 0 || count == 0 else { return nil }
            return UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: base), count: count)
        }
        func buffer(_ base: Int, _ count: Int) -> UnsafeRawBufferPointer? {
            mutableBuffer(base, count).map { UnsafeRawBufferPointer($0) }
        }
        func vectors(_ base: Int, _ count: Int) -> UnsafeBufferPointer<iovec>? {
            guard count >= 0, base != 0 || count == 0 else { return nil }
            return UnsafeBufferPointer(start: UnsafePointer(bitPattern: base), count: count)
        }
        func statBuffer(_ value: Int) -> UnsafeMutablePointer<stat>? { UnsafeMutablePointer(bitPattern: value) }

        // Every pointer argument that the typed case holds non-optionally must be non-null;
        // a null one stays raw so the kernel can answer EFAULT itself.
        let typed: Operation?
        switch number {
        case Int(LAIO_SYS_read):
            typed = mutableBuffer(a.a1, a.a2).map { .read(fd: fd(a.a0), buffer: $0) }
        case Int(LAIO_SYS_write):
            typed = buffer(a.a1, a.a2).map { .write(fd: fd(a.a0), buffer: $0) }
        case Int(LAIO_SYS_pread64):
            typed = mutableBuffer(a.a1, a.a2).map { .pread(fd: fd(a.a0), buffer: $0, offset: Int64(a.a3)) }
        case Int(LAIO_SYS_pwrite64):
            typed = buffer(a.a1, a.a2).map { .pwrite(fd: fd(a.a0), buffer: $0, offset: Int64(a.a3)) }
        case Int(LAIO_SYS_readv):
            typed = vectors(a.a1, a.a2).map { .readv(fd: fd(a.a0), iovecs: $0) }
        case Int(LAIO_SYS_writev):
            typed = vectors(a.a1, a.a2).map { .writev(fd: fd(a.a0), iovecs: $0) }
        case Int(LAIO_SYS_preadv):
            // On 64-bit kernels the low half of the offset pair is the whole offset.
            typed = vectors(a.a1, a.a2).map { .preadv(fd: fd(a.a0), iovecs: $0, offset: Int64(a.a3)) }
        case Int(LAIO_SYS_pwritev):
            typed = vectors(a.a1, a.a2).map { .pwritev(fd: fd(a.a0), iovecs: $0, offset: Int64(a.a3)) }
        case Int(LAIO_SYS_open):
            typed = path(a.a0).map { .open(path: $0, flags: int32(a.a1), mode: mode_t(truncatingIfNeeded: a.a2)) }
        case Int(LAIO_SYS_openat):
            typed = path(a.a1).map {
                .openat(dirfd: fd(a.a0), path: $0, flags: int32(a.a2), mode: mode_t(truncatingIfNeeded: a.a3))
            }
        case Int(LAIO_SYS_openat2) where a.a3 == MemoryLayout<open_how>.size:
            typed = path(a.a1).flatMap { p in
                UnsafePointer<open_how>(bitPattern: a.a2).map { .openat2(dirfd: fd(a.a0), path: p, how: $0) }
            }
        case Int(LAIO_SYS_close):
            typed = .close(fd: fd(a.a0))
        case Int(LAIO_SYS_stat):
            typed = path(a.a0).flatMap { p in statBuffer(a.a1).map { .stat(path: p, buffer: $0) } }
        case Int(LAIO_SYS_lstat):
            typed = path(a.a0).flatMap { p in
                statBuffer(a.a1).map { .newfstatat(dirfd: AT_FDCWD, path: p, buffer: $0, flags: AT_SYMLINK_NOFOLLOW) }
            }
        case Int(LAIO_SYS_fstat):
            typed = statBuffer(a.a1).map { .fstat(fd: fd(a.a0), buffer: $0) }
        case Int(LAIO_SYS_newfstatat):
            typed = path(a.a1).flatMap { p in
                statBuffer(a.a2).map { .newfstatat(dirfd: fd(a.a0), path: p, buffer: $0, flags: int32(a.a3)) }
            }
        case Int(LAIO_SYS_statx):
            typed = path(a.a1).flatMap { p in
                UnsafeMutableRawPointer(bitPattern: a.a4).map {
                    .statx(dirfd: fd(a.a0), path: p, flags: int32(a.a2), mask: UInt32(truncatingIfNeeded: a.a3), buffer: $0)
                }
            }
        case Int(LAIO_SYS_fsync):
            typed = .fsync(fd: fd(a.a0))
        case Int(LAIO_SYS_fdatasync):
            typed = .fdatasync(fd: fd(a.a0))
        case Int(LAIO_SYS_accept), Int(LAIO_SYS_accept4):
            typed = .accept(fd: fd(a.a0), address: UnsafeMutablePointer(bitPattern: a.a1),
                            length: UnsafeMutablePointer(bitPattern: a.a2),
                            flags: number == Int(LAIO_SYS_accept4) ? int32(a.a3) : 0)
        case Int(LAIO_SYS_connect):
            typed = UnsafePointer<sockaddr>(bitPattern: a.a1).map {
                .connect(fd: fd(a.a0), address: $0, length: socklen_t(truncatingIfNeeded: a.a2))
            }
        case Int(LAIO_SYS_recvfrom):
            typed = mutableBuffer(a.a1, a.a2).map {
                a.a4 == 0 ? .recv(fd: fd(a.a0), buffer: $0, flags: int32(a.a3))
                    : .recvfrom(fd: fd(a.a0), buffer: $0, flags: int32(a.a3),
                                address: UnsafeMutablePointer(bitPattern: a.a4), length: UnsafeMutablePointer(bitPattern: a.a5))
            }
        case Int(LAIO_SYS_sendto):
            typed = buffer(a.a1, a.a2).map {
                a.a4 == 0 ? .send(fd: fd(a.a0), buffer: $0, flags: int32(a.a3))
                    : .sendto(fd: fd(a.a0), buffer: $0, flags: int32(a.a3),
                              address: UnsafePointer(bitPattern: a.a4), length: socklen_t(truncatingIfNeeded: a.a5))
            }
        case Int(LAIO_SYS_recvmsg):
            typed = UnsafeMutablePointer<msghdr>(bitPattern: a.a1).map { .recvmsg(fd: fd(a.a0), message: $0, flags: int32(a.a2)) }
        case Int(LAIO_SYS_sendmsg):
            typed = UnsafePointer<msghdr>(bitPattern: a.a1).map { .sendmsg(fd: fd(a.a0), message: $0, flags: int32(a.a2)) }
        case Int(LAIO_SYS_sendfile):
            typed = a.a3 >= 0
                ? .sendfile(outFD: fd(a.a0), inFD: fd(a.a1), offset: UnsafeMutablePointer(bitPattern: a.a2), count: a.a3)
                : nil
        case Int(LAIO_SYS_splice):
            typed = a.a4 >= 0
                ? .splice(inFD: fd(a.a0), inOffset: UnsafeMutablePointer(bitPattern: a.a1), outFD: fd(a.a2),
                          outOffset: UnsafeMutablePointer(bitPattern: a.a3), count: a.a4, flags: UInt32(truncatingIfNeeded: a.a5))
                : nil
        case Int(LAIO_SYS_unlinkat):
            typed = path(a.a1).map { .unlinkat(dirfd: fd(a.a0), path: $0, flags: int32(a.a2)) }
        case Int(LAIO_SYS_unlink):
            typed = path(a.a0).map { .unlinkat(dirfd: AT_FDCWD, path: $0, flags: 0) }
        case Int(LAIO_SYS_rmdir):
            typed = path(a.a0).map { .unlinkat(dirfd: AT_FDCWD, path: $0, flags: AT_REMOVEDIR) }
        case Int(LAIO_SYS_renameat2) where a.a4 == 0, Int(LAIO_SYS_renameat):  // renameat2 only without flags
            typed = path(a.a1).flatMap { old in
                path(a.a3).map { .renameat(oldDirfd: fd(a.a0), oldPath: old, newDirfd: fd(a.a2), newPath: $0) }
            }
        case Int(LAIO_SYS_rename):
            typed = path(a.a0).flatMap { old in
                path(a.a1).map { .renameat(oldDirfd: AT_FDCWD, oldPath: old, newDirfd: AT_FDCWD, newPath: $0) }
            }
        case Int(LAIO_SYS_mkdirat):
            typed = path(a.a1).map { .mkdirat(dirfd: fd(a.a0), path: $0, mode: mode_t(truncatingIfNeeded: a.a2)) }
        case Int(LAIO_SYS_mkdir):
            typed = path(a.a0).map { .mkdirat(dirfd: AT_FDCWD, path: $0, mode: mode_t(truncatingIfNeeded: a.a1)) }
        default:
            typed = nil
        }
        return typed ?? self
    }
}
