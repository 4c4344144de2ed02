// swift-tools-version: 6.2
// LAIO under Vapor 4: LAIOFileMiddleware, which serves a public directory as Vapor's
// FileMiddleware does but opens, stats and reads through LAIO; `req.laio`, the same for route
// handlers; and laio-vapor, a static file server that runs it or Vapor's own FileMiddleware
// side by side. A package of its own, so that users of the LAIO library never resolve Vapor.
// (Its folder is not named "Vapor": SwiftPM names a root package after its folder, and that
// name would clash with Vapor's.)
import Foundation
import PackageDescription

// A path dependency is known by its folder's name, which depends on where the repository
// was cloned; read it instead of assuming it.
let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "swift-laio-vapor",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "LAIOVapor", targets: ["LAIOVapor"]),
        .executable(name: "laio-vapor", targets: ["laio-vapor"]),
    ],
    dependencies: [
        .package(path: "../.."),
        .package(path: "../LAIONIOFiles"),
        .package(url: "https://github.com/vapor/vapor", exact: "4.122.3"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "LAIOVapor",
            dependencies: [
                .product(name: "LAIO", package: root),
                .product(name: "LAIONIOFiles", package: "LAIONIOFiles"),
                .product(name: "Vapor", package: "vapor"),
            ]
        ),
        .executableTarget(
            name: "laio-vapor",
            dependencies: [
                "LAIOVapor",
                .product(name: "LAIO", package: root),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ]
)
