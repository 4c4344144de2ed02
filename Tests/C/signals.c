// app-signal-taken (issue 27): liblaio never takes a signal from the application. For each
// real-time signal a child process installs a counting handler of its own (plain and
// SA_SIGINFO in turn) before its first liblaio call, then starts the process context on
// LAIO_BACKEND and uses it (a pipe read cancelled while it waits, where calls can go to the
// background: on `threads` the cancel signal interrupts its worker). Its handler must still
// be installed afterwards, get a raised signal exactly once and never one of liblaio's.
// On SIGRTMIN+5, the default cancel signal, `threads` and `auto` must refuse to start with
// EBUSY; with LAIO_CANCEL_SIGNAL=SIGRTMIN+6 they start and the handler on SIGRTMIN+5 stays.
// A LAIO_CANCEL_SIGNAL that is not a real-time signal fails every call with EINVAL.
// Children, because the process context is made once per process (and cannot be closed).
// Exit status: 0 passed, 1 failed, 77 skipped (`uring` cannot start here).
#define _GNU_SOURCE
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_int hits;

static void counting_handler(int sig) {
    (void)sig;
    atomic_fetch_add(&hits, 1);
}

static void counting_info_handler(int sig, siginfo_t *info, void *context) {
    (void)sig, (void)info, (void)context;
    atomic_fetch_add(&hits, 1);
}

static void install(int sig, int with_info) {
    struct sigaction sa = {0};
    sigemptyset(&sa.sa_mask);
    if (with_info) {
        sa.sa_sigaction = counting_info_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
    } else {
        sa.sa_handler = counting_handler;
        sa.sa_flags = SA_RESTART;
    }
    if (sigaction(sig, &sa, NULL) != 0) _exit(2);
}

static int still_installed(int sig, int with_info) {
    struct sigaction now;
    if (sigaction(sig, NULL, &now) != 0) return 0;
    if (with_info) return (now.sa_flags & SA_SIGINFO) && now.sa_sigaction == counting_info_handler;
    return !(now.sa_flags & SA_SIGINFO) && now.sa_handler == counting_handler;
}

// Uses the started context: a read of /dev/zero, and a pipe read cancelled while it waits.
// Returns 0, or the number of the step that failed.
static int use_context(const char *backend) {
    int zero = open("/dev/zero", O_RDONLY);
    char buffer[8];
    long rv = laio_syscall(SYS_read, (long)zero, buffer, (long)sizeof buffer);
    if (rv == -1 && errno == EINPROGRESS) {
        struct laio_completion c;
        if (laio_poll(&c, 1, NULL) != 1 || c.laio_rv != 8) return 3;
    } else if (rv != 8) {
        return 3;
    }
    close(zero);
    if (strcmp(backend, "blocking") == 0) return 0;
    int fds[2];
    if (pipe(fds) != 0) return 4;
    rv = laio_syscall(SYS_read, (long)fds[0], buffer, (long)sizeof buffer);
    void *handle = laio_gethandle();
    if (rv != -1 || errno != EINPROGRESS || handle == NULL) return 4;
    if (laio_cancel(handle) != 0) return 5;
    struct laio_completion c;
    struct timespec limit = {60, 0};  // far above the work: a lost cancel fails, not hangs
    if (laio_poll(&c, 1, &limit) != 1 || c.laio_h != handle || c.laio_errno != ECANCELED) return 5;
    close(fds[0]);
    close(fds[1]);
    return 0;
}

// One child: the application's handler on `sig`, then liblaio (with LAIO_CANCEL_SIGNAL set
// to `choice` unless NULL). `refused`: the start must fail with this errno instead.
// Returns the child's exit status: 0, 77 (uring cannot start), or a failed step's number.
static int run_child(int sig, const char *choice, int refused) {
    pid_t child = fork();
    if (child < 0) return 10;
    if (child == 0) {
        int with_info = sig % 2;
        install(sig, with_info);
        if (choice) setenv("LAIO_CANCEL_SIGNAL", choice, 1); else unsetenv("LAIO_CANCEL_SIGNAL");
        const char *backend = laio_backend();
        if (refused) {
            if (backend != NULL || errno != refused) _exit(6);
            if (laio_syscall(SYS_getpid) != -1 || errno != refused) _exit(6);
        } else {
            if (backend == NULL) {
                const char *asked = getenv("LAIO_BACKEND");
                _exit(asked && strcmp(asked, "uring") == 0 && (errno == ENOSYS || errno == EPERM || errno == ENOMEM) ? 77 : 7);
            }
            int step = use_context(backend);
            if (step) _exit(step);
        }
        if (!still_installed(sig, with_info)) _exit(8);
        if (atomic_load(&hits) != 0) _exit(9);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        _exit(atomic_load(&hits) == 1 ? 0 : 9);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child) return 10;
    if (WIFSIGNALED(status)) return 100 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static const char *steps[] = {
    "", "", "installing the handler", "a read of /dev/zero", "a pipe read did not go to the background",
    "the cancelled read was not reported ECANCELED", "the start was not refused with the expected errno",
    "the context did not start", "the application's handler was replaced",
    "the application's handler got a signal it did not raise, or not the one it raised", "fork or wait",
};

static void expect_child(int sig, const char *choice, int refused, const char *what) {
    int status = run_child(sig, choice, refused);
    if (status == 77) {
        printf("skip: the uring backend cannot start here\n");
        exit(77);
    }
    CHECK(status == 0, "%s, handler on SIGRTMIN+%d: %s (status %d)", what, sig - SIGRTMIN,
          status < 11 ? steps[status] : "the child died of a signal", status);
}

int main(void) {
    const char *asked = getenv("LAIO_BACKEND");
    const char *backend = asked && *asked ? asked : "auto";
    int takes_signal = strcmp(backend, "threads") == 0 || strcmp(backend, "auto") == 0;
    int standard = SIGRTMIN + 5;

    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++) {
        expect_child(sig, NULL, sig == standard && takes_signal ? EBUSY : 0, "the default cancel signal");
    }
    // The application keeps SIGRTMIN+5 and gives liblaio another signal.
    expect_child(standard, "SIGRTMIN+6", 0, "LAIO_CANCEL_SIGNAL=SIGRTMIN+6");
    expect_child(standard, "40", 0, "LAIO_CANCEL_SIGNAL=40");
    // Not a real-time signal: every call fails with EINVAL (the handler is left alone).
    expect_child(SIGRTMAX, "SIGUSR1", EINVAL, "LAIO_CANCEL_SIGNAL=SIGUSR1");
    expect_child(SIGRTMAX, "SIGRTMIN+99", EINVAL, "LAIO_CANCEL_SIGNAL=SIGRTMIN+99");

    printf("%s: %d checks, %d failed\n", backend, checks, failures);
    return failures == 0 ? 0 : 1;
}
