#define _GNU_SOURCE
#include "CLiburing.h"

#include <poll.h>
#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

long laio_shim_syscall(long number, long a0, long a1, long a2, long a3, long a4, long a5) {
    long r = syscall(number, a0, a1, a2, a3, a4, a5);
    return r == -1 ? -(long)errno : r;
}

int laio_shim_cancel_signal(void) {
    // SIGRTMIN already skips the signals glibc keeps for itself.
    return SIGRTMIN + 5;
}

static void laio_cancel_handler(int sig) {
    (void)sig; // Only here so that a blocked call returns EINTR.
}

int laio_shim_install_cancel_handler(void) {
    static atomic_int installed = 0;
    if (atomic_load(&installed)) return 0;
    struct sigaction sa = {0};
    sa.sa_handler = laio_cancel_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: the interrupted call must return EINTR
    if (sigaction(laio_shim_cancel_signal(), &sa, NULL) != 0) return -errno;
    atomic_store(&installed, 1);
    return 0;
}

int laio_shim_worker_sigmask(void) {
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, laio_shim_cancel_signal());
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
