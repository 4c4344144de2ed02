#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOUring
import SystemPackage

/// Which backend runs a context's calls: the one word used in code, in the
/// `LAIO_BACKEND` environment variable and on every command line (`--backend`).
public enum BackendKind: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The strategy: io_uring where the kernel can, the thread pool elsewhere. The default.
    case auto
    /// io_uring: the kernel completes calls inline when it can.
    case uring
    /// The eager thread pool with a lazy window.
    case threads
    /// Every call inline on the caller's thread; always synchronous.
    case blocking

    /// The environment variable that chooses the default backend.
    public static let environmentVariable = "LAIO_BACKEND"

    public var description: String { rawValue }

    /// Parses a backend word. Throws `ContextError.unknownBackend` (which lists the valid
    /// words) for anything else.
    public init(word: String) throws(ContextError) {
        guard let kind = BackendKind(rawValue: word) else { throw .unknownBackend(word) }
        self = kind
    }

    /// The backend named by `LAIO_BACKEND`, or `.auto` when it is unset or empty.
    public static func fromEnvironment() throws(ContextError) -> BackendKind {
        try fromEnvironment(getenv(environmentVariable).map { String(cString: $0) })
    }

    /// The backend named by an environment value: `.auto` for nil or empty.
    public static func fromEnvironment(_ value: String?) throws(ContextError) -> BackendKind {
        guard let value, !value.isEmpty else { return .auto }
        return try BackendKind(word: value)
    }
}

/// Why a context could not be created.
public enum ContextError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The backend word is not one of `auto`, `uring`, `threads`, `blocking`.
    case unknownBackend(String)
    /// Setting up the backend or the completion queue failed with this errno: a backend that
    /// cannot run here fails so (for `uring`, the description names the cause), and is never
    /// replaced by another backend.
    case setupFailed(BackendKind, Errno)
    /// The cancel signal (`Context.init(cancelSignal:)`, `LAIO_CANCEL_SIGNAL`) already has a
    /// handler of the application, which LAIO never replaces: choose another signal. The
    /// C ABI's errno is `EBUSY`.
    case cancelSignalTaken(Int32)
    /// The cancel signal asked for is not a real-time signal (`SIGRTMIN` ... `SIGRTMAX`); the
    /// value as given. The C ABI's errno is `EINVAL`.
    case invalidCancelSignal(String)

    public var description: String {
        switch self {
        case let .unknownBackend(word):
            let valid = BackendKind.allCases.map(\.rawValue).joined(separator: ", ")
            return "unknown LAIO backend '\(word)'; valid backends: \(valid)"
        case let .setupFailed(kind, errno):
            let cause = kind == .uring || kind == .auto ? UringBackend.setupFailureCause(errno) : nil
            return "LAIO backend '\(kind)' failed to start: \(errno) (errno \(errno.rawValue))" + (cause.map { "; \($0)" } ?? "")
        case let .cancelSignalTaken(signal):
            return "LAIO's cancel signal \(Context.signalName(signal)) (\(signal)) already has a handler of the application, "
                + "which LAIO does not replace: choose another real-time signal with Context(cancelSignal:) or "
                + "\(Context.cancelSignalEnvironmentVariable) (EBUSY)"
        case let .invalidCancelSignal(value):
            return "LAIO's cancel signal '\(value)' is not a real-time signal: give SIGRTMIN+N, SIGRTMAX-N or a number "
                + "from \(laio_shim_rtmin()) to \(laio_shim_rtmax()) (EINVAL)"
        }
    }
}
