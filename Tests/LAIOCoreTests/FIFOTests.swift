@testable import LAIOCore
import Testing

/// An object whose lifetime a test can watch.
private final class Token {
    let value: Int
    init(_ value: Int) { self.value = value }
}

@Suite("FIFO")
struct FIFOTests {
    @Test("elements come out in the order they went in, and an empty queue gives nil")
    func order() {
        var fifo = FIFO<Int>(initialCapacity: 8)
        #expect(fifo.isEmpty && fifo.popFirst() == nil)
        for value in 0..<1_000 { fifo.append(value) }
        #expect(fifo.count == 1_000)
        var out: [Int] = []
        while let value = fifo.popFirst() { out.append(value) }
        #expect(out == Array(0..<1_000))
        #expect(fifo.isEmpty && fifo.count == 0 && fifo.popFirst() == nil)
    }

    @Test("the buffer wraps around its end and keeps the order")
    func wrapAround() {
        var fifo = FIFO<Int>(initialCapacity: 4)
        var next = 0
        var expected = 0
        // Three in, two out, repeatedly: the head walks round the four places many times
        // without the queue ever holding more than it has room for.
        for _ in 0..<50 {
            for _ in 0..<2 { fifo.append(next); next += 1 }
            for _ in 0..<2 {
                #expect(fifo.popFirst() == expected)
                expected += 1
            }
        }
        #expect(fifo.isEmpty)
    }

    @Test("growth while the buffer is wrapped keeps the order", arguments: [1, 2, 3, 4, 5])
    func growthWhileWrapped(popped: Int) {
        // The head is `popped` places in when the fifth element makes the buffer grow.
        var fifo = FIFO<Int>(initialCapacity: 4)
        for value in 0..<4 { fifo.append(value) }
        for value in 0..<min(popped, 4) { #expect(fifo.popFirst() == value) }
        let first = min(popped, 4)
        for value in 4..<(4 + 10) { fifo.append(value) }
        #expect(fifo.count == 14 - first)
        var out: [Int] = []
        while let value = fifo.popFirst() { out.append(value) }
        #expect(out == Array(first..<14))
    }

    @Test("an initial capacity of zero still holds elements")
    func zeroCapacity() {
        var fifo = FIFO<String>(initialCapacity: 0)
        fifo.append("a")
        fifo.append("b")
        #expect(fifo.popFirst() == "a" && fifo.popFirst() == "b" && fifo.popFirst() == nil)
    }

    @Test("removeFirst(where:) takes out the first match only, across the wrap, and keeps the others in order")
    func removeFirst() {
        var fifo = FIFO<Int>(initialCapacity: 6)
        for value in 0..<4 { fifo.append(value) }
        _ = fifo.popFirst()
        _ = fifo.popFirst()
        // Now 2, 3 at places 2 and 3; these go to 4, 5, 0, 1 (wrapped).
        for value in [4, 3, 6, 7] { fifo.append(value) }
        #expect(fifo.removeFirst { $0 == 3 })      // the first 3, not the later one
        #expect(!fifo.removeFirst { $0 == 42 })
        #expect(fifo.removeFirst { $0 == 7 })      // the last element
        #expect(fifo.removeFirst { $0 == 2 })      // the front
        #expect(fifo.count == 3)
        var out: [Int] = []
        while let value = fifo.popFirst() { out.append(value) }
        #expect(out == [4, 3, 6])
    }

    @Test("a popped or removed element is not kept alive by the queue")
    func releasesElements() {
        var fifo = FIFO<Token>(initialCapacity: 2)
        weak var popped: Token?
        weak var removed: Token?
        do {
            let a = Token(1), b = Token(2)
            popped = a
            removed = b
            fifo.append(a)
            fifo.append(b)
            fifo.append(Token(3))  // grows: the old buffer must not keep them either
        }
        #expect(fifo.popFirst()?.value == 1)
        #expect(fifo.removeFirst { $0.value == 2 })
        #expect(popped == nil && removed == nil)
        #expect(fifo.count == 1)
    }
}
