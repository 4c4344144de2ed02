// swift-tools-version: 6.2
// The core that the NIO-based integrations (LAIOHummingbird, LAIOVapor) share: a root
// directory's descriptor, files opened beneath it with openat2(2), their fstat(2), and their
// bytes read through LAIO straight into the ByteBuffers that are written. It depends on
// NIOCore for ByteBuffer only, never on a web framework.
import Foundation
import PackageDescription

// A path dependency is known by its folder's name, which depends on where the repository
// was cloned; read it instead of assuming it.
let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "swift-laio-nio-files",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LAIONIOFiles", targets: ["LAIONIOFiles"]),
    ],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
    ],
    targets: [
        .target(
            name: "LAIONIOFiles",
            dependencies: [
                .product(name: "LAIO", package: root),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ]
)
