// The io_uring credential caveat, checked: a process that makes its LAIO context (and, on
// uring and auto, its ring and the kernel's io-wq workers) as root and then drops to an
// unprivileged user must not be able to reach, through LAIO, what the unprivileged user
// cannot reach. Needs root (exit 77, skipped, otherwise).
//
// As root: the context is made and used to open three root-only files (one in a 0700
// directory; /proc/sys/vm/drop_caches and compact_memory for writing, never
// written), so the kernel's io-wq
// workers exist with root's credentials. Then setgroups/setresgid/setresuid to nobody, and
// the same opens through laio_syscall must fail exactly as open(2) fails, on every backend.
#define _GNU_SOURCE
#include <laio.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// Runs a call through LAIO and waits for it; returns rv, errno in *error.
static long run(long number, long a, long b, long c, long d, int *error) {
    long rv = laio_syscall(number, a, b, c, d);
    *error = errno;
    if (rv == -1 && errno == EINPROGRESS) {
        void *handle = laio_gethandle();
        struct laio_completion completion;
        struct timespec five = {5, 0};
        if (laio_poll(&completion, 1, &five) != 1 || completion.laio_h != handle) {
            fprintf(stderr, "FAIL: no completion\n");
            exit(1);
        }
        rv = completion.laio_rv;
        *error = completion.laio_errno;
    }
    return rv;
}

int main(void) {
    if (geteuid() != 0) {
        printf("skip: needs root to drop privileges\n");
        return 77;
    }
    char directory[] = "/tmp/laio-credentials-XXXXXX";
    if (mkdtemp(directory) == NULL || chmod(directory, 0700) != 0) { perror("mkdtemp"); return 1; }
    char secret[300];
    snprintf(secret, sizeof secret, "%s/secret", directory);
    int fd = open(secret, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "root only\n", 10) != 10) { perror("secret"); return 1; }
    close(fd);

    // As root, through LAIO: the context, its ring and the kernel's workers come to life.
    // The /proc targets cannot be looked up inline (their dentries revalidate), so io_uring
    // hands their opens to its workers.
    const char *targets[] = {secret, "/proc/sys/vm/drop_caches", "/proc/sys/vm/compact_memory"};
    const int flags[] = {O_RDONLY, O_WRONLY, O_WRONLY};
    const char *backend = laio_backend();
    if (backend == NULL) { fprintf(stderr, "FAIL: no context: %s\n", strerror(errno)); return 1; }
    int error = 0;
    for (int i = 0; i < 3; i++) {
        long opened = run(SYS_openat, AT_FDCWD, (long)targets[i], flags[i] | O_CLOEXEC, 0, &error);
        if (opened < 0) { fprintf(stderr, "FAIL: root could not open %s: %s\n", targets[i], strerror(error)); return 1; }
        run(SYS_close, opened, 0, 0, 0, &error);
    }

    // The kernel's io_uring workers that ran those opens (on uring and auto), by name.
    int workers = 0;
    DIR *tasks = opendir("/proc/self/task");
    for (struct dirent *task; tasks != NULL && (task = readdir(tasks)) != NULL;) {
        char path[300], name[64] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", task->d_name);
        FILE *comm = fopen(path, "r");
        if (comm != NULL) {
            if (fgets(name, sizeof name, comm) != NULL && strncmp(name, "iou-wrk", 7) == 0) workers++;
            fclose(comm);
        }
    }
    if (tasks != NULL) closedir(tasks);
    if (strcmp(backend, "uring") == 0 && workers == 0) {
        fprintf(stderr, "FAIL: no io_uring worker ran the opens as root: the check below would prove nothing\n");
        return 1;
    }

    // Drop to nobody for good (all threads: glibc applies it to every thread it made).
    if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) {
        perror("dropping privileges");
        return 1;
    }
    int failures = 0, attempts = 0;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 3; i++) {
            int direct = open(targets[i], flags[i] | O_CLOEXEC);
            int direct_error = errno;
            if (direct >= 0) { fprintf(stderr, "FAIL: open(2) of %s itself succeeded as nobody\n", targets[i]); return 1; }
            long rv = run(SYS_openat, AT_FDCWD, (long)targets[i], flags[i] | O_CLOEXEC, 0, &error);
            attempts++;
            if (rv >= 0) {
                fprintf(stderr, "FAIL: %s: nobody opened %s through LAIO (round %d)\n", backend, targets[i], round);
                run(SYS_close, rv, 0, 0, 0, &error);
                failures++;
            } else if (error != direct_error) {
                fprintf(stderr, "FAIL: %s: open of %s gave %s, open(2) %s\n", backend, targets[i], strerror(error),
                        strerror(direct_error));
                failures++;
            }
        }
    }
    printf("%s (%d io_uring workers made as root): after dropping root, %d opens of root-only files through LAIO: %s\n",
           backend, workers, attempts,
           failures ? "SOME SUCCEEDED OR DIFFERED" : "all refused as open(2) refuses them");
    return failures ? 1 : 0;
}
