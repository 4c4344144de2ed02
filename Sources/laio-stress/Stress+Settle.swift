// The checks of the poll loop: each completion against what its call was, and the close of a
// context with calls in flight.
#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport

extension Stress {
    /// Checks one result: a background call's (`handle`, looked up among the outstanding) or
    /// a synchronous one's (`known`), and frees its slot and channel.
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
