// User-space instructions per synchronous call, counted exactly by callgrind (the count does
// not depend on the machine's load): N cached 4 KiB laio_syscall(SYS_pread64) calls on the
// backend named by LAIO_BACKEND. Run it for two N and divide the difference by the
// difference of N, so that the context's set-up drops out:
//
//   cc -O2 -o laio-instructions Benchmarks/C/laio-instructions.c $(pkg-config --cflags --libs laio)
//   LAIO_BACKEND=uring valgrind --tool=callgrind --toggle-collect=laio_syscall ./laio-instructions 10000
//
// valgrind 3.19 cannot read the DWARF 5 of the Swift toolchain: run it on a copy of
// liblaio.so stripped with `strip --strip-debug` (LD_LIBRARY_PATH to its folder).
#define _GNU_SOURCE
#include <laio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 10000;
    const char *path = argc > 2 ? argv[2] : "/tmp/laio-instructions.dat";
    static char buffer[4096];
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0 || pwrite(fd, buffer, sizeof buffer, 0) != (ssize_t)sizeof buffer) {
        perror(path);
        return 1;
    }
    long background = 0;
    for (long i = 0; i < calls; i++) {
        long rv = laio_syscall(SYS_pread64, (long)fd, (long)buffer, 4096L, 0L);
        if (rv == -1 && errno == EINPROGRESS) {
            struct laio_completion c;
            background++;
            if (laio_poll(&c, 1, NULL) != 1) abort();
        }
    }
    printf("%ld calls, %ld in the background\n", calls, background);
    close(fd);
    unlink(path);
    return 0;
}
