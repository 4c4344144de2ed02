#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import CLiburingPrep
import CLinuxShims
import LAIOCore
import LAIOUring
import SystemPackage
import Testing

// The translation from an `Operation` to a submission entry, checked field by field against
// the entry liburing's own prep helper writes (compiled by the C compiler in CLiburingPrep)
// for the arguments the operation stands for. No ring is set up: these run where
// io_uring_setup is refused. Both sides start from different garbage, so a field one side
// leaves unwritten shows as a mismatch.

/// The entry's fields by their place in the kernel's ABI (struct io_uring_sqe, 64 bytes);
/// where a union holds several names, all are given.
private let fields: [(name: String, bytes: Range<Int>)] = [
    ("opcode", 0..<1), ("flags", 1..<2), ("ioprio", 2..<4), ("fd", 4..<8),
    ("off/addr2", 8..<16), ("addr/splice_off_in", 16..<24), ("len", 24..<28),
    ("op flags (rw_flags, open_flags, msg_flags, fsync_flags, timeout_flags, ...)", 28..<32),
    ("user_data", 32..<40), ("buf_index", 40..<42), ("personality", 42..<44),
    ("splice_fd_in/file_index", 44..<48), ("addr3", 48..<56), ("__pad2", 56..<64),
]

private let userData: UInt64 = 0x0123_4567_89ab_cdef

/// Memory the translation may point the kernel at: one slot record and its statx buffer.
private final class Scratch {
    let slot = UnsafeMutablePointer<UringSlot>.allocate(capacity: 1)
    let statx = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
    init() { slot.initialize(to: UringSlot()) }
    deinit {
        slot.deinitialize(count: 1)
        slot.deallocate()
        statx.deallocate()
    }
}

/// An entry with every byte `pattern`.
private func garbage(_ pattern: UInt8) -> io_uring_sqe {
    var entry = io_uring_sqe()
    withUnsafeMutableBytes(of: &entry) { _ = $0.initializeMemory(as: UInt8.self, repeating: pattern) }
    return entry
}

/// The mismatching fields, each named with both values.
private func mismatches(expected: io_uring_sqe, actual: io_uring_sqe) -> [String] {
    withUnsafeBytes(of: expected) { want in
        withUnsafeBytes(of: actual) { got in
            fields.compactMap { field in
                let a = Array(want[field.bytes]), b = Array(got[field.bytes])
                guard a != b else { return nil }
                // Little-endian: the last byte is the most significant.
                func hex(_ bytes: [UInt8]) -> String {
                    "0x" + bytes.reversed().map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
                }
                return "\(field.name): liburing \(hex(a)), translation \(hex(b))"
            }
        }
    }
}

/// liburing's entry: `prep` (one CLiburingPrep call) on garbage, then the user data and
/// IOSQE_ASYNC set with liburing's own helpers.
private func liburing(userData: UInt64 = userData, toWorker: Bool = false,
                      _ prep: (UnsafeMutableRawPointer) -> Void) -> io_uring_sqe {
    var entry = garbage(0x5a)
    withUnsafeMutableBytes(of: &entry) { bytes in
        prep(bytes.baseAddress!)
        laio_prep_finish(bytes.baseAddress!, userData, toWorker)
    }
    return entry
}

/// The translation's entry for `operation`, on other garbage.
private func translate(_ operation: Operation, _ scratch: Scratch, toWorker: Bool = false,
                       opcodes: UringOpcodes = .all) -> (entry: io_uring_sqe, error: Errno?) {
    var entry = garbage(0xa5)
    let error = UringTranslation.prepare(operation, userData: userData, toWorker: toWorker, opcodes: opcodes,
                                         slot: scratch.slot, statx: scratch.statx, into: &entry)
    return (entry, error)
}

/// Checks that `operation` translates without error to exactly `expected`.
private func check(_ operation: Operation, _ scratch: Scratch, toWorker: Bool = false, _ expected: io_uring_sqe,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    let (entry, error) = translate(operation, scratch, toWorker: toWorker)
    #expect(error == nil, "\(operation.kind) was refused: \(String(describing: error))", sourceLocation: sourceLocation)
    let wrong = mismatches(expected: expected, actual: entry)
    #expect(wrong.isEmpty, "\(operation.kind): \(wrong.joined(separator: "; "))", sourceLocation: sourceLocation)
    // The opcode table (what the probe must find for a kind to go to the ring) names the
    // opcode the translation emits; raw system calls have their opcode by number instead.
    let table = UringOpcodes.opcodes(for: operation.kind)
    #expect(table.isEmpty || table.contains(io_uring_op(UInt32(entry.opcode))),
            "\(operation.kind): the translation emits opcode \(entry.opcode), the table says \(table.map(\.rawValue))",
            sourceLocation: sourceLocation)
}

/// A pointer that is never followed: the translation only passes it on.
private func fake<T>(_ address: UInt) -> UnsafeMutablePointer<T> { UnsafeMutablePointer(bitPattern: address)! }
private func fakeRaw(_ address: UInt) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: address)! }

@Suite("io_uring translation against liburing's prep helpers")
struct TranslationTests {
    let buffer = UnsafeMutableRawBufferPointer(start: fakeRaw(0x7000_1000), count: 4096)
    let path: UnsafePointer<CChar> = UnsafePointer(fake(0x7000_2000) as UnsafeMutablePointer<CChar>)
    let path2: UnsafePointer<CChar> = UnsafePointer(fake(0x7000_3000) as UnsafeMutablePointer<CChar>)
    let vectors = UnsafeBufferPointer<iovec>(start: fake(0x7000_4000), count: 3)

    @Test func theComparisonSeesEveryField() {
        // The check itself: the field table covers the whole entry, and a difference in any
        // byte is reported under a name.
        #expect(laio_prep_entry_size() == 64 && MemoryLayout<io_uring_sqe>.size == 64)
        #expect(fields.map(\.bytes.count).reduce(0, +) == 64)
        let base = liburing { laio_prep_close($0, 3) }
        for byte in 0..<64 {
            var changed = base
            withUnsafeMutableBytes(of: &changed) { $0[byte] ^= 0x01 }
            let names = mismatches(expected: base, actual: changed)
            #expect(names.count == 1, "byte \(byte): \(names)")
        }
        #expect(mismatches(expected: base, actual: base).isEmpty)
    }

    @Test func readsAndWrites() {
        let s = Scratch()
        // -1 (all ones) is the file position.
        check(.read(fd: 5, buffer: buffer), s, liburing { laio_prep_read($0, 5, buffer.baseAddress, 4096, UInt64.max) })
        check(.pread(fd: 5, buffer: buffer, offset: 8192), s,
              liburing { laio_prep_read($0, 5, buffer.baseAddress, 4096, 8192) })
        check(.write(fd: 6, buffer: UnsafeRawBufferPointer(buffer)), s,
              liburing { laio_prep_write($0, 6, buffer.baseAddress, 4096, UInt64.max) })
        check(.pwrite(fd: 6, buffer: UnsafeRawBufferPointer(buffer), offset: 0), s,
              liburing { laio_prep_write($0, 6, buffer.baseAddress, 4096, 0) })
        check(.readv(fd: 7, iovecs: vectors), s, liburing { laio_prep_readv($0, 7, vectors.baseAddress, 3, UInt64.max) })
        check(.writev(fd: 7, iovecs: vectors), s, liburing { laio_prep_writev($0, 7, vectors.baseAddress, 3, UInt64.max) })
        check(.preadv(fd: 7, iovecs: vectors, offset: 1 << 40), s,
              liburing { laio_prep_readv($0, 7, vectors.baseAddress, 3, 1 << 40) })
        check(.pwritev(fd: 7, iovecs: vectors, offset: 12), s,
              liburing { laio_prep_writev($0, 7, vectors.baseAddress, 3, 12) })
        #expect(s.slot.pointee.fixup == .none)
    }

    @Test func toWorkerSetsIOSQEAsync() {
        let s = Scratch()
        check(.read(fd: 5, buffer: buffer), s, toWorker: true,
              liburing(toWorker: true) { laio_prep_read($0, 5, buffer.baseAddress, 4096, UInt64.max) })
        check(.pwritev(fd: 7, iovecs: vectors, offset: 12), s, toWorker: true,
              liburing(toWorker: true) { laio_prep_writev($0, 7, vectors.baseAddress, 3, 12) })
    }

    @Test func longTransfersAreShortenedAsTheKernelDoes() {
        let s = Scratch()
        let huge = UnsafeMutableRawBufferPointer(start: fakeRaw(0x7000_1000), count: 1 << 40)
        let limit = UInt32(0x7fff_f000)  // MAX_RW_COUNT
        check(.read(fd: 5, buffer: huge), s, liburing { laio_prep_read($0, 5, huge.baseAddress, limit, UInt64.max) })
        check(.send(fd: 9, buffer: UnsafeRawBufferPointer(huge), flags: 0), s,
              liburing { laio_prep_send($0, 9, huge.baseAddress, Int(limit), 0) })
        check(.recv(fd: 9, buffer: huge, flags: 0), s, liburing { laio_prep_recv($0, 9, huge.baseAddress, Int(limit), 0) })
    }

    @Test func opens() {
        let s = Scratch()
        check(.openat(dirfd: 3, path: path, flags: O_RDONLY | O_CLOEXEC, mode: 0), s,
              liburing { laio_prep_openat($0, 3, path, O_RDONLY | O_CLOEXEC, 0) })
        #expect(s.slot.pointee.fixup == .newDescriptor)
        s.slot.pointee = UringSlot()
        check(.open(path: path, flags: O_CREAT | O_WRONLY, mode: 0o640), s,
              liburing { laio_prep_openat($0, AT_FDCWD, path, O_CREAT | O_WRONLY, 0o640) })
        #expect(s.slot.pointee.fixup == .newDescriptor)
        s.slot.pointee = UringSlot()
        let how: UnsafePointer<open_how> = UnsafePointer(fake(0x7000_5000) as UnsafeMutablePointer<open_how>)
        check(.openat2(dirfd: 4, path: path, how: how), s,
              liburing { laio_prep_openat2($0, 4, path, UnsafeMutableRawPointer(mutating: how)) })
        #expect(s.slot.pointee.fixup == .newDescriptor)
        check(.close(fd: 11), s, liburing { laio_prep_close($0, 11) })
    }

    @Test func statFamilyRunsAsStatxIntoTheSlotBuffer() {
        let s = Scratch()
        let statBuffer: UnsafeMutablePointer<stat> = fake(0x7000_6000)
        let noAutomount = Int32(LAIO_AT_NO_AUTOMOUNT), basic = UInt32(LAIO_STATX_BASIC_STATS)
        check(.stat(path: path, buffer: statBuffer), s,
              liburing { laio_prep_statx($0, AT_FDCWD, path, noAutomount, basic, s.statx) })
        #expect(s.slot.pointee.fixup == .stat && s.slot.pointee.target == UnsafeMutableRawPointer(statBuffer))
        check(.newfstatat(dirfd: 8, path: path, buffer: statBuffer, flags: AT_SYMLINK_NOFOLLOW), s,
              liburing { laio_prep_statx($0, 8, path, AT_SYMLINK_NOFOLLOW | noAutomount, basic, s.statx) })
        // fstat: an empty path with AT_EMPTY_PATH; the path is the shim's static "".
        let (entry, error) = translate(.fstat(fd: 12, buffer: statBuffer), s)
        #expect(error == nil)
        let emptyPath = UnsafePointer<CChar>(bitPattern: UInt(entry.addr))
        #expect(emptyPath.map { $0.pointee == 0 } == true, "fstat's path is not \"\"")
        let expected = liburing { laio_prep_statx($0, 12, emptyPath, Int32(LAIO_AT_EMPTY_PATH) | noAutomount, basic, s.statx) }
        let wrong = mismatches(expected: expected, actual: entry)
        #expect(wrong.isEmpty, "fstat: \(wrong.joined(separator: "; "))")
        // statx itself writes the caller's buffer, with the caller's flags and mask.
        s.slot.pointee = UringSlot()
        let statxBuffer = fakeRaw(0x7000_7000)
        check(.statx(dirfd: 8, path: path, flags: 0x100, mask: 0x7ff, buffer: statxBuffer), s,
              liburing { laio_prep_statx($0, 8, path, 0x100, 0x7ff, statxBuffer) })
        #expect(s.slot.pointee.fixup == .none)
    }

    @Test func syncs() {
        let s = Scratch()
        check(.fsync(fd: 13), s, liburing { laio_prep_fsync($0, 13, false) })
        check(.fdatasync(fd: 13), s, liburing { laio_prep_fsync($0, 13, true) })
    }

    @Test func sockets() {
        let s = Scratch()
        let address: UnsafeMutablePointer<sockaddr> = fake(0x7000_8000)
        let length: UnsafeMutablePointer<socklen_t> = fake(0x7000_9000)
        check(.accept(fd: 14, address: address, length: length, flags: Int32(SOCK_CLOEXEC.rawValue)), s,
              liburing { laio_prep_accept($0, 14, address, length, Int32(SOCK_CLOEXEC.rawValue)) })
        check(.accept(fd: 14), s, liburing { laio_prep_accept($0, 14, nil, nil, 0) })
        check(.connect(fd: 15, address: UnsafePointer(address), length: 16), s,
              liburing { laio_prep_connect($0, 15, address, 16) })
        check(.recv(fd: 16, buffer: buffer, flags: Int32(MSG_WAITALL)), s,
              liburing { laio_prep_recv($0, 16, buffer.baseAddress, 4096, Int32(MSG_WAITALL)) })
        check(.send(fd: 16, buffer: UnsafeRawBufferPointer(buffer), flags: Int32(MSG_NOSIGNAL)), s,
              liburing { laio_prep_send($0, 16, buffer.baseAddress, 4096, Int32(MSG_NOSIGNAL)) })
        let message: UnsafeMutablePointer<msghdr> = fake(0x7000_a000)
        check(.recvmsg(fd: 17, message: message, flags: Int32(MSG_PEEK)), s,
              liburing { laio_prep_recvmsg($0, 17, message, UInt32(Int32(MSG_PEEK))) })
        check(.sendmsg(fd: 17, message: UnsafePointer(message), flags: Int32(MSG_MORE)), s,
              liburing { laio_prep_sendmsg($0, 17, message, UInt32(Int32(MSG_MORE))) })
        // Without an address, recvfrom and sendto are RECV and SEND.
        check(.recvfrom(fd: 18, buffer: buffer, flags: 0, address: nil, length: nil), s,
              liburing { laio_prep_recv($0, 18, buffer.baseAddress, 4096, 0) })
        check(.sendto(fd: 18, buffer: UnsafeRawBufferPointer(buffer), flags: 0, address: nil, length: 0), s,
              liburing { laio_prep_send($0, 18, buffer.baseAddress, 4096, 0) })
        #expect(s.slot.pointee.fixup == .none)
    }

    @Test func recvfromAndSendtoWithAnAddressRunAsMessagesInTheSlot() {
        let s = Scratch()
        let address: UnsafeMutablePointer<sockaddr> = fake(0x7000_b000)
        var length: socklen_t = 28
        withUnsafeMutablePointer(to: &length) { length in
            check(.recvfrom(fd: 19, buffer: buffer, flags: Int32(MSG_DONTWAIT), address: address, length: length), s,
                  liburing { laio_prep_recvmsg($0, 19, s.slot.pointer(to: \.message), UInt32(Int32(MSG_DONTWAIT))) })
            #expect(s.slot.pointee.fixup == .addressLength)
            #expect(s.slot.pointee.target == UnsafeMutableRawPointer(length))
        }
        checkOneVectorMessage(s, name: UnsafeMutableRawPointer(address), nameLength: 28)

        s.slot.pointee = UringSlot()
        check(.sendto(fd: 19, buffer: UnsafeRawBufferPointer(buffer), flags: Int32(MSG_NOSIGNAL),
                      address: UnsafePointer(address), length: 16), s,
              liburing { laio_prep_sendmsg($0, 19, s.slot.pointer(to: \.message), UInt32(Int32(MSG_NOSIGNAL))) })
        checkOneVectorMessage(s, name: UnsafeMutableRawPointer(address), nameLength: 16)
        #expect(s.slot.pointee.fixup == .none)
    }

    private func checkOneVectorMessage(_ s: Scratch, name: UnsafeMutableRawPointer, nameLength: socklen_t,
                                       sourceLocation: SourceLocation = #_sourceLocation) {
        let message = s.slot.pointee.message
        #expect(message.msg_name == name, "msg_name", sourceLocation: sourceLocation)
        #expect(message.msg_namelen == nameLength, "msg_namelen", sourceLocation: sourceLocation)
        #expect(message.msg_iov == s.slot.pointer(to: \.vector), "msg_iov", sourceLocation: sourceLocation)
        #expect(message.msg_iovlen == 1, "msg_iovlen", sourceLocation: sourceLocation)
        #expect(message.msg_control == nil && message.msg_controllen == 0 && message.msg_flags == 0,
                "msg_control, msg_controllen, msg_flags", sourceLocation: sourceLocation)
        #expect(s.slot.pointee.vector.iov_base == buffer.baseAddress, "iov_base", sourceLocation: sourceLocation)
        #expect(s.slot.pointee.vector.iov_len == 4096, "iov_len", sourceLocation: sourceLocation)
    }

    @Test func spliceTakesTheOffsetsByValue() {
        let s = Scratch()
        var inOffset: Int64 = 100, outOffset: Int64 = 200
        withUnsafeMutablePointer(to: &inOffset) { inOffset in
            withUnsafeMutablePointer(to: &outOffset) { outOffset in
                check(.splice(inFD: 20, inOffset: inOffset, outFD: 21, outOffset: outOffset, count: 65536, flags: 4), s,
                      liburing { laio_prep_splice($0, 20, 100, 21, 200, 65536, 4) })
                #expect(s.slot.pointee.fixup == .spliceOffsets)
                #expect(s.slot.pointee.target == UnsafeMutableRawPointer(inOffset))
                #expect(s.slot.pointee.target2 == UnsafeMutableRawPointer(outOffset))
            }
        }
        // No offsets: -1, the pipes' or files' own positions.
        s.slot.pointee = UringSlot()
        check(.splice(inFD: 20, inOffset: nil, outFD: 21, outOffset: nil, count: 10, flags: 0), s,
              liburing { laio_prep_splice($0, 20, -1, 21, -1, 10, 0) })
        #expect(s.slot.pointee.target == nil && s.slot.pointee.target2 == nil)
    }

    @Test func pathCalls() {
        let s = Scratch()
        check(.unlinkat(dirfd: 22, path: path, flags: AT_REMOVEDIR), s,
              liburing { laio_prep_unlinkat($0, 22, path, AT_REMOVEDIR) })
        check(.renameat(oldDirfd: 23, oldPath: path, newDirfd: 24, newPath: path2), s,
              liburing { laio_prep_renameat($0, 23, path, 24, path2, 0) })
        check(.mkdirat(dirfd: 25, path: path, mode: 0o755), s, liburing { laio_prep_mkdirat($0, 25, path, 0o755) })
        #expect(s.slot.pointee.fixup == .none)
    }

    @Test func nanosleepIsATimeoutOnTheSlotsTimespec() {
        let s = Scratch()
        check(.nanosleep(.milliseconds(1500)), s, liburing { laio_prep_timeout($0, s.slot.pointer(to: \.time), 0, 0) })
        #expect(s.slot.pointee.time.tv_sec == 1 && s.slot.pointee.time.tv_nsec == 500_000_000)
        #expect(s.slot.pointee.fixup == .timeout)
        // The raw call: the caller's timespec, which the kernel copies at preparation.
        s.slot.pointee = UringSlot()
        let request = fakeRaw(0x7000_c000)
        check(.syscall(number: SyscallNumber.nanosleep, arguments: SyscallArguments(Int(bitPattern: request), 0)), s,
              liburing { laio_prep_timeout($0, request, 0, 0) })
        #expect(s.slot.pointee.fixup == .timeout)
    }

    @Test func rawCallsRunAsTheirTypedForm() {
        let s = Scratch()
        let base = Int(bitPattern: buffer.baseAddress)
        check(.syscall(number: SyscallNumber.pread64, arguments: SyscallArguments(5, base, 4096, 4096)), s,
              liburing { laio_prep_read($0, 5, buffer.baseAddress, 4096, 4096) })
        check(.syscall(number: SyscallNumber.write, arguments: SyscallArguments(6, base, 512)), s,
              liburing { laio_prep_write($0, 6, buffer.baseAddress, 512, UInt64.max) })
        check(.syscall(number: SyscallNumber.close, arguments: SyscallArguments(9)), s, liburing { laio_prep_close($0, 9) })
        check(.syscall(number: SyscallNumber.openat, arguments: SyscallArguments(3, Int(bitPattern: path), Int(O_RDONLY))), s,
              liburing { laio_prep_openat($0, 3, path, O_RDONLY, 0) })
        #expect(s.slot.pointee.fixup == .newDescriptor)
    }

    @Test func rawReadsAndWritesThatCannotBeTypedRunWithTheCallersValues() {
        let s = Scratch()
        // A null buffer with a length: the kernel answers EFAULT as read(2) would.
        check(.syscall(number: SyscallNumber.read, arguments: SyscallArguments(5, 0, 100)), s,
              liburing { laio_prep_read($0, 5, nil, 100, UInt64.max) })
        check(.syscall(number: SyscallNumber.pwrite64, arguments: SyscallArguments(6, 0, 100, 64)), s,
              liburing { laio_prep_write($0, 6, nil, 100, 64) })
        // A size_t beyond Int.max: shortened like any huge count.
        check(.syscall(number: SyscallNumber.read, arguments: SyscallArguments(5, 0, -1)), s,
              liburing { laio_prep_read($0, 5, nil, 0x7fff_f000, UInt64.max) })
    }

    @Test func refusals() {
        let s = Scratch()
        func refused(_ operation: Operation, opcodes: UringOpcodes = .all) -> Errno? {
            translate(operation, s, opcodes: opcodes).error
        }
        #expect(refused(.pread(fd: 5, buffer: buffer, offset: -1)) == .invalidArgument)
        #expect(refused(.pwrite(fd: 5, buffer: UnsafeRawBufferPointer(buffer), offset: -2)) == .invalidArgument)
        #expect(refused(.preadv(fd: 5, iovecs: vectors, offset: -1)) == .invalidArgument)
        let tooMany = UnsafeBufferPointer<iovec>(start: fake(0x7000_4000), count: Int(UIO_MAXIOV) + 1)
        #expect(refused(.readv(fd: 5, iovecs: tooMany)) == .invalidArgument)
        #expect(refused(.pwritev(fd: 5, iovecs: tooMany, offset: 0)) == .invalidArgument)
        #expect(refused(.recvfrom(fd: 5, buffer: buffer, flags: 0, address: fake(0x7000_b000), length: nil)) == .badAddress)
        #expect(refused(.sendfile(outFD: 1, inFD: 2, offset: nil, count: 10)) == .noFunction)
        #expect(refused(.syscall(number: SyscallNumber.getpid)) == .noFunction)
        #expect(refused(.syscall(number: SyscallNumber.pread64, arguments: SyscallArguments(5, 0, 10, -1))) == .invalidArgument)
        // A known call whose arguments cannot be typed and that is no read or write.
        #expect(refused(.syscall(number: SyscallNumber.openat, arguments: SyscallArguments(3, 0, 0))) == .badAddress)
        // What this kernel does not run.
        let none = UringOpcodes(supported: [])
        #expect(refused(.read(fd: 5, buffer: buffer), opcodes: none) == .noFunction)
        #expect(refused(.nanosleep(.seconds(1)), opcodes: none) == .noFunction)
        #expect(refused(.syscall(number: SyscallNumber.nanosleep, arguments: SyscallArguments(8)), opcodes: none) == .noFunction)
        #expect(refused(.syscall(number: SyscallNumber.read, arguments: SyscallArguments(5, 0, 1)), opcodes: none) == .noFunction)
        #expect(refused(.syscall(number: SyscallNumber.pread64, arguments: SyscallArguments(5, 8, 1, 0)), opcodes: none)
                == .noFunction)
    }

    @Test func theBackendsOwnRequests() {
        // A cancellation: ASYNC_CANCEL of the handle's user data, itself under user data 0.
        var entry = garbage(0xa5)
        UringTranslation.cancel(userData, into: &entry)
        var wrong = mismatches(expected: liburing(userData: 0) { laio_prep_cancel64($0, userData, 0) }, actual: entry)
        #expect(wrong.isEmpty, "cancel: \(wrong.joined(separator: "; "))")

        // A background connect taken up again: a POLLOUT poll under the same user data.
        let s = Scratch()
        let address: UnsafePointer<sockaddr> = UnsafePointer(fake(0x7000_8000) as UnsafeMutablePointer<sockaddr>)
        let connect = translate(.connect(fd: 26, address: address, length: 16), s).entry
        entry = garbage(0x3c)
        #expect(UringTranslation.reissue(connect, into: &entry) == .connectResult)
        wrong = mismatches(expected: liburing { laio_prep_poll_add($0, 26, UInt32(POLLOUT)) }, actual: entry)
        #expect(wrong.isEmpty, "connect's poll: \(wrong.joined(separator: "; "))")

        // Anything else runs again as the kernel first took it.
        let read = translate(.read(fd: 5, buffer: buffer), s, toWorker: true).entry
        entry = garbage(0x3c)
        #expect(UringTranslation.reissue(read, into: &entry) == nil)
        wrong = mismatches(expected: liburing(toWorker: true) { laio_prep_read($0, 5, buffer.baseAddress, 4096, UInt64.max) },
                           actual: entry)
        #expect(wrong.isEmpty, "read issued again: \(wrong.joined(separator: "; "))")
    }

    @Test func everyKindWithAnOpcodeIsCovered() {
        // The opcode table: every kind io_uring runs has its opcodes, and only those kinds.
        for kind in OperationKind.allCases {
            let hasOpcodes = !UringOpcodes.opcodes(for: kind).isEmpty
            #expect(UringOpcodes.all.runs(kind) == hasOpcodes, "\(kind)")
            #expect(hasOpcodes == (kind != .sendfile && kind != .syscall), "\(kind) has no opcode")
        }
    }
}
