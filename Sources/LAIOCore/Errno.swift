#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An error number, as the kernel reports it (the C `errno`).
///
/// Every failure of a LAIO call is one of these: a system call's own error, or the
/// library's answer to bad input (see each API's documentation for which).
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    /// The C `errno` value.
    public var rawValue: Int32

    /// Wraps a C `errno` value.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The C name and the system's message, e.g. `EBADF (Bad file descriptor)`.
    public var description: String {
        let message = strerror(rawValue).map { String(cString: $0) } ?? "unknown error"
        return "\(Errno.names[rawValue] ?? "errno \(rawValue)") (\(message))"
    }

    /// The operation has not finished; its result comes from `poll`. The C error is `EINPROGRESS`.
    public static let inProgress = Errno(rawValue: EINPROGRESS)
    /// The operation was cancelled before it finished. The C error is `ECANCELED`.
    public static let canceled = Errno(rawValue: ECANCELED)
    /// A bounded queue is full; retry after polling. The C error is `EAGAIN`.
    public static let resourceTemporarilyUnavailable = Errno(rawValue: EAGAIN)
    /// Bad file descriptor, or a closed context. The C error is `EBADF`.
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    /// Invalid argument. The C error is `EINVAL`.
    public static let invalidArgument = Errno(rawValue: EINVAL)
    /// The call is not implemented by the kernel or by this backend. The C error is `ENOSYS`.
    public static let noFunction = Errno(rawValue: ENOSYS)
    /// No such file, or no such outstanding handle. The C error is `ENOENT`.
    public static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)
    /// A bad address was passed to the kernel. The C error is `EFAULT`.
    public static let badAddress = Errno(rawValue: EFAULT)
    /// The call was interrupted by a signal. The C error is `EINTR`.
    public static let interrupted = Errno(rawValue: EINTR)
    /// Operation not permitted. The C error is `EPERM`.
    public static let notPermitted = Errno(rawValue: EPERM)
    /// Out of memory. The C error is `ENOMEM`.
    public static let noMemory = Errno(rawValue: ENOMEM)
    /// Operation not supported. The C error is `EOPNOTSUPP`.
    public static let operationNotSupported = Errno(rawValue: EOPNOTSUPP)

    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EIO: "EIO", EBADF: "EBADF",
        EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT",
        EEXIST: "EEXIST", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL",
        EMFILE: "EMFILE", ENOSPC: "ENOSPC", ESPIPE: "ESPIPE", EPIPE: "EPIPE",
        ENOSYS: "ENOSYS", ENOTEMPTY: "ENOTEMPTY", ENOTSOCK: "ENOTSOCK",
        EOPNOTSUPP: "EOPNOTSUPP", ECONNREFUSED: "ECONNREFUSED", ECONNRESET: "ECONNRESET",
        EINPROGRESS: "EINPROGRESS", EALREADY: "EALREADY", ECANCELED: "ECANCELED",
        ETIMEDOUT: "ETIMEDOUT", ENOTCONN: "ENOTCONN",
    ]
}

extension Result where Success == Int, Failure == Errno {
    /// Decodes the kernel's raw convention: a value >= 0, or -errno.
    @inlinable
    public init(kernelReturn value: Int) {
        self = value < 0 ? .failure(Errno(rawValue: Int32(truncatingIfNeeded: -value))) : .success(value)
    }
}
