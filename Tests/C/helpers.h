// What the C tests share: the CHECK macro and its counters, and the start of a test on the
// backend named by LAIO_BACKEND (exit 77, skipped with the reason, when `uring` cannot
// start here). Each test is one program: exit 0 passed, 1 failed, 77 skipped.
#ifndef LAIO_TEST_HELPERS_H
#define LAIO_TEST_HELPERS_H

#include <laio.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static int checks;

// Counts a check; prints the first 30 failures with the condition and a message.
#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond) && ++failures <= 30) {                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __func__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
        }                                                                              \
    } while (0)

// The process's backend (laio_backend()), after its context started. When it cannot:
// io_uring missing or forbidden on `uring` exits 77 with the reason; anything else fails.
static inline const char *start_backend_or_skip(void) {
    const char *backend = laio_backend();
    if (backend != NULL) return backend;
    int error = errno;
    const char *asked = getenv("LAIO_BACKEND");
    if (asked != NULL && strcmp(asked, "uring") == 0 && (error == ENOSYS || error == EPERM || error == ENOMEM)) {
        printf("skip: the uring backend cannot start here: %s\n", strerror(error));
        exit(77);
    }
    fprintf(stderr, "FAIL: the context did not start: %s\n", strerror(error));
    exit(1);
}

#endif
