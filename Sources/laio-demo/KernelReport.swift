// laio-demo --kernel-report: what the running kernel gives each backend, for
// scripts/test-kernels (one report per guest kernel, compared side by side).
#if canImport(Glibc)
import Glibc
#endif
import LAIO

/// Prints the kernel's release, each backend's setup (`details`: for uring the setup flags
/// the kernel took), `uring`'s and `auto`'s route for every kind (`unsupported` on `uring`
/// where the kernel's probe lacks an opcode), and the share of cached 4 KiB preads completed
/// synchronously on every backend, in a warm file in `directory`.
func kernelReport(directory: String, reads: Int) throws {
    var name = utsname()
    uname(&name)
    let release = withUnsafeBytes(of: &name.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    print("kernel: \(release)")

    let file = try TestFile(path: "\(directory)/laio-demo-kernel-report.dat", size: 4 << 20)
    defer { unlink(file.path) }
    try file.warm()
    let fd = try file.open()
    defer { close(fd) }
    let offsets = randomOffsets(count: reads, fileSize: file.size)

    for kind in BackendKind.allCases {
        let laio: Context
        do {
            laio = try Context(backend: kind)
        } catch {
            print("\(kind): unavailable: \(error)")
            continue
        }
        defer { laio.close() }
        print("\(kind): details: \(laio.details)")
        if let reason = laio.uringUnavailableReason { print("\(kind): io_uring not used: \(reason)") }
        if kind == .uring || kind == .auto {
            for operation in OperationKind.allCases { print("\(kind): route: \(operation): \(laio.route(for: operation))") }
        }
        let figures = try cachedReads(laio, fd: fd, offsets: offsets)
        print("\(kind): cached preads synchronous in \(directory): \(format(figures.synchronousFraction * 100, 1)) % of \(reads)")
        if let statistics = laio.statistics { print("\(kind): counts: \(statistics)") }
    }
}
