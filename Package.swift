// swift-tools-version: 6.0
// swift-laio: Lazy Asynchronous I/O for modern Linux.
import PackageDescription

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
        // Errno, FileDescriptor and FilePath: the Swift vocabulary for system calls.
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
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
        .target(name: "LAIOCore", dependencies: ["CLiburing", .product(name: "SystemPackage", package: "swift-system")]),
        // The eager thread-pool backend (liblaiogen's design) with a lazy window.
        .target(name: "LAIOThreads", dependencies: ["LAIOCore"]),
        // The io_uring backend: laziness from the kernel itself.
        .target(name: "LAIOUring", dependencies: ["LAIOCore", "CLiburing"]),
        // The facade: contexts, backend choice, poll.
        .target(name: "LAIO", dependencies: ["LAIOCore", "LAIOThreads", "LAIOUring", "CLiburing"]),
        // The C ABI: laio.h and the variadic laio_syscall in C, over the Swift half in `laio`.
        .target(name: "CLAIO"),
        .target(name: "laio", dependencies: ["CLAIO", "LAIO", "CLiburing"]),
        .executableTarget(name: "laio-demo", dependencies: ["LAIO"]),
        // Many operations of mixed kinds in flight with cancels racing: nothing lost or leaked.
        .executableTarget(name: "laio-stress", dependencies: ["LAIO", "CLiburing", "LAIOTestSupport"]),
        // A Flash-style event-driven static web server on LAIO.
        .target(name: "CHTTPD"),
        .executableTarget(name: "laio-httpd", dependencies: ["LAIO", "CHTTPD"]),
        // What the tests and laio-stress share: pipes, sockets, patterned files, threads,
        // exactly-once collection of completions, which backends start here. A plain target
        // (laio-stress uses it too), so its checks throw `TestFailure` rather than use Swift Testing.
        .target(name: "LAIOTestSupport", dependencies: ["LAIO"], path: "Tests/LAIOTestSupport"),
        .testTarget(name: "LAIOConformanceTests", dependencies: ["LAIO", "LAIOTestSupport"]),
        // The facade's own tests: the auto strategy.
        .testTarget(name: "LAIOTests", dependencies: ["LAIO", "LAIOTestSupport"]),
        .testTarget(name: "LAIOThreadsTests", dependencies: ["LAIO", "LAIOTestSupport"]),
        .testTarget(name: "LAIOUringTests", dependencies: ["LAIO", "LAIOUring", "LAIOCore", "CLiburing", "LAIOTestSupport"]),
    ]
)
