import SystemPackage

extension Result where Success == Int, Failure == Errno {
    /// Decodes the kernel's raw convention: a value >= 0, or -errno (what io_uring's
    /// completions and the raw syscall shim return; errno itself is not set).
    @inlinable
    package init(kernelReturn value: Int) {
        self = value < 0 ? .failure(Errno(rawValue: Int32(truncatingIfNeeded: -value))) : .success(value)
    }
}
