// uring-probe: prints the io_uring opcodes the running kernel supports, as swift-laio's
// uring backend reads them (IORING_REGISTER_PROBE), for scripts/test-kernels.
//
//   uring-probe            one line: "probe: last opcode N; supported: NAME NAME ...";
//                          a second line lists the opcodes the kernel knows but lacks
//
// Exit status 0; 77 when io_uring cannot be set up here (the reason is printed).
// Opcodes newer than the names below are printed by number.
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>

// The kernel's numbering (include/uapi/linux/io_uring.h); a number never changes meaning.
static const char *const names[] = {
    "NOP", "READV", "WRITEV", "FSYNC", "READ_FIXED", "WRITE_FIXED", "POLL_ADD", "POLL_REMOVE",
    "SYNC_FILE_RANGE", "SENDMSG", "RECVMSG", "TIMEOUT", "TIMEOUT_REMOVE", "ACCEPT", "ASYNC_CANCEL",
    "LINK_TIMEOUT", "CONNECT", "FALLOCATE", "OPENAT", "CLOSE", "FILES_UPDATE", "STATX", "READ",
    "WRITE", "FADVISE", "MADVISE", "SEND", "RECV", "OPENAT2", "EPOLL_CTL", "SPLICE",
    "PROVIDE_BUFFERS", "REMOVE_BUFFERS", "TEE", "SHUTDOWN", "RENAMEAT", "UNLINKAT", "MKDIRAT",
    "SYMLINKAT", "LINKAT", "MSG_RING", "FSETXATTR", "SETXATTR", "FGETXATTR", "GETXATTR", "SOCKET",
    "URING_CMD", "SEND_ZC", "SENDMSG_ZC", "READ_MULTISHOT", "WAITID", "FUTEX_WAIT", "FUTEX_WAKE",
    "FUTEX_WAITV", "FIXED_FD_INSTALL", "FTRUNCATE", "BIND", "LISTEN",
};
// The table agrees with the header where the header has the name.
_Static_assert(IORING_OP_STATX == 21 && IORING_OP_OPENAT2 == 28 && IORING_OP_MKDIRAT == 37,
               "io_uring opcode numbering");

static void print_op(int op) {
    if (op < (int)(sizeof names / sizeof names[0])) printf(" %s", names[op]);
    else printf(" op%d", op);
}

int main(void) {
    struct io_uring ring;
    int rc = io_uring_queue_init(4, &ring, 0);
    if (rc < 0) {
        printf("uring-probe: io_uring_queue_init: %s; skipped\n", strerror(-rc));
        return 77;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
    if (probe == NULL) {
        printf("uring-probe: IORING_REGISTER_PROBE failed (a kernel before 5.6); skipped\n");
        io_uring_queue_exit(&ring);
        return 77;
    }
    printf("probe: last opcode %d; supported:", probe->last_op);
    for (int op = 0; op <= probe->last_op; op++)
        if (io_uring_opcode_supported(probe, op)) print_op(op);
    printf("\nprobe: known to this kernel but not supported:");
    int missing = 0;
    for (int op = 0; op <= probe->last_op; op++)
        if (!io_uring_opcode_supported(probe, op)) { print_op(op); missing++; }
    printf("%s\n", missing ? "" : " none");
    io_uring_free_probe(probe);
    io_uring_queue_exit(&ring);
    return 0;
}
