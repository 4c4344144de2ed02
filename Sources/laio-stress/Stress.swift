// The poll loop under stress: one context, operations of mixed kinds submitted at random
// (some cancelled at once, some from threads that exit right after), every completion
// settled against what its call was (Stress+Settle.swift).
#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport

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
    /// What the tasks beside the poll loop awaited (AwaitingLoad), and how many of those were cancelled.
    var awaited = 0, awaitedCancelled = 0

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
}

/// An operation handed to a thread of laio-stress's own. Operation is not Sendable (it points
/// into its caller's memory); this crossing is safe because `TestThread.run` joins the thread
/// before it returns, so the memory is used by one thread at a time and outlives the use.
private struct CarriedOperation: @unchecked Sendable {
    let operation: Operation
}
