/*
 * laio.h: Lazy Asynchronous I/O for C programs (liblaio, part of swift-laio).
 *
 * Any system call, without fear of blocking:
 *
 *     long n = laio_syscall(SYS_pread64, fd, buf, len, off);
 *     if (n >= 0)                         ... finished at once; n is the result
 *     else if (errno == EINPROGRESS)      ... remember laio_gethandle(); laio_poll reports it
 *     else                                ... failed at once, errno as syscall(2) sets it
 *
 * The API is the one of the original LAIO (laio_syscall, laio_gethandle, laio_poll) with
 * four extensions (laio_cancel, laio_pollfd, laio_backend, and errno on every failure).
 * Link with `pkg-config --cflags --libs laio`. The backend is chosen once per process by
 * the LAIO_BACKEND environment variable: auto (default), uring, threads or blocking.
 * After fork() the child gets a context of its own on its first call; calls the parent
 * left in the background are never reported in the child.
 *
 * What liblaio takes from the process, once its context starts (on the first call):
 * - threads: `threads` and `auto` keep a pool of worker threads (16 on `threads`; on
 *   `auto` 2 beside io_uring, 4 without it) that grows by a worker for every call that
 *   would wait, up to the process's limits; `uring` and `auto` start one more when a thread exits with
 *   calls in flight (to issue them again), and the kernel runs io_uring's own workers.
 *   liblaio's threads block every signal but the cancel signal and the fault signals
 *   (SIGSEGV, SIGBUS, ...), so no handler of the application runs on them;
 * - a signal: `threads` and `auto` interrupt a worker blocked in a cancelled call with a
 *   real-time signal, SIGRTMIN+5 unless LAIO_CANCEL_SIGNAL names another (SIGRTMIN+N,
 *   SIGRTMAX-N or a number). liblaio installs an empty handler on it only if the signal
 *   has none (SIG_DFL or SIG_IGN): when the application has a handler there, the context
 *   does not start and every call fails with EBUSY; a LAIO_CANCEL_SIGNAL that is not a
 *   real-time signal fails every call with EINVAL. `uring` and `blocking` take no signal;
 * - descriptors: an eventfd, and on `uring` and `auto` the io_uring instance (plus an
 *   epoll instance once laio_pollfd is called), all close-on-exec.
 */
#ifndef LAIO_H
#define LAIO_H

#ifdef __cplusplus
extern "C" {
#endif

#define LAIO_VERSION_MAJOR 0
#define LAIO_VERSION_MINOR 1

/* Declared here so that laio.h needs no POSIX feature macros; <time.h> defines it. */
struct timespec;

/* One finished background call, as laio_poll reports it. */
struct laio_completion {
    void *laio_h;     /* the handle laio_gethandle() gave for the call */
    long laio_rv;     /* the call's return value, as syscall(2) returns it; -1 on failure */
    int laio_errno;   /* the call's errno on failure (ECANCELED if cancelled), 0 on success */
};

/*
 * Runs system call `number` (a SYS_* constant from <sys/syscall.h>) with up to six
 * `long`-sized arguments, as syscall(2) does.
 *
 * - Finished without blocking: returns what syscall(2) returns, with errno set as it sets
 *   it on failure; laio_gethandle() then returns NULL on this thread.
 * - Continues in the background: returns -1 with errno EINPROGRESS; laio_gethandle()
 *   returns its handle until this thread's next laio_syscall, and laio_poll reports it
 *   exactly once. Memory the call points to must stay valid until then.
 * - Refused by the library: -1 with errno ENOSYS for a call the backend cannot run (exit,
 *   clone, fork and exec on every backend that runs calls on other threads; on `uring`,
 *   every call io_uring has no operation for), EAGAIN while the process has as many
 *   calls outstanding as it can hold (poll, then retry), or the error that stopped the
 *   process-wide context from starting (EINVAL for an unknown LAIO_BACKEND or a
 *   LAIO_CANCEL_SIGNAL that is not a real-time signal, EBUSY when the cancel signal has a
 *   handler of the application; see the top of this file).
 *
 * Every argument is read as a `long`, as syscall(2) reads it: pass pointers and integers,
 * not floating-point values or structures.
 */
long laio_syscall(long number, ...);

/* The handle of this thread's last laio_syscall if it went to the background, else NULL. */
void *laio_gethandle(void);

/*
 * Fills up to `ncompletions` records with finished background calls, oldest first.
 * `timeout` NULL waits until at least one is there; {0, 0} never waits.
 * Returns the number of records filled, 0 when the timeout passed, or -1 with errno:
 * EINVAL for a NULL array, ncompletions <= 0 or a timeout with tv_sec < 0 or tv_nsec
 * outside [0, 999999999]; EINTR when a signal handler ran on the calling thread during the
 * wait and no record was filled (as poll(2) does, whatever SA_RESTART says); the
 * context's start-up error when it could not start.
 * Waiting for ever while nothing is outstanding is allowed: another thread may submit.
 */
int laio_poll(struct laio_completion completions[], int ncompletions, const struct timespec *timeout);

/*
 * Asks the background call `handle` to stop. Returns 0 when asked; the call is still
 * reported by laio_poll exactly once, with ECANCELED or, if it finished first, its real
 * result. Returns -1 with errno ENOENT when no such call is outstanding (already
 * finished, never issued, or completed at once), EINVAL for NULL.
 */
int laio_cancel(void *handle);

/*
 * A descriptor that is readable while completions wait for laio_poll: watch it with
 * epoll, poll or select; do not read or close it. -1 with errno if the context could not
 * start.
 */
int laio_pollfd(void);

/*
 * The backend running this process's calls: "auto", "uring", "threads" or "blocking".
 * NULL with errno if the context could not start. The string is the library's, kept for
 * the life of the process: do not free it.
 */
const char *laio_backend(void);

#ifdef __cplusplus
}
#endif

#endif /* LAIO_H */
