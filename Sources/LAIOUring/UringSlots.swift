#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import LAIOCore

/// The storage of in-flight operations, one slot each, and the allocator that hands slots
/// out: a slot's index and generation make its operation's `Handle`.
///
/// The memory is allocated zeroed, once, for the capacity asked; its pages cost memory only
/// once used. The slot records, the statx buffers and the background records stay put until
/// `deallocate`, so pointers into them may be handed to the kernel while a slot is in flight.
/// The backend keeps this value in its locked state: every use is under the backend's lock.
struct UringSlots {
    /// The size of one `struct statx` buffer.
    static let statxSize = 256

    /// One `UringSlot` per slot.
    let records: UnsafeMutablePointer<UringSlot>
    /// One `UringBackgroundRecord` per slot.
    let backgroundRecords: UnsafeMutablePointer<UringBackgroundRecord>
    /// `struct statx` storage, `statxSize` bytes per slot, for stat calls run as STATX.
    private let statxArea: UnsafeMutableRawPointer
    /// A stack of free slot indices (`freeCount` deep): slots freed by reaping, reused first.
    private let freeStack: UnsafeMutablePointer<Int32>
    private var freeCount = 0
    /// Slots below this index have been used at least once.
    private(set) var fresh: Int32 = 0
    /// The most slots in use at once; at most the capacity allocated.
    var limit: Int

    /// Allocates `capacity` slots, all free; nil when there is no memory for them.
    init?(capacity: Int) {
        // calloc: UringSlot is a trivial type whose all-zero bit pattern is its initial value
        // (generation 0, not in flight, no fix-up, null pointers), so zeroed memory is a valid
        // array of them; its pages, and those of the statx buffers and the background
        // records (likewise trivial), cost memory only once used.
        precondition(_isPOD(UringSlot.self) && _isPOD(UringBackgroundRecord.self))
        let slotMemory = calloc(capacity, MemoryLayout<UringSlot>.stride)
        let statxMemory = calloc(capacity, Self.statxSize)
        let freeMemory = calloc(capacity, MemoryLayout<Int32>.stride)
        let recordMemory = calloc(capacity, MemoryLayout<UringBackgroundRecord>.stride)
        guard let slotMemory, let statxMemory, let freeMemory, let recordMemory else {
            free(slotMemory); free(statxMemory); free(freeMemory); free(recordMemory)
            return nil
        }
        records = slotMemory.bindMemory(to: UringSlot.self, capacity: capacity)
        statxArea = statxMemory
        freeStack = freeMemory.bindMemory(to: Int32.self, capacity: capacity)
        backgroundRecords = recordMemory.bindMemory(to: UringBackgroundRecord.self, capacity: capacity)
        limit = capacity
    }

    /// Frees the memory. Only once no slot is in flight: the kernel may hold pointers into
    /// the records and statx buffers of one that is.
    func deallocate() {
        free(records)  // trivial type: nothing to deinitialize
        free(freeStack)
        free(backgroundRecords)  // trivial type too
        free(statxArea)
    }

    /// A free slot, or nil when `limit` slots are in use.
    @inline(__always)
    mutating func allocate() -> Int32? {
        if freeCount > 0 {
            freeCount -= 1
            return freeStack[freeCount]
        }
        guard Int(fresh) < limit else { return nil }
        defer { fresh += 1 }
        return fresh
    }

    /// Frees `slot`: its handle becomes stale (a new generation) and its fix-up is cleared.
    @inline(__always)
    mutating func release(_ slot: Int32) {
        records[Int(slot)].generation &+= 1
        records[Int(slot)].fixup = .none
        freeStack[freeCount] = slot
        freeCount += 1
    }

    /// The handle of `slot`'s current operation.
    @inline(__always)
    func handle(of slot: Int32) -> Handle {
        Handle(slot: Int(slot), generation: records[Int(slot)].generation)
    }

    /// The statx buffer of `slot`.
    func statx(_ slot: Int32) -> UnsafeMutableRawPointer {
        statxArea + Int(slot) * Self.statxSize
    }
}

/// What a background call needs to be run again should its thread exit: kept apart from
/// `UringSlot`, which every call touches, and written only when a call goes to the
/// background (all zero bits is the initial value; allocated zeroed, one per slot).
struct UringBackgroundRecord {
    /// The submission entry as the kernel took it, to issue it again.
    var entry = io_uring_sqe()
    /// The thread that submitted the request (a reference on its mark).
    var submitter: OpaquePointer? = nil
    /// The kernel's answer that queued the call for the resubmission thread.
    var kernelAnswer: Int32 = 0
    /// How many times the call was issued again after the kernel cancelled it.
    var resubmissions: UInt8 = 0
    /// Set by `cancel`: an ECANCELED is then the answer asked for, not the kernel's own.
    var cancelRequested = false
    /// Queued for the resubmission thread (not in the kernel meanwhile).
    var awaitingResubmission = false
}

/// What one in-flight operation needs beyond its submission entry. All zero bits is the
/// initial value of every field (the backend allocates slots zeroed).
package struct UringSlot {
    package enum Fixup: UInt8 {
        case none, stat, timeout, addressLength, spliceOffsets, connectResult, newDescriptor
    }

    package var generation: UInt32 = 0
    package var inFlight = false
    package var fixup = Fixup.none
    /// The caller's memory a fix-up writes: the `stat` buffer, the address length, the
    /// splice input offset.
    package var target: UnsafeMutableRawPointer? = nil
    /// The splice output offset.
    package var target2: UnsafeMutableRawPointer? = nil
    /// recvfrom/sendto with an address run as RECVMSG/SENDMSG over this header and vector.
    package var message = msghdr()
    package var vector = iovec()
    /// nanosleep's duration, read by the kernel when the TIMEOUT is prepared.
    package var time = __kernel_timespec()

    package init() {}
}
