// A small event loop on LAIO: it reads files and a pipe without ever blocking, and says
// which calls finished at once and which went to the background.
//
//   make install PREFIX=/usr/local            (from the repository's root)
//   cc -o event-loop Examples/event-loop.c $(pkg-config --cflags --libs laio) -pthread
//   ./event-loop [FILE...]                    (LAIO_BACKEND=threads ./event-loop ... to compare)
//
// Each file is opened, its pages dropped from the cache (so the first read must reach the
// disk), read cold, read again warm, and closed: every step a laio_syscall. A pipe is read
// too; a second thread writes to it 100 ms later, so that read goes to the background on
// every backend but `blocking` (which would wait, so the line is written first there).
#define _GNU_SOURCE
#include <laio.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum step { OPEN, READ_COLD, READ_WARM, CLOSE, DONE };
static const char *const step_names[] = {"open", "read (cold)", "read (warm)", "close", "done"};

struct job {
    const char *name;   // a file's path, or "pipe"
    int is_pipe;
    enum step step;
    int fd;
    char buffer[65536];
    struct timespec started;
};

static double milliseconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) * 1e3 + (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

// Issues the job's current step. Returns its handle if it went to the background, NULL if
// it finished (then `*rv`/`*error` hold its result).
static void *issue(struct job *job, long *rv, int *error) {
    clock_gettime(CLOCK_MONOTONIC, &job->started);
    switch (job->step) {
    case OPEN:
        *rv = laio_syscall(SYS_openat, (long)AT_FDCWD, job->name, (long)O_RDONLY, 0L);
        break;
    case READ_COLD:
    case READ_WARM:
        *rv = job->is_pipe ? laio_syscall(SYS_read, (long)job->fd, job->buffer, (long)sizeof job->buffer)
                           : laio_syscall(SYS_pread64, (long)job->fd, job->buffer, (long)sizeof job->buffer, 0L);
        break;
    case CLOSE:
        *rv = laio_syscall(SYS_close, (long)job->fd);
        break;
    case DONE:
        return NULL;
    }
    *error = errno;
    return *rv == -1 && *error == EINPROGRESS ? laio_gethandle() : NULL;
}

// Takes a step's result and moves the job on.
static void finish(struct job *job, long rv, int error, int background) {
    printf("%-24s %-12s -> ", job->name, step_names[job->step]);
    if (rv == -1) printf("error %s", strerror(error));
    else printf("%ld", rv);
    printf("  (%s, %.3f ms)\n", background ? "background" : "synchronous", milliseconds_since(&job->started));
    if (rv == -1) {
        job->step = job->step == OPEN || job->step == CLOSE ? DONE : CLOSE;
        return;
    }
    switch (job->step) {
    case OPEN:
        job->fd = (int)rv;
        posix_fadvise(job->fd, 0, 0, POSIX_FADV_DONTNEED);  // a hint: returns at once
        job->step = READ_COLD;
        break;
    case READ_COLD:
        job->step = job->is_pipe ? CLOSE : READ_WARM;
        break;
    case READ_WARM:
        job->step = CLOSE;
        break;
    default:
        job->step = DONE;
    }
}

// Runs a job's steps until one goes to the background or the job is done.
static void advance(struct job *job, void **waiting_on) {
    while (job->step != DONE) {
        long rv = 0;
        int error = 0;
        void *handle = issue(job, &rv, &error);
        if (handle != NULL) {
            *waiting_on = handle;
            return;
        }
        finish(job, rv, error, 0);
    }
    *waiting_on = NULL;
}

static int pipe_fds[2];

static void *late_writer(void *unused) {
    (void)unused;
    struct timespec delay = {0, 100 * 1000 * 1000};
    nanosleep(&delay, NULL);
    const char line[] = "a line from the other end of the pipe\n";
    if (write(pipe_fds[1], line, sizeof line - 1) < 0) perror("write");
    return NULL;
}

int main(int argc, char **argv) {
    const char *backend = laio_backend();
    if (backend == NULL) {
        fprintf(stderr, "event-loop: LAIO could not start: %s\n", strerror(errno));
        return 1;
    }
    printf("LAIO backend: %s\n", backend);

    int files = argc > 1 ? argc - 1 : 2;
    const char *defaults[] = {"/etc/passwd", "/etc/os-release"};
    int count = files + 1;
    struct job *jobs = calloc((size_t)count, sizeof *jobs);
    void **waiting_on = calloc((size_t)count, sizeof *waiting_on);
    if (jobs == NULL || waiting_on == NULL || pipe(pipe_fds) != 0) {
        perror("event-loop");
        return 1;
    }
    for (int i = 0; i < files; i++) jobs[i].name = argc > 1 ? argv[i + 1] : defaults[i];
    struct job *pipe_job = &jobs[files];
    pipe_job->name = "pipe";
    pipe_job->is_pipe = 1;
    pipe_job->fd = pipe_fds[0];
    pipe_job->step = READ_COLD;

    pthread_t writer;
    if (strcmp(backend, "blocking") == 0) late_writer(NULL);  // it would wait for ever
    else pthread_create(&writer, NULL, late_writer, NULL);

    int pending = 0;
    for (int i = 0; i < count; i++) {
        advance(&jobs[i], &waiting_on[i]);
        pending += waiting_on[i] != NULL;
    }
    // The loop: wait for background completions and move their jobs on.
    while (pending > 0) {
        struct laio_completion done[16];
        int n = laio_poll(done, 16, NULL);
        if (n < 0) {
            perror("laio_poll");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            for (int i = 0; i < count; i++) {
                if (waiting_on[i] != done[k].laio_h) continue;
                finish(&jobs[i], done[k].laio_rv, done[k].laio_errno, 1);
                advance(&jobs[i], &waiting_on[i]);
                pending -= waiting_on[i] == NULL;
                break;
            }
        }
    }
    if (strcmp(backend, "blocking") != 0) pthread_join(writer, NULL);
    close(pipe_fds[1]);
    free(waiting_on);
    free(jobs);
    return 0;
}
