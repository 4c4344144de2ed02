#include "CUringLoop.h"

#include <errno.h>
#include <liburing.h>

static struct io_uring ring;
static int ready;

int laio_bench_ring_init(void) {
    if (ready) return 0;
    static const unsigned ladder[] = {
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int result = -EINVAL;
    for (unsigned i = 0; i < sizeof ladder / sizeof ladder[0]; i++) {
        struct io_uring_params params = {0};
        params.flags = ladder[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        params.cq_entries = 1024;
        result = io_uring_queue_init_params(256, &ring, &params);
        if (result != -EINVAL) break;
    }
    if (result == 0) ready = 1;
    return result;
}

long laio_bench_ring_pread_loop(int fd, void *buffer, long iterations) {
    long inline_completions = 0;
    for (long i = 0; i < iterations; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_read(sqe, fd, buffer, 4096, (unsigned long long)(i & 4095) * 4096);
        sqe->user_data = (unsigned long long)i + 1;
        int submitted = io_uring_submit(&ring);
        if (submitted < 0) return submitted;
        struct io_uring_cqe *cqe;
        if (io_uring_peek_cqe(&ring, &cqe) == 0) {
            inline_completions++;
        } else {
            int waited = io_uring_wait_cqe(&ring, &cqe);
            if (waited < 0) return waited;
        }
        io_uring_cqe_seen(&ring, cqe);
    }
    return inline_completions;
}
