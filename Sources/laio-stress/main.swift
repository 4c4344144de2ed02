// laio-stress: keeps many operations of mixed kinds in flight on each backend, with
// cancellations racing completions, and checks that nothing is lost:
//
//   laio-stress [--backend all|auto|uring|threads|blocking] [--operations N] [--in-flight N] [--seed N]
//
// Kinds: reads on pipes and loopback TCP sockets (the payload written at once, written and
// cancelled at once, or only cancelled), sends on sockets, preads of a patterned file
// (some cancelled), pwrites to a scratch file, fstats, opens (some cancelled) and closes;
// about one call in eight is submitted by a thread that exits as soon as submit returns.
// Beside that poll loop, in every round, eight tasks await calls on the same context with
// `perform` (pipe reads that the same task's write completes, some cancelled, and preads of
// the patterned file): their results must be right, and none of their completions may reach
// the poll loop.
// Checks: every background call is reported exactly once; every byte read is the byte
// written (a cancelled read's payload is found still in its pipe or socket); every open
// descriptor is closed; closing the context with reads and sleeps in flight reports each
// once as cancelled; and, after a warm-up round of the same kind, the process's open
// descriptors are the same before and after the four measured rounds, and the heap bytes in
// use do not grow in every one of them (the run's last lines say why). Exits 1 on any
// violation. The default (20,000 operations per backend, in four rounds) is the bounded form
// scripts/test runs; `--operations 100000` is the soak.
//
// The rooms: StressCommand.swift (the command line), Round.swift (one round over every
// backend), Stress.swift (the poll loop: submitting) and Stress+Settle.swift (checking each
// completion, closing with calls in flight); here the run itself and the awaiting tasks.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LAIO
import LAIOTestSupport

/// Tasks that await calls with `perform` on the context the poll loop stresses, in every
/// round: eight tasks of `rounds` rounds each, a pipe read whose write comes once the read is
/// awaited (one in four cancelled as it waits), then a pread of the patterned file.
final class AwaitingLoad: Sendable {
    let laio: Context
    let fd: Int32
    let problems = LockBox<[String]>([])
    let counts = LockBox<(awaited: Int, cancelled: Int)>((0, 0))
    /// Posted when every task has ended; the semaphore is freed in `finish`, after the wait.
    let done = UnsafeSendablePointer(UnsafeMutablePointer<sem_t>.allocate(capacity: 1))

    /// Rounds per task: a fixed load, whatever the poll loop's length, so that the warm-up and
    /// the measured round await the same calls and the heap check compares like with like
    /// (the concurrency runtime keeps caches that grow with the number of tasks' jobs, not
    /// with leaks).
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

    /// Waits for the tasks to end their rounds; returns how many calls they awaited and how
    /// many of those were cancelled.
    func finish() -> (Int, Int) {
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
        while round < rounds {
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
            // Until a call is out (this read's own at the latest: its pipe is empty until the write below).
            while laio.outstandingCount == 0 { await Task.yield() }
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

let options = StressCommand.parseCommandLine().options
let files = makeFiles()
// A warm-up round first, of the same kind as the measured ones (the poll loop and the awaiting
// tasks), so that what the runtime and libraries allocate once (caches, thread stacks reused
// by glibc, the concurrency runtime's pools) is not counted as growth.
var passed = round(options, operations: min(options.operations, 2_000), files: files, quiet: true)
// Then the operations in four measured rounds, the heap counted after each. A leak grows the
// heap in every round, by at least what it leaks per round; the caches of the allocator and
// the runtime (per-thread caches of the pool's workers and the tasks' threads) move it by
// tens of kilobytes either way from one round to the next, and stay put in some. So the round
// that grew least must have grown by under 64 KiB: a leak of one 32-byte chunk per operation
// or per awaited call would be hundreds of kilobytes in every round.
let measuredRounds = 4
let descriptorsBefore = openDescriptors()
var heap = [heapInUse()]
for index in 0..<measuredRounds {
    let share = options.operations / measuredRounds + (index < options.operations % measuredRounds ? 1 : 0)
    print("round \(index + 1) of \(measuredRounds): \(share) operations per backend")
    passed = round(options, operations: share, files: files, quiet: false) && passed
    heap.append(heapInUse())
}
let descriptorsAfter = openDescriptors()
let growths = zip(heap.dropFirst(), heap).map { $0 - $1 }
print("open descriptors: \(descriptorsBefore) before, \(descriptorsAfter) after; heap in use: \(heap[0]) bytes before, "
      + "then \(heap.dropFirst().map(String.init).joined(separator: ", ")) after each round "
      + "(growth per round: \(growths.map(String.init).joined(separator: ", ")))")
if descriptorsAfter != descriptorsBefore {
    print("descriptors leaked: \(descriptorsAfter - descriptorsBefore)")
    passed = false
}
if !heapIsCounted() {
    print("heap check skipped: built with a sanitizer, whose allocator mallinfo2 does not count")
} else if let least = growths.min(), least > 64 * 1024 {
    print("heap grew in every measured round, by \(least) bytes at least: a leak")
    passed = false
}
print(passed ? "laio-stress: passed" : "laio-stress: FAILED")
// Here, not in a defer: top-level code ends in exit(), so a defer would never run.
unlink(files.0)
unlink(files.1)
exit(passed ? 0 : 1)
