/// A first-in first-out queue over one growable circular buffer.
///
/// Growth is amortized and happens only when more elements wait than ever before; callers
/// bound the count themselves (see `CompletionQueue`'s credits).
package struct FIFO<Element> {
    private var storage: [Element?]
    private var head = 0
    /// The number of elements waiting.
    package private(set) var count = 0

    /// An empty queue with room for `initialCapacity` elements before it grows.
    package init(initialCapacity: Int = 16) {
        storage = Array(repeating: nil, count: max(initialCapacity, 1))
    }

    package var isEmpty: Bool { count == 0 }

    /// Adds `element` at the back.
    package mutating func append(_ element: Element) {
        if count == storage.count { grow() }
        storage[(head + count) % storage.count] = element
        count += 1
    }

    /// Removes and returns the front element, or nil when empty.
    package mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        return element
    }

    /// Removes the first element that satisfies `predicate`, keeping the others in order.
    /// Returns whether one was removed. O(count).
    @discardableResult
    package mutating func removeFirst(where predicate: (Element) -> Bool) -> Bool {
        for offset in 0..<count where predicate(storage[(head + offset) % storage.count]!) {
            for later in offset..<(count - 1) {
                storage[(head + later) % storage.count] = storage[(head + later + 1) % storage.count]
            }
            storage[(head + count - 1) % storage.count] = nil
            count -= 1
            return true
        }
        return false
    }

    private mutating func grow() {
        var bigger = [Element?](repeating: nil, count: storage.count * 2)
        for i in 0..<count { bigger[i] = storage[(head + i) % storage.count] }
        storage = bigger
        head = 0
    }
}
