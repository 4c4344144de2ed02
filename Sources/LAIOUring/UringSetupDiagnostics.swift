#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import SystemPackage

extension UringBackend {
    /// What an errno of io_uring_setup (as `init` throws it) means on this machine, in words
    /// that name the cause and what to change: ENOSYS (no io_uring in this kernel), EPERM
    /// (the sysctl kernel.io_uring_disabled, which is read to tell, or else a seccomp filter),
    /// ENOMEM (RLIMIT_MEMLOCK). nil for any other errno.
    package static func setupFailureCause(_ errno: Errno) -> String? {
        switch errno.rawValue {
        case ENOSYS:
            return "ENOSYS: this kernel has no io_uring (older than 5.1, or built without CONFIG_IO_URING)"
        case EPERM:
            let disabled = laio_shim_io_uring_disabled()
            if disabled > 0 {
                return "EPERM: io_uring is disabled by the sysctl kernel.io_uring_disabled=\(disabled)"
            }
            return "EPERM: io_uring_setup is not permitted: a seccomp filter (such as Docker's default profile) blocks it"
        case ENOMEM:
            return "ENOMEM: the ring's memory could not be locked: raise RLIMIT_MEMLOCK "
                + "(ulimit -l; kernels before 5.12 charge rings to it)"
        default:
            return nil
        }
    }
}
