// A Swift library that is not liblaio, for Tests/C/two-runtimes.c: a C program that loads
// both gets two Swift runtimes (this one's and liblaio's hidden one), and each must keep
// to its own metadata. What it does uses the runtime's caches and lookups: a class,
// generic metadata made at run time, a protocol conformance found by a dynamic cast,
// hashing and string formatting.

protocol Described {
    var described: String { get }
}

final class Box<Value: Hashable>: Described {
    let values: [Value: Int]
    init(_ values: [Value]) {
        var counts: [Value: Int] = [:]
        for value in values { counts[value, default: 0] += 1 }
        self.values = counts
    }
    var described: String {
        "Box<\(Value.self)> of \(values.count) distinct, \(values.values.reduce(0, +)) in all"
    }
}

/// Writes a description of a box of `count` numbers modulo 7 into `buffer` (at most
/// `capacity` bytes with the terminating NUL); returns its length, or -1 if it does not fit.
@_cdecl("neighbour_describe")
public func neighbourDescribe(_ count: Int32, _ buffer: UnsafeMutablePointer<CChar>, _ capacity: Int32) -> Int32 {
    let made: Any = Box((0..<Int(count)).map { $0 % 7 })
    guard let box = made as? any Described else { return -2 }
    let text = box.described
    let bytes = Array(text.utf8)
    guard bytes.count < Int(capacity) else { return -1 }
    // `buffer` is the C caller's, `capacity` bytes long, alive for this call.
    for (index, byte) in bytes.enumerated() { buffer[index] = CChar(bitPattern: byte) }
    buffer[bytes.count] = 0
    return Int32(bytes.count)
}
