// laio-stress's command line: what to run, and how it refuses bad usage.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LAIO
import LAIOArguments

/// What to run, from the command line.
struct Options {
    var backends = BackendKind.allCases
    var operations = 20_000
    var inFlight = 256
    var seed: UInt64 = 0x5EED
}

/// laio-stress's command line.
struct StressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laio-stress",
        abstract: "Keeps many operations of mixed kinds in flight on each backend, with cancels racing completions, "
            + "and checks that nothing is lost or leaked.",
        discussion: "Exits 1 on any violation. The default is the bounded form scripts/test runs; "
            + "--operations 100000 is the soak.")

    @Option(help: ArgumentHelp("The backends to stress.", valueName: "all|word"))
    var backend = BackendChoice.all

    @Option(help: ArgumentHelp("Operations per backend.", valueName: "n"))
    var operations = 20_000

    @Option(help: ArgumentHelp("Operations in flight at once (at most 4096).", valueName: "n"))
    var inFlight = 256

    @Option(help: ArgumentHelp("The seed of the operations' random mix.", valueName: "n"))
    var seed = 0x5EED

    func validate() throws {
        for (flag, value) in [("--operations", operations), ("--in-flight", inFlight), ("--seed", seed)] where value <= 0 {
            throw ValidationError("\(flag) needs a positive number")
        }
    }

    var options: Options {
        Options(backends: backend.kinds, operations: operations, inFlight: min(inFlight, 4096), seed: UInt64(seed))
    }
}

func fail(_ message: String) -> Never {
    let line = "laio-stress: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}
