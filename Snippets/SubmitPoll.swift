import LAIO

// Reads the first 4 KiB of a file: at once if they are cached, else through poll.
let path = CommandLine.arguments.dropFirst().first ?? "/etc/os-release"
let laio = try Context()                                   // LAIO_BACKEND, else auto
let file = try FileDescriptor.open(path, .readOnly)
let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)

var waiting: Set<Handle> = []
switch try laio.submit(.read(file, into: buffer, at: 0)) {
case .completed(.success(let count)): print("\(count) bytes at once")     // did not block
case .completed(.failure(let errno)): print("failed at once: \(errno)")   // the kernel's error
case .inProgress(let handle): waiting.insert(handle)   // buffer is the call's until poll reports it
}
while !waiting.isEmpty {
    for completion in try laio.poll(timeout: nil) {      // nil: wait for at least one
        waiting.remove(completion.handle)
        print("in the background: \(completion.result)")
    }
}
try file.close()
buffer.deallocate()
