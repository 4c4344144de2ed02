// swift-tools-version: 6.1
// Micro-benchmarks of swift-laio, kept in their own package so that users of the library
// never resolve the benchmark harness. Run with: cd Benchmarks && swift package benchmark
import Foundation
import PackageDescription

// A path dependency is known by its folder's name, which depends on where the repository
// was cloned; read it instead of assuming it.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "swift-laio-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
        // Only for AsyncBenchmarks: what a Swift server reads files with today.
        .package(url: "https://github.com/apple/swift-nio", "2.101.2"..<"2.102.0"),
    ],
    targets: [
        // The same submit-then-peek loop in C, straight on liburing.
        .target(name: "CUringLoop", linkerSettings: [.linkedLibrary("uring")]),
        .executableTarget(
            name: "PreadBenchmarks",
            dependencies: [
                .product(name: "LAIO", package: root),
                .product(name: "Benchmark", package: "benchmark"),
                "CUringLoop",
            ],
            path: "Benchmarks/PreadBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ColdReadBenchmarks",
            dependencies: [
                .product(name: "LAIO", package: root),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ColdReadBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Context.perform against submit/poll and against SwiftNIO's file system and
        // thread pool; the only target that needs swift-nio.
        .executableTarget(
            name: "AsyncBenchmarks",
            dependencies: [
                .product(name: "LAIO", package: root),
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/AsyncBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
