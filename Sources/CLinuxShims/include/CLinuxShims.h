// The Linux shims of swift-laio: what Swift cannot import by itself (syscall(2) is
// variadic, SIGRTMIN is a function-like macro, <sys/syscall.h> numbers are macros that chain
// to other macros) and the few calls the library makes in C (signals, the non-blocking forms
// of reads and opens, statx to stat, thread marks, fork generations). Nothing here needs
// liburing; CLiburing is only for the io_uring backend.
#ifndef SWIFT_LAIO_CLINUXSHIMS_H
#define SWIFT_LAIO_CLINUXSHIMS_H

// The system headers, with the default feature macros, so that they are the same
// declarations Swift's Glibc module has.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <linux/openat2.h>

/// Runs system call `number` with six arguments. Returns the kernel's raw answer:
/// the result when >= 0, or -errno on failure (errno is not read by callers).
long laio_shim_syscall(long number, long a0, long a1, long a2, long a3, long a4, long a5);

/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC). Returns the descriptor or -errno.
int laio_shim_eventfd(void);

/// Waits until `fd` is readable or `timeout_ns` passes (negative: no limit), with ppoll(2)
/// for nanosecond precision. Returns ppoll's result or -errno (EINTR included).
int laio_shim_wait_readable(int fd, long long timeout_ns);

/// Waits until `a` or `b` is readable or `timeout_ns` passes, like laio_shim_wait_readable.
int laio_shim_wait_readable2(int a, int b, long long timeout_ns);

/// The real-time signal that interrupts a worker blocked in a cancelled call when the
/// application chooses none: SIGRTMIN + 5.
int laio_shim_default_cancel_signal(void);

/// SIGRTMIN and SIGRTMAX (function-like macros in C).
int laio_shim_rtmin(void);
int laio_shim_rtmax(void);

/// Installs an empty handler without SA_RESTART on `signal` (so that a blocked system call
/// returns EINTR), unless the signal has another handler than SIG_DFL, SIG_IGN or this one:
/// an application's handler is never replaced. Returns 0, -EBUSY (another handler),
/// -EINVAL (not a real-time signal) or -errno of sigaction.
int laio_shim_install_cancel_handler(int signal);

/// Blocks every signal in the calling thread except those with LAIO's cancel handler and
/// the synchronous fault signals. Pool workers call this so that only cancellation
/// interrupts them.
int laio_shim_worker_sigmask(void);

/// Blocks every signal in the calling thread except the synchronous fault signals: for
/// the library's threads that no signal needs to interrupt (the harvester, io_uring's
/// resubmission thread). Returns 0 or -errno.
int laio_shim_block_signals(void);

/// Fills `out` from a `struct statx` exactly as the kernel's newfstatat(2) fills a
/// `struct stat` (device numbers in the kernel's 32-bit encoding, padding zeroed).
void laio_shim_statx_to_stat(const void *statx_buffer, struct stat *out);

/// An epoll instance (EPOLL_CLOEXEC) that is readable while `a` or `b` is readable.
/// Returns the descriptor or -errno.
int laio_shim_epoll_pair(int a, int b);

/// A static "" (the path of fstat run as statx with AT_EMPTY_PATH).
const char *laio_shim_empty_path(void);

/// /proc/sys/kernel/io_uring_disabled (0, 1 or 2), or -1 where the kernel has no such setting.
int laio_shim_io_uring_disabled(void);

/// pread(2) that never waits: preadv2(fd, {buffer, length}, 1, offset, RWF_NOWAIT).
/// Returns the byte count, or -errno (-EAGAIN when the data is not in memory, -EOPNOTSUPP
/// when the file does not support RWF_NOWAIT).
long laio_shim_pread_nowait(int fd, void *buffer, size_t length, long long offset);

/// Whether fd's file lives in memory only (tmpfs, ramfs: fstatfs(2)'s f_type), where a read
/// has no storage to wait for. 1, 0, or -errno from fstatfs.
int laio_shim_is_memory_file(int fd);

/// preadv(2) that never waits, like laio_shim_pread_nowait.
long laio_shim_preadv_nowait(int fd, const struct iovec *iov, int count, long long offset);

/// recvfrom(fd, buffer, length, flags | MSG_DONTWAIT, NULL, NULL). Returns the byte count or -errno.
long laio_shim_recv_nowait(int fd, void *buffer, size_t length, int flags);

/// fstat(2) that never waits for a remote file system: statx(fd, "", AT_EMPTY_PATH |
/// AT_STATX_DONT_SYNC) converted to `struct stat` as the kernel fills it, where that answer
/// is fstat's own: 0 or -errno. -EAGAIN for a file whose file system would revalidate the
/// attributes with its server (FUSE, NFS, SMB...): fstat(2) must run in full for it.
long laio_shim_fstat_cached(int fd, struct stat *out);

/// openat2(dirfd, path, how + RESOLVE_CACHED) for an open that cannot wait once its path is
/// resolved (`how` has O_NONBLOCK and none of O_CREAT, O_TRUNC, O_TMPFILE): the lookup
/// must be answered from the dentry cache. The descriptor, or -errno; -EAGAIN when the
/// lookup needs the disk or the open is not of that kind.
long laio_shim_openat2_cached(int dirfd, const char *path, const struct open_how *how);

// Flags of the *at and statx calls that the default feature macros hide (kernel ABI values).
enum {
    LAIO_AT_NO_AUTOMOUNT = 0x800,
    LAIO_AT_EMPTY_PATH = 0x1000,
    LAIO_STATX_BASIC_STATS = 0x7ff,
};

// System call numbers as plain constants (the <sys/syscall.h> macros do not import).
enum {
    LAIO_SYS_read = SYS_read,
    LAIO_SYS_write = SYS_write,
    LAIO_SYS_pread64 = SYS_pread64,
    LAIO_SYS_pwrite64 = SYS_pwrite64,
    LAIO_SYS_readv = SYS_readv,
    LAIO_SYS_writev = SYS_writev,
    LAIO_SYS_preadv = SYS_preadv,
    LAIO_SYS_pwritev = SYS_pwritev,
    LAIO_SYS_openat = SYS_openat,
    LAIO_SYS_close = SYS_close,
    LAIO_SYS_fstat = SYS_fstat,
    LAIO_SYS_newfstatat = SYS_newfstatat,
    LAIO_SYS_statx = SYS_statx,
    LAIO_SYS_fsync = SYS_fsync,
    LAIO_SYS_fdatasync = SYS_fdatasync,
    LAIO_SYS_accept4 = SYS_accept4,
    LAIO_SYS_connect = SYS_connect,
    LAIO_SYS_recvfrom = SYS_recvfrom,
    LAIO_SYS_sendto = SYS_sendto,
    LAIO_SYS_recvmsg = SYS_recvmsg,
    LAIO_SYS_sendmsg = SYS_sendmsg,
    LAIO_SYS_sendfile = SYS_sendfile,
    LAIO_SYS_splice = SYS_splice,
    LAIO_SYS_unlinkat = SYS_unlinkat,
    LAIO_SYS_renameat2 = SYS_renameat2,
    LAIO_SYS_mkdirat = SYS_mkdirat,
    LAIO_SYS_nanosleep = SYS_nanosleep,
    LAIO_SYS_getpid = SYS_getpid,
    LAIO_SYS_accept = SYS_accept,
    LAIO_SYS_renameat = SYS_renameat,
    LAIO_SYS_preadv2 = SYS_preadv2,
    LAIO_SYS_pwritev2 = SYS_pwritev2,
    LAIO_SYS_openat2 = SYS_openat2,
    LAIO_SYS_gettid = SYS_gettid,
    // Legacy calls that only some architectures have (-1 where absent).
#ifdef SYS_open
    LAIO_SYS_open = SYS_open,
    LAIO_SYS_stat = SYS_stat,
    LAIO_SYS_lstat = SYS_lstat,
    LAIO_SYS_unlink = SYS_unlink,
    LAIO_SYS_rmdir = SYS_rmdir,
    LAIO_SYS_rename = SYS_rename,
    LAIO_SYS_mkdir = SYS_mkdir,
#else
    LAIO_SYS_open = -1,
    LAIO_SYS_stat = -1,
    LAIO_SYS_lstat = -1,
    LAIO_SYS_unlink = -1,
    LAIO_SYS_rmdir = -1,
    LAIO_SYS_rename = -1,
    LAIO_SYS_mkdir = -1,
#endif
    // Calls that would tear down a pool worker or the process image from under the pool.
    LAIO_SYS_exit = SYS_exit,
    LAIO_SYS_exit_group = SYS_exit_group,
    LAIO_SYS_clone = SYS_clone,
    LAIO_SYS_clone3 = SYS_clone3,
    LAIO_SYS_execve = SYS_execve,
    LAIO_SYS_execveat = SYS_execveat,
    LAIO_SYS_rt_sigreturn = SYS_rt_sigreturn,
#ifdef SYS_fork
    LAIO_SYS_fork = SYS_fork,
#else
    LAIO_SYS_fork = -1,
#endif
#ifdef SYS_vfork
    LAIO_SYS_vfork = SYS_vfork,
#else
    LAIO_SYS_vfork = -1,
#endif
};

/// How many fork()s this process descends from: 0 in the process that loaded the library,
/// incremented in the child by a pthread_atfork handler. A context remembers the value it
/// was made with; a different value means it belongs to an ancestor (its ring and its pool's
/// threads are not this process's).
extern unsigned long laio_shim_fork_generation_value;

static inline unsigned long laio_shim_fork_generation(void) {
    return __atomic_load_n(&laio_shim_fork_generation_value, __ATOMIC_RELAXED);
}

/// The calling thread's mark, with one more reference for the caller (NULL without memory).
/// The mark says whether the thread has exited: io_uring fails a request whose submitting
/// thread exits before it is done, and the uring backend runs such a call again elsewhere.
struct laio_thread_mark;
struct laio_thread_mark *laio_shim_thread_mark_retain(void);
/// Whether the thread of `mark` has exited (false for NULL).
bool laio_shim_thread_mark_exited(const struct laio_thread_mark *mark);
/// Drops a reference taken by laio_shim_thread_mark_retain (NULL is ignored).
void laio_shim_thread_mark_release(struct laio_thread_mark *mark);

/// The pending error of socket `fd` (SO_ERROR, which reading clears): 0, or an errno.
int laio_shim_socket_error(int fd);

/// Starts a thread of the library (`stack_size` 0: the default) with every signal blocked
/// until it sets its own mask. Returns 0 or pthread_create's error.
int laio_shim_start_thread(pthread_t *thread, void *(*body)(void *), void *argument, size_t stack_size);

/// Waits until `semaphore` can be taken, at most until `deadline_ns` on CLOCK_MONOTONIC.
/// Returns 0 when taken, or the errno of sem_clockwait (ETIMEDOUT, EINTR).
int laio_shim_semaphore_wait_until(sem_t *semaphore, int64_t deadline_ns);

/// 1 when `fd` names a file on storage served from elsewhere (FUSE, NFS, SMB/CIFS, 9P,
/// Ceph, AFS), 0 when not, -errno when fstatfs fails.
int laio_shim_is_slow_storage(int fd);

/// For tests: setresuid(2) for the calling thread alone (the raw system call; glibc's
/// wrapper changes every thread of the process). 0 or -errno.
long laio_shim_set_thread_user_ids(unsigned real, unsigned effective, unsigned saved);

#endif
