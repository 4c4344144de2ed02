import Synchronization
import LAIOCore

/// The hand-off marks between a submitting caller and the worker running its call.
enum Phase {
    static let waiting: UInt8 = 0   // the caller is in its lazy window
    static let done: UInt8 = 1      // the worker has stored the result
    static let detached: UInt8 = 2  // the caller returned .inProgress
}

/// A stack of free slot indices (Treiber). Pushes come from any thread without a lock;
/// pops happen only under the pool's lock, so there is one popper at a time and a popped
/// index cannot come back during a pop (no ABA).
final class FreeList: Sendable {
    let head = Atomic<UInt32>(0)  // index + 1 of the top slot; 0 when empty
    let slots: [Slot]

    /// Starts with every slot free.
    init(slots: [Slot]) {
        self.slots = slots
        for index in slots.indices.reversed() { push(Int32(index)) }
    }

    func push(_ index: Int32) {
        var top = head.load(ordering: .relaxed)
        while true {
            slots[Int(index)].nextFree.store(top, ordering: .relaxed)
            let (exchanged, current) = head.compareExchange(expected: top, desired: UInt32(index + 1), ordering: .releasing)
            if exchanged { return }
            top = current
        }
    }

    /// Pops a free slot. Call only with the pool's lock held, and only when one is free.
    func pop() -> Int32 {
        var top = head.load(ordering: .acquiring)
        while true {
            precondition(top != 0, "no free slot although a credit was taken")
            let next = slots[Int(top - 1)].nextFree.load(ordering: .relaxed)
            let (exchanged, current) = head.compareExchange(expected: top, desired: next, ordering: .acquiring)
            if exchanged { return Int32(top - 1) }
            top = current
        }
    }
}

/// One operation's place in the pool, reused after its completion is delivered.
final class Slot: @unchecked Sendable {
    // @unchecked: `phase` and `cancelRequested` are atomics; `generation`, `status` and
    // `operation` are written under the pool's lock (the worker reads `operation` after
    // the lock, or the mailbox's release-acquire exchange, that published it); `result` is written by the worker before
    // its release-exchange of `phase` and read by the caller after its acquire.
    let phase = Atomic<UInt8>(0)
    let cancelRequested = Atomic<Bool>(false)
    /// The next free slot (index + 1) while this one is on the free list.
    let nextFree = Atomic<UInt32>(0)
    var generation: UInt32 = 0
    var status: Status = .free
    var operation: Operation = .syscall(number: -1)
    var result = 0

    enum Status: Equatable { case free, queued, running(Int32) }
}
