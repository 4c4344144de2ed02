// swift-tools-version: 6.2
// swift-laio: Lazy Asynchronous I/O for modern Linux.
import PackageDescription

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "swift-laio",
    products: [
        .library(name: "LAIO", targets: ["LAIO"]),
        // liblaio.so: the C ABI (include/laio.h). `make` links the installed form itself, with the
        // Swift runtime static and only laio.h's functions exported (Makefile, Sources/CLAIO/liblaio.map);
        // this product is the plain form the package's own builds and sanitizer runs link.
        .library(name: "laio", type: .dynamic, targets: ["laio"]),
        .executable(name: "laio-demo", targets: ["laio-demo"]),
        .executable(name: "laio-httpd", targets: ["laio-httpd"]),
    ],
    dependencies: [
        // Errno, FileDescriptor and FilePath: the Swift vocabulary for system calls.
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // `swift package generate-documentation` (scripts/docs): the DocC catalog of LAIO.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // The command lines of laio-httpd, laio-demo and laio-stress (the LAIO library does not use it).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // liburing, for the io_uring backend only.
        .target(
            name: "CLiburing",
            linkerSettings: [.linkedLibrary("uring")]
        ),
        // The Linux shims: what Swift cannot import (variadic syscall(2), SIGRTMIN, syscall
        // numbers) and the library's few calls in C (signals, non-blocking forms, statx to
        // stat, thread marks, fork generations).
        .target(name: "CLinuxShims"),
        // The vocabulary: operations, handles, completions, routes, the Backend protocol,
        // the completion queue and its notification fd.
        .target(name: "LAIOCore", dependencies: ["CLinuxShims", .product(name: "SystemPackage", package: "swift-system")]),
        // The eager thread-pool backend (liblaiogen's design) with a lazy window.
        .target(name: "LAIOThreads", dependencies: ["LAIOCore", "CLinuxShims"]),
        // The io_uring backend: laziness from the kernel itself.
        .target(name: "LAIOUring", dependencies: ["LAIOCore", "CLiburing", "CLinuxShims"]),
        // The facade: contexts, backend choice, poll.
        .target(name: "LAIO", dependencies: ["LAIOCore", "LAIOThreads", "LAIOUring", "CLinuxShims"]),
        // The C ABI: laio.h and the variadic laio_syscall in C, over the Swift half in `laio`.
        .target(name: "CLAIO"),
        .target(name: "laio", dependencies: ["CLAIO", "LAIO", "CLinuxShims"]),
        // The executables' shared command-line words: `--backend WORD` and `--backend all|WORD`,
        // and usage errors that exit with status 2.
        .target(name: "LAIOArguments", dependencies: ["LAIO", argumentParser]),
        .executableTarget(name: "laio-demo", dependencies: ["LAIO", "LAIOArguments", argumentParser]),
        // Many operations of mixed kinds in flight with cancels racing: nothing lost or leaked.
        // Its heap counter (mallinfo2) is its own.
        .target(name: "CStressHeap"),
        .executableTarget(name: "laio-stress", dependencies: ["LAIO", "CStressHeap", "LAIOTestSupport", "LAIOArguments", argumentParser]),
        // A Flash-style event-driven static web server on LAIO.
        .target(name: "CHTTPD"),
        .executableTarget(name: "laio-httpd", dependencies: ["LAIO", "CHTTPD", "LAIOArguments", argumentParser]),
        // An async program on LAIO: checksums of a directory's files, cold and then warm.
        .executableTarget(name: "laio-checksums", dependencies: ["LAIO", "LAIOArguments", argumentParser],
                          path: "Examples/checksums"),
        // An async static file server: a task per connection, every call an await on one
        // Context.executor.
        .executableTarget(name: "laio-flash", dependencies: ["LAIO", "LAIOArguments", argumentParser],
                          path: "Examples/flash"),
        // What the tests and laio-stress share: pipes, sockets, patterned files, threads,
        // exactly-once collection of completions, which backends start here. A plain target
        // (laio-stress uses it too), so its checks throw `TestFailure` rather than use Swift Testing.
        .target(name: "LAIOTestSupport", dependencies: ["LAIO"], path: "Tests/LAIOTestSupport"),
        .testTarget(name: "LAIOConformanceTests", dependencies: ["LAIO", "LAIOTestSupport", "CLinuxShims"]),
        // The facade's own tests: the auto strategy.
        .testTarget(name: "LAIOTests", dependencies: ["LAIO", "LAIOTestSupport"]),
        .testTarget(name: "LAIOThreadsTests", dependencies: ["LAIO", "LAIOTestSupport"]),
        .testTarget(name: "LAIOUringTests", dependencies: ["LAIO", "LAIOUring", "LAIOCore", "CLinuxShims", "LAIOTestSupport"]),
    ]
)
