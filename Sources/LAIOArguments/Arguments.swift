#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import LAIO

// The command-line words that laio-httpd, laio-demo and laio-stress share. The LAIO library
// itself does not depend on ArgumentParser, so BackendKind's conformance is made here.

/// `--backend WORD`: the words are `BackendKind.allCases`' raw values, listed in `--help`
/// and in the parser's error for any other word.
extension BackendKind: ExpressibleByArgument {}

/// `--backend all|WORD` (laio-demo, laio-stress): every backend in turn, or one.
public enum BackendChoice: ExpressibleByArgument, Equatable, Sendable {
    case all
    case one(BackendKind)

    public init?(argument: String) {
        if argument == "all" {
            self = .all
        } else if let kind = BackendKind(argument: argument) {
            self = .one(kind)
        } else {
            return nil
        }
    }

    /// The backends chosen, in `BackendKind.allCases` order for `all`.
    public var kinds: [BackendKind] {
        switch self {
        case .all: BackendKind.allCases
        case let .one(kind): [kind]
        }
    }

    public var defaultValueDescription: String {
        switch self {
        case .all: "all"
        case let .one(kind): kind.rawValue
        }
    }

    public static var allValueStrings: [String] { ["all"] + BackendKind.allValueStrings }
}

extension ParsableArguments {
    /// Parses the command line: `--help` prints the help and exits 0; bad usage (an unknown
    /// flag, a missing or bad value, a failed `validate()`) prints the parser's message and
    /// usage to standard error and exits 2, the status these tools and their scripts have
    /// always used for it (ArgumentParser's own is 64).
    public static func parseCommandLine() -> Self {
        do {
            return try parse()
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            let text = fullMessage(for: error) + "\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
            Glibc.exit(2)
        }
    }
}
