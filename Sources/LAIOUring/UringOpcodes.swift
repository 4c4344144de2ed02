import CLiburing
import LAIOCore

/// Which operation kinds this kernel's io_uring runs, from its probe, and the opcode table
/// that decides it.
package struct UringOpcodes: Sendable, Equatable {
    /// One bit per kind (`OperationKind.bit`) whose every opcode the kernel supports.
    package let runnable: UInt64

    /// From the probe's answer: `supported[opcode]` is whether the kernel supports `opcode`
    /// (an opcode past the end is not supported).
    package init(supported: [Bool]) {
        runnable = OperationKind.allCases.reduce(0) { kinds, kind in
            let opcodes = Self.opcodes(for: kind)
            let runs = !opcodes.isEmpty
                && opcodes.allSatisfy { Int($0.rawValue) < supported.count && supported[Int($0.rawValue)] }
            return runs ? kinds | kind.bit : kinds
        }
    }

    /// Every kind that has opcodes, as on a kernel that supports them all.
    package static let all = UringOpcodes(supported: [Bool](repeating: true, count: Int(IORING_OP_LAST.rawValue)))

    /// Whether io_uring runs every operation of `kind` here.
    @inline(__always)
    package func runs(_ kind: OperationKind) -> Bool { runnable & kind.bit != 0 }

    /// The opcodes `UringTranslation` uses for operations of `kind`: the one table that both
    /// "can it run here" (`runs`) and "prepare it" read. Empty for what io_uring has no
    /// opcode for (`.sendfile`, and raw `.syscall` numbers, which run as their typed form
    /// when they have one; see `Operation.canonical`).
    package static func opcodes(for kind: OperationKind) -> [io_uring_op] {
        switch kind {
        case .read, .pread: return [IORING_OP_READ]
        case .write, .pwrite: return [IORING_OP_WRITE]
        case .readv, .preadv: return [IORING_OP_READV]
        case .writev, .pwritev: return [IORING_OP_WRITEV]
        case .openat, .open: return [IORING_OP_OPENAT]
        case .close: return [IORING_OP_CLOSE]
        case .fstat, .stat, .newfstatat, .statx: return [IORING_OP_STATX]
        case .fsync, .fdatasync: return [IORING_OP_FSYNC]
        case .accept: return [IORING_OP_ACCEPT]
        case .connect: return [IORING_OP_CONNECT]
        case .recv: return [IORING_OP_RECV]
        case .recvfrom: return [IORING_OP_RECV, IORING_OP_RECVMSG]
        case .send: return [IORING_OP_SEND]
        case .sendto: return [IORING_OP_SEND, IORING_OP_SENDMSG]
        case .recvmsg: return [IORING_OP_RECVMSG]
        case .sendmsg: return [IORING_OP_SENDMSG]
        case .splice: return [IORING_OP_SPLICE]
        case .unlinkat: return [IORING_OP_UNLINKAT]
        case .renameat: return [IORING_OP_RENAMEAT]
        case .mkdirat: return [IORING_OP_MKDIRAT]
        case .openat2: return [IORING_OP_OPENAT2]
        case .nanosleep: return [IORING_OP_TIMEOUT]
        case .sendfile, .syscall: return []
        }
    }
}
