// swift-tools-version: 6.0
// swift-laio: Lazy Asynchronous I/O for modern Linux.
import PackageDescription

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "swift-laio",
    products: [
        .library(name: "LAIO", targets: ["LAIO"]),
        // liblaio.so: the C ABI (include/laio.h; `make install` adds laio.pc).
        .library(name: "laio", type: .dynamic, targets: ["laio"]),
        .executable(name: "laio-demo", targets: ["laio-demo"]),
        .executable(name: "laio-httpd", targets: ["laio-httpd"]),
    ],
    dependencies: [
        // The command lines of laio-httpd, laio-demo and laio-stress (the LAIO library does not use it).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C over <liburing.h>, plus shims for what Swift cannot import (variadic syscall(2),
        // SIGRTMIN, signal-handler installation).
        .target(
            name: "CLiburing",
            linkerSettings: [.linkedLibrary("uring")]
        ),
        // The vocabulary: operations, handles, completions, errors, the Backend protocol,
        // the completion queue and its notification fd.
        .target(name: "LAIOCore", dependencies: ["CLiburing"]),
        // The eager thread-pool backend (liblaiogen's design) with a lazy window.
        .target(name: "LAIOThreads", dependencies: ["LAIOCore"]),
        // The io_uring backend: laziness from the kernel itself.
        .target(name: "LAIOUring", dependencies: ["LAIOCore", "CLiburing"]),
        // The facade: contexts, backend choice, poll.
        .target(name: "LAIO", dependencies: ["LAIOCore", "LAIOThreads", "LAIOUring", "CLiburing"]),
        // The C ABI: laio.h and the variadic laio_syscall in C, over the Swift half in `laio`.
        .target(name: "CLAIO"),
        .target(name: "laio", dependencies: ["CLAIO", "LAIO", "CLiburing"]),
        // The executables' shared command-line words: `--backend WORD` and `--backend all|WORD`,
        // and usage errors that exit with status 2.
        .target(name: "LAIOArguments", dependencies: ["LAIO", argumentParser]),
        .executableTarget(name: "laio-demo", dependencies: ["LAIO", "LAIOArguments", argumentParser]),
        // Many operations of mixed kinds in flight with cancels racing: nothing lost or leaked.
        .executableTarget(name: "laio-stress", dependencies: ["LAIO", "CLiburing", "LAIOArguments", argumentParser]),
        // A Flash-style event-driven static web server on LAIO.
        .target(name: "CHTTPD"),
        .executableTarget(name: "laio-httpd", dependencies: ["LAIO", "CHTTPD", "LAIOArguments", argumentParser]),
        .testTarget(name: "LAIOConformanceTests", dependencies: ["LAIO"]),
        .testTarget(name: "LAIOThreadsTests", dependencies: ["LAIO", "LAIOThreads", "LAIOCore"]),
        .testTarget(name: "LAIOUringTests", dependencies: ["LAIO", "LAIOUring", "LAIOCore", "CLiburing"]),
    ]
)
