#if canImport(Glibc)
import Glibc
#endif
import LAIOCore
import SystemPackage
import Testing

/// Whether the queue's notification descriptor is readable now (poll(2) without waiting).
private func isSignalled(_ queue: CompletionQueue) -> Bool {
    var entry = pollfd(fd: queue.notificationDescriptor, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, 0) == 1 && entry.revents & Int16(POLLIN) != 0
}

private func completion(_ slot: Int, _ value: Int, tagged: Bool = false) -> Completion {
    Completion(handle: Handle(slot: slot, generation: 1, routeTagged: tagged), result: .success(value))
}

/// Waits, yielding, until `condition` holds; fails the test after a minute (a hang, not a
/// slow machine: every condition here holds within moments).
private func eventually(_ what: Comment, _ condition: () -> Bool,
                        sourceLocation: SourceLocation = #_sourceLocation) async {
    let deadline = ContinuousClock.now + .seconds(60)
    while !condition() {
        if ContinuousClock.now > deadline {
            Issue.record("never: \(what)", sourceLocation: sourceLocation)
            return
        }
        await Task.yield()
    }
}

@Suite("completion queue: credits")
struct CompletionQueueCreditTests {
    @Test("reserve takes credits up to capacity, then throws EAGAIN without taking one")
    func reserveBound() throws {
        let queue = try CompletionQueue(capacity: 3)
        for taken in 1...3 {
            try queue.reserve()
            #expect(queue.outstandingCount == taken)
        }
        #expect(!queue.hasCredit)
        #expect(throws: Errno.resourceTemporarilyUnavailable) { try queue.reserve() }
        #expect(queue.outstandingCount == 3)
        queue.release()
        #expect(queue.hasCredit && queue.outstandingCount == 2)
        try queue.reserve()
    }

    @Test("take() after a look may overshoot capacity, and the queue then holds more than capacity completions")
    func takeOvershoots() throws {
        let queue = try CompletionQueue(capacity: 2)
        // Two submitters looked while a credit was free; both take.
        #expect(queue.hasCredit)
        try queue.reserve()
        queue.take()
        queue.take()
        #expect(queue.outstandingCount == 3 && !queue.hasCredit)
        for slot in 0..<3 { queue.push(completion(slot, slot)) }
        var out: [Completion] = []
        #expect(queue.drain(into: &out, maximum: 10) == 3)
        #expect(out == (0..<3).map { completion($0, $0) })
        #expect(queue.outstandingCount == 0)
    }

    @Test("poll's drain hands completions out oldest first, returns their credits, and the descriptor is readable exactly while some wait")
    func drainAndSignal() throws {
        let queue = try CompletionQueue(capacity: 200)
        #expect(!isSignalled(queue))
        // More than the pending FIFO's first size, so it grows.
        for slot in 0..<150 {
            try queue.reserve()
            queue.push(completion(slot, slot * 2))
        }
        #expect(isSignalled(queue))
        var out: [Completion] = []
        #expect(queue.drain(into: &out, maximum: 100) == 100)
        #expect(isSignalled(queue), "50 still wait")
        #expect(queue.outstandingCount == 50)
        #expect(queue.drain(into: &out, maximum: 100) == 50)
        #expect(!isSignalled(queue))
        #expect(out == (0..<150).map { completion($0, $0 * 2) })
        #expect(queue.outstandingCount == 0)
        #expect(queue.drain(into: &out, maximum: 1) == 0)
        try queue.reserve()
        queue.push(completion(7, 7))
        #expect(isSignalled(queue), "signalled again on the next empty → non-empty step")
    }
}

@Suite("completion queue: claims")
struct CompletionQueueClaimTests {
    @Test("a claimed call's completion goes to its claim, not to poll, and its credit returns when taken")
    func claimedCompletion() throws {
        let queue = try CompletionQueue(capacity: 4)
        let claimed = completion(1, 11)
        try queue.reserve()
        queue.claim(claimed.handle)
        #expect(queue.takeResult(of: claimed.handle) == nil, "not finished yet")
        queue.push(claimed)
        #expect(!isSignalled(queue))
        var out: [Completion] = []
        #expect(queue.drain(into: &out, maximum: 4) == 0)
        #expect(queue.outstandingCount == 1, "the credit is held until the result is taken")
        #expect(queue.takeResult(of: claimed.handle) == .success(11))
        #expect(queue.outstandingCount == 0)
        #expect(queue.takeResult(of: claimed.handle) == nil, "the claim ended")
        // An unclaimed one goes to poll.
        try queue.reserve()
        queue.push(completion(2, 22))
        #expect(queue.drain(into: &out, maximum: 4) == 1 && out == [completion(2, 22)])
    }

    @Test("an unclaimed call's completion goes to poll")
    func unclaim() throws {
        let queue = try CompletionQueue(capacity: 4)
        let handle = Handle(slot: 3, generation: 1)
        try queue.reserve()
        queue.claim(handle)
        #expect(queue.untaggedClaimCount == 1)
        queue.unclaim(handle)
        #expect(queue.untaggedClaimCount == 0)
        queue.push(Completion(handle: handle, result: .failure(.canceled)))
        var out: [Completion] = []
        #expect(queue.drain(into: &out, maximum: 4) == 1)
        #expect(out == [Completion(handle: handle, result: .failure(.canceled))])
    }

    @Test("only claims without the route tag count as untagged, until they end")
    func untaggedCount() throws {
        let queue = try CompletionQueue(capacity: 4)
        let ring = completion(1, 1), pool = completion(1, 2, tagged: true)
        try queue.reserve()
        try queue.reserve()
        queue.claim(ring.handle)
        queue.claim(pool.handle)
        #expect(queue.untaggedClaimCount == 1)
        queue.push(pool)
        queue.push(ring)
        #expect(queue.untaggedClaimCount == 1, "resolved, not yet taken")
        #expect(queue.takeResult(of: ring.handle) == .success(1))
        #expect(queue.untaggedClaimCount == 0)
        #expect(queue.takeResult(of: pool.handle) == .success(2))
        #expect(queue.outstandingCount == 0)
    }

    @Test("a task that waits for a finished call is resumed at once; one that waits first is resumed by the push")
    func waitingTasks() async throws {
        let queue = try CompletionQueue(capacity: 4)
        let early = completion(1, 5)
        try queue.reserve()
        queue.claim(early.handle)
        queue.push(early)
        let first = await withUnsafeContinuation { queue.wait(for: early.handle, with: $0) }
        #expect(first == .success(5))
        #expect(queue.outstandingCount == 0)

        let late = completion(2, 6)
        try queue.reserve()
        queue.claim(late.handle)
        let second = await withUnsafeContinuation { continuation in
            queue.wait(for: late.handle, with: continuation)
            queue.push(late)
        }
        #expect(second == .success(6))
        #expect(queue.outstandingCount == 0)
    }

    @Test("a deferred resumption waits for resumeDeferred, and the credit returns with it")
    func deferredResumption() async throws {
        let queue = try CompletionQueue(capacity: 4)
        let finished = completion(1, 9)
        try queue.reserve()
        queue.claim(finished.handle)
        var outstandingBetween = -1
        let result = await withUnsafeContinuation { continuation in
            queue.wait(for: finished.handle, with: continuation)
            queue.push(finished, deferringResumption: true)
            // Set aside, not resumed, not handed to poll: the credit is still held.
            outstandingBetween = queue.outstandingCount
            queue.resumeDeferred()
        }
        #expect(outstandingBetween == 1)
        #expect(result == .success(9))
        #expect(queue.outstandingCount == 0)
        var out: [Completion] = []
        #expect(queue.drain(into: &out, maximum: 4) == 0)
        queue.resumeDeferred()  // nothing left: a no-op
    }
}

@Suite("completion queue: waiting for room")
struct CompletionQueueRoomTests {
    @Test("with a credit free and nobody waiting, a wait for room ends at once")
    func roomAtOnce() async throws {
        let queue = try CompletionQueue(capacity: 2)
        try queue.reserve()
        #expect(await queue.waitForRoom(first: false) == .room)
        #expect(!queue.hasRoomWaiters)
    }

    @Test("waiters are woken in order of arrival, one per returned credit; `first` goes to the front")
    func order() async throws {
        let queue = try CompletionQueue(capacity: 1)
        try queue.reserve()
        let a = Task { await queue.waitForRoom(first: false) }
        await eventually("a waits") { queue.roomWaiterCount == 1 }
        let b = Task { await queue.waitForRoom(first: false) }
        await eventually("b waits") { queue.roomWaiterCount == 2 }
        let front = Task { await queue.waitForRoom(first: true) }
        await eventually("front waits") { queue.roomWaiterCount == 3 }

        // A credit comes back: the waiter at the front is woken, and only it.
        queue.release()
        #expect(await front.value == .room)
        #expect(queue.roomWaiterCount == 2)
        // The credit is free while a and b wait: a newcomer queues behind them.
        let late = Task { await queue.waitForRoom(first: false) }
        await eventually("late waits") { queue.roomWaiterCount == 3 }
        // Passing room on wakes the next in line, a.
        queue.passRoomOn()
        #expect(await a.value == .room)
        #expect(queue.roomWaiterCount == 2)
        // A drain of a completion wakes b.
        try queue.reserve()
        queue.push(completion(0, 0))
        var out: [Completion] = []
        #expect(queue.drain(into: &out, maximum: 1) == 1)
        #expect(await b.value == .room)
        queue.wakeRoomWaiter()
        #expect(await late.value == .room)
        #expect(!queue.hasRoomWaiters)
    }

    @Test("a cancelled waiter ends with .cancelled and leaves the line")
    func cancelled() async throws {
        let queue = try CompletionQueue(capacity: 1)
        try queue.reserve()
        let waiter = Task { await queue.waitForRoom(first: false) }
        await eventually("it waits") { queue.roomWaiterCount == 1 }
        waiter.cancel()
        #expect(await waiter.value == .cancelled)
        #expect(queue.roomWaiterCount == 0)
        // A task cancelled before it waits does not wait.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await queue.waitForRoom(first: false)
        }
        #expect(await early.value == .cancelled)
        // Not cancellable: only room or close ends the wait.
        let steady = Task { await queue.waitForRoom(first: false, cancellable: false) }
        await eventually("it waits") { queue.roomWaiterCount == 1 }
        steady.cancel()
        queue.release()
        #expect(await steady.value == .room)
    }

    @Test("closeRoom ends every wait for room, now and later, with .closed")
    func closed() async throws {
        let queue = try CompletionQueue(capacity: 1)
        try queue.reserve()
        let waiters = (0..<3).map { _ in Task { await queue.waitForRoom(first: false) } }
        await eventually("all wait") { queue.roomWaiterCount == 3 }
        queue.closeRoom()
        for waiter in waiters { #expect(await waiter.value == .closed) }
        #expect(queue.roomWaiterCount == 0)
        queue.release()
        #expect(await queue.waitForRoom(first: false) == .closed, "even with a credit free")
    }
}
