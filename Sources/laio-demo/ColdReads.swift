// Cold random reads shared by laio-demo (--fio, the backend comparison) and the
// ColdReadBenchmarks micro-benchmarks (which include this file through a symlink): a test
// file, its random offsets, reads through LAIO with a number in flight, and fio's figure
// for the same reads.
#if canImport(Glibc)
import Glibc
#endif
import LAIO
import SystemPackage

/// A test file of `size` bytes at `path`, created once with deterministic content.
struct TestFile {
    let path: String
    let size: Int

    init(path: String, size: Int) throws {
        self.path = path
        self.size = size
        var st = stat()
        if fstatat(AT_FDCWD, path, &st, 0) == 0 && Int(st.st_size) == size { return }
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var written = 0
        while written < size {
            for i in stride(from: 0, to: chunk.count, by: 512) { chunk[i] = UInt8(truncatingIfNeeded: (written + i) >> 9) }
            let n = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, min($0.count, size - written)) }
            guard n > 0 else { throw Errno(rawValue: errno) }
            written += n
        }
        fsync(fd)
    }

    func open(_ flags: Int32 = O_RDONLY) throws -> Int32 {
        let fd = Glibc.open(path, flags)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        return fd
    }

    /// Drops the file's pages from the page cache, so the next reads come from the disk.
    func dropCache() throws {
        let fd = try open()
        defer { close(fd) }
        fdatasync(fd)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }

    /// Reads the whole file once, so later reads are page-cache hits.
    func warm() throws {
        let fd = try open()
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while chunk.withUnsafeMutableBytes({ Glibc.read(fd, $0.baseAddress, $0.count) }) > 0 {}
    }
}

/// 4 KiB-aligned offsets from a fixed-seed generator (xorshift), the same for every backend.
func randomOffsets(count: Int, fileSize: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [Int64] {
    var state = seed
    let blocks = UInt64(fileSize / 4096)
    return (0..<count).map { _ in
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Int64((state % blocks) * 4096)
    }
}

/// Random 4 KiB reads with up to `depth` in flight; returns reads per second.
func randomReads(_ laio: Context, fd: Int32, offsets: [Int64], depth: Int) throws -> Double {
    let buffers = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096 * depth, alignment: 4096)
    defer { buffers.deallocate() }
    var freeBuffers = Array(0..<depth)
    var bufferOf: [Handle: Int] = [:]
    var completions: [Completion] = []
    completions.reserveCapacity(depth)
    var next = 0, done = 0
    let start = SuspendingClock.now
    while done < offsets.count {
        while next < offsets.count, let index = freeBuffers.popLast() {
            let buffer = UnsafeMutableRawBufferPointer(rebasing: buffers[index * 4096..<(index + 1) * 4096])
            switch try laio.submit(.pread(fd: fd, buffer: buffer, offset: offsets[next])) {
            case .completed(let result):
                guard case .success = result else { throw DemoError("pread: \(result)") }
                freeBuffers.append(index)
                done += 1
            case .inProgress(let handle):
                bufferOf[handle] = index
            }
            next += 1
        }
        if !bufferOf.isEmpty {
            completions.removeAll(keepingCapacity: true)
            _ = try laio.poll(into: &completions, maximum: depth, timeout: nil)
            for completion in completions {
                guard case .success = completion.result else { throw DemoError("pread: \(completion.result)") }
                if let index = bufferOf.removeValue(forKey: completion.handle) { freeBuffers.append(index) }
                done += 1
            }
        }
    }
    return Double(offsets.count) / ((SuspendingClock.now - start) / .seconds(1))
}

/// Runs fio's random-read job and returns its reads per second.
func fioRandomReads(path: String, engine: String, jobs: Int, depth: Int, reads: Int) throws -> Double {
    let command = "fio --name=cold --filename=\(path) --readonly --rw=randread --bs=4k --ioengine=\(engine)"
        + " --iodepth=\(depth) --numjobs=\(jobs) --thread --number_ios=\(max(1, reads / jobs)) --norandommap --randrepeat=0"
        + " --invalidate=1 --group_reporting --output-format=terse --terse-version=3"
    // Terse version 3: field 8 (index 7) is the read IOPS of the group.
    for line in try shell(command) where line.hasPrefix("3;") {
        let fields = line.split(separator: ";", omittingEmptySubsequences: false)
        if fields.count > 7, let iops = Double(fields[7]), iops > 0 { return iops }
    }
    throw DemoError("fio gave no read IOPS (command: \(command))")
}

/// Runs `command` with /bin/sh and returns its standard output's lines; throws if it fails.
func shell(_ command: String) throws -> [String] {
    guard let pipe = popen(command + " 2>/dev/null", "r") else { throw DemoError("cannot run \(command)") }
    var output = ""
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), pipe) != nil {
        output += String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    let status = pclose(pipe)
    guard status == 0 else { throw DemoError("'\(command)' failed (status \(status))") }
    return output.split(separator: "\n").map(String.init)
}

struct DemoError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
