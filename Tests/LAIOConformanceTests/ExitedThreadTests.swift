#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

/// A call outlives the thread that made it: on every backend, calls submitted by threads
/// that exit at once are each reported exactly once, with their real result (io_uring ties
/// requests to their submitting thread; the library makes up for it).
@Suite("Calls from threads that exit")
struct ExitedThreadTests {
    @Test("hundreds of calls from exited threads: each reported once, with its real result, nothing done twice",
          arguments: allBackends)
    func callsOutliveTheirThreads(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { directory in
            let jobs = try ExitedThreadJobs(directory: directory, perKind: 30, sleep: .milliseconds(20))
            defer { jobs.closeAll() }
            let asynchronous = kind != .blocking
            // On `blocking` each thread waits in its call, so it is joined after the data came.
            let threads = jobs.all.map { job in TestThread { job.submit(laio) } }
            if asynchronous { threads.forEach { $0.join() } }
            jobs.provideData()
            if !asynchronous {
                try jobs.drainSendsUntilDone()
                threads.forEach { $0.join() }
            }
            let results = try jobs.collect(from: laio, drainingSends: true)
            try expectNoCompletion(in: laio)
            var accepted = 0
            for job in jobs.all {
                let result = try #require(results[job.index], "\(job) never reported")
                #expect(result != .failure(.canceled), "\(job): ECANCELED, which nobody asked for")
                switch job.kind {
                case .pipeRead, .recv:
                    #expect(result == .success(8) && job.payloadArrived, "\(job): \(result)")
                    #expect(job.channelEmpty, "\(job): data left behind")
                case .accept:
                    #expect((try? result.get()) ?? -1 >= 0, "\(job): \(result)")
                    if case let .success(fd) = result { accepted += 1; close(Int32(fd)) }
                case .send, .pipeWrite:
                    #expect(result == .success(ExitedThreadJobs.sendBytes), "\(job): \(result)")
                    #expect(jobs.marked[job.index] == ExitedThreadJobs.sendBytes,
                            "\(job): \(jobs.marked[job.index]) of its bytes arrived")
                case .sleep:
                    #expect(result == .success(0), "\(job): \(result)")
                case .coldRead:
                    // A buffered read whose rest was to be read in its exited thread's task
                    // work ends with the bytes it had (seen: 32 KiB of 64): the kernel's count,
                    // reported as it is, as pread(2) may return fewer bytes than asked.
                    let count = (try? result.get()) ?? -1
                    #expect(count > 0 && count <= ExitedThreadJobs.chunk && job.coldBytesRight(count),
                            "\(job): \(result)")
                case .open:
                    #expect((try? result.get()) ?? -1 >= 0, "\(job): \(result)")
                    if case let .success(fd) = result { close(Int32(fd)) }
                }
            }
            #expect(accepted == jobs.perKind)
            #expect(jobs.listenerEmpty, "a connection was left behind")
            // Each file was opened once, and its descriptor was the one reported.
            #expect(openDescriptors(under: "\(directory)/open-") == 0, "a descriptor leaked: an open ran twice")
            #expect(laio.outstandingCount == 0)
        }
    }

    @Test("a connect from an exited thread that waits for the listener completes with 0, connected", arguments: allBackends)
    func connectFromExitedThread(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        // A listener whose accept queue is full (backlog 1 holds two connections): the
        // kernel drops the next SYN, so that connect waits for the retransmission.
        var (listener, address) = try makeListener(backlog: 1)
        defer { close(listener) }
        func connectPlainly() -> Int32 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            return fd
        }
        let fillers = [connectPlainly(), connectPlainly()]
        defer { fillers.forEach { close($0) } }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let peer = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: 1)
        defer { peer.deallocate() }
        peer.initialize(to: address)
        let job = LockBox<Outcome?>(nil)
        let operation = peer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Operation.connect(fd: client, address: $0, length: socklen_t(MemoryLayout<sockaddr_in>.size))
        }
        // The operation is not Sendable; its memory (`peer`) outlives the thread, joined below.
        let carried = UnsafeSendable(operation)
        let thread = TestThread {
            job.withLock { $0 = (try? laio.submit(carried.value)) ?? .completed(.failure(.resourceTemporarilyUnavailable)) }
        }
        if kind != .blocking { thread.join() }
        // Room in the queue: the retransmitted SYN (a second or so later) is accepted.
        for _ in fillers { close(accept(listener, nil, nil)) }
        if kind == .blocking { thread.join() }
        let result: Result<Int, Errno>
        switch try #require(job.withLock { $0 }) {
        case let .completed(answer): result = answer
        case let .inProgress(handle): result = try awaitCompletion(of: handle, in: laio, timeout: .seconds(60))
        }
        #expect(result == .success(0))
        var name = sockaddr_in()
        var nameLength = socklen_t(MemoryLayout<sockaddr_in>.size)
        let connected = withUnsafeMutablePointer(to: &name) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(client, $0, &nameLength) }
        }
        #expect(connected == 0, "the socket is connected")
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        close(accepted)
    }

    @Test("cancel of calls from exited threads that wait in the kernel: each reported once, ECANCELED, nothing consumed",
          arguments: asynchronousBackends)
    func cancelCallsOfExitedThreads(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { directory in
            let jobs = try ExitedThreadJobs(directory: directory, perKind: 40, sleep: .seconds(600),
                                            kinds: [.pipeRead, .recv, .sleep])
            defer { jobs.closeAll() }
            // Each cancel follows its thread's exit at once, while the call waits in the kernel
            // (its poll has not fired, so the kernel has not failed it yet): the caller's
            // cancel must win and nothing be run again afterwards. (The race of a cancel with
            // the run again, a payload written and cancelled at once, is laio-stress's.)
            for job in jobs.all {
                TestThread { job.submit(laio) }.join()
                if case let .inProgress(handle)? = job.outcome { try laio.cancel(handle) }
            }
            let results = try jobs.collect(from: laio, drainingSends: false)
            for job in jobs.all {
                #expect(results[job.index] == .failure(.canceled), "\(job): \(String(describing: results[job.index]))")
            }
            try expectNoCompletion(in: laio)
            jobs.provideData()
            try expectNoCompletion(in: laio)
            for job in jobs.all where job.kind != .sleep {
                #expect(job.untouched && job.payloadStillInChannel, "\(job): the cancelled call read its data")
            }
            #expect(laio.outstandingCount == 0)
        }
    }

    @Test("close with calls of exited threads in flight: each reported once, nothing touched afterwards",
          arguments: asynchronousBackends)
    func closeWithCallsOfExitedThreads(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { directory in
            // Sleeps far longer than the test: they can only end by being cancelled.
            let jobs = try ExitedThreadJobs(directory: directory, perKind: 12, sleep: .seconds(600),
                                            kinds: [.pipeRead, .recv, .accept, .send, .pipeWrite, .sleep])
            defer { jobs.closeAll() }
            jobs.all.map { job in TestThread { job.submit(laio) } }.forEach { $0.join() }
            laio.close()
            let results = try jobs.collect(from: laio, drainingSends: false)
            for job in jobs.all {
                let result = try #require(results[job.index], "\(job) never reported")
                // Nothing could finish before close: there was no data, room or connection.
                #expect(result == .failure(.canceled), "\(job): \(result)")
            }
            try expectNoCompletion(in: laio)
            // After close nothing reads, sends or accepts any more.
            jobs.provideData()
            jobs.drainSends()
            for job in jobs.all {
                switch job.kind {
                case .pipeRead, .recv:
                    #expect(job.untouched, "\(job): its buffer was written after close")
                    #expect(job.payloadStillInChannel, "\(job): its data was consumed after close")
                case .send, .pipeWrite:
                    #expect(jobs.marked[job.index] == 0, "\(job): sent after close")
                default:
                    break
                }
            }
            #expect(jobs.acceptQueued() == jobs.perKind, "a connection was accepted after close")
        }
    }
}

/// Calls of every kind that waits, each with its own channel: pipe reads and TCP recvs that
/// wait for a payload, accepts that wait for a connection, sends into full socket buffers,
/// sleeps, reads of a file whose pages were dropped, and opens that create a file.
final class ExitedThreadJobs {
    enum Kind: CaseIterable { case pipeRead, recv, accept, send, pipeWrite, sleep, coldRead, open }
    static let chunk = 64 * 1024
    static let sendBytes = 100

    /// One call: its channel and memory, and the outcome its thread saw.
    final class Job: @unchecked Sendable, CustomStringConvertible {
        // @unchecked: `outcome` is written by the submitting thread before it exits and read
        // only after that thread was joined or the call was reported (both order the write
        // before the read); the rest is set in init and never changed.
        let index: Int
        let kind: Kind
        let operation: Operation
        let buffer: UnsafeMutableRawBufferPointer
        let fd: Int32
        let peer: Int32
        let offset: Int
        nonisolated(unsafe) var outcome: Outcome? = nil

        init(index: Int, kind: Kind, operation: Operation, buffer: UnsafeMutableRawBufferPointer,
             fd: Int32 = -1, peer: Int32 = -1, offset: Int = 0) {
            self.index = index
            self.kind = kind
            self.operation = operation
            self.buffer = buffer
            self.fd = fd
            self.peer = peer
            self.offset = offset
        }

        var description: String { "\(kind) #\(index)" }

        func submit(_ laio: Context) {
            outcome = (try? laio.submit(operation)) ?? .completed(.failure(.resourceTemporarilyUnavailable))
        }

        var payload: [UInt8] { Array("p\(String(index + 1_000_000).suffix(6))\0".utf8) }
        var payloadArrived: Bool { Array(buffer.prefix(8)) == payload }
        /// The buffer still holds its fill: nothing wrote it.
        var untouched: Bool { buffer.allSatisfy { $0 == 0xEE } }
        var channelEmpty: Bool {
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            var byte: UInt8 = 0
            return Glibc.read(fd, &byte, 1) == -1 && errno == EAGAIN
        }
        var payloadStillInChannel: Bool {
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            var got = [UInt8](repeating: 0, count: 16)
            return Glibc.read(fd, &got, 16) == 8 && Array(got.prefix(8)) == payload
        }
        /// Whether the first `count` bytes read are the file's.
        func coldBytesRight(_ count: Int) -> Bool {
            Array(buffer.prefix(count)) == Array(pattern(count: ExitedThreadJobs.chunk, seed: offset).prefix(count))
        }
    }

    let all: [Job]
    let perKind: Int
    private let listener: Int32
    private let address: sockaddr_in
    private let cold: Int32
    private let paths: [UnsafeMutablePointer<CChar>]
    /// Per job: bytes of its own send that reached the peer; the connections the test made.
    var marked: [Int]
    private var connections: [Int32] = []

    init(directory: String, perKind: Int, sleep: Duration, kinds: [Kind] = Kind.allCases) throws {
        self.perKind = perKind
        (listener, address) = try makeListener()
        let coldPath = "\(directory)/cold"
        let coldBytes = pattern(count: perKind * Self.chunk)
        try writeFile(coldPath, coldBytes)
        cold = open(coldPath, O_RDONLY)
        _ = fdatasync(cold)
        _ = posix_fadvise(cold, 0, 0, POSIX_FADV_DONTNEED)
        var jobs: [Job] = []
        var paths: [UnsafeMutablePointer<CChar>] = []
        for i in 0..<(perKind * kinds.count) {
            let kind = kinds[i % kinds.count]
            let writes = kind == .send || kind == .pipeWrite
            let size = kind == .coldRead ? Self.chunk : writes ? Self.sendBytes : 8
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
            buffer.initializeMemory(as: UInt8.self, repeating: writes ? UInt8(ascii: "A") + UInt8(i % 26) : 0xEE)
            switch kind {
            case .pipeRead:
                let (r, w) = try makePipe()
                jobs.append(Job(index: i, kind: kind, operation: .read(fd: r, buffer: buffer), buffer: buffer, fd: r, peer: w))
            case .recv:
                let (client, server) = try makeSocketPair()
                jobs.append(Job(index: i, kind: kind, operation: .recv(fd: server, buffer: buffer), buffer: buffer,
                                fd: server, peer: client))
            case .send:
                var pair: [Int32] = [0, 0]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { throw TestFailure("socketpair") }
                var small: Int32 = 4096
                _ = setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
                let filler = [UInt8](repeating: 0, count: 4096)
                while send(pair[0], filler, filler.count, Int32(MSG_DONTWAIT)) > 0 {}
                while send(pair[0], filler, 1, Int32(MSG_DONTWAIT)) > 0 {}
                _ = fcntl(pair[1], F_SETFL, O_NONBLOCK)
                jobs.append(Job(index: i, kind: kind, operation: .send(fd: pair[0], buffer: UnsafeRawBufferPointer(buffer)),
                                buffer: buffer, fd: pair[0], peer: pair[1]))
            case .pipeWrite:
                // A full pipe (its smallest size), so that the write must wait for the reader.
                let (r, w) = try makePipe()
                _ = fcntl(w, 1031, 4096)  // F_SETPIPE_SZ (<fcntl.h> shows it only with _GNU_SOURCE)
                _ = fcntl(w, F_SETFL, O_NONBLOCK)
                let filler = [UInt8](repeating: 0, count: 4096)
                while Glibc.write(w, filler, filler.count) > 0 {}
                while Glibc.write(w, filler, 1) > 0 {}
                _ = fcntl(w, F_SETFL, 0)
                _ = fcntl(r, F_SETFL, O_NONBLOCK)
                jobs.append(Job(index: i, kind: kind, operation: .write(fd: w, buffer: UnsafeRawBufferPointer(buffer)),
                                buffer: buffer, fd: w, peer: r))
            case .accept:
                jobs.append(Job(index: i, kind: kind, operation: .accept(fd: listener, flags: Int32(SOCK_CLOEXEC.rawValue)),
                                buffer: buffer))
            case .sleep:
                jobs.append(Job(index: i, kind: kind, operation: .nanosleep(sleep), buffer: buffer))
            case .coldRead:
                let offset = (i / kinds.count) * Self.chunk
                jobs.append(Job(index: i, kind: kind, operation: .pread(fd: cold, buffer: buffer, offset: Int64(offset)),
                                buffer: buffer, fd: cold, offset: offset))
            case .open:
                let path = strdup("\(directory)/open-\(i)")!
                paths.append(path)
                jobs.append(Job(index: i, kind: kind, operation: .open(path: path, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o600),
                                buffer: buffer))
            }
        }
        self.all = jobs
        self.paths = paths
        self.marked = [Int](repeating: 0, count: jobs.count)
    }

    /// Writes each reader's payload and connects once per accept.
    func provideData() {
        for job in all {
            switch job.kind {
            case .pipeRead, .recv:
                _ = job.payload.withUnsafeBytes { Glibc.write(job.peer, $0.baseAddress, 8) }
            case .accept:
                let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = self.address
                _ = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                connections.append(client)
            default:
                break
            }
        }
    }

    /// Reads what the senders' and writers' peers hold, counting each job's own bytes.
    func drainSends() {
        var chunk = [UInt8](repeating: 0, count: 8192)
        for job in all where job.kind == .send || job.kind == .pipeWrite {
            let mark = UInt8(ascii: "A") + UInt8(job.index % 26)
            while true {
                let n = Glibc.read(job.peer, &chunk, chunk.count)
                if n <= 0 { break }
                marked[job.index] += chunk[0..<n].count(where: { $0 == mark })
            }
        }
    }

    /// Drains the senders' peers until every send's bytes arrived (the `blocking` backend's
    /// senders wait in their calls until then).
    func drainSendsUntilDone() throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while !sendsDone {
            guard ContinuousClock.now < deadline else { throw TestFailure("sends not done within 120 s") }
            drainSends()
            usleep(1000)
        }
    }

    private var sendsDone: Bool {
        all.allSatisfy { ($0.kind != .send && $0.kind != .pipeWrite) || marked[$0.index] >= Self.sendBytes }
    }

    /// Collects every job's result: the synchronous ones from their outcomes, the others
    /// from poll, each exactly once. Drains the senders' peers meanwhile when asked.
    func collect(from laio: Context, drainingSends: Bool) throws -> [Int: Result<Int, Errno>] {
        var results: [Int: Result<Int, Errno>] = [:]
        var pending: [Handle: Job] = [:]
        for job in all {
            switch job.outcome {
            case let .completed(result)?: results[job.index] = result
            case let .inProgress(handle)?:
                #expect(pending[handle] == nil, "\(handle) given twice while outstanding")
                pending[handle] = job
            case nil: Issue.record("\(job) has no outcome")
            }
        }
        // A generous bound: each call is a pipe read, a 20 ms sleep or a 64 KiB read.
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            if drainingSends { drainSends() }
            // A reported send's bytes are all in its peer's queue: the drain above took them.
            if pending.isEmpty { break }
            guard ContinuousClock.now < deadline else {
                throw TestFailure("\(pending.count) calls not reported within 120 s: \(pending.values.map(\.description).sorted())")
            }
            for completion in try laio.poll(maximum: 64, timeout: .milliseconds(10)) {
                guard let job = pending.removeValue(forKey: completion.handle) else {
                    Issue.record("\(completion.handle) reported but not outstanding (twice, or never issued)")
                    continue
                }
                results[job.index] = completion.result
            }
        }
        return results
    }

    /// Whether the listener's queue is empty (each connection was accepted once, by a job).
    var listenerEmpty: Bool {
        _ = fcntl(listener, F_SETFL, O_NONBLOCK)
        let left = accept(listener, nil, nil)
        if left >= 0 { close(left) }
        return left < 0 && errno == EAGAIN
    }

    /// Accepts what is queued with plain accept(2): after close, every connection is the test's.
    func acceptQueued() -> Int {
        _ = fcntl(listener, F_SETFL, O_NONBLOCK)
        var count = 0
        while case let fd = accept(listener, nil, nil), fd >= 0 { count += 1; close(fd) }
        return count
    }

    /// Closes every descriptor and frees every buffer and path of the jobs.
    func closeAll() {
        for job in all where [.pipeRead, .recv, .send, .pipeWrite].contains(job.kind) {
            close(job.fd)
            close(job.peer)
        }
        connections.forEach { close($0) }
        connections = []
        close(listener)
        close(cold)
        for job in all { job.buffer.deallocate() }
        for path in paths { unlink(path); free(path) }
    }
}
