import LAIO

// The same from async code: the task suspends only when a call blocks.
let path = FilePath(CommandLine.arguments.dropFirst().first ?? "/etc/os-release")
let laio = try Context()
let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
let file = try await laio.open(path, .readOnly)                     // openat2
let size = try await laio.stat(file).st_size                        // fstat
let count = try await laio.read(from: file, at: 0, into: buffer)    // pread
try await laio.close(file)
print("\(path): \(size) bytes, read \(count), \(laio.suspendedCalls) calls suspended")
buffer.deallocate()
