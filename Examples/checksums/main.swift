// laio-checksums: CRC-32 of every regular file in a directory, with a task per file and
// LAIO's `perform` for every system call (open, fstat, pread, close). It runs twice, first
// with the files' pages dropped from the page cache (cold: calls go to the disk and
// suspend their tasks) and then warm (calls finish without suspending), and prints how
// many calls suspended in each pass.
//
//   laio-checksums [--backend WORD] [--tasks N] [--list] DIRECTORY
//
// --list prints "crc32 name" per file (of the warm pass; both passes must agree).
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LAIO
import LAIOArguments

@main
struct Checksums: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laio-checksums",
        abstract: "CRC-32 of every file in a directory through LAIO's async calls, cold and then warm.")

    @Option(help: "The backend (default: LAIO_BACKEND, else auto).")
    var backend: BackendKind?

    @Option(help: "How many files are read at once.")
    var tasks = 32

    @Flag(help: "Print \"crc32 name\" for every file.")
    var list = false

    @Argument(help: "The directory whose regular files are read.")
    var directory: String

    func validate() throws {
        guard tasks > 0 else { throw ValidationError("--tasks must be positive") }
    }

    func run() async throws {
        let laio = try Context(backend: backend)
        let names = try regularFiles(in: directory)
        print("\(names.count) files in \(directory), backend \(laio.backendKind.rawValue), \(tasks) at once")
        var passes: [[String: UInt32]] = []
        for pass in ["cold", "warm"] {
            if pass == "cold" { dropPages(of: names, in: directory) }
            let before = laio.suspendedCalls
            let start = ContinuousClock.now
            let (sums, bytes, calls) = try await checksums(of: names, laio)
            let elapsed = ContinuousClock.now - start
            let suspended = laio.suspendedCalls - before
            print("\(pass): \(bytes) bytes in \(elapsed); \(calls) calls, \(suspended) suspended their task")
            passes.append(sums)
        }
        guard passes[0] == passes[1] else {
            print("the cold and warm passes disagree")
            throw ExitCode.failure
        }
        if list {
            for name in names { print(String(passes[1][name]!, radix: 16), name) }
        }
    }

    /// The CRC-32 of each file, at most `tasks` at once; the bytes read and the calls made.
    func checksums(of names: [String], _ laio: Context) async throws -> ([String: UInt32], Int, Int) {
        var sums: [String: UInt32] = [:]
        var bytes = 0, calls = 0
        let directory = self.directory
        try await withThrowingTaskGroup(of: (String, UInt32, Int, Int).self) { group in
            var next = 0
            func addTask() {
                let name = names[next]
                next += 1
                group.addTask { try await checksum(of: FilePath("\(directory)/\(name)"), laio, name: name) }
            }
            while next < min(tasks, names.count) { addTask() }
            while let (name, sum, count, made) = try await group.next() {
                sums[name] = sum
                bytes += count
                calls += made
                if next < names.count { addTask() }
            }
        }
        return (sums, bytes, calls)
    }
}

/// One file's CRC-32, its size and the calls made, read in 64 KiB chunks.
func checksum(of path: FilePath, _ laio: Context, name: String) async throws(Errno) -> (String, UInt32, Int, Int) {
    let fd = try await laio.open(path, .readOnly, options: .closeOnExec)
    var calls = 1
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 4096)
    defer { buffer.deallocate() }
    var crc = CRC32()
    var offset: Int64 = 0
    do throws(Errno) {
        let size = Int64(try await laio.stat(fd).st_size)
        calls += 1
        while offset < size {
            let count = try await laio.read(from: fd, at: offset, into: buffer)
            calls += 1
            if count == 0 { break }
            crc.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            offset += Int64(count)
        }
    } catch {
        try? await laio.close(fd)
        throw error
    }
    try await laio.close(fd)
    return (name, crc.value, Int(offset), calls + 1)
}

/// The names of the regular files directly in `directory`, sorted.
func regularFiles(in directory: String) throws -> [String] {
    guard let dir = opendir(directory) else {
        throw ValidationError("cannot open \(directory): \(Errno(rawValue: errno))")
    }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        var status = stat()
        if lstat("\(directory)/\(name)", &status) == 0 && status.st_mode & S_IFMT == S_IFREG { names.append(name) }
    }
    return names.sorted()
}

/// Drops the files' pages from the page cache, so that the first pass reads the disk
/// (written back first: dirty pages stay).
func dropPages(of names: [String], in directory: String) {
    for name in names {
        let fd = open("\(directory)/\(name)", O_RDONLY)
        guard fd >= 0 else { continue }
        _ = fdatasync(fd)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        _ = close(fd)
    }
}

/// CRC-32 (IEEE 802.3, as zlib's crc32 and `cksum -a crc32b`), a table at a time.
struct CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        (0..<8).reduce(UInt32(index)) { crc, _ in crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    private var crc: UInt32 = 0xFFFF_FFFF

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = self.crc
        Self.table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        self.crc = crc
    }

    var value: UInt32 { crc ^ 0xFFFF_FFFF }
}
