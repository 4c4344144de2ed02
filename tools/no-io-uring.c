// no-io-uring: runs a command with io_uring blocked by a seccomp filter, the way a
// container's default seccomp profile blocks it, so that swift-laio's fallback can be
// tested on any machine.
//
//   no-io-uring eperm|enosys COMMAND [ARGS...]
//
// io_uring_setup, io_uring_enter and io_uring_register then fail with EPERM (Docker's
// default profile) or ENOSYS (as on a kernel without io_uring). Everything else is allowed.
// The filter is inherited by every child of COMMAND. Needs no privileges (no_new_privs).
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "no-io-uring: add this architecture's AUDIT_ARCH value"
#endif

int main(int argc, char **argv) {
    int error = -1;
    if (argc >= 3 && strcmp(argv[1], "eperm") == 0) error = EPERM;
    if (argc >= 3 && strcmp(argv[1], "enosys") == 0) error = ENOSYS;
    if (error < 0) {
        fprintf(stderr, "usage: no-io-uring eperm|enosys COMMAND [ARGS...]\n");
        return 2;
    }

    struct sock_filter filter[] = {
        // Calls made with another architecture's numbering are left alone.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)error & SECCOMP_RET_DATA)),
    };
    struct sock_fprog program = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("no-io-uring: prctl(PR_SET_NO_NEW_PRIVS)");
        return 1;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
        perror("no-io-uring: prctl(PR_SET_SECCOMP)");
        return 1;
    }

    // Check that the filter really answers as asked before running anything under it.
    char params[120] = {0}; // struct io_uring_params; the call must fail before reading it
    long fd = syscall(__NR_io_uring_setup, 4, params);
    if (fd >= 0 || errno != error) {
        fprintf(stderr, "no-io-uring: io_uring_setup answered %ld (errno %d), not errno %d; filter not effective\n",
                fd, errno, error);
        return 1;
    }

    execvp(argv[2], argv + 2);
    fprintf(stderr, "no-io-uring: cannot run %s: %s\n", argv[2], strerror(errno));
    return 127;
}
