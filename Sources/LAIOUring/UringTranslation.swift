#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import CLinuxShims
import LAIOCore
import SystemPackage

extension UringBackend {
    /// Fills `entry` for `operation`, using `slot`'s storage for what must outlive the call.
    /// Returns the error to report at once when the operation cannot run here: `ENOSYS`
    /// for what io_uring cannot do on this kernel, `EINVAL`/`EFAULT` for arguments the
    /// system call would refuse before doing anything.
    func prepare(_ operation: Operation, record: UnsafeMutablePointer<UringSlot>, statx: UnsafeMutableRawPointer,
                 into entry: inout io_uring_sqe) -> Errno? {
        func length(_ count: Int) -> UInt32 { UInt32(min(count, Self.maxTransfer)) }
        if case .syscall = operation {} else if !runs(operation.kind) { return .noFunction }
        // The slot's storage stays put until the slot is reaped, so pointers into it may
        // be handed to the kernel.
        switch operation {
        case let .read(fd, buffer):
            io_uring_prep_read(&entry, fd, buffer.baseAddress, length(buffer.count), UInt64.max)  // -1: file position
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
            return prepareStat(dirfd: fd, path: Self.emptyPath, flags: Int32(LAIO_AT_EMPTY_PATH), into: buffer,
                               record, statx, &entry)
        case let .stat(path, buffer):
            return prepareStat(dirfd: AT_FDCWD, path: path, flags: 0, into: buffer, record, statx, &entry)
        case let .newfstatat(dirfd, path, buffer, flags):
            return prepareStat(dirfd: dirfd, path: path, flags: flags, into: buffer, record, statx, &entry)
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
            Self.setOneVectorMessage(record, UnsafeMutableRawPointer(mutating: buffer.baseAddress), Int(length(buffer.count)),
                                     name: UnsafeMutableRawPointer(mutating: address), nameLength: addressLength)
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
            guard runs(.nanosleep) else { return .noFunction }
            // The kernel copies the caller's timespec (same layout as __kernel_timespec on
            // 64-bit) while it prepares the request, and answers EFAULT for a bad pointer.
            io_uring_prep_timeout(&entry, UnsafeMutablePointer(bitPattern: arguments.a0), 0, 0)
            record.pointee.fixup = .timeout
        case let .syscall(number, arguments):
            // A raw number LAIO knows runs as its typed operation; the rest has no opcode.
            let typed = operation.canonical
            if case .syscall = typed { return prepareUntyped(number, arguments, into: &entry) }
            return prepare(typed, record: record, statx: statx, into: &entry)
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
    func prepareUntyped(_ number: Int, _ a: SyscallArguments, into entry: inout io_uring_sqe) -> Errno? {
        let reads = number == Int(LAIO_SYS_read) || number == Int(LAIO_SYS_pread64)
        let positional = number == Int(LAIO_SYS_pread64) || number == Int(LAIO_SYS_pwrite64)
        guard reads || positional || number == Int(LAIO_SYS_write) else {
            return Operation.hasTypedForm(number) ? .badAddress : .noFunction
        }
        guard runs(reads ? .read : .write) else { return .noFunction }
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
    static func setOneVectorMessage(_ record: UnsafeMutablePointer<UringSlot>, _ base: UnsafeMutableRawPointer?,
                                    _ count: Int, name: UnsafeMutableRawPointer, nameLength: socklen_t) {
        record.pointee.vector = iovec(iov_base: base, iov_len: count)
        record.pointee.message = msghdr()
        record.pointee.message.msg_name = name
        record.pointee.message.msg_namelen = nameLength
        record.pointee.message.msg_iov = record.pointer(to: \.vector)
        record.pointee.message.msg_iovlen = 1
    }

    /// stat, fstat and newfstatat as STATX into the slot's buffer, converted on completion.
    func prepareStat(dirfd: Int32, path: UnsafePointer<CChar>, flags: Int32, into buffer: UnsafeMutablePointer<stat>,
                     _ record: UnsafeMutablePointer<UringSlot>, _ statx: UnsafeMutableRawPointer,
                     _ entry: inout io_uring_sqe) -> Errno? {
        // The stat family never triggers an automount and asks for the basic fields.
        io_uring_prep_statx(&entry, dirfd, path, flags | Int32(LAIO_AT_NO_AUTOMOUNT), UInt32(LAIO_STATX_BASIC_STATS),
                            OpaquePointer(statx))
        record.pointee.target = UnsafeMutableRawPointer(buffer)
        record.pointee.fixup = .stat
        return nil
    }

    /// The "" path of fstat run as statx: static storage in the C shim.
    static var emptyPath: UnsafePointer<CChar> { laio_shim_empty_path() }
}
