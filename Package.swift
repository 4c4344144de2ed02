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
        // No executable is a product: in this package `swift build --product laio-httpd` (and
        // laio-demo, laio-stress, laio-checksums) works all the same, since SwiftPM makes a
        // product of each executable target of the root package; declared, they would make
        // every package that depends on LAIO fetch swift-argument-parser and build its
        // plugins (SwiftPM resolves what any product of a dependency needs).
    ],
    dependencies: [
        // Errno, FileDescriptor and FilePath: the Swift vocabulary for system calls.
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // `swift package generate-documentation` (scripts/docs): the DocC catalog of LAIO.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // The command lines of laio-httpd, laio-demo and laio-stress (no product uses it: a package
        // that depends on LAIO neither fetches nor builds it).
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
        // The vocabulary and what every backend shares: operations and their system calls,
        // handles, completions, routes, the Backend protocol, the completion queue and its
        // notification fd, the FIFO, locks, the clock, the library's own syscalls
        // (Housekeeping: one EINTR policy).
        .target(name: "LAIOCore", dependencies: ["CLinuxShims", .product(name: "SystemPackage", package: "swift-system")]),
        // The `blocking` baseline: every call inline on the caller's thread.
        .target(name: "LAIOBlocking", dependencies: ["LAIOCore"]),
        // The `threads` backend: the eager thread pool (liblaiogen's design) with a lazy window.
        .target(name: "LAIOThreads", dependencies: ["LAIOCore", "CLinuxShims"]),
        // The `uring` backend: laziness from the kernel itself.
        .target(name: "LAIOUring", dependencies: ["LAIOCore", "CLiburing", "CLinuxShims"]),
        // The `auto` strategy over the io_uring and thread-pool backends: a route per kind of
        // operation, non-blocking tries inline first.
        .target(name: "LAIOAuto", dependencies: ["LAIOCore", "LAIOThreads", "LAIOUring", "CLinuxShims",
                                                 .product(name: "SystemPackage", package: "swift-system")]),
        // The facade: contexts, backend choice, submit and poll, awaiting calls, setup errors;
        // it re-exports the public vocabulary of the modules below it.
        .target(name: "LAIO", dependencies: ["LAIOCore", "LAIOBlocking", "LAIOThreads", "LAIOUring", "LAIOAuto", "CLinuxShims"]),
        // The C ABI: laio.h and the variadic laio_syscall in C, over the Swift half in `laio`.
        .target(name: "CLAIO"),
        .target(name: "laio", dependencies: ["CLAIO", "LAIO", "CLinuxShims"]),
        // The executables' shared command-line words: `--backend WORD` and `--backend all|WORD`,
        // and usage errors that exit with status 2.
        .target(name: "LAIOArguments", dependencies: ["LAIO", argumentParser]),
        // The same workloads on every backend, printed as a comparison table.
        .executableTarget(name: "laio-demo", dependencies: ["LAIO", "LAIOArguments", argumentParser]),
        // Many operations of mixed kinds in flight with cancels racing: nothing lost or leaked.
        // Its heap counter (mallinfo2) is its own.
        .target(name: "CStressHeap"),
        .executableTarget(name: "laio-stress", dependencies: ["LAIO", "CStressHeap", "LAIOTestSupport", "LAIOArguments", argumentParser]),
        // A Flash-style event-driven static web server on LAIO: its C shims (epoll, signalfd,
        // memmem, accept4), its HTTP/1.x (request parsing, ranges, dates, content types; also
        // compiled by scripts/fuzz), and the server.
        .target(name: "CHTTPD"),
        .target(name: "HTTPParsing", dependencies: ["CHTTPD"]),
        .executableTarget(name: "laio-httpd", dependencies: ["LAIO", "CHTTPD", "HTTPParsing", "LAIOArguments", argumentParser]),
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
        // The vocabulary alone, without a backend or a context: the completion queue, the FIFO,
        // the handle layout, `canonical`, the statx-to-stat conversion, the clock.
        .testTarget(name: "LAIOCoreTests", dependencies: ["LAIOCore", "CLinuxShims"]),
        // One contract, every backend that starts here: files, sockets, cancel and close,
        // async calls, signals, exited threads, crowds, faults of the storage (faultfs, FUSE),
        // io_uring blocked, fork.
        .testTarget(name: "LAIOConformanceTests", dependencies: ["LAIO", "LAIOTestSupport", "CLinuxShims"]),
        // Each backend's own tests, beyond the conformance suite, through a context: `auto`'s
        // routes, counts, refusals and fallback; the pool's lazy window and growth; the ring's
        // setup, bounds and refusals.
        .testTarget(name: "LAIOAutoTests", dependencies: ["LAIO", "LAIOAuto", "LAIOTestSupport"]),
        .testTarget(name: "LAIOThreadsTests", dependencies: ["LAIO", "LAIOTestSupport"]),
        // laio-httpd's request parser alone: requests, ranges, dates and bad input, no server.
        .testTarget(name: "HTTPParsingTests", dependencies: ["HTTPParsing"]),
        .testTarget(name: "LAIOUringTests", dependencies: ["LAIO", "LAIOUring", "LAIOCore", "CLinuxShims", "LAIOTestSupport"]),
        // liburing's prep helpers compiled by the C compiler: the expected side of the
        // translation tests.
        .target(name: "CLiburingPrep", path: "Tests/CLiburingPrep"),
        // The translation from an operation to a submission entry, field by field against
        // liburing's prep helpers; no ring is set up, so it runs where io_uring is refused.
        .testTarget(name: "LAIOUringTranslationTests",
                    dependencies: ["LAIOUring", "LAIOCore", "CLiburing", "CLiburingPrep", "CLinuxShims"]),
    ]
)
