import LAIO

/// Which backends can start on this machine, and why the others cannot.
///
/// The conformance tests take their arguments from `startable`, so a backend joins every
/// test as soon as it can run here; a backend that cannot start is reported as a skipped
/// test with the reason (`unavailableReason`), never as passed.
public enum Backends {
    /// Each backend that cannot start here, with the error its context creation gave.
    public static let unavailable: [BackendKind: String] = {
        var reasons: [BackendKind: String] = [:]
        for kind in BackendKind.allCases {
            do {
                _ = try Context(backend: kind)
            } catch {
                reasons[kind] = "\(error)"
            }
        }
        return reasons
    }()

    /// The backends that start here.
    public static let startable = BackendKind.allCases.filter { unavailable[$0] == nil }

    /// The startable backends whose calls can go to the background.
    public static let asynchronous = startable.filter { $0 != .blocking }

    /// Whether `kind` starts here.
    public static func starts(_ kind: BackendKind) -> Bool { unavailable[kind] == nil }

    /// Why `kind` cannot start here, for the comment of a skipped test; empty where it can.
    public static func unavailableReason(_ kind: BackendKind) -> String { unavailable[kind] ?? "" }
}
