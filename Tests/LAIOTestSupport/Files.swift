#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LAIO

/// The byte at `offset` of every patterned file: the offset mixed (splitmix64's finalizer),
/// so that no run of bytes stands again elsewhere in a file and a read from a wrong offset
/// cannot give the right bytes.
@inlinable
public func patternByte(at offset: Int) -> UInt8 {
    var mixed = UInt64(truncatingIfNeeded: offset) &* 0x9E37_79B9_7F4A_7C15
    mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
    mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
    return UInt8(truncatingIfNeeded: (mixed ^ (mixed >> 31)) >> 56)
}

/// `count` bytes of the pattern, from offset `seed` on: `pattern(count: n, seed: k)` is what
/// a patterned file holds at `k..<k + n`.
public func pattern(count: Int, seed: Int = 0) -> [UInt8] {
    (0..<count).map { patternByte(at: seed + $0) }
}

/// Writes `bytes` to a new file at `path` with plain libc calls.
public func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw TestFailure("open \(path): \(Errno(rawValue: errno))") }
    defer { close(fd) }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == bytes.count else { throw TestFailure("short write to \(path)") }
}

/// A temporary directory, removed (with its files) at the end of `body`.
public func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/laio-test-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp: \(Errno(rawValue: errno))") }
    let path = String(cString: made)
    defer { _ = system("rm -rf '\(path)'") }
    return try body(path)
}

/// A new file in /var/tmp (a disk, so that its pages can be dropped; /tmp may be memory)
/// holding `count` bytes of the pattern from offset `seed`; returns its path and bytes. The
/// caller unlinks it.
///
/// Each call makes a file of its own (mkstemp), even for the same name: tests run in
/// parallel, and two that shared a path truncated and rewrote each other's file while
/// reading it (the pool-only `auto` checks of `withoutUring` and `blockedBySeccomp` both
/// run under tools/no-io-uring; a pread there came back short).
public func makeFile(_ name: String, bytes count: Int, seed: Int = 0) throws -> (path: String, content: [UInt8]) {
    var template = Array("/var/tmp/laio-test-\(name)-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    guard fd >= 0 else { throw TestFailure("mkstemp for \(name): \(Errno(rawValue: errno))") }
    defer { close(fd) }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    let content = pattern(count: count, seed: seed)
    let written = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == count else {
        let error = Errno(rawValue: errno)
        unlink(path)
        throw TestFailure("write of \(path): \(written) of \(count) bytes (\(error))")
    }
    return (path, content)
}
