// Two Swift runtimes in one C program: liblaio's, linked into it and hidden, and the one of
// another Swift-built library loaded beside it (Tests/C/neighbour, built by scripts/test-c
// twice: linked to the toolchain's shared runtime, and with its runtime static and hidden
// as liblaio's). Each library must keep to its own runtime: liblaio shows no Swift symbol,
// and calls into both, in any order and with a call of liblaio's in the background while
// the other library works, give their results.
//   two-runtimes PATH-OF-THE-OTHER-LIBRARY
// Exit status: 0 passed, 1 a check failed, 77 the backend cannot start here.
#define _GNU_SOURCE
#include "helpers.h"

#include <dlfcn.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef int (*describe_function)(int count, char *buffer, int capacity);

static void check_describe(describe_function describe, int count, const char *when) {
    char text[128];
    char expected[128];
    int distinct = count < 7 ? count : 7;
    snprintf(expected, sizeof expected, "Box<Int> of %d distinct, %d in all", distinct, count);
    int length = describe(count, text, (int)sizeof text);
    CHECK(length == (int)strlen(expected) && strcmp(text, expected) == 0,
          "%s: the other library said %d \"%s\", expected \"%s\"", when, length, length >= 0 ? text : "", expected);
}

// One write and one read through a pipe, each finished at once or polled for (this program
// has one thread, so every completion it polls is its own).
static long settle(long rv) {
    if (rv == -1 && errno == EINPROGRESS) {
        struct laio_completion done;
        if (laio_poll(&done, 1, NULL) != 1) return -2;
        errno = done.laio_errno;
        return done.laio_rv;
    }
    return rv;
}

static void check_round_trip(const char *when) {
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
    char out = 'x', in = 0;
    long wrote = settle(laio_syscall(SYS_write, fds[1], &out, 1L));
    long read = settle(laio_syscall(SYS_read, fds[0], &in, 1L));
    CHECK(wrote == 1 && read == 1 && in == 'x', "%s: write %ld, read %ld '%c': %s", when, wrote, read, in, strerror(errno));
    close(fds[0]);
    close(fds[1]);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: two-runtimes PATH-OF-THE-OTHER-LIBRARY\n");
        return 2;
    }
    const char *backend = start_backend_or_skip();
    check_round_trip("before the other library");

    // liblaio's Swift runtime is its own: no swift_* symbol is found through it.
    void *laio = dlopen("liblaio.so.0", RTLD_NOW | RTLD_NOLOAD);
    CHECK(laio != NULL, "liblaio.so.0 is not loaded: %s", dlerror());
    if (laio != NULL) {
        CHECK(dlsym(laio, "swift_retain") == NULL, "liblaio shows the Swift runtime's swift_retain");
        CHECK(dlsym(laio, "swift_conformsToProtocol") == NULL, "liblaio shows swift_conformsToProtocol");
        dlclose(laio);
    }

    // RTLD_GLOBAL: the other library's symbols, its runtime's too when it links the shared
    // one, join the global scope, where they could capture liblaio's calls if it had any.
    void *other = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (other == NULL) {
        fprintf(stderr, "FAIL: dlopen %s: %s\n", argv[1], dlerror());
        return 1;
    }
    describe_function describe = (describe_function)(uintptr_t)dlsym(other, "neighbour_describe");
    CHECK(describe != NULL, "no neighbour_describe in %s", argv[1]);
    if (describe == NULL) return 1;
    printf("the other library %s\n", dlsym(other, "swift_retain") != NULL
           ? "shows the Swift runtime's symbols (it links the toolchain's shared runtime)"
           : "hides its Swift runtime");

    check_describe(describe, 100, "first call");
    check_round_trip("after the other library started");

    if (strcmp(backend, "blocking") != 0) {
        // A read of an empty pipe goes to the background; the other library works meanwhile.
        int fds[2];
        CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
        char in = 0, out = 'y';
        long rv = laio_syscall(SYS_read, fds[0], &in, 1L);
        void *handle = laio_gethandle();
        CHECK(rv == -1 && errno == EINPROGRESS && handle != NULL, "read of an empty pipe: %ld (%s)", rv, strerror(errno));
        for (int count = 0; count < 200; count++) check_describe(describe, count, "while a call is in the background");
        CHECK(write(fds[1], &out, 1) == 1, "write: %s", strerror(errno));
        struct laio_completion done;
        int got = laio_poll(&done, 1, NULL);
        CHECK(got == 1 && done.laio_h == handle && done.laio_rv == 1 && in == 'y',
              "poll %d: handle %p (expected %p), rv %ld, '%c'", got, done.laio_h, handle, done.laio_rv, in);
        close(fds[0]);
        close(fds[1]);
    } else {
        printf("  skip background: the blocking backend never goes to the background\n");
    }

    for (int round = 0; round < 100; round++) {
        check_round_trip("interleaved");
        check_describe(describe, round, "interleaved");
    }
    dlclose(other);
    check_round_trip("after the other library was closed");

    printf("two runtimes on %s: %d checks, %d failed\n", backend, checks, failures);
    return failures == 0 ? 0 : 1;
}
