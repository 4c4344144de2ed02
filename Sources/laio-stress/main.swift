// laio-stress: keeps many operations of mixed kinds in flight on each backend, with
// cancellations racing completions, and checks that nothing is lost:
//
//   laio-stress [--backend all|auto|uring|threads|blocking] [--operations N] [--in-flight N] [--seed N]
//
// Kinds: reads on pipes and loopback TCP sockets (the payload written at once, written and
// cancelled at once, or only cancelled), sends on sockets, preads of a patterned file
// (some cancelled), pwrites to a scratch file, fstats, opens (some cancelled) and closes;
// about one call in eight is submitted by a thread that exits as soon as submit returns.
// In the first round eight tasks also await calls on the same context with `perform` (pipe
// reads that another task's write completes, some cancelled, and preads of the patterned
// file): their results must be right, and none of their completions may reach the poll loop.
// Checks: every background call is reported exactly once; every byte read is the byte
// written (a cancelled read's payload is found still in its pipe or socket); every open
// descriptor is closed; closing the context with reads and sleeps in flight reports each
// once as cancelled; and, after a warm-up round, the process's open descriptors and
// heap bytes in use are the same before and after the measured rounds. Exits 1 on any
// violation. The default (20,000 operations per backend) is the bounded form scripts/test
// runs; `--operations 100000` is the soak.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CStressHeap
import LAIO
import LAIOArguments
import LAIOTestSupport
import Synchronization
import SystemPackage

/// What to run, from the command line.
struct Options {
    var backends = BackendKind.allCases
    var operations = 20_000
    var inFlight = 256
    var seed: UInt64 = 0x5EED
}

/// laio-stress's command line.
struct StressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laio-stress",
        abstract: "Keeps many operations of mixed kinds in flight on each backend, with cancels racing completions, "
            + "and checks that nothing is lost or leaked.",
        discussion: "Exits 1 on any violation. The default is the bounded form scripts/test runs; "
            + "--operations 100000 is the soak.")

    @Option(help: ArgumentHelp("The backends to stress.", valueName: "all|word"))
    var backend = BackendChoice.all

    @Option(help: ArgumentHelp("Operations per backend.", valueName: "n"))
    var operations = 20_000

    @Option(help: ArgumentHelp("Operations in flight at once (at most 4096).", valueName: "n"))
    var inFlight = 256

    @Option(help: ArgumentHelp("The seed of the operations' random mix.", valueName: "n"))
    var seed = 0x5EED

    func validate() throws {
        for (flag, value) in [("--operations", operations), ("--in-flight", inFlight), ("--seed", seed)] where value <= 0 {
            throw ValidationError("\(flag) needs a positive number")
        }
    }

    var options: Options {
        Options(backends: backend.kinds, operations: operations, inFlight: min(inFlight, 4096), seed: UInt64(seed))
    }
}

func fail(_ message: String) -> Never {
    let line = "laio-stress: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

/// xorshift64*: the same sequence for the same seed.
struct Random {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

/// Heap bytes in use (malloc's own count; exact, unlike the resident set).
func heapInUse() -> Int { Int(laio_stress_heap_in_use()) }

/// Reads exactly `count` bytes from `fd` into `into`, waiting up to 5 s; false if they do not come.
func readExactly(_ fd: Int32, _ into: UnsafeMutableRawPointer, _ count: Int) -> Bool {
    var got = 0
    while got < count {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 5000) == 1 else { return false }
        let n = read(fd, into + got, count - got)
        if n <= 0 { return false }
        got += n
    }
    return true
}

/// A pipe or a socket pair on which one read (and its payload) is outstanding at a time.
struct Channel {
    let readFD: Int32
    let writeFD: Int32
    let isSocket: Bool
    var busy = false
}

/// What a background call was, to check its result.
enum Expectation {
    case channelRead(channel: Int, slot: Int, payload: Bool)
    case channelSend(channel: Int, slot: Int)
    case fileRead(slot: Int, offset: Int, count: Int)
    case fileWrite(slot: Int, offset: Int, count: Int)
    case stat(slot: Int)
    case open
    case close
}

final class Stress {
    let laio: Context
    let options: Options
    var random: Random
    let fileFD: Int32, scratchFD: Int32
    let fileSize = 1 << 20
    /// The patterned file's path for background opens: allocated once, freed in release()
    /// (after close, when no call can read it any more).
    let path: UnsafeMutablePointer<CChar>
    var channels: [Channel] = []
    let slots: Int
    let buffers: UnsafeMutableRawBufferPointer
    let stats: UnsafeMutablePointer<stat>
    var freeSlots: [Int]
    var pending: [Handle: Expectation] = [:]
    /// Outstanding calls that were asked to stop: only these may be reported ECANCELED.
    var cancelAsked = Set<Handle>()
    var completions: [Completion] = []
    // Figures.
    var submitted = 0, synchronous = 0, background = 0, reported = 0, cancelsSent = 0, cancelled = 0
    var payloadsFoundAfterCancel = 0, closedInFlight = 0, errors: [String] = []
    /// Calls submitted by a thread that exited right after (the kernel cancels io_uring
    /// requests of exited threads; the library must run them again).
    var fromExitedThreads = 0

    init(laio: Context, options: Options, seed: UInt64, filePath: String, scratchPath: String) {
        self.laio = laio
        self.options = options
        self.random = Random(state: seed | 1)
        self.path = strdup(filePath)
        fileFD = open(filePath, O_RDONLY | O_CLOEXEC)
        scratchFD = open(scratchPath, O_RDWR | O_CLOEXEC)
        guard fileFD >= 0, scratchFD >= 0 else { fail("cannot open the test files") }
        slots = options.inFlight
        buffers = .allocate(byteCount: slots * 4096, alignment: 4096)
        stats = .allocate(capacity: slots)
        freeSlots = Array(0..<slots)
        for index in 0..<64 {
            if index % 2 == 0 {
                let (r, w): (Int32, Int32)
                do { (r, w) = try makePipe() } catch { fail("\(error)") }
                channels.append(Channel(readFD: r, writeFD: w, isSocket: false))
            } else {
                let (client, server): (Int32, Int32)
                do { (client, server) = try makeSocketPair() } catch { fail("cannot make a loopback TCP pair: \(error)") }
                var one: Int32 = 1
                setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                channels.append(Channel(readFD: server, writeFD: client, isSocket: true))
            }
        }
    }

    /// Frees everything. Safe only once the context is closed and every call reported
    /// (closeWithCallsInFlight does both): no call can touch these buffers after that.
    func release() {
        free(path)
        for channel in channels { close(channel.readFD); close(channel.writeFD) }
        close(fileFD)
        close(scratchFD)
        buffers.deallocate()
        stats.deallocate()
    }

    func problem(_ text: String) {
        if errors.count < 20 { errors.append(text) }
        if errors.count == 20 { errors.append("(more problems not listed)") }
    }

    func buffer(_ slot: Int, _ count: Int = 4096) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffers[(slot * 4096)..<(slot * 4096 + count)])
    }

    /// The 16-byte payload of a channel's current use: its index and a serial number.
    func payload(_ channel: Int, serial: Int, into: UnsafeMutableRawPointer) {
        into.storeBytes(of: UInt64(channel).littleEndian, as: UInt64.self)
        into.storeBytes(of: UInt64(serial).littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    func run() {
        while submitted < options.operations || !pending.isEmpty {
            while submitted < options.operations && pending.count < options.inFlight && !freeSlots.isEmpty {
                if !submitOne() { break }
            }
            if pending.isEmpty { continue }
            completions.removeAll(keepingCapacity: true)
            do {
                _ = try laio.poll(into: &completions, maximum: 256, timeout: .seconds(10))
            } catch {
                problem("poll: \(error)")
                return
            }
            if completions.isEmpty {
                problem("no completion within 10 s with \(pending.count) outstanding")
                return
            }
            for completion in completions { settle(completion.handle, completion.result) }
        }
    }

    /// Once the poll loop and the awaiting tasks are done: nothing may be outstanding.
    func checkNothingOutstanding() {
        if laio.outstandingCount != 0 { problem("\(laio.outstandingCount) operations still outstanding at the end") }
    }

    /// Submits one operation of a random kind; false if none could be (no free channel).
    func submitOne() -> Bool {
        let slot = freeSlots.removeLast()
        let choice = random.below(100)
        let serial = submitted
        var operation: Operation
        var expectation: Expectation
        var cancelAtOnce = false
        switch choice {
        case 0..<35, 35..<45:   // reads on channels; sends on sockets
            let wantSocket = choice >= 35
            guard let channel = channels.indices.first(where: { !channels[$0].busy && (!wantSocket || channels[$0].isSocket) }) else {
                freeSlots.append(slot)
                return false
            }
            channels[channel].busy = true
            payload(channel, serial: serial, into: buffer(slot).baseAddress!)
            if wantSocket {
                operation = .send(fd: channels[channel].writeFD, buffer: UnsafeRawBufferPointer(buffer(slot, 16)), flags: Int32(MSG_NOSIGNAL))
                expectation = .channelSend(channel: channel, slot: slot)
            } else {
                // The payload is written directly before or after the submit, or not at all.
                // The blocking backend would wait forever on an empty channel: its payload goes first.
                let plan = laio.backendKind == .blocking ? 0 : random.below(100)
                let writeFirst = plan < 20
                let writeAfter = plan >= 20 && plan < 85
                cancelAtOnce = plan >= 70   // 70..<85: written and cancelled at once; 85...: only cancelled
                let read = buffer(slot, 16)
                let target = UnsafeMutableRawBufferPointer(rebasing: buffers[(slot * 4096 + 2048)..<(slot * 4096 + 2064)])
                target.copyMemory(from: UnsafeRawBufferPointer(read))    // what must arrive
                read.initializeMemory(as: UInt8.self, repeating: 0)
                let fd = channels[channel].readFD
                operation = channels[channel].isSocket ? .recv(fd: fd, buffer: read) : .read(fd: fd, buffer: read)
                expectation = .channelRead(channel: channel, slot: slot, payload: writeFirst || writeAfter)
                if writeFirst { writePayload(channel, slot) }
                if writeAfter {
                    return issue(operation, expectation, cancel: cancelAtOnce, afterSubmit: { self.writePayload(channel, slot) })
                }
            }
        case 45..<65:
            let count = 1 + random.below(4096)
            let offset = random.below(fileSize - count)
            operation = .pread(fd: fileFD, buffer: buffer(slot, count), offset: Int64(offset))
            expectation = .fileRead(slot: slot, offset: offset, count: count)
            cancelAtOnce = random.chance(20)
        case 65..<75:
            let count = 1 + random.below(4096)
            let target = buffer(slot, count)
            for i in 0..<count { target[i] = UInt8(truncatingIfNeeded: serial &+ i) }
            operation = .pwrite(fd: scratchFD, buffer: UnsafeRawBufferPointer(target), offset: Int64(slot * 4096))
            expectation = .fileWrite(slot: slot, offset: slot * 4096, count: count)
        case 75..<87:
            operation = .fstat(fd: fileFD, buffer: stats + slot)
            expectation = .stat(slot: slot)
        default:
            operation = .openat(dirfd: AT_FDCWD, path: path, flags: O_RDONLY | O_CLOEXEC)
            expectation = .open
            cancelAtOnce = random.chance(25)
            freeSlots.append(slot)
        }
        return issue(operation, expectation, cancel: cancelAtOnce)
    }

    func writePayload(_ channel: Int, _ slot: Int) {
        let source = UnsafeRawBufferPointer(rebasing: buffers[(slot * 4096 + 2048)..<(slot * 4096 + 2064)])
        if write(channels[channel].writeFD, source.baseAddress, 16) != 16 { problem("payload write on channel \(channel) failed") }
    }

    /// Submits `operation`; `afterSubmit` runs right after the submit returns, before any
    /// cancel (the payload written after the read is issued).
    func issue(_ operation: Operation, _ expectation: Expectation, cancel: Bool,
               afterSubmit: (() -> Void)? = nil) -> Bool {
        submitted += 1
        let outcome: Outcome
        do {
            if random.chance(12) {
                fromExitedThreads += 1
                outcome = try submitFromExitingThread(operation)
            } else {
                outcome = try laio.submit(operation)
            }
        } catch {
            problem("submit: \(error) with \(pending.count) outstanding")
            submitted = options.operations   // stop submitting; drain what is out
            return false
        }
        switch outcome {
        case let .completed(result):
            synchronous += 1
            afterSubmit?()
            settle(nil, result, expectation)
        case let .inProgress(handle):
            background += 1
            pending[handle] = expectation
            afterSubmit?()
            if cancel {
                cancelsSent += 1
                cancelAsked.insert(handle)
                do { try laio.cancel(handle) } catch let error where error == .noSuchFileOrDirectory {
                    // Already finished: it is reported with its result.
                } catch {
                    problem("cancel: \(error)")
                }
            }
        }
        return true
    }

    /// Submits `operation` from a new thread that exits as soon as submit returns.
    func submitFromExitingThread(_ operation: Operation) throws(Errno) -> Outcome {
        let laio = self.laio
        let carried = CarriedOperation(operation: operation)
        return try TestThread.run { Result { () throws(Errno) -> Outcome in try laio.submit(carried.operation) } }.get()
    }

    func settle(_ handle: Handle?, _ result: Result<Int, Errno>, _ known: Expectation? = nil) {
        let expectation: Expectation
        if let known {
            expectation = known
        } else {
            guard let handle, let found = pending.removeValue(forKey: handle) else {
                problem("a completion for \(String(describing: handle)) that is not outstanding (duplicate or stray)")
                return
            }
            reported += 1
            expectation = found
        }
        let asked = handle.map { cancelAsked.remove($0) != nil } ?? false
        if case .failure(.canceled) = result {
            cancelled += 1
            if !asked { problem("ECANCELED for a call nobody cancelled (\(expectation))") }
        }
        switch expectation {
        case let .channelRead(channel, slot, payload):
            let fd = channels[channel].readFD
            let expected = UnsafeRawBufferPointer(rebasing: buffers[(slot * 4096 + 2048)..<(slot * 4096 + 2064)])
            let got = buffer(slot, 16)
            switch result {
            case let .success(count) where payload && count > 0 && count <= 16:
                if count < 16 && !readExactly(fd, got.baseAddress! + count, 16 - count) { problem("channel \(channel): short read, rest missing") }
                if !got.elementsEqual(expected) { problem("channel \(channel): wrong bytes read") }
            case .failure(.canceled):
                if payload {
                    // The payload was not taken by the cancelled read: it must still be there.
                    if readExactly(fd, got.baseAddress!, 16) && got.elementsEqual(expected) {
                        payloadsFoundAfterCancel += 1
                    } else {
                        problem("channel \(channel): a cancelled read's payload is lost")
                    }
                }
            default:
                problem("channel \(channel) read: \(result) (payload written: \(payload))")
            }
            channels[channel].busy = false
            freeSlots.append(slot)
        case let .channelSend(channel, slot):
            let got = UnsafeMutableRawBufferPointer(rebasing: buffers[(slot * 4096 + 2048)..<(slot * 4096 + 2064)])
            if result != .success(16) {
                problem("send on channel \(channel): \(result)")
            } else if !readExactly(channels[channel].readFD, got.baseAddress!, 16) || !got.elementsEqual(buffer(slot, 16)) {
                problem("channel \(channel): sent bytes did not arrive intact")
            }
            channels[channel].busy = false
            freeSlots.append(slot)
        case let .fileRead(slot, offset, count):
            switch result {
            case .success(count):
                let got = buffer(slot, count)
                for i in 0..<count where got[i] != patternByte(at: offset + i) {
                    problem("pread at \(offset): byte \(i) is wrong")
                    break
                }
            case .failure(.canceled): break
            default: problem("pread of \(count) at \(offset): \(result)")
            }
            freeSlots.append(slot)
        case let .fileWrite(slot, offset, count):
            if result != .success(count) {
                problem("pwrite of \(count): \(result)")
            } else {
                var check = [UInt8](repeating: 0, count: count)
                let n = check.withUnsafeMutableBytes { pread(scratchFD, $0.baseAddress, count, off_t(offset)) }
                if n != count || !check.elementsEqual(buffer(slot, count)) { problem("pwrite at \(offset): the file does not hold the bytes") }
            }
            freeSlots.append(slot)
        case let .stat(slot):
            if result != .success(0) || stats[slot].st_size != fileSize { problem("fstat: \(result), size \(stats[slot].st_size)") }
            freeSlots.append(slot)
        case .open:
            switch result {
            case let .success(fd):
                // Close half through LAIO (a kind of its own), half directly.
                guard random.chance(50) else {
                    close(Int32(fd))
                    break
                }
                switch Result(catching: { () throws(Errno) -> Outcome in try laio.submit(.close(fd: Int32(fd))) }) {
                case let .success(.inProgress(handle)):
                    pending[handle] = .close
                    background += 1
                case let .success(.completed(closed)):
                    if closed != .success(0) { problem("close: \(closed)") }
                case let .failure(error):
                    problem("close submit: \(error)")
                    close(Int32(fd))
                }
            case .failure(.canceled): break
            default: problem("openat: \(result)")
            }
        case .close:
            if result != .success(0) { problem("close: \(result)") }
        }
    }
}

extension Stress {
    /// Closes the context with reads blocked on every pipe and sleeps in flight: each must be
    /// reported once as cancelled, and no call may touch its buffer after close returns
    /// (the sanitizers watch the buffers, which are freed right after).
    func closeWithCallsInFlight() {
        guard laio.backendKind != .blocking else { laio.close(); return }
        var handles = Set<Handle>()
        for (index, channel) in channels.enumerated() where !channel.isSocket {
            if case let .inProgress(handle)? = try? laio.submit(.read(fd: channel.readFD, buffer: buffer(index % slots, 16))) {
                handles.insert(handle)
            }
        }
        for _ in 0..<8 {
            if case let .inProgress(handle)? = try? laio.submit(.nanosleep(.seconds(30))) { handles.insert(handle) }
        }
        laio.close()
        var seen = Set<Handle>()
        while let batch = try? laio.poll(maximum: 256, timeout: .zero), !batch.isEmpty {
            for completion in batch {
                if !seen.insert(completion.handle).inserted { problem("after close: \(completion.handle) reported twice") }
                if completion.result != .failure(.canceled) { problem("after close: \(completion.result), expected ECANCELED") }
            }
        }
        if seen != handles { problem("after close: \(handles.count) calls in flight, \(seen.count) reported") }
        closedInFlight = handles.count
    }
}

/// Tasks that await calls with `perform` on the context the poll loop stresses (in the
/// first round), until told to stop or 500 rounds each: pipe reads whose write comes from another task (one in four cancelled as it
/// waits), then a pread of the patterned file.
final class AwaitingLoad: Sendable {
    let laio: Context
    let fd: Int32
    let stopping = Atomic<Bool>(false)
    let problems = LockBox<[String]>([])
    let counts = LockBox<(awaited: Int, cancelled: Int)>((0, 0))
    /// Posted when every task has ended; the semaphore is freed in `stop`, after the wait.
    let done = UnsafeSendablePointer(UnsafeMutablePointer<sem_t>.allocate(capacity: 1))

    /// Rounds per task at most: a bounded load, so that the heap check before and after the
    /// measured rounds compares like with like (the concurrency runtime keeps caches that
    /// grow with the number of tasks' jobs, not with leaks).
    let rounds: Int

    init(laio: Context, filePath: String, rounds: Int) {
        self.laio = laio
        self.rounds = max(rounds, 1)
        fd = open(filePath, O_RDONLY | O_CLOEXEC)
        sem_init(done.pointer, 0, 0)
    }

    func start() {
        Task.detached {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<8 { group.addTask { await self.work(worker) } }
            }
            sem_post(self.done.pointer)
        }
    }

    /// Stops the tasks and waits for them; returns how many calls they awaited and how
    /// many of those were cancelled.
    func stop() -> (Int, Int) {
        stopping.store(true, ordering: .relaxed)
        while sem_wait(done.pointer) != 0 && errno == EINTR {}
        sem_destroy(done.pointer)
        done.pointer.deallocate()
        close(fd)
        return counts.withLock { ($0.awaited, $0.cancelled) }
    }

    private func problem(_ text: String) { problems.withLock { if $0.count < 10 { $0.append("awaiting task: " + text) } } }

    private func work(_ worker: Int) async {
        let buffer = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096))
        defer { buffer.value.deallocate() }
        var round = 0
        // On `blocking` a read of an empty pipe blocks its thread, and eight of them would
        // hold every thread of the cooperative pool, the writers' too: preads only there.
        let pipes = laio.backendKind != .blocking
        while !stopping.load(ordering: .relaxed) && round < rounds {
            round += 1
            if pipes { await pipeRoundTrip(worker, round, buffer) }
            let offset = ((round * 8 + worker) * 4096) % (1 << 20)
            do {
                let count = try await laio.perform(.pread(fd: fd, buffer: buffer.value, offset: Int64(offset)))
                if count != 4096 || buffer.value[17] != patternByte(at: offset + 17) { problem("pread at \(offset) gave wrong bytes") }
            } catch {
                problem("pread failed: \(error)")
            }
            counts.withLock { $0.awaited += 1 }
        }
    }

    private func pipeRoundTrip(_ worker: Int, _ round: Int, _ buffer: UnsafeSendable<UnsafeMutableRawBufferPointer>) async {
        let pipe: (Int32, Int32)
        do { pipe = try makePipe() } catch { problem("\(error)"); return }
        defer { close(pipe.0); close(pipe.1) }
        let cancel = (round + worker) % 4 == 0
        let read = Task { () async throws -> Int in try await self.laio.perform(.read(fd: pipe.0, buffer: buffer.value)) }
        if cancel {
            while laio.outstandingCount == 0 && !stopping.load(ordering: .relaxed) { await Task.yield() }
            read.cancel()
        }
        let message = "worker \(worker) round \(round)"
        let written = message.withCString { Glibc.write(pipe.1, $0, strlen($0)) }
        switch await read.result {
        case .success(let count):
            let got = String(decoding: UnsafeRawBufferPointer(rebasing: buffer.value[0..<max(count, 0)]), as: UTF8.self)
            if count != written || got != message { problem("pipe read gave \(count) bytes \(got.debugDescription), wrote \(message)") }
        case .failure(let error):
            if !(cancel && error as? Errno == .canceled) { problem("pipe read failed: \(error)") }
            // A cancelled read took nothing from the pipe.
            else if Glibc.read(pipe.0, buffer.value.baseAddress, 4096) != written { problem("a cancelled read's bytes are not in its pipe") }
            counts.withLock { $0.cancelled += 1 }
        }
        counts.withLock { $0.awaited += 1 }
    }
}

/// The semaphore of `AwaitingLoad`.
struct UnsafeSendablePointer: @unchecked Sendable {
    // @unchecked: a sem_t is made to be shared between threads; it is freed only after
    // the last wait on it returned.
    let pointer: UnsafeMutablePointer<sem_t>
    init(_ pointer: UnsafeMutablePointer<sem_t>) { self.pointer = pointer }
}

/// The patterned file (1 MiB) and an empty scratch file, in /var/tmp.
func makeFiles() -> (String, String) {
    do {
        let file = try makeFile("stress", bytes: 1 << 20).path
        do { return (file, try makeFile("stress-scratch", bytes: 0).path) } catch { unlink(file); throw error }
    } catch {
        fail("cannot make the test files: \(error)")
    }
}

/// One round per backend; returns false if any check failed.
func round(_ options: Options, operations: Int, files: (String, String), quiet: Bool, awaiting withTasks: Bool = false) -> Bool {
    var passed = true
    for (index, kind) in options.backends.enumerated() {
        let laio: Context
        do { laio = try Context(backend: kind) } catch {
            if !quiet { print("\(kind): skipped: \(error)") }
            continue
        }
        var roundOptions = options
        roundOptions.operations = operations
        let stress = Stress(laio: laio, options: roundOptions, seed: options.seed &+ UInt64(index) &* 0x9E37, filePath: files.0, scratchPath: files.1)
        let awaiting = withTasks ? AwaitingLoad(laio: laio, filePath: files.0, rounds: 500) : nil
        awaiting?.start()
        let elapsed = ContinuousClock().measure { stress.run() }
        let (awaited, awaitedCancelled) = awaiting?.stop() ?? (0, 0)
        stress.errors += awaiting?.problems.withLock { $0 } ?? []
        if withTasks && stress.errors.isEmpty {
            print("\(kind): \(awaited) calls awaited by tasks (\(awaitedCancelled) cancelled) beside \(stress.submitted) polled operations; no problem")
        }
        stress.checkNothingOutstanding()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        stress.closeWithCallsInFlight()
        stress.release()
        if !quiet || !stress.errors.isEmpty {
            let time = (seconds * 10).rounded() / 10
            var line = "\(kind): \(stress.submitted) operations in \(time) s: \(stress.synchronous) synchronous, "
            line += "\(stress.background) background (\(stress.reported) reported), \(stress.cancelsSent) cancels sent, "
            line += "\(stress.cancelled) cancelled, \(stress.payloadsFoundAfterCancel) cancelled reads' payloads found intact, "
            line += "\(stress.closedInFlight) in flight at close, \(stress.fromExitedThreads) submitted by exited threads; "
            line += stress.errors.isEmpty ? "no problem" : "\(stress.errors.count) problem(s):"
            print(line)
        }
        for error in stress.errors { print("  \(error)") }
        if stress.background != stress.reported { print("  \(stress.background) went to the background but \(stress.reported) were reported") }
        passed = passed && stress.errors.isEmpty && stress.background == stress.reported
    }
    return passed
}

let options = StressCommand.parseCommandLine().options
let files = makeFiles()
// A warm-up round first, so that what the runtime and libraries allocate once (caches,
// thread stacks reused by glibc) is not counted as growth.
// It is also the round with tasks that await calls on each context beside the poll loop
// (AwaitingLoad): the concurrency runtime's caches for the tasks' threads vary from run to
// run by tens of kilobytes, so the heap is counted over the rounds without them.
var passed = round(options, operations: min(options.operations, 2_000), files: files, quiet: true, awaiting: true)
let descriptorsBefore = openDescriptors(), heapBefore = heapInUse()
passed = round(options, operations: options.operations, files: files, quiet: false) && passed
let descriptorsAfter = openDescriptors(), heapAfter = heapInUse()
print("open descriptors: \(descriptorsBefore) before, \(descriptorsAfter) after; heap in use: \(heapBefore) bytes before, "
      + "\(heapAfter) after (\(heapAfter - heapBefore) more)")
if descriptorsAfter != descriptorsBefore {
    print("descriptors leaked: \(descriptorsAfter - descriptorsBefore)")
    passed = false
}
// A few kilobytes move with the allocator's own bookkeeping; a leak of one buffer or one
// slot per operation would be megabytes.
if heapAfter - heapBefore > 64 * 1024 {
    print("heap grew by \(heapAfter - heapBefore) bytes")
    passed = false
}
print(passed ? "laio-stress: passed" : "laio-stress: FAILED")
// Here, not in a defer: top-level code ends in exit(), so a defer would never run.
unlink(files.0)
unlink(files.1)
exit(passed ? 0 : 1)

/// An operation handed to a thread of laio-stress's own. Operation is not Sendable (it points
/// into its caller's memory); this crossing is safe because `TestThread.run` joins the thread
/// before it returns, so the memory is used by one thread at a time and outlives the use.
private struct CarriedOperation: @unchecked Sendable {
    let operation: Operation
}
