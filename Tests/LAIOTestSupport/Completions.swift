import LAIO

/// Polls `laio` until each of `handles` is reported, and returns their results.
///
/// Every completion seen is checked: one of a handle not in `handles` (stray), or of a handle
/// already reported (twice), throws; so does a handle still missing after `timeout`.
public func collect(_ handles: Set<Handle>, in laio: Context, timeout: Duration = .seconds(20)) throws -> [Handle: Result<Int, Errno>] {
    var results: [Handle: Result<Int, Errno>] = [:]
    let deadline = ContinuousClock.now + timeout
    var batch: [Completion] = []
    while results.count < handles.count {
        guard ContinuousClock.now < deadline else {
            throw TestFailure("\(handles.count - results.count) of \(handles.count) calls not reported within \(timeout)")
        }
        batch.removeAll(keepingCapacity: true)
        _ = try laio.poll(into: &batch, maximum: 64, timeout: .milliseconds(100))
        for completion in batch {
            guard handles.contains(completion.handle) else { throw TestFailure("stray completion \(completion)") }
            guard results.updateValue(completion.result, forKey: completion.handle) == nil else {
                throw TestFailure("\(completion.handle) reported twice")
            }
        }
    }
    return results
}

/// Polls until `handle` is reported, and returns its result; any other completion, or none
/// within `timeout`, throws.
public func awaitCompletion(of handle: Handle, in laio: Context, timeout: Duration = .seconds(20)) throws -> Result<Int, Errno> {
    try collect([handle], in: laio, timeout: timeout)[handle]!
}

/// Runs `operation` to its end, synchronously or through poll, and returns its result.
public func complete(_ operation: Operation, in laio: Context) throws -> Result<Int, Errno> {
    switch try laio.submit(operation) {
    case let .completed(result): return result
    case let .inProgress(handle): return try awaitCompletion(of: handle, in: laio)
    }
}

/// Submits a read that cannot finish yet (an empty pipe, an idle socket) and returns its
/// handle; a synchronous answer throws.
public func submitBlockedRead(_ laio: Context, fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws -> Handle {
    switch try laio.submit(.read(fd: fd, buffer: buffer)) {
    case .inProgress(let handle): return handle
    case .completed(let result): throw TestFailure("a read with nothing to read completed synchronously: \(result)")
    }
}

/// Throws if anything is reported within `window`.
public func expectNoCompletion(in laio: Context, within window: Duration = .milliseconds(50)) throws {
    let extra = try laio.poll(maximum: 16, timeout: window)
    guard extra.isEmpty else { throw TestFailure("unexpected completions \(extra)") }
}
