#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLAIO
import CLinuxShims
import LAIO
import Synchronization
import SystemPackage

// The Swift half of liblaio: one process-wide context and the calls on it, exported to
// the C half (Sources/CLAIO/laio.c), which owns errno, the per-thread handle and the
// variadic entry point. Every function returns a value >= 0, or -errno.

/// The process-wide context, made on first use (Swift runs a global's initializer once,
/// thread-safely) with the backend named by LAIO_BACKEND, and the fork generation it was
/// made in. When it cannot start, the reason is printed once on stderr and every call fails
/// with its errno.
private let processContext = (context: makeProcessContext(), generation: laio_shim_fork_generation())

/// A forked child's own context, made on its first call (a context never crosses fork).
private let forkedContext = Mutex<(generation: UInt, context: Result<Context, ContextError>)?>(nil)

private func makeProcessContext() -> Result<Context, ContextError> {
    do throws(ContextError) {
        return .success(try Context())
    } catch {
        let message = "liblaio: \(error)\n"
        _ = message.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        return .failure(error)
    }
}

/// The context of this process: the process-wide one, or in a forked child a fresh one.
@inline(__always)
private func currentContext() -> Result<Context, ContextError> {
    let generation = laio_shim_fork_generation()
    if processContext.generation == generation { return processContext.context }
    return forkedContext.withLock { slot in
        if let slot, slot.generation == generation { return slot.context }
        let made = makeProcessContext()   // an ancestor's forked context is let go, untouched
        slot = (generation, made)
        return made
    }
}

extension ContextError {
    /// The errno a C caller sees when the process context could not start.
    var errno: Int32 {
        switch self {
        case .unknownBackend: EINVAL
        case let .setupFailed(_, error): error.rawValue
        case .cancelSignalTaken: EBUSY
        case .invalidCancelSignal: EINVAL
        }
    }
}

@_cdecl("laio_swift_syscall")
public func laioSwiftSyscall(_ number: Int, _ arguments: UnsafePointer<Int>,
                             _ handle: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int {
    let context: Context
    switch currentContext() {
    case let .success(made): context = made
    case let .failure(error): return -Int(error.errno)
    }
    // `arguments` points to the C caller's six longs, alive for this call.
    let operation = Operation.syscall(
        number: number,
        arguments: SyscallArguments(arguments[0], arguments[1], arguments[2], arguments[3], arguments[4], arguments[5]))
    do throws(Errno) {
        switch try context.submit(operation) {
        case let .completed(.success(value)):
            return value
        case let .completed(.failure(error)):
            return -Int(error.rawValue)
        case let .inProgress(background):
            // Handles are never 0, so the pointer is never NULL.
            handle.pointee = UnsafeMutableRawPointer(bitPattern: UInt(background.rawValue))
            return -Int(EINPROGRESS)
        }
    } catch {
        return -Int(error.rawValue)
    }
}

@_cdecl("laio_swift_poll")
public func laioSwiftPoll(_ records: UnsafeMutablePointer<laio_completion>, _ count: Int32, _ wait: Int32,
                          _ seconds: Int, _ nanoseconds: Int) -> Int32 {
    let context: Context
    switch currentContext() {
    case let .success(made): context = made
    case let .failure(error): return -error.errno
    }
    let timeout: Duration? = wait != 0 ? nil : .seconds(seconds) + .nanoseconds(nanoseconds)
    var filled = 0
    do throws(Errno) {
        // `records` holds `count` records (the C caller's array); poll hands out at most that many.
        return Int32(try context.poll(maximum: Int(count), timeout: timeout, interruptible: true) { completion in
            let record: laio_completion
            switch completion.result {
            case let .success(value):
                record = laio_completion(laio_h: handlePointer(completion.handle), laio_rv: value, laio_errno: 0)
            case let .failure(error):
                record = laio_completion(laio_h: handlePointer(completion.handle), laio_rv: -1, laio_errno: error.rawValue)
            }
            records[filled] = record
            filled += 1
        })
    } catch {
        return -error.rawValue
    }
}

@_cdecl("laio_swift_cancel")
public func laioSwiftCancel(_ handle: UnsafeMutableRawPointer) -> Int32 {
    switch currentContext() {
    case let .success(context):
        do throws(Errno) {
            try context.cancel(Handle(rawValue: UInt64(UInt(bitPattern: handle))))
            return 0
        } catch {
            return -error.rawValue
        }
    case let .failure(error):
        return -error.errno
    }
}

@_cdecl("laio_swift_pollfd")
public func laioSwiftPollfd() -> Int32 {
    switch currentContext() {
    case let .success(context): context.notificationDescriptor
    case let .failure(error): -error.errno
    }
}

/// The backend words as C strings, made from `BackendKind`'s raw values (the one list of
/// them) on first use and kept for the life of the process: laio_backend returns them.
// nonisolated(unsafe): written once by the global's initializer, only read after, and the
// strings it points to are never written or freed.
nonisolated(unsafe) private let backendNames: [BackendKind: UnsafePointer<CChar>] = Dictionary(
    uniqueKeysWithValues: BackendKind.allCases.map { ($0, UnsafePointer(strdup($0.rawValue)!)) })

@_cdecl("laio_swift_backend")
public func laioSwiftBackend(_ name: UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Int32 {
    switch currentContext() {
    case let .success(context):
        // `name` is the C caller's variable, alive for this call.
        name.pointee = backendNames[context.backendKind]
        return 0
    case let .failure(error):
        return -error.errno
    }
}

private func handlePointer(_ handle: Handle) -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer(bitPattern: UInt(handle.rawValue))
}
