/// The kind of an `Operation`: which system call it is, without its arguments. A strategy
/// routes by kind (one table lookup per call) and keeps its statistics per kind.
/// `"\(kind)"` is the case name.
public enum OperationKind: Int, CaseIterable, Sendable {
    case read, pread, write, pwrite, readv, writev, preadv, pwritev
    case openat, open, close, fstat, stat, newfstatat, statx, fsync, fdatasync
    case accept, connect, recv, recvfrom, send, sendto, recvmsg, sendmsg
    case sendfile, splice, unlinkat, renameat, mkdirat, nanosleep, openat2
    /// A raw system call by number (`Operation.syscall`).
    case syscall

    /// This kind as one bit of a 64-bit set (there are fewer than 64 kinds).
    @inlinable
    package var bit: UInt64 { 1 << UInt64(rawValue) }
}

extension Operation {
    /// Which system call this operation is.
    @inlinable
    public var kind: OperationKind {
        switch self {
        case .read: .read
        case .pread: .pread
        case .write: .write
        case .pwrite: .pwrite
        case .readv: .readv
        case .writev: .writev
        case .preadv: .preadv
        case .pwritev: .pwritev
        case .openat: .openat
        case .open: .open
        case .close: .close
        case .fstat: .fstat
        case .stat: .stat
        case .newfstatat: .newfstatat
        case .statx: .statx
        case .fsync: .fsync
        case .fdatasync: .fdatasync
        case .accept: .accept
        case .connect: .connect
        case .recv: .recv
        case .recvfrom: .recvfrom
        case .send: .send
        case .sendto: .sendto
        case .recvmsg: .recvmsg
        case .sendmsg: .sendmsg
        case .sendfile: .sendfile
        case .splice: .splice
        case .unlinkat: .unlinkat
        case .renameat: .renameat
        case .mkdirat: .mkdirat
        case .openat2: .openat2
        case .nanosleep: .nanosleep
        case .syscall: .syscall
        }
    }
}
