// A call outlives the thread that made it: hundreds of calls, each submitted by a thread
// that exits at once (pipe reads and socket recvs waiting for data, accepts waiting for a
// connection, sends into full socket buffers and writes into full pipes, sleeps, cold
// reads, opens that create a file), must each be reported exactly once with its real
// result, on every backend (LAIO_BACKEND). Checks that nothing is done twice or lost: each
// payload read once and the channel empty afterwards, each send's and each pipe write's
// bytes arriving once, one accepted connection per connect, no descriptor leaked.
// Exit status: 0 passed, 1 failed, 77 the backend cannot start here.
#define _GNU_SOURCE
#include "helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>


enum kind { PIPE_READ, RECV, ACCEPT, SEND, PIPE_WRITE, SLEEP, COLD_READ, OPEN, KINDS };
static const char *kind_names[KINDS] = {"pipe read", "recv", "accept", "send", "pipe write", "sleep", "cold read", "open"};
enum { PER_KIND = 36, JOBS = PER_KIND * KINDS, CHUNK = 64 * 1024, SEND_BYTES = 100, PAYLOAD = 8 };

struct job {
    enum kind kind;
    int fd;       // what the call uses
    int peer;     // the other end, kept by the test
    long offset;  // cold read: where in the file
    char path[64];
    char buffer[CHUNK];
    struct timespec sleep;
    // Set by the submitting thread before it exits.
    long rv;
    int error;
    void *handle;
    // Set when the result is known (synchronously or from laio_poll).
    int reported;
    long result;
    int result_errno;
};

static struct job *jobs;
static char directory[] = "/tmp/laio-exited-XXXXXX";

static void *submit(void *argument) {
    struct job *j = argument;
    switch (j->kind) {
    case PIPE_READ: j->rv = laio_syscall(SYS_read, j->fd, j->buffer, (long)PAYLOAD); break;
    case RECV: j->rv = laio_syscall(SYS_recvfrom, j->fd, j->buffer, (long)PAYLOAD, 0L, 0L, 0L); break;
    case ACCEPT: j->rv = laio_syscall(SYS_accept4, j->fd, 0L, 0L, (long)SOCK_CLOEXEC); break;
    case SEND: j->rv = laio_syscall(SYS_sendto, j->fd, j->buffer, (long)SEND_BYTES, 0L, 0L, 0L); break;
    case PIPE_WRITE: j->rv = laio_syscall(SYS_write, j->fd, j->buffer, (long)SEND_BYTES); break;
    case SLEEP: j->rv = laio_syscall(SYS_nanosleep, &j->sleep, 0L); break;
    case COLD_READ: j->rv = laio_syscall(SYS_pread64, j->fd, j->buffer, (long)CHUNK, j->offset); break;
    case OPEN: j->rv = laio_syscall(SYS_openat, (long)AT_FDCWD, j->path, (long)(O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC), 0600L); break;
    case KINDS: break;
    }
    j->error = errno;
    j->handle = laio_gethandle();
    return NULL;
}

// Descriptors open in the process, but for the library's own (eventfd, epoll, io_uring
// instances: the backends may make one on first need).
static int open_descriptors(void) {
    int count = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return -1;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        char path[300], target[300];
        snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0) continue;
        target[n] = 0;
        if (strncmp(target, "anon_inode:", 11) != 0) count++;
    }
    closedir(d);
    return count;
}

static unsigned char pattern_byte(long i) { return (unsigned char)(i * 7 + i / 251); }

// Makes the file of the cold reads and drops its pages from the cache.
static int make_cold_file(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/cold", directory);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    static unsigned char block[CHUNK];
    for (int c = 0; c < PER_KIND; c++) {
        for (long i = 0; i < CHUNK; i++) block[i] = pattern_byte((long)c * CHUNK + i);
        if (pwrite(fd, block, CHUNK, (long)c * CHUNK) != CHUNK) return -1;
    }
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    return fd;
}

static void record(struct job *j, long rv, int error) {
    CHECK(!j->reported, "%s job %ld reported twice", kind_names[j->kind], (long)(j - jobs));
    j->reported = 1;
    j->result = rv;
    j->result_errno = error;
}

int main(void) {
    const char *backend = start_backend_or_skip();
    int asynchronous = strcmp(backend, "blocking") != 0;
    if (mkdtemp(directory) == NULL) { perror("mkdtemp"); return 1; }
    jobs = calloc(JOBS, sizeof *jobs);
    int cold = make_cold_file();
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (jobs == NULL || cold < 0 || listener < 0 || bind(listener, (struct sockaddr *)&address, length) != 0 ||
        listen(listener, JOBS) != 0 || getsockname(listener, (struct sockaddr *)&address, &length) != 0) {
        perror("set-up");
        return 1;
    }
    int before = open_descriptors();

    for (int i = 0; i < JOBS; i++) {
        struct job *j = &jobs[i];
        j->kind = (enum kind)(i % KINDS);
        int pair[2] = {-1, -1};
        switch (j->kind) {
        case PIPE_READ:
            if (pipe2(pair, O_CLOEXEC) != 0) { perror("pipe"); return 1; }
            j->fd = pair[0], j->peer = pair[1];
            break;
        case RECV:
        case SEND:
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) { perror("socketpair"); return 1; }
            j->fd = pair[0], j->peer = pair[1];
            if (j->kind == SEND) {
                // Fill the send buffer, so that the call must wait for the reader.
                int small = 4096;
                setsockopt(j->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
                static char filler[4096];
                while (send(j->fd, filler, sizeof filler, MSG_DONTWAIT) > 0) {}
                while (send(j->fd, filler, 1, MSG_DONTWAIT) > 0) {}
                memset(j->buffer, 'A' + i % 26, SEND_BYTES);
                fcntl(j->peer, F_SETFL, O_NONBLOCK);
            }
            break;
        case PIPE_WRITE: {
            // A full pipe (its smallest size), so that the write must wait for the reader.
            if (pipe2(pair, O_CLOEXEC) != 0) { perror("pipe"); return 1; }
            j->fd = pair[1], j->peer = pair[0];
            fcntl(j->fd, F_SETPIPE_SZ, 4096);
            fcntl(j->fd, F_SETFL, O_NONBLOCK);
            static char filler[4096];
            while (write(j->fd, filler, sizeof filler) > 0) {}
            while (write(j->fd, filler, 1) > 0) {}
            fcntl(j->fd, F_SETFL, 0);
            fcntl(j->peer, F_SETFL, O_NONBLOCK);
            memset(j->buffer, 'A' + i % 26, SEND_BYTES);
            break;
        }
        case ACCEPT: j->fd = listener; break;
        case SLEEP: j->sleep = (struct timespec){0, 20 * 1000 * 1000}; break;
        case COLD_READ: j->fd = cold, j->offset = (long)(i / KINDS) * CHUNK; break;
        case OPEN: snprintf(j->path, sizeof j->path, "%s/open-%d", directory, i); break;
        case KINDS: break;
        }
    }
    // Each call from a thread of its own, which exits at once. On `blocking` the thread
    // waits in the call itself, so the data must come first there: the threads are joined
    // after it.
    pthread_t threads[JOBS];
    for (int i = 0; i < JOBS; i++) {
        if (pthread_create(&threads[i], NULL, submit, &jobs[i]) != 0) { perror("pthread_create"); return 1; }
        if (asynchronous) pthread_join(threads[i], NULL);
    }
    int background = 0;
    if (asynchronous) {
        for (int i = 0; i < JOBS; i++) {
            struct job *j = &jobs[i];
            if (j->rv == -1 && j->error == EINPROGRESS) {
                CHECK(j->handle != NULL, "EINPROGRESS without a handle");
                background++;
            } else {
                CHECK(j->handle == NULL, "a synchronous call left a handle");
                record(j, j->rv, j->rv == -1 ? j->error : 0);
            }
        }
    }

    // Now the data: a payload per pipe and socket, a connection per accept; the senders'
    // peers are drained below while completions are collected.
    for (int i = 0; i < JOBS; i++) {
        struct job *j = &jobs[i];
        char payload[PAYLOAD];
        snprintf(payload, sizeof payload, "p%06d", i);
        if (j->kind == PIPE_READ || j->kind == RECV) {
            CHECK(write(j->peer, payload, PAYLOAD) == PAYLOAD, "write");
        }
        if (j->kind == ACCEPT) {
            j->peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            CHECK(connect(j->peer, (struct sockaddr *)&address, sizeof address) == 0, "connect: %s", strerror(errno));
        }
    }
    long *received = calloc(JOBS, sizeof *received);
    long *marked = calloc(JOBS, sizeof *marked);
    int reported = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int drained = 1;
        for (int i = 0; i < JOBS; i++) {
            struct job *j = &jobs[i];
            if (j->kind != SEND && j->kind != PIPE_WRITE) continue;
            char chunk[8192];
            ssize_t n;
            while ((n = read(j->peer, chunk, sizeof chunk)) > 0) {
                received[i] += n;
                for (ssize_t k = 0; k < n; k++) marked[i] += chunk[k] == 'A' + i % 26;
            }
            if (marked[i] < SEND_BYTES) drained = 0;
        }
        // A reported send's bytes are all in its peer's queue: the drain above took them.
        // On `blocking` the senders are still in their calls until their bytes are read.
        if (reported == background && (asynchronous || drained)) break;
        if (asynchronous && reported < background) {
            struct laio_completion c[32];
            struct timespec tick = {0, 10 * 1000 * 1000};
            int n = laio_poll(c, 32, &tick);
            CHECK(n >= 0, "laio_poll: %s", strerror(errno));
            for (int k = 0; k < n; k++) {
                struct job *found = NULL;
                for (int i = 0; i < JOBS; i++) {
                    if (jobs[i].handle == c[k].laio_h && !jobs[i].reported && jobs[i].rv == -1) found = &jobs[i];
                }
                CHECK(found != NULL, "handle %p reported but not outstanding (twice, or never issued)", c[k].laio_h);
                if (found) record(found, c[k].laio_rv, c[k].laio_errno);
                reported++;
            }
        } else {
            usleep(1000);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        // A generous bound: each call is a pipe read, a 20 ms sleep or a 64 KiB read.
        if (now.tv_sec - start.tv_sec > 120) {
            CHECK(0, "only %d of %d background calls reported within 120 s", reported, background);
            break;
        }
    }
    if (!asynchronous) {
        for (int i = 0; i < JOBS; i++) {
            pthread_join(threads[i], NULL);
            CHECK(jobs[i].handle == NULL, "blocking left a handle");
            record(&jobs[i], jobs[i].rv, jobs[i].rv == -1 ? jobs[i].error : 0);
        }
    }
    struct laio_completion extra;
    struct timespec wait = {0, 50 * 1000 * 1000};
    CHECK(laio_poll(&extra, 1, &wait) == 0, "a completion beyond those submitted: %p", extra.laio_h);

    // Every result real, nothing done twice.
    int cancelled = 0, faulted = 0, accepted_count = 0;
    for (int i = 0; i < JOBS; i++) {
        struct job *j = &jobs[i];
        if (!j->reported) continue;
        if (j->result == -1 && j->result_errno == ECANCELED) cancelled++;
        if (j->result == -1 && j->result_errno == EFAULT) faulted++;
        char payload[PAYLOAD + 1], rest[16];
        snprintf(payload, sizeof payload, "p%06d", i);
        switch (j->kind) {
        case PIPE_READ:
        case RECV:
            CHECK(j->result == PAYLOAD && memcmp(j->buffer, payload, PAYLOAD) == 0, "%s %d: rv %ld errno %s",
                  kind_names[j->kind], i, j->result, strerror(j->result_errno));
            // Read once: nothing more in the channel (a second run would have taken it, or wait).
            fcntl(j->fd, F_SETFL, O_NONBLOCK);
            CHECK(read(j->fd, rest, sizeof rest) == -1 && errno == EAGAIN, "%s %d: data left", kind_names[j->kind], i);
            break;
        case ACCEPT:
            CHECK(j->result >= 0, "accept %d: rv %ld errno %s", i, j->result, strerror(j->result_errno));
            if (j->result >= 0) { accepted_count++; close((int)j->result); }
            break;
        case SEND:
        case PIPE_WRITE:
            CHECK(j->result == SEND_BYTES && marked[i] == SEND_BYTES, "%s %d: rv %ld errno %s, %ld of its bytes arrived",
                  kind_names[j->kind], i, j->result, strerror(j->result_errno), marked[i]);
            break;
        case SLEEP:
            CHECK(j->result == 0, "sleep %d: rv %ld errno %s", i, j->result, strerror(j->result_errno));
            break;
        case COLD_READ: {
            // A buffered read whose rest was to be read in its exited thread's task work
            // ends with the bytes it had: the kernel's count, as pread(2) may return less.
            int same = j->result > 0 && j->result <= CHUNK;
            for (long k = 0; same && k < j->result; k++) same = (unsigned char)j->buffer[k] == pattern_byte(j->offset + k);
            CHECK(same, "cold read %d: rv %ld errno %s, or wrong bytes", i, j->result, strerror(j->result_errno));
            break;
        }
        case OPEN:
            CHECK(j->result >= 0, "open %d: rv %ld errno %s", i, j->result, strerror(j->result_errno));
            if (j->result >= 0) close((int)j->result);
            unlink(j->path);
            break;
        case KINDS: break;
        }
    }
    for (int i = 0; i < JOBS; i++) CHECK(jobs[i].reported, "%s job %d never reported", kind_names[jobs[i].kind], i);
    CHECK(accepted_count == PER_KIND, "%d connections accepted of %d", accepted_count, (int)PER_KIND);
    // No connection was taken twice: nothing is left in the listener's queue.
    fcntl(listener, F_SETFL, O_NONBLOCK);
    int left = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    CHECK(left == -1 && errno == EAGAIN, "a connection was left in the queue (or accepted twice): %d", left);
    for (int i = 0; i < JOBS; i++) {
        enum kind k = jobs[i].kind;
        if (k == PIPE_READ || k == RECV || k == SEND || k == PIPE_WRITE || k == ACCEPT) close(jobs[i].peer);
        if (k == PIPE_READ || k == RECV || k == SEND || k == PIPE_WRITE) close(jobs[i].fd);
    }
    int after = open_descriptors();
    CHECK(after == before, "%d descriptors open before the calls, %d after (an open leaked, or was done twice)", before, after);
    CHECK(cancelled == 0, "%d calls reported ECANCELED, which nobody asked for", cancelled);
    CHECK(faulted == 0, "%d calls reported EFAULT (every buffer is valid)", faulted);
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", directory);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", directory);
    printf("%s: %d calls from exited threads, %d in the background, %d reported ECANCELED, %d EFAULT; %d checks, %d failed\n",
           backend, JOBS, background, cancelled, faulted, checks, failures);
    return failures == 0 ? 0 : 1;
}
