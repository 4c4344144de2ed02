#define _GNU_SOURCE
#include "CLinuxShims.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/vfs.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

long laio_shim_syscall(long number, long a0, long a1, long a2, long a3, long a4, long a5) {
    long r = syscall(number, a0, a1, a2, a3, a4, a5);
    return r == -1 ? -(long)errno : r;
}

int laio_shim_default_cancel_signal(void) {
    // SIGRTMIN already skips the signals glibc keeps for itself.
    return SIGRTMIN + 5;
}

int laio_shim_rtmin(void) { return SIGRTMIN; }
int laio_shim_rtmax(void) { return SIGRTMAX; }

static void laio_cancel_handler(int sig) {
    (void)sig; // Only here so that a blocked call returns EINTR.
}

// The signals that have LAIO's handler (bit sig - 1; real-time signals end at 64 on Linux).
// Workers leave these unblocked. Only grows: a handler once installed stays, harmless.
static _Atomic unsigned long long laio_cancel_signals;
// Serializes the look at a signal's disposition and the installation after it.
static pthread_mutex_t laio_cancel_lock = PTHREAD_MUTEX_INITIALIZER;

int laio_shim_install_cancel_handler(int sig) {
    if (sig < SIGRTMIN || sig > SIGRTMAX || sig > 64) return -EINVAL;
    pthread_mutex_lock(&laio_cancel_lock);
    int result = 0;
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0) {
        result = -errno;
    } else if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == laio_cancel_handler) {
        // Ours already (another context's, or an earlier one's).
    } else if (!(old.sa_flags & SA_SIGINFO) && (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN)) {
        struct sigaction sa = {0};
        sa.sa_handler = laio_cancel_handler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; // no SA_RESTART: the interrupted call must return EINTR
        if (sigaction(sig, &sa, NULL) != 0) result = -errno;
    } else {
        result = -EBUSY; // the application's handler: never replaced
    }
    if (result == 0) atomic_fetch_or(&laio_cancel_signals, 1ULL << (sig - 1));
    pthread_mutex_unlock(&laio_cancel_lock);
    return result;
}

int laio_shim_worker_sigmask(void) {
    sigset_t set;
    sigfillset(&set);
    unsigned long long ours = atomic_load(&laio_cancel_signals);
    for (int sig = 1; sig <= 64; sig++) {
        if (ours & (1ULL << (sig - 1))) sigdelset(&set, sig);
    }
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    sigdelset(&set, SIGABRT);
    return -pthread_sigmask(SIG_SETMASK, &set, NULL);
}

int laio_shim_block_signals(void) {
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    sigdelset(&set, SIGABRT);
    return -pthread_sigmask(SIG_SETMASK, &set, NULL);
}

int laio_shim_eventfd(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int laio_shim_wait_readable(int fd, long long timeout_ns) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL};
    int r = ppoll(&pfd, 1, timeout_ns < 0 ? NULL : &ts, NULL);
    return r < 0 ? -errno : r;
}

int laio_shim_wait_readable2(int a, int b, long long timeout_ns) {
    struct pollfd pfds[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL};
    int r = ppoll(pfds, 2, timeout_ns < 0 ? NULL : &ts, NULL);
    return r < 0 ? -errno : r;
}

void laio_shim_statx_to_stat(const void *statx_buffer, struct stat *out) {
    const struct statx *x = statx_buffer;
    memset(out, 0, sizeof *out);
    // The kernel's new_encode_dev(): 12-bit major above an 8+12-bit split minor, in 32 bits.
    unsigned dev = (x->stx_dev_minor & 0xffu) | (x->stx_dev_major << 8) | ((x->stx_dev_minor & ~0xffu) << 12);
    unsigned rdev = (x->stx_rdev_minor & 0xffu) | (x->stx_rdev_major << 8) | ((x->stx_rdev_minor & ~0xffu) << 12);
    out->st_dev = dev;
    out->st_ino = x->stx_ino;
    out->st_mode = x->stx_mode;
    out->st_nlink = x->stx_nlink;
    out->st_uid = x->stx_uid;
    out->st_gid = x->stx_gid;
    out->st_rdev = rdev;
    out->st_size = (off_t)x->stx_size;
    out->st_blksize = x->stx_blksize;
    out->st_blocks = (blkcnt_t)x->stx_blocks;
    out->st_atim.tv_sec = x->stx_atime.tv_sec;
    out->st_atim.tv_nsec = x->stx_atime.tv_nsec;
    out->st_mtim.tv_sec = x->stx_mtime.tv_sec;
    out->st_mtim.tv_nsec = x->stx_mtime.tv_nsec;
    out->st_ctim.tv_sec = x->stx_ctime.tv_sec;
    out->st_ctim.tv_nsec = x->stx_ctime.tv_nsec;
}

int laio_shim_epoll_pair(int a, int b) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return -errno;
    int fds[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fds[i]}};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) {
            int saved = errno;
            close(ep);
            return -saved;
        }
    }
    return ep;
}


int laio_shim_io_uring_disabled(void) {
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    if (!f) return -1;
    int value = -1;
    if (fscanf(f, "%d", &value) != 1) value = -1;
    fclose(f);
    return value;
}

const char *laio_shim_empty_path(void) {
    return "";
}

long laio_shim_pread_nowait(int fd, void *buffer, size_t length, long long offset) {
    struct iovec iov = {.iov_base = buffer, .iov_len = length};
    // RWF_NOWAIT is 8 in the kernel ABI; spelled out for headers that predate it.
    long r = syscall(SYS_preadv2, fd, &iov, 1, (long)offset, 0L, 8);
    return r == -1 ? -(long)errno : r;
}

int laio_shim_is_memory_file(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return -errno;
    // TMPFS_MAGIC and RAMFS_MAGIC of <linux/magic.h>, spelled out for headers without them.
    return fs.f_type == 0x01021994 || fs.f_type == (long)0x858458f6;
}

long laio_shim_preadv_nowait(int fd, const struct iovec *iov, int count, long long offset) {
    long r = syscall(SYS_preadv2, fd, iov, count, (long)offset, 0L, 8);
    return r == -1 ? -(long)errno : r;
}

// Whether statx's AT_STATX_DONT_SYNC answer for a file is the answer fstat(2) gives. Only
// file systems that revalidate attributes with a server honour AT_STATX_DONT_SYNC (NFS,
// SMB/CIFS, Ceph, 9p, AFS, FUSE; overlayfs passes the flag to the layer below); every
// other getattr ignores it and answers as fstat does. The file system's magic decides
// (fstatfs; FUSE on a block device, fuseblk, has a real device number, so the device
// cannot), cached per mount by the mount's unique id (STATX_MNT_ID_UNIQUE, Linux 6.8),
// which the kernel never reuses, so a cached answer cannot outlive its file system. Without
// that id (older kernels) each fstat pays an fstatfs.
#define LAIO_STATX_MNT_ID_UNIQUE 0x4000U
#define LAIO_STATX_MNT_ID_OFFSET 144  // stx_mnt_id in the kernel's struct statx
_Static_assert(sizeof(struct statx) >= LAIO_STATX_MNT_ID_OFFSET + 8, "struct statx has stx_mnt_id");

// Slot: (unique mount id << 1) | exact, 0 when empty. One atomic word each: a reader sees
// a whole entry or another mount's, never half of one.
static _Atomic unsigned long long laio_exact_mounts[64];

static bool laio_magic_is_exact(long magic) {
    switch ((unsigned long)magic & 0xffffffffUL) {
    case 0x01021994:  // tmpfs
    case 0x858458f6:  // ramfs
    case 0x9123683e:  // btrfs (subvolumes have anonymous devices)
    case 0x9fa0:      // proc
    case 0x62656572:  // sysfs
    case 0x50495045:  // pipefs
    case 0x534f434b:  // sockfs
    case 0x09041934:  // anon_inode_fs (eventfd, epoll, timerfd...)
    case 0x1cd1:      // devpts
    case 0x27e0eb:    // cgroup
    case 0x63677270:  // cgroup2
    case 0xcafe4a11:  // bpf
    case 0x74726163:  // tracefs
    case 0x64626720:  // debugfs
    case 0x958458f6:  // hugetlbfs
    case 0x19800202:  // mqueue
    case 0x6e736673:  // nsfs
    case 0x50494446:  // pidfs
    case 0x73717368:  // squashfs
    case 0xe0f5e1e2:  // erofs
    case 0xef53:      // ext2/3/4
    case 0x58465342:  // xfs
    case 0xf2f52010:  // f2fs
    case 0x2fc12fc1:  // zfs
        return true;
    default:          // FUSE, NFS, SMB, Ceph, 9p, AFS, overlayfs, and what is not known
        return false;
    }
}

static bool laio_statx_is_exact(int fd, const struct statx *x) {
    unsigned long long id = 0;
    if (x->stx_mask & LAIO_STATX_MNT_ID_UNIQUE) {
        memcpy(&id, (const char *)x + LAIO_STATX_MNT_ID_OFFSET, sizeof id);
        id &= ~0ULL >> 1;
        unsigned long long seen = atomic_load_explicit(&laio_exact_mounts[(id * 0x9E3779B97F4A7C15ULL) >> 58],
                                                       memory_order_relaxed);
        if (id != 0 && seen >> 1 == id) return seen & 1;
    }
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return false;  // not known: the route gives fstat's answer
    bool exact = laio_magic_is_exact(fs.f_type);
    if (id != 0) {
        atomic_store_explicit(&laio_exact_mounts[(id * 0x9E3779B97F4A7C15ULL) >> 58], id << 1 | exact,
                              memory_order_relaxed);
    }
    return exact;
}

long laio_shim_fstat_cached(int fd, struct stat *out) {
    struct statx x;
    long r = syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
                     STATX_BASIC_STATS | LAIO_STATX_MNT_ID_UNIQUE, &x);
    if (r == -1) return -(long)errno;
    if (!laio_statx_is_exact(fd, &x)) return -EAGAIN;
    laio_shim_statx_to_stat(&x, out);
    return 0;
}

long laio_shim_recv_nowait(int fd, void *buffer, size_t length, int flags) {
    long r = syscall(SYS_recvfrom, fd, buffer, length, flags | MSG_DONTWAIT, NULL, NULL);
    return r == -1 ? -(long)errno : r;
}

long laio_shim_openat2_cached(int dirfd, const char *path, const struct open_how *how) {
    // Only opens that cannot wait once the lookup is done: O_NONBLOCK (a FIFO or device
    // open returns at once), and nothing that writes (O_CREAT, O_TRUNC, O_TMPFILE), the
    // same opens io_uring tries inline.
    if (!(how->flags & O_NONBLOCK) || (how->flags & (O_CREAT | O_TRUNC)) ||
        (how->flags & __O_TMPFILE) == __O_TMPFILE) {
        return -EAGAIN;
    }
    struct open_how cached = *how;
    cached.resolve |= RESOLVE_CACHED;
    long r = syscall(SYS_openat2, dirfd, path, &cached, sizeof cached);
    return r == -1 ? -(long)errno : r;
}

unsigned long laio_shim_fork_generation_value = 0;

static void laio_shim_forked_child(void) {
    // The child has one thread at this point: no other reader yet.
    __atomic_store_n(&laio_shim_fork_generation_value, laio_shim_fork_generation_value + 1, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void laio_shim_register_fork_handler(void) {
    pthread_atfork(NULL, NULL, laio_shim_forked_child);
}

// A thread's mark: set when the thread exits (its pthread key destructor runs in user space,
// before the kernel tears the thread down and cancels its io_uring requests), shared by
// reference count with the background calls the thread submitted.
struct laio_thread_mark {
    atomic_int exited;
    atomic_int references;
};

static pthread_key_t mark_key;
static bool mark_key_made;  // false if pthread_key_create failed: then no thread has a mark
static pthread_once_t mark_key_once = PTHREAD_ONCE_INIT;
static __thread struct laio_thread_mark *current_mark;

static void mark_thread_exit(void *value) {
    struct laio_thread_mark *mark = value;
    atomic_store_explicit(&mark->exited, 1, memory_order_release);
    current_mark = NULL;
    laio_shim_thread_mark_release(mark);
}

static void make_mark_key(void) { mark_key_made = pthread_key_create(&mark_key, mark_thread_exit) == 0; }

struct laio_thread_mark *laio_shim_thread_mark_retain(void) {
    struct laio_thread_mark *mark = current_mark;
    if (mark == NULL) {
        pthread_once(&mark_key_once, make_mark_key);
        if (!mark_key_made) return NULL;
        mark = calloc(1, sizeof *mark);
        if (mark == NULL) return NULL;
        atomic_init(&mark->references, 1);  // the thread's own reference
        if (pthread_setspecific(mark_key, mark) != 0) {
            free(mark);
            return NULL;
        }
        current_mark = mark;
    }
    atomic_fetch_add_explicit(&mark->references, 1, memory_order_relaxed);
    return mark;
}

bool laio_shim_thread_mark_exited(const struct laio_thread_mark *mark) {
    return mark != NULL && atomic_load_explicit(&mark->exited, memory_order_acquire) != 0;
}

void laio_shim_thread_mark_release(struct laio_thread_mark *mark) {
    if (mark != NULL && atomic_fetch_sub_explicit(&mark->references, 1, memory_order_acq_rel) == 1) free(mark);
}

int laio_shim_start_thread(pthread_t *thread, void *(*body)(void *), void *argument, size_t stack_size) {
    pthread_attr_t attributes;
    int rc = pthread_attr_init(&attributes);
    if (rc != 0) return rc;
    if (stack_size > 0) (void)pthread_attr_setstacksize(&attributes, stack_size);
    // The new thread inherits this mask: no handler of the application can run on it
    // before it sets its own.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(thread, &attributes, body, argument);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attributes);
    return rc;
}

int laio_shim_socket_error(int fd) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
    return error;
}

int laio_shim_semaphore_wait_until(sem_t *semaphore, int64_t deadline_ns) {
    struct timespec deadline = { .tv_sec = deadline_ns / 1000000000, .tv_nsec = deadline_ns % 1000000000 };
    return sem_clockwait(semaphore, CLOCK_MONOTONIC, &deadline) == 0 ? 0 : errno;
}

int laio_shim_is_slow_storage(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return -errno;
    // The magic numbers of <linux/magic.h> and the file systems' own headers, spelled out.
    switch ((unsigned long)fs.f_type & 0xffffffffUL) {
    case 0x65735546UL:  // FUSE
    case 0x6969UL:      // NFS
    case 0xFF534D42UL:  // CIFS
    case 0xFE534D42UL:  // SMB2
    case 0x01021997UL:  // 9P
    case 0x00C36400UL:  // Ceph
    case 0x5346414FUL:  // AFS
    case 0x6B414653UL:  // kAFS
        return 1;
    default:
        return 0;
    }
}

long laio_shim_set_thread_user_ids(unsigned real, unsigned effective, unsigned saved) {
    long r = syscall(SYS_setresuid, real, effective, saved);
    return r == -1 ? -(long)errno : r;
}
