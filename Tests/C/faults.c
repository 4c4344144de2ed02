// The C ABI on storage that fails or is slow: the C side of the Swift FaultTests, on a
// tools/faultfs mount (LAIO_FAULTFS) of a directory (LAIO_FAULTFS_SOURCE). scripts/test-faults
// mounts it with these rules, no kernel caching, and runs this once per backend:
//   read /eio-read/*                error=EIO
//   open /eio-open/*                error=EIO
//   lookup,getattr /eio-stat/*      error=EIO
//   write /enospc/*                 error=ENOSPC
//   read /slow/*                    delay=300ms
//   read /held/*                    hold
// Checked through laio_syscall: EIO from pread, openat and newfstatat, ENOSPC from pwrite64
// (nothing written), fstat of a file grown in the source (the size fstat(2) gives, not a
// cached one), a slow read cancelled while it waits (reported once, ECANCELED or its
// real bytes), and several slow reads in flight at once (each reported once with its own
// bytes; the C ABI's process-wide context cannot be closed, so this stands in for the Swift
// test of close). After each, the context must still serve a plain call. Every wait for a
// completion is bounded (WAIT_SECONDS): a call never reported fails the test, by name.
// Exit status: 0 passed, 1 failed, 77 skipped (no mount given, or `uring` cannot start).
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { SIZE = 16384, CHUNK = 4096, IN_FLIGHT = 6 };

static const char *backend;     // laio_backend()
static int background_possible; // every backend but blocking may answer EINPROGRESS
static const char *mount_root;  // LAIO_FAULTFS
static const char *source_root; // LAIO_FAULTFS_SOURCE

// Files made in the source directory, removed at the end.
static char made[16][512];
static int made_count;

// The outcome of one call, wherever it finished.
struct outcome {
    long rv;
    int error;      // errno when rv == -1
    int background; // whether it went through laio_poll
};

// The test pattern at `offset`: a mix of the offset's bits, so that bytes from a wrong
// file or a wrong place do not match by chance.
static unsigned char pattern_byte(uint64_t offset) {
    uint64_t x = offset * 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return (unsigned char)((x ^ (x >> 31)) >> 56);
}

// Whether `buffer` holds the pattern from `seed` on, for `count` bytes.
static int holds_pattern(const unsigned char *buffer, size_t count, uint64_t seed) {
    for (size_t i = 0; i < count; i++) {
        if (buffer[i] != pattern_byte(seed + i)) return 0;
    }
    return 1;
}

// Makes `name` (a path under the mount root, like "/slow/c-uring") in the source directory
// with `count` bytes of the pattern from `seed` on, and returns its path through the mount
// in `mounted`. The file is written directly, not through the mount, so that no rule meets
// the set-up.
static void fault_file(const char *name, size_t count, uint64_t seed, char *mounted, size_t size) {
    char path[512];
    snprintf(path, sizeof path, "%s%s", source_root, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) { perror(path); exit(1); }
    *slash = '/';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror(path); exit(1); }
    unsigned char bytes[SIZE];
    if (count > sizeof bytes) { fprintf(stderr, "%s: %zu bytes asked, at most %d\n", path, count, SIZE); exit(1); }
    for (size_t i = 0; i < count; i++) bytes[i] = pattern_byte(seed + i);
    if (write(fd, bytes, count) != (ssize_t)count || close(fd) != 0) { perror(path); exit(1); }
    if (made_count < (int)(sizeof made / sizeof made[0])) snprintf(made[made_count++], sizeof made[0], "%s", path);
    snprintf(mounted, size, "%s%s", mount_root, name);
}

// Opens a file through the mount with open(2), not LAIO: the set-up of a test.
static int open_mounted(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) { perror(path); exit(1); }
    return fd;
}

// How long one wait for completions may last before the calls waited for count as lost.
// The slowest call here is a read faultfs holds 300 ms, so 60 s is 200 times that, room
// for a loaded machine; the bound is not about speed: it turns a completion that never
// comes (a bug) into a failure naming the call, instead of a test that hangs CI.
enum { WAIT_SECONDS = 60 };

static double monotonic_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

// laio_poll for up to `n` completions, waiting until `deadline` (monotonic_seconds) at
// most. Returns what laio_poll returned, or 0 when the deadline passed first.
static int poll_until(struct laio_completion *c, int n, double deadline) {
    for (;;) {
        double left = deadline - monotonic_seconds();
        if (left <= 0) return 0;
        struct timespec timeout = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        int got = laio_poll(c, n, &timeout);
        if (got > 0 || (got < 0 && errno != EINTR)) return got;
    }
}

// Ends the test after a wait that outlived WAIT_SECONDS: the calls still out own buffers
// on the stack of the caller, which must not return while they may still be written.
static void fail_lost(const char *what) {
    CHECK(!"reported in time", "%s: not reported by laio_poll within %d s", what, WAIT_SECONDS);
    printf("%s: %d checks, %d failed (stopped: a call was not reported)\n", backend, checks, failures);
    for (int i = 0; i < made_count; i++) unlink(made[i]);
    exit(1);
}

// Polls until the completion of `handle` (the call `what`) arrives. Every test drains what
// it starts, so any other completion is a failure.
static struct outcome wait_for(void *handle, const char *what) {
    struct laio_completion c;
    int n = poll_until(&c, 1, monotonic_seconds() + WAIT_SECONDS);
    if (n == 0) fail_lost(what);
    CHECK(n == 1, "laio_poll for %s returned %d (errno %d)", what, n, errno);
    CHECK(c.laio_h == handle, "completion for %p, expected %p", c.laio_h, handle);
    CHECK((c.laio_rv == -1) == (c.laio_errno != 0), "rv %ld with errno %d", c.laio_rv, c.laio_errno);
    return (struct outcome){c.laio_rv, c.laio_errno, 1};
}

// Runs a call through laio_syscall and waits for it if it went to the background; a wait
// that fails names the call by its arguments as written.
#define RUN(...) run_result("laio_syscall(" #__VA_ARGS__ ")", laio_syscall(__VA_ARGS__))
static struct outcome run_result(const char *what, long rv) {
    int error = errno;
    void *handle = laio_gethandle();
    if (rv == -1 && error == EINPROGRESS) {
        CHECK(background_possible, "the %s backend went to the background", backend);
        CHECK(handle != NULL, "EINPROGRESS without a handle");
        return wait_for(handle, what);
    }
    CHECK(handle == NULL, "a synchronous call left handle %p", handle);
    return (struct outcome){rv, rv == -1 ? error : 0, 0};
}

// Nothing more is reported: a call reported twice would show up here. The window only
// gives a late duplicate time to arrive; a slow machine can miss one, never fail a good run.
static void expect_no_completion(const char *after) {
    struct laio_completion c[4];
    struct timespec window = {0, 50 * 1000 * 1000};
    int n = laio_poll(c, 4, &window);
    CHECK(n == 0, "after %s: laio_poll returned %d (first {%p, %ld, %d})", after, n, n > 0 ? c[0].laio_h : NULL,
          n > 0 ? c[0].laio_rv : 0L, n > 0 ? c[0].laio_errno : 0);
}

// The context still serves a plain call after the faults.
static void expect_working_call(const char *after) {
    int fd = open("/dev/zero", O_RDONLY);
    char buffer[8];
    memset(buffer, 1, sizeof buffer);
    struct outcome o = RUN(SYS_read, (long)fd, buffer, (long)sizeof buffer);
    CHECK(o.rv == 8 && memcmp(buffer, "\0\0\0\0\0\0\0\0", 8) == 0, "after %s: a read of /dev/zero gave rv %ld errno %d",
          after, o.rv, o.error);
    close(fd);
}

// --- EIO from the file system's read: each pread reported once with EIO ---
static void test_read_error(void) {
    char name[64], path[512];
    snprintf(name, sizeof name, "/eio-read/c-%s", backend);
    fault_file(name, SIZE, 0, path, sizeof path);
    int fd = open_mounted(path, O_RDONLY);
    unsigned char buffer[CHUNK];
    for (int i = 0; i < 3; i++) {
        struct outcome o = RUN(SYS_pread64, (long)fd, buffer, (long)sizeof buffer, 0L);
        CHECK(o.rv == -1 && o.error == EIO, "pread %d of %s: rv %ld errno %d", i, path, o.rv, o.error);
    }
    expect_no_completion("the failed preads");
    expect_working_call("the failed preads");
    close(fd);
}

// --- EIO from the file system's open and its lookup/getattr: openat and newfstatat ---
static void test_open_and_stat_errors(void) {
    char name[64], opened[512], statted[512];
    snprintf(name, sizeof name, "/eio-open/c-%s", backend);
    fault_file(name, SIZE, 0, opened, sizeof opened);
    snprintf(name, sizeof name, "/eio-stat/c-%s", backend);
    fault_file(name, SIZE, 0, statted, sizeof statted);

    struct outcome o = RUN(SYS_openat, (long)AT_FDCWD, opened, (long)O_RDONLY, 0L);
    CHECK(o.rv == -1 && o.error == EIO, "openat of %s: rv %ld errno %d", opened, o.rv, o.error);
    if (o.rv >= 0) close((int)o.rv);

    struct stat info; // stays valid until the call is reported (RUN waits for it)
    o = RUN(SYS_newfstatat, (long)AT_FDCWD, statted, &info, 0L);
    CHECK(o.rv == -1 && o.error == EIO, "newfstatat of %s: rv %ld errno %d", statted, o.rv, o.error);

    expect_no_completion("the failed open and stat");
    expect_working_call("the failed open and stat");
}

// --- auto-fstat-stale (issue 27): a file grows in the source ("on the far side", where the
// kernel does not see it); with attributes not cached (attr_timeout=0), laio_syscall's
// fstat asks the file system as fstat(2) does, never answering from the stale cache ---
static void test_fstat_after_growth(void) {
    char name[64], path[512], source[512];
    snprintf(name, sizeof name, "/far/c-%s", backend);
    fault_file(name, SIZE / 2, 0, path, sizeof path);
    snprintf(source, sizeof source, "%s%s", source_root, name);
    int fd = open_mounted(path, O_RDONLY);
    struct stat info; // stays valid until the call is reported (RUN waits for it)
    struct outcome o = RUN(SYS_fstat, (long)fd, &info);
    CHECK(o.rv == 0 && info.st_size == SIZE / 2, "fstat of %s: rv %ld errno %d size %lld", path, o.rv, o.error,
          (long long)info.st_size);

    int grow = open(source, O_WRONLY | O_APPEND);
    unsigned char more[SIZE / 2];
    memset(more, 7, sizeof more);
    CHECK(grow >= 0 && write(grow, more, sizeof more) == (ssize_t)sizeof more, "append to %s", source);
    if (grow >= 0) close(grow);

    o = RUN(SYS_fstat, (long)fd, &info);
    struct stat plain;
    CHECK(fstat(fd, &plain) == 0 && plain.st_size == SIZE, "fstat(2) of %s: size %lld", path, (long long)plain.st_size);
    CHECK(o.rv == 0 && info.st_size == SIZE, "laio fstat of %s after it grew: rv %ld errno %d size %lld (fstat(2): %d)",
          path, o.rv, o.error, (long long)info.st_size, SIZE);
    close(fd);
    expect_no_completion("the fstat of a grown file");
}

// --- ENOSPC from the file system's write: reported, and nothing written ---
static void test_write_error(void) {
    char name[64], path[512];
    snprintf(name, sizeof name, "/enospc/c-%s", backend);
    fault_file(name, 0, 0, path, sizeof path);
    int fd = open_mounted(path, O_WRONLY);
    unsigned char bytes[CHUNK];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = pattern_byte(i);
    struct outcome o = RUN(SYS_pwrite64, (long)fd, bytes, (long)sizeof bytes, 0L);
    CHECK(o.rv == -1 && o.error == ENOSPC, "pwrite64 to %s: rv %ld errno %d", path, o.rv, o.error);
    struct stat info;
    CHECK(fstat(fd, &info) == 0 && info.st_size == 0, "%s holds %ld bytes after the failed write", path,
          (long)info.st_size);
    expect_no_completion("the failed write");
    expect_working_call("the failed write");
    close(fd);
}

// --- a read the file system holds 300 ms, cancelled while it waits ---
static void test_cancel_slow_read(void) {
    char name[64], path[512];
    snprintf(name, sizeof name, "/slow/c-cancel-%s", backend);
    fault_file(name, SIZE, 0, path, sizeof path);
    int fd = open_mounted(path, O_RDONLY);
    unsigned char buffer[CHUNK];
    memset(buffer, 0, sizeof buffer);
    errno = 0;
    long rv = laio_syscall(SYS_pread64, (long)fd, buffer, (long)sizeof buffer, 0L);
    int error = errno;
    if (!background_possible) {
        // blocking runs the read inline: it waits the 300 ms and gives the bytes.
        CHECK(rv == CHUNK && holds_pattern(buffer, CHUNK, 0), "slow pread on blocking: rv %ld errno %d", rv, error);
        CHECK(laio_gethandle() == NULL, "a synchronous call left a handle");
        printf("  cancel: not tried, the blocking backend never goes to the background (the slow read gave its bytes)\n");
        expect_working_call("the slow read");
        close(fd);
        return;
    }
    // The lazy window of `threads` is microseconds, and io_uring and auto cannot finish a
    // read the file system holds: it must go to the background.
    CHECK(rv == -1 && error == EINPROGRESS, "a pread delayed 300 ms by the file system: rv %ld errno %d", rv, error);
    void *handle = laio_gethandle();
    if (rv == -1 && error == EINPROGRESS) CHECK(handle != NULL, "EINPROGRESS without a handle");
    if (rv != -1 || error != EINPROGRESS || handle == NULL) {
        close(fd);
        return;
    }
    // 0: asked. ENOENT only if the read already finished (a machine slower than 300 ms
    // between the two calls); then it must be reported with its bytes.
    errno = 0;
    int cancelled = laio_cancel(handle);
    int cancel_error = errno;
    CHECK(cancelled == 0 || cancel_error == ENOENT, "laio_cancel: %d errno %d", cancelled, cancel_error);
    struct outcome o = wait_for(handle, "the cancelled slow pread64");
    if (o.rv == -1) {
        CHECK(o.error == ECANCELED, "the cancelled read: rv -1 errno %d (%s)", o.error, strerror(o.error));
        CHECK(cancelled == 0, "ECANCELED for a call laio_cancel did not find");
    } else {
        CHECK(o.rv == CHUNK && holds_pattern(buffer, CHUNK, 0), "the cancelled read: rv %ld, bytes %s", o.rv,
              holds_pattern(buffer, CHUNK, 0) ? "right" : "wrong");
    }
    const char *how = o.rv != -1 ? "its real result (cancel asked; the read finished all the same)"
                      : o.error == ECANCELED ? "ECANCELED" : strerror(o.error);
    if (o.rv != -1 && cancelled != 0) how = "its real result (finished before the cancel)";
    printf("  cancel on %s: %s\n", backend, how);
    errno = 0;
    CHECK(laio_cancel(handle) == -1 && errno == ENOENT, "cancel after the report: errno %d", errno);
    expect_no_completion("the cancelled read");
    expect_working_call("the cancelled read");
    close(fd);
}

// --- several slow reads in flight at once: each reported once with its own bytes ---
// The C ABI's context lives as long as the process and has no close; the Swift test's
// close with reads in flight becomes: nothing lost, nothing doubled, nothing mixed up.
static void test_slow_reads_in_flight(void) {
    int fds[IN_FLIGHT];
    void *handles[IN_FLIGHT];
    int reported[IN_FLIGHT];
    static unsigned char buffers[IN_FLIGHT][CHUNK];
    int background = 0;
    for (int i = 0; i < IN_FLIGHT; i++) {
        char name[64], path[512];
        snprintf(name, sizeof name, "/slow/c-flight-%s-%d", backend, i);
        // Each file its own stretch of the pattern, so that a buffer filled from another
        // file (or another call's buffer) does not pass.
        fault_file(name, SIZE, (uint64_t)i * SIZE, path, sizeof path);
        fds[i] = open_mounted(path, O_RDONLY);
    }
    for (int i = 0; i < IN_FLIGHT; i++) {
        errno = 0;
        long rv = laio_syscall(SYS_pread64, (long)fds[i], buffers[i], (long)CHUNK, 0L);
        int error = errno;
        handles[i] = laio_gethandle();
        reported[i] = 0;
        if (rv == -1 && error == EINPROGRESS) {
            CHECK(background_possible, "the %s backend went to the background", backend);
            CHECK(handles[i] != NULL, "read %d: EINPROGRESS without a handle", i);
            for (int k = 0; k < i; k++) {
                CHECK(handles[k] != handles[i], "reads %d and %d share handle %p", k, i, handles[i]);
            }
            background++;
        } else {
            // Only blocking answers at once: it waits the 300 ms inline.
            CHECK(!background_possible, "read %d of a file delayed 300 ms finished at once: rv %ld errno %d", i, rv, error);
            CHECK(rv == CHUNK && holds_pattern(buffers[i], CHUNK, (uint64_t)i * SIZE), "read %d: rv %ld errno %d", i,
                  rv, error);
            handles[i] = NULL;
            reported[i] = 1;
        }
    }
    // Collect until every background read is reported; each completion must name a read
    // still outstanding (a duplicate or a stray fails), with its own bytes.
    int left = background;
    double deadline = monotonic_seconds() + WAIT_SECONDS;
    while (left > 0) {
        struct laio_completion c[IN_FLIGHT + 2];
        int n = poll_until(c, IN_FLIGHT + 2, deadline);
        if (n == 0) {
            char what[128];
            int used = snprintf(what, sizeof what, "slow reads in flight (%d of %d out):", left, background);
            for (int i = 0; i < IN_FLIGHT; i++) {
                if (!reported[i] && used < (int)sizeof what) used += snprintf(what + used, sizeof what - (size_t)used, " read %d", i);
            }
            fail_lost(what);
        }
        CHECK(n >= 1, "laio_poll for the slow reads returned %d (errno %d)", n, errno);
        if (n < 1) break;
        for (int k = 0; k < n; k++) {
            int i = 0;
            while (i < IN_FLIGHT && (handles[i] != c[k].laio_h || reported[i])) i++;
            CHECK(i < IN_FLIGHT, "handle %p reported but not outstanding (twice, or never issued)", c[k].laio_h);
            if (i == IN_FLIGHT) continue;
            reported[i] = 1;
            left--;
            // Nobody cancelled these: only the real result will do.
            CHECK(c[k].laio_rv == CHUNK && c[k].laio_errno == 0, "read %d: {%ld, %d}", i, c[k].laio_rv, c[k].laio_errno);
            CHECK(holds_pattern(buffers[i], CHUNK, (uint64_t)i * SIZE), "read %d: the buffer does not hold its file's bytes", i);
        }
    }
    if (background_possible) {
        printf("  %d slow reads in flight on %s, each reported once\n", background, backend);
    } else {
        printf("  slow reads: not in flight, the blocking backend ran the %d one after another\n", IN_FLIGHT);
    }
    expect_no_completion("the slow reads");
    expect_working_call("the slow reads");
    for (int i = 0; i < IN_FLIGHT; i++) close(fds[i]);
}

int main(void) {
    mount_root = getenv("LAIO_FAULTFS");
    source_root = getenv("LAIO_FAULTFS_SOURCE");
    if (mount_root == NULL || *mount_root == '\0' || source_root == NULL || *source_root == '\0') {
        printf("skip: LAIO_FAULTFS and LAIO_FAULTFS_SOURCE are not set: scripts/test-faults mounts tools/faultfs for these tests\n");
        return 77;
    }
    // A directory that is not a faultfs mount would fail every check; say so once instead.
    char stats[512];
    struct stat info;
    snprintf(stats, sizeof stats, "%s/.faultfs-stats", mount_root);
    if (stat(stats, &info) != 0) {
        fprintf(stderr, "FAIL: LAIO_FAULTFS=%s is not a faultfs mount (no %s: %s)\n", mount_root, stats, strerror(errno));
        return 1;
    }
    backend = start_backend_or_skip();
    const char *asked = getenv("LAIO_BACKEND");
    CHECK(strcmp(backend, asked && *asked ? asked : "auto") == 0, "backend %s, asked for %s", backend, asked);
    background_possible = strcmp(backend, "blocking") != 0;

    test_read_error();
    test_open_and_stat_errors();
    test_write_error();
    test_fstat_after_growth();
    test_cancel_slow_read();
    test_slow_reads_in_flight();

    for (int i = 0; i < made_count; i++) unlink(made[i]);
    printf("%s: %d checks, %d failed\n", backend, checks, failures);
    return failures == 0 ? 0 : 1;
}
