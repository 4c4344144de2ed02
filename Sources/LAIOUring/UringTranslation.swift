#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import CLinuxShims
import LAIOCore
import SystemPackage

/// The translation of an `Operation` into an io_uring submission entry, and of the backend's
/// own requests (a cancellation; a connect's poll when a background connect is taken up
/// again). Pure: it reads its arguments, writes only the entry and the slot record it is
/// given, and touches no ring and no kernel, so it can be checked against liburing's own
/// prep helpers without io_uring. Every entry is filled whole (each liburing prep helper
/// sets every field), so an entry's old contents never leak into a request.
package enum UringTranslation {
    /// The kernel's largest single read or write (MAX_RW_COUNT); longer requests are
    /// shortened to it by read(2) and friends, and by this translation in the same way.
    package static let maxTransfer = 0x7fff_f000

    /// IOSQE_ASYNC: the request goes straight to an io-wq worker instead of being tried
    /// non-blocking in the submitting thread first.
    package static let toWorkerFlag = UInt8(1) << UInt8(IOSQE_ASYNC_BIT)

    /// Fills `entry` for `operation`, with `userData` as its user data and, with `toWorker`,
    /// IOSQE_ASYNC. `slot` is the operation's slot record and `statx` its statx buffer: both
    /// stay put until the slot is reaped, so pointers into them may be handed to the kernel;
    /// the slot's fix-up, and what the fix-up reads and writes, are set here. `opcodes` says
    /// what this kernel runs.
    ///
    /// Returns the error to report at once when the operation cannot run here: `ENOSYS`
    /// for what io_uring cannot do on this kernel, `EINVAL`/`EFAULT` for arguments the
    /// system call would refuse before doing anything. The entry is then not to be submitted.
    package static func prepare(_ operation: Operation, userData: UInt64, toWorker: Bool, opcodes: UringOpcodes,
                                slot: UnsafeMutablePointer<UringSlot>, statx: UnsafeMutableRawPointer,
                                into entry: inout io_uring_sqe) -> Errno? {
        if let error = fill(operation, opcodes, record: slot, statx: statx, into: &entry) { return error }
        if toWorker { entry.flags |= toWorkerFlag }
        entry.user_data = userData
        return nil
    }

    /// Fills `entry` with an IORING_OP_ASYNC_CANCEL of the request whose user data is
    /// `target`, as a request of the backend's own (user data 0).
    package static func cancel(_ target: UInt64, into entry: inout io_uring_sqe) {
        io_uring_prep_cancel64(&entry, target, 0)
        entry.user_data = 0
    }

    /// Fills `entry` to run again the request `taken` (the entry as the kernel first took
    /// it) under its own user data. A connect is not issued again (it has begun: a second
    /// connect answers EALREADY while the handshake is in progress): its socket is polled
    /// for POLLOUT instead, and the slot's fix-up becomes the one returned, `.connectResult`
    /// (the socket's SO_ERROR is the answer, as connect(2) finishes a connection in
    /// progress). Returns nil when the slot's fix-up stays as it is.
    package static func reissue(_ taken: io_uring_sqe, into entry: inout io_uring_sqe) -> UringSlot.Fixup? {
        guard UInt32(taken.opcode) == IORING_OP_CONNECT.rawValue else {
            entry = taken
            return nil
        }
        io_uring_prep_poll_add(&entry, taken.fd, UInt32(POLLOUT))
        entry.user_data = taken.user_data
        return .connectResult
    }

    /// The operation's own fields of `entry` (all but the user data and IOSQE_ASYNC), and
    /// its slot's fix-up; as `prepare`.
    private static func fill(_ operation: Operation, _ opcodes: UringOpcodes, record: UnsafeMutablePointer<UringSlot>,
                             statx: UnsafeMutableRawPointer, into entry: inout io_uring_sqe) -> Errno? {
        func length(_ count: Int) -> UInt32 { UInt32(min(count, Self.maxTransfer)) }
        if case .syscall = operation {} else if !opcodes.runs(operation.kind) { return .noFunction }
        switch operation {
        case let .read(fd, buffer):
            // -1: the file position.
            io_uring_prep_read(&entry, fd, buffer.baseAddress, length(buffer.count), UInt64.max)
        case let .pread(fd, buffer, offset):
            guard offset >= 0 else { return .invalidArgument }
            io_uring_prep_read(&entry, fd, buffer.baseAddress, length(buffer.count), UInt64(offset))
        case let .write(fd, buffer):
            io_uring_prep_write(&entry, fd, buffer.baseAddress, length(buffer.count), UInt64.max)
        case let .pwrite(fd, buffer, offset):
            guard offset >= 0 else { return .invalidArgument }
            io_uring_prep_write(&entry, fd, buffer.baseAddress, length(buffer.count), UInt64(offset))
        case let .readv(fd, iovecs):
            guard iovecs.count <= Int(UIO_MAXIOV) else { return .invalidArgument }
            io_uring_prep_readv(&entry, fd, iovecs.baseAddress, UInt32(iovecs.count), UInt64.max)
        case let .writev(fd, iovecs):
            guard iovecs.count <= Int(UIO_MAXIOV) else { return .invalidArgument }
            io_uring_prep_writev(&entry, fd, iovecs.baseAddress, UInt32(iovecs.count), UInt64.max)
        case let .preadv(fd, iovecs, offset):
            guard offset >= 0, iovecs.count <= Int(UIO_MAXIOV) else { return .invalidArgument }
            io_uring_prep_readv(&entry, fd, iovecs.baseAddress, UInt32(iovecs.count), UInt64(offset))
        case let .pwritev(fd, iovecs, offset):
            guard offset >= 0, iovecs.count <= Int(UIO_MAXIOV) else { return .invalidArgument }
            io_uring_prep_writev(&entry, fd, iovecs.baseAddress, UInt32(iovecs.count), UInt64(offset))
        case let .openat(dirfd, path, flags, mode):
            io_uring_prep_openat(&entry, dirfd, path, flags, mode)
            record.pointee.fixup = .newDescriptor
        case let .open(path, flags, mode):
            io_uring_prep_openat(&entry, AT_FDCWD, path, flags, mode)
            record.pointee.fixup = .newDescriptor
        case let .close(fd):
            io_uring_prep_close(&entry, fd)
        case let .fstat(fd, buffer):
            return fillStat(dirfd: fd, path: Self.emptyPath, flags: Int32(LAIO_AT_EMPTY_PATH), into: buffer,
                               record, statx, &entry)
        case let .stat(path, buffer):
            return fillStat(dirfd: AT_FDCWD, path: path, flags: 0, into: buffer, record, statx, &entry)
        case let .newfstatat(dirfd, path, buffer, flags):
            return fillStat(dirfd: dirfd, path: path, flags: flags, into: buffer, record, statx, &entry)
        case let .statx(dirfd, path, flags, mask, buffer):
            io_uring_prep_statx(&entry, dirfd, path, flags, mask, OpaquePointer(buffer))
        case let .fsync(fd):
            io_uring_prep_fsync(&entry, fd, 0)
        case let .fdatasync(fd):
            io_uring_prep_fsync(&entry, fd, UInt32(IORING_FSYNC_DATASYNC))
        case let .accept(fd, address, length, flags):
            io_uring_prep_accept(&entry, fd, address, length, flags)
        case let .connect(fd, address, length):
            io_uring_prep_connect(&entry, fd, address, length)
        case let .recv(fd, buffer, flags):
            io_uring_prep_recv(&entry, fd, buffer.baseAddress, Int(length(buffer.count)), flags)
        case let .send(fd, buffer, flags):
            io_uring_prep_send(&entry, fd, buffer.baseAddress, Int(length(buffer.count)), flags)
        case let .recvfrom(fd, buffer, flags, address, addressLength):
            guard let address else {
                io_uring_prep_recv(&entry, fd, buffer.baseAddress, Int(length(buffer.count)), flags)
                return nil
            }
            guard let addressLength else { return .badAddress }
            // recvfrom as RECVMSG over one vector; the address length is written back on completion.
            Self.setOneVectorMessage(record, buffer.baseAddress, Int(length(buffer.count)),
                                     name: UnsafeMutableRawPointer(address), nameLength: addressLength.pointee)
            record.pointee.target = UnsafeMutableRawPointer(addressLength)
            record.pointee.fixup = .addressLength
            io_uring_prep_recvmsg(&entry, fd, record.pointer(to: \.message), UInt32(bitPattern: flags))
        case let .sendto(fd, buffer, flags, address, addressLength):
            guard let address else {
                io_uring_prep_send(&entry, fd, buffer.baseAddress, Int(length(buffer.count)), flags)
                return nil
            }
            Self.setOneVectorMessage(record, UnsafeMutableRawPointer(mutating: buffer.baseAddress),
                                     Int(length(buffer.count)), name: UnsafeMutableRawPointer(mutating: address),
                                     nameLength: addressLength)
            io_uring_prep_sendmsg(&entry, fd, record.pointer(to: \.message), UInt32(bitPattern: flags))
        case let .recvmsg(fd, message, flags):
            io_uring_prep_recvmsg(&entry, fd, message, UInt32(bitPattern: flags))
        case let .sendmsg(fd, message, flags):
            io_uring_prep_sendmsg(&entry, fd, message, UInt32(bitPattern: flags))
        case let .splice(inFD, inOffset, outFD, outOffset, count, flags):
            // splice(2) reads and advances the offsets; io_uring takes them by value.
            io_uring_prep_splice(&entry, inFD, inOffset?.pointee ?? -1, outFD, outOffset?.pointee ?? -1,
                                 length(count), flags)
            record.pointee.target = UnsafeMutableRawPointer(inOffset)
            record.pointee.target2 = UnsafeMutableRawPointer(outOffset)
            record.pointee.fixup = .spliceOffsets
        case let .unlinkat(dirfd, path, flags):
            io_uring_prep_unlinkat(&entry, dirfd, path, flags)
        case let .renameat(oldDirfd, oldPath, newDirfd, newPath):
            io_uring_prep_renameat(&entry, oldDirfd, oldPath, newDirfd, newPath, 0)
        case let .openat2(dirfd, path, how):
            // The kernel copies `how` while it prepares the request.
            io_uring_prep_openat2(&entry, dirfd, path, UnsafeMutablePointer(mutating: how))
            record.pointee.fixup = .newDescriptor
        case let .mkdirat(dirfd, path, mode):
            io_uring_prep_mkdirat(&entry, dirfd, path, mode)
        case let .nanosleep(duration):
            let time = timespec(duration)
            record.pointee.time = __kernel_timespec(tv_sec: Int64(time.tv_sec), tv_nsec: Int64(time.tv_nsec))
            io_uring_prep_timeout(&entry, record.pointer(to: \.time), 0, 0)
            record.pointee.fixup = .timeout
        case let .syscall(number, arguments) where number == Int(LAIO_SYS_nanosleep):
            guard opcodes.runs(.nanosleep) else { return .noFunction }
            // The kernel copies the caller's timespec (same layout as __kernel_timespec on
            // 64-bit) while it prepares the request, and answers EFAULT for a bad pointer.
            io_uring_prep_timeout(&entry, UnsafeMutablePointer(bitPattern: arguments.a0), 0, 0)
            record.pointee.fixup = .timeout
        case let .syscall(number, arguments):
            // A raw number LAIO knows runs as its typed operation; the rest has no opcode.
            let typed = operation.canonical
            if case .syscall = typed { return fillUntyped(number, arguments, opcodes, into: &entry) }
            return fill(typed, opcodes, record: record, statx: statx, into: &entry)
        case .sendfile:
            // io_uring has no opcode for it.
            return .noFunction
        }
        return nil
    }

    /// A raw call with no typed form. A known call whose arguments could not be typed (a
    /// null buffer with a length, a length beyond `Int.max`): read and write run with the
    /// caller's values, so the kernel answers as read(2)/write(2) would (EFAULT once it
    /// touches the buffer); the others answer EFAULT at once. Unknown numbers: ENOSYS.
    private static func fillUntyped(_ number: Int, _ a: SyscallArguments, _ opcodes: UringOpcodes,
                                    into entry: inout io_uring_sqe) -> Errno? {
        let reads = number == Int(LAIO_SYS_read) || number == Int(LAIO_SYS_pread64)
        let positional = number == Int(LAIO_SYS_pread64) || number == Int(LAIO_SYS_pwrite64)
        guard reads || positional || number == Int(LAIO_SYS_write) else {
            return Operation.hasTypedForm(number) ? .badAddress : .noFunction
        }
        guard opcodes.runs(reads ? .read : .write) else { return .noFunction }
        guard !positional || a.a3 >= 0 else { return .invalidArgument }
        let fd = Int32(truncatingIfNeeded: a.a0)
        // A negative count is a size_t beyond Int.max: the kernel clamps it like any huge count.
        let count = UInt32(a.a2 < 0 ? Self.maxTransfer : min(a.a2, Self.maxTransfer))
        let offset = positional ? UInt64(a.a3) : UInt64.max  // -1: the file position
        if reads {
            io_uring_prep_read(&entry, fd, UnsafeMutableRawPointer(bitPattern: a.a1), count, offset)
        } else {
            io_uring_prep_write(&entry, fd, UnsafeRawPointer(bitPattern: a.a1), count, offset)
        }
        return nil
    }

    /// Fills the slot's message header for recvfrom/sendto with an address: one vector over
    /// the caller's buffer, the caller's address. The slot stays put until reaped, so the
    /// kernel may keep pointers to its header and vector.
    private static func setOneVectorMessage(_ record: UnsafeMutablePointer<UringSlot>, _ base: UnsafeMutableRawPointer?,
                                    _ count: Int, name: UnsafeMutableRawPointer, nameLength: socklen_t) {
        record.pointee.vector = iovec(iov_base: base, iov_len: count)
        record.pointee.message = msghdr()
        record.pointee.message.msg_name = name
        record.pointee.message.msg_namelen = nameLength
        record.pointee.message.msg_iov = record.pointer(to: \.vector)
        record.pointee.message.msg_iovlen = 1
    }

    /// stat, fstat and newfstatat as STATX into the slot's buffer, converted on completion.
    private static func fillStat(dirfd: Int32, path: UnsafePointer<CChar>, flags: Int32,
                                 into buffer: UnsafeMutablePointer<stat>, _ record: UnsafeMutablePointer<UringSlot>,
                                 _ statx: UnsafeMutableRawPointer, _ entry: inout io_uring_sqe) -> Errno? {
        // The stat family never triggers an automount and asks for the basic fields.
        io_uring_prep_statx(&entry, dirfd, path, flags | Int32(LAIO_AT_NO_AUTOMOUNT), UInt32(LAIO_STATX_BASIC_STATS),
                            OpaquePointer(statx))
        record.pointee.target = UnsafeMutableRawPointer(buffer)
        record.pointee.fixup = .stat
        return nil
    }

    /// The "" path of fstat run as statx: static storage in the C shim.
    private static var emptyPath: UnsafePointer<CChar> { laio_shim_empty_path() }
}
