import CLinuxShims
import SystemPackage

// The operations that take a descriptor, in swift-system's vocabulary. Each builds the same
// case as its raw form (inlined: no cost over it); the raw forms stay for the C ABI and for
// code that holds plain descriptors.
extension Operation {
    /// `read(2)` from `fd` into `buffer`.
    @inlinable
    public static func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) -> Operation {
        .read(fd: fd.rawValue, buffer: buffer)
    }

    /// `pread(2)` from `fd` into `buffer` at `offset`.
    @inlinable
    public static func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) -> Operation {
        .pread(fd: fd.rawValue, buffer: buffer, offset: offset)
    }

    /// `write(2)` of `buffer` to `fd`.
    @inlinable
    public static func write(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer) -> Operation {
        .write(fd: fd.rawValue, buffer: buffer)
    }

    /// `pwrite(2)` of `buffer` to `fd` at `offset`.
    @inlinable
    public static func write(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer, at offset: Int64) -> Operation {
        .pwrite(fd: fd.rawValue, buffer: buffer, offset: offset)
    }

    /// `readv(2)`, or `preadv(2)` when `offset` is given.
    @inlinable
    public static func read(_ fd: FileDescriptor, into iovecs: UnsafeBufferPointer<iovec>, at offset: Int64? = nil) -> Operation {
        if let offset { return .preadv(fd: fd.rawValue, iovecs: iovecs, offset: offset) }
        return .readv(fd: fd.rawValue, iovecs: iovecs)
    }

    /// `writev(2)`, or `pwritev(2)` when `offset` is given.
    @inlinable
    public static func write(_ fd: FileDescriptor, from iovecs: UnsafeBufferPointer<iovec>, at offset: Int64? = nil) -> Operation {
        if let offset { return .pwritev(fd: fd.rawValue, iovecs: iovecs, offset: offset) }
        return .writev(fd: fd.rawValue, iovecs: iovecs)
    }

    /// `close(2)`.
    @inlinable
    public static func close(_ fd: FileDescriptor) -> Operation { .close(fd: fd.rawValue) }

    /// `fstat(2)` into `buffer`.
    @inlinable
    public static func stat(_ fd: FileDescriptor, into buffer: UnsafeMutablePointer<stat>) -> Operation {
        .fstat(fd: fd.rawValue, buffer: buffer)
    }

    /// `fsync(2)`, or `fdatasync(2)` with `dataOnly`.
    @inlinable
    public static func sync(_ fd: FileDescriptor, dataOnly: Bool = false) -> Operation {
        dataOnly ? .fdatasync(fd: fd.rawValue) : .fsync(fd: fd.rawValue)
    }

    /// `recv(2)` from socket `fd` into `buffer`.
    @inlinable
    public static func receive(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) -> Operation {
        .recv(fd: fd.rawValue, buffer: buffer, flags: flags)
    }

    /// `send(2)` of `buffer` on socket `fd`.
    @inlinable
    public static func send(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer, flags: Int32 = 0) -> Operation {
        .send(fd: fd.rawValue, buffer: buffer, flags: flags)
    }

    /// `accept4(2)` on listening socket `fd`; the result is the new descriptor.
    @inlinable
    public static func accept(_ fd: FileDescriptor, flags: Int32 = 0) -> Operation {
        .accept(fd: fd.rawValue, address: nil, length: nil, flags: flags)
    }

    /// `sendfile(2)` of `count` bytes from `source` to `destination`.
    @inlinable
    public static func sendfile(from source: FileDescriptor, to destination: FileDescriptor,
                                offset: UnsafeMutablePointer<off_t>?, count: Int) -> Operation {
        .sendfile(outFD: destination.rawValue, inFD: source.rawValue, offset: offset, count: count)
    }
}
