#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import Synchronization

/// The values of a worker's mailbox other than a slot index.
enum Mailbox {
    static let empty: Int32 = -2     // idle, nothing delivered yet
    static let sleeping: Int32 = -3  // idle and parked on the semaphore
    static let recheck: Int32 = -1   // look at the pool's state again (shutdown)
}

/// A worker thread's record and mailbox: an idle worker spins on the mailbox for a while,
/// then parks on its semaphore. Delivering wakes it only if it parked. A record outlives
/// its thread and is reused by the next one (the pool keeps every record until deinit).
final class Worker: @unchecked Sendable {
    // @unchecked: `mailbox` is atomic; `thread` is written by the worker before it first
    // takes the pool's lock and read by cancellers under that lock, while the worker runs a
    // call. The semaphore is thread-safe.
    // A pointer: a sem_t must not move while threads wait on it; freed in deinit.
    let semaphore: UnsafeMutablePointer<sem_t>
    let mailbox = Atomic<Int32>(Mailbox.empty)
    var thread = pthread_t()

    init() {
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
    }

    /// Hands `value` (a slot index or `Mailbox.recheck`) to this idle worker. The release
    /// publishes the slot's fields, which the submitter wrote under the pool's lock.
    func deliver(_ value: Int32) {
        if mailbox.exchange(value, ordering: .acquiringAndReleasing) == Mailbox.sleeping {
            sem_post(semaphore)
        }
    }

    /// Waits for the next delivery: spins for `spin` nanoseconds, then parks, for at most
    /// `patience` nanoseconds (nil: without limit). Returns nil when the patience ran out
    /// with nothing delivered; the mailbox is then empty and nothing is posted.
    func collect(spinningFor spin: Int64, parkingFor patience: Int64?) -> Int32? {
        let deadline = spin > 0 ? monotonicNanoseconds() &+ spin : 0
        var spins = 0
        while true {
            let value = mailbox.load(ordering: .acquiring)
            if value != Mailbox.empty {
                mailbox.store(Mailbox.empty, ordering: .relaxed)
                return value
            }
            spins &+= 1
            if spins & 63 == 0 && monotonicNanoseconds() >= deadline { break }
        }
        if mailbox.compareExchange(expected: Mailbox.empty, desired: Mailbox.sleeping,
                                   ordering: .acquiringAndReleasing).exchanged {
            if let patience {
                if !Housekeeping.wait(semaphore, nanoseconds: patience) {
                    // Out of patience. Unless a delivery came meanwhile (then its post has
                    // come or is coming, and is taken here), the wait ends empty-handed.
                    if mailbox.compareExchange(expected: Mailbox.sleeping, desired: Mailbox.empty,
                                               ordering: .acquiringAndReleasing).exchanged {
                        return nil
                    }
                    Housekeeping.wait(semaphore)
                }
            } else {
                Housekeeping.wait(semaphore)
            }
        }
        return mailbox.exchange(Mailbox.empty, ordering: .acquiring)
    }

    deinit {
        // Safe: records live as long as the pool, which every worker thread keeps alive
        // until it has left its loop.
        sem_destroy(semaphore)
        semaphore.deallocate()
    }
}

final class WorkerStart {
    let pool: ThreadPoolBackend
    let index: Int32
    let worker: Worker
    init(pool: ThreadPoolBackend, index: Int32, worker: Worker) {
        self.pool = pool
        self.index = index
        self.worker = worker
    }
}
