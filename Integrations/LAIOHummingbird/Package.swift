// swift-tools-version: 6.2
// LAIO under Hummingbird 2: a `FileProvider` that looks up, stats, opens and reads files
// through LAIO's async surface, and laio-hummingbird, a static file server that runs it or
// Hummingbird's own `LocalFileSystem` side by side. A package of its own, so that users of
// the LAIO library never resolve Hummingbird or SwiftNIO.
import Foundation
import PackageDescription

// A path dependency is known by its folder's name, which depends on where the repository
// was cloned; read it instead of assuming it.
let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "swift-laio-hummingbird",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LAIOHummingbird", targets: ["LAIOHummingbird"]),
        .executable(name: "laio-hummingbird", targets: ["laio-hummingbird"]),
    ],
    dependencies: [
        .package(path: "../.."),
        .package(path: "../LAIONIOFiles"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "LAIOHummingbird",
            dependencies: [
                .product(name: "LAIO", package: root),
                .product(name: "LAIONIOFiles", package: "LAIONIOFiles"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .executableTarget(
            name: "laio-hummingbird",
            dependencies: [
                "LAIOHummingbird",
                .product(name: "LAIO", package: root),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ]
)
