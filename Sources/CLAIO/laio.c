// The C half of liblaio: the variadic entry point Swift cannot export, the per-thread
// handle, errno, and argument checks. Everything else is in Sources/laio (Swift).
#include "laio.h"
#include "laio_swift.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

// The handle of this thread's last laio_syscall, or NULL if it did not go to the background.
static __thread void *last_handle;

static long fail(long negative_errno) {
    errno = (int)-negative_errno;
    return -1;
}

long laio_syscall(long number, ...) {
    // Like syscall(2), read six long-sized arguments whatever the caller passed: on the
    // Linux ABIs this library builds for, the unused ones are just registers or stack
    // slots nobody reads.
    long a[6];
    va_list list;
    va_start(list, number);
    for (int i = 0; i < 6; i++) a[i] = va_arg(list, long);
    va_end(list);

    void *handle = NULL;
    long result = laio_swift_syscall(number, a, &handle);
    last_handle = handle;
    // The kernel's error range; no call returns a value in it on success.
    if (result < 0 && result >= -4095) return fail(result);
    return result;
}

void *laio_gethandle(void) {
    return last_handle;
}

int laio_poll(struct laio_completion completions[], int ncompletions, const struct timespec *timeout) {
    if (completions == NULL || ncompletions <= 0) return (int)fail(-EINVAL);
    long seconds = 0, nanoseconds = 0;
    if (timeout != NULL) {
        if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L) return (int)fail(-EINVAL);
        seconds = (long)timeout->tv_sec;
        nanoseconds = timeout->tv_nsec;
    }
    int filled = laio_swift_poll(completions, ncompletions, timeout == NULL, seconds, nanoseconds);
    return filled < 0 ? (int)fail(filled) : filled;
}

int laio_cancel(void *handle) {
    if (handle == NULL) return (int)fail(-EINVAL);
    int result = laio_swift_cancel(handle);
    return result < 0 ? (int)fail(result) : 0;
}

int laio_pollfd(void) {
    int fd = laio_swift_pollfd();
    return fd < 0 ? (int)fail(fd) : fd;
}

const char *laio_backend(void) {
    // The name is Swift's BackendKind raw value, kept for the life of the process.
    const char *name = NULL;
    int result = laio_swift_backend(&name);
    if (result < 0) {
        fail(result);
        return NULL;
    }
    return name;
}
