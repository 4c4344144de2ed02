// The cost of one cached call through liblaio's C ABI, next to the same call made
// directly: pread(2) of 4 KiB from a cached file, and getpid. Prints one line per form with
// nanoseconds per call; the backend is LAIO_BACKEND's. Run by scripts/bench-c.
#define _GNU_SOURCE
#include <laio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static long background;

// A call that went to the background is waited for, so every form does all its calls.
static long settle(long rv) {
    if (rv == -1 && errno == EINPROGRESS) {
        struct laio_completion c;
        background++;
        if (laio_poll(&c, 1, NULL) != 1) abort();
        return c.laio_rv;
    }
    return rv;
}

int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 1000000;
    const char *path = argc > 2 ? argv[2] : "/tmp/laio-call.dat";
    static char buffer[4096];
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0 || pwrite(fd, buffer, sizeof buffer, 0) != (ssize_t)sizeof buffer) {
        perror(path);
        return 1;
    }
    const char *backend = laio_backend();
    if (backend == NULL) {
        perror("laio_backend");
        return 1;
    }
    for (long i = 0; i < calls / 10; i++) settle(laio_syscall(SYS_pread64, fd, buffer, 4096L, 0L));  // warm up

    double t0 = now();
    for (long i = 0; i < calls; i++) if (pread(fd, buffer, 4096, 0) != 4096) abort();
    double t1 = now();
    for (long i = 0; i < calls; i++) if (syscall(SYS_pread64, fd, buffer, 4096L, 0L) != 4096) abort();
    double t2 = now();
    background = 0;
    for (long i = 0; i < calls; i++) if (settle(laio_syscall(SYS_pread64, fd, buffer, 4096L, 0L)) != 4096) abort();
    double t3 = now();
    long pread_background = background;
    for (long i = 0; i < calls; i++) if (syscall(SYS_getpid) <= 0) abort();
    double t4 = now();
    background = 0;
    long getpid_result = 0;
    for (long i = 0; i < calls; i++) getpid_result = settle(laio_syscall(SYS_getpid));
    double t5 = now();

    printf("backend %s\n", backend);
    printf("pread(2)                 %8.1f ns\n", (t1 - t0) / (double)calls);
    printf("syscall(SYS_pread64)     %8.1f ns\n", (t2 - t1) / (double)calls);
    printf("laio_syscall(pread64)    %8.1f ns  (%ld of %ld in the background)\n", (t3 - t2) / (double)calls,
           pread_background, calls);
    printf("syscall(SYS_getpid)      %8.1f ns\n", (t4 - t3) / (double)calls);
    printf("laio_syscall(getpid)     %8.1f ns  (%ld in the background%s)\n", (t5 - t4) / (double)calls, background,
           getpid_result == -1 ? "; refused: ENOSYS on this backend" : "");
    close(fd);
    return 0;
}
