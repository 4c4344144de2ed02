#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the process may have of the machine's threads.
public enum ProcessLimits {
    /// The most threads the library's pools and io_uring's workers grow to by default:
    /// 4,096, or less where the process's limits would run out first — half of
    /// RLIMIT_NPROC, a quarter of the system's thread and process-id limits
    /// (kernel.threads-max, kernel.pid_max), an eighth of the mappings a process may have
    /// (vm.max_map_count; a stack and its guard are two); never below 16.
    public static let threadBound: Int = {
        var bound = 4096
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            bound = min(bound, Int(clamping: limit.rlim_cur / 2))
        }
        for (path, share) in [("/proc/sys/kernel/threads-max", 4), ("/proc/sys/kernel/pid_max", 4),
                              ("/proc/sys/vm/max_map_count", 8)] {
            if let value = readNumber(path) { bound = min(bound, value / share) }
        }
        return max(bound, 16)
    }()

    private static func readNumber(_ path: String) -> Int? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return Int(String(decoding: bytes[..<count], as: UTF8.self).prefix { $0.isNumber })
    }
}
