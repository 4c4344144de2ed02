#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import LAIOCore
import Testing

/// Stand-in addresses: `canonical` only moves pointers between fields, never reads them.
private let p1 = 0x1000, p2 = 0x2000, p3 = 0x3000, p4 = 0x4000

/// The raw call `number(arguments)` after `canonical`: its kind and the system call it runs.
private func canonical(_ number: Int, _ arguments: SyscallArguments)
    -> (kind: OperationKind, number: Int, arguments: SyscallArguments) {
    let typed = Operation.syscall(number: number, arguments: arguments).canonical
    let request = typed.syscallRequest
    return (typed.kind, request.number, request.arguments)
}

@Suite("canonical: raw calls with a typed form")
struct CanonicalTests {
    @Test("a raw call that is already what its typed form runs keeps every argument",
          arguments: [
            (OperationKind.read, Int(LAIO_SYS_read), SyscallArguments(3, p1, 100)),
            (.write, Int(LAIO_SYS_write), SyscallArguments(4, p1, 7)),
            (.pread, Int(LAIO_SYS_pread64), SyscallArguments(5, p1, 4096, 8192)),
            (.pwrite, Int(LAIO_SYS_pwrite64), SyscallArguments(5, p1, 4096, 1 << 40)),
            (.readv, Int(LAIO_SYS_readv), SyscallArguments(6, p1, 3)),
            (.writev, Int(LAIO_SYS_writev), SyscallArguments(6, p1, 2)),
            (.preadv, Int(LAIO_SYS_preadv), SyscallArguments(6, p1, 2, 512)),
            (.pwritev, Int(LAIO_SYS_pwritev), SyscallArguments(6, p1, 2, 1024)),
            (.openat, Int(LAIO_SYS_openat), SyscallArguments(Int(AT_FDCWD), p1, Int(O_RDONLY | O_CLOEXEC), 0o644)),
            (.close, Int(LAIO_SYS_close), SyscallArguments(9)),
            (.fstat, Int(LAIO_SYS_fstat), SyscallArguments(9, p2)),
            (.newfstatat, Int(LAIO_SYS_newfstatat), SyscallArguments(7, p1, p2, Int(AT_SYMLINK_NOFOLLOW))),
            (.statx, Int(LAIO_SYS_statx), SyscallArguments(7, p1, 0, Int(LAIO_STATX_BASIC_STATS), p2)),
            (.fsync, Int(LAIO_SYS_fsync), SyscallArguments(9)),
            (.fdatasync, Int(LAIO_SYS_fdatasync), SyscallArguments(9)),
            (.connect, Int(LAIO_SYS_connect), SyscallArguments(10, p1, 16)),
            (.recvmsg, Int(LAIO_SYS_recvmsg), SyscallArguments(10, p1, Int(MSG_PEEK))),
            (.sendmsg, Int(LAIO_SYS_sendmsg), SyscallArguments(10, p1, Int(MSG_NOSIGNAL))),
            (.sendto, Int(LAIO_SYS_sendto), SyscallArguments(10, p1, 30, 0, p2, 16)),
            (.recvfrom, Int(LAIO_SYS_recvfrom), SyscallArguments(10, p1, 30, 0, p2, p3)),
            (.sendfile, Int(LAIO_SYS_sendfile), SyscallArguments(11, 12, p1, 65536)),
            (.splice, Int(LAIO_SYS_splice), SyscallArguments(11, p1, 12, 0, 65536, 1)),
            (.unlinkat, Int(LAIO_SYS_unlinkat), SyscallArguments(7, p1, Int(AT_REMOVEDIR))),
            (.renameat, Int(LAIO_SYS_renameat2), SyscallArguments(7, p1, 8, p2, 0)),
            (.mkdirat, Int(LAIO_SYS_mkdirat), SyscallArguments(7, p1, 0o755)),
            (.openat2, Int(LAIO_SYS_openat2), SyscallArguments(7, p1, p2, MemoryLayout<open_how>.size)),
          ])
    func sameCall(kind: OperationKind, number: Int, arguments: SyscallArguments) {
        let typed = canonical(number, arguments)
        #expect(typed.kind == kind)
        #expect(typed.number == number)
        #expect(typed.arguments == arguments)
    }

    @Test("renameat and accept become the calls their typed forms run")
    func otherNumbers() {
        var typed = canonical(Int(LAIO_SYS_renameat), SyscallArguments(7, p1, 8, p2))
        #expect(typed.kind == .renameat && typed.number == Int(LAIO_SYS_renameat2))
        #expect(typed.arguments == SyscallArguments(7, p1, 8, p2, 0))
        typed = canonical(Int(LAIO_SYS_accept), SyscallArguments(10, p1, p2))
        #expect(typed.kind == .accept && typed.number == Int(LAIO_SYS_accept4))
        #expect(typed.arguments == SyscallArguments(10, p1, p2, 0))
        typed = canonical(Int(LAIO_SYS_accept4), SyscallArguments(10, 0, 0, Int(SOCK_CLOEXEC.rawValue)))
        #expect(typed.kind == .accept && typed.arguments == SyscallArguments(10, 0, 0, Int(SOCK_CLOEXEC.rawValue)))
    }

    @Test("an older call becomes the *at form the typed case runs, with AT_FDCWD and the flag it implies",
          .enabled(if: LAIO_SYS_open != -1, "this architecture has no open, stat, unlink, rename, mkdir calls"))
    func olderCalls() {
        let cwd = Int(AT_FDCWD)
        var typed = canonical(Int(LAIO_SYS_unlink), SyscallArguments(p1))
        #expect(typed.kind == .unlinkat && typed.number == Int(LAIO_SYS_unlinkat))
        #expect(typed.arguments == SyscallArguments(cwd, p1, 0))
        typed = canonical(Int(LAIO_SYS_rmdir), SyscallArguments(p1))
        #expect(typed.kind == .unlinkat && typed.arguments == SyscallArguments(cwd, p1, Int(AT_REMOVEDIR)))
        typed = canonical(Int(LAIO_SYS_mkdir), SyscallArguments(p1, 0o700))
        #expect(typed.kind == .mkdirat && typed.arguments == SyscallArguments(cwd, p1, 0o700))
        typed = canonical(Int(LAIO_SYS_rename), SyscallArguments(p1, p2))
        #expect(typed.kind == .renameat && typed.number == Int(LAIO_SYS_renameat2))
        #expect(typed.arguments == SyscallArguments(cwd, p1, cwd, p2, 0))
        typed = canonical(Int(LAIO_SYS_lstat), SyscallArguments(p1, p2))
        #expect(typed.kind == .newfstatat)
        #expect(typed.arguments == SyscallArguments(cwd, p1, p2, Int(AT_SYMLINK_NOFOLLOW)))
        typed = canonical(Int(LAIO_SYS_open), SyscallArguments(p1, Int(O_WRONLY | O_CREAT), 0o600))
        #expect(typed.kind == .open && typed.number == Int(LAIO_SYS_openat))
        #expect(typed.arguments == SyscallArguments(cwd, p1, Int(O_WRONLY | O_CREAT), 0o600))
        typed = canonical(Int(LAIO_SYS_stat), SyscallArguments(p1, p2))
        #expect(typed.kind == .stat && typed.arguments == SyscallArguments(cwd, p1, p2, 0))
    }

    @Test("sendto and recvfrom without an address are send and recv")
    func addresslessSockets() {
        let send = canonical(Int(LAIO_SYS_sendto), SyscallArguments(10, p1, 30, Int(MSG_NOSIGNAL)))
        #expect(send.kind == .send && send.arguments == SyscallArguments(10, p1, 30, Int(MSG_NOSIGNAL)))
        let recv = canonical(Int(LAIO_SYS_recvfrom), SyscallArguments(10, p1, 30, Int(MSG_WAITALL)))
        #expect(recv.kind == .recv && recv.arguments == SyscallArguments(10, p1, 30, Int(MSG_WAITALL)))
    }

    @Test("what a typed case cannot hold stays raw, for the kernel to answer",
          arguments: [
            (Int(LAIO_SYS_read), SyscallArguments(3, 0, 100)),          // null buffer, non-zero length: EFAULT
            (Int(LAIO_SYS_pwrite64), SyscallArguments(3, p1, -1, 0)),   // a length beyond Int.max
            (Int(LAIO_SYS_readv), SyscallArguments(3, 0, 2)),           // null iovec array
            (Int(LAIO_SYS_openat), SyscallArguments(3, 0, 0, 0)),       // null path
            (Int(LAIO_SYS_fstat), SyscallArguments(3, 0)),              // null stat buffer
            (Int(LAIO_SYS_statx), SyscallArguments(3, p1, 0, 0x7ff, 0)),
            (Int(LAIO_SYS_openat2), SyscallArguments(3, p1, p2, 8)),    // an open_how of another size
            (Int(LAIO_SYS_renameat2), SyscallArguments(7, p1, 8, p2, 1)), // RENAME_NOREPLACE: no typed form
            (Int(LAIO_SYS_sendfile), SyscallArguments(1, 2, 0, -1)),
            (Int(LAIO_SYS_connect), SyscallArguments(3, 0, 16)),
            (Int(LAIO_SYS_getpid), SyscallArguments()),                 // no typed form at all
          ])
    func staysRaw(number: Int, arguments: SyscallArguments) {
        let raw = canonical(number, arguments)
        #expect(raw.kind == .syscall)
        #expect(raw.number == number && raw.arguments == arguments)
    }

    @Test("a zero-length buffer may be null; a typed operation comes back unchanged")
    func edges() {
        let empty = canonical(Int(LAIO_SYS_read), SyscallArguments(3, 0, 0))
        #expect(empty.kind == .read && empty.arguments == SyscallArguments(3, 0, 0))
        let typed = Operation.close(fd: 4).canonical
        #expect(typed.kind == .close && typed.syscallRequest.arguments == SyscallArguments(4))
    }

    /// Found by this suite: the probe behind `hasTypedForm` passed a null fifth argument,
    /// which is statx's buffer, and a fourth that is no `open_how` size, so raw statx and
    /// openat2 counted as calls without a typed form, and `uring` answered one with a null
    /// buffer ENOSYS where the kernel answers EFAULT.
    @Test("regression: hasTypedForm names every number canonical types, statx and openat2 included")
    func typedNumbers() {
        for number in [Int(LAIO_SYS_read), Int(LAIO_SYS_pread64), Int(LAIO_SYS_accept), Int(LAIO_SYS_statx),
                       Int(LAIO_SYS_renameat2), Int(LAIO_SYS_renameat), Int(LAIO_SYS_openat2), Int(LAIO_SYS_sendfile)] {
            #expect(Operation.hasTypedForm(Int(number)), "\(number)")
        }
        for number in [Int(LAIO_SYS_getpid), Int(LAIO_SYS_nanosleep), Int(LAIO_SYS_exit_group), Int(LAIO_SYS_clone)] {
            #expect(!Operation.hasTypedForm(Int(number)), "\(number)")
        }
    }
}
