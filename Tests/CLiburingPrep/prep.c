// Each function is one liburing prep helper with the arguments as given: nothing is decided
// here, so the tests' expected entries are liburing's own.
#include "CLiburingPrep.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/io_uring.h>
#include <liburing.h>

void laio_prep_finish(void *sqe, uint64_t user_data, bool to_worker) {
    io_uring_sqe_set_data64(sqe, user_data);
    io_uring_sqe_set_flags(sqe, to_worker ? IOSQE_ASYNC : 0);
}

void laio_prep_read(void *sqe, int fd, void *buffer, unsigned count, uint64_t offset) {
    io_uring_prep_read(sqe, fd, buffer, count, offset);
}

void laio_prep_write(void *sqe, int fd, const void *buffer, unsigned count, uint64_t offset) {
    io_uring_prep_write(sqe, fd, buffer, count, offset);
}

void laio_prep_readv(void *sqe, int fd, const void *iovecs, unsigned count, uint64_t offset) {
    io_uring_prep_readv(sqe, fd, iovecs, count, offset);
}

void laio_prep_writev(void *sqe, int fd, const void *iovecs, unsigned count, uint64_t offset) {
    io_uring_prep_writev(sqe, fd, iovecs, count, offset);
}

void laio_prep_openat(void *sqe, int dirfd, const char *path, int flags, unsigned mode) {
    io_uring_prep_openat(sqe, dirfd, path, flags, (mode_t)mode);
}

void laio_prep_openat2(void *sqe, int dirfd, const char *path, void *how) {
    io_uring_prep_openat2(sqe, dirfd, path, how);
}

void laio_prep_close(void *sqe, int fd) {
    io_uring_prep_close(sqe, fd);
}

void laio_prep_statx(void *sqe, int dirfd, const char *path, int flags, unsigned mask, void *buffer) {
    io_uring_prep_statx(sqe, dirfd, path, flags, mask, buffer);
}

void laio_prep_fsync(void *sqe, int fd, bool data_only) {
    io_uring_prep_fsync(sqe, fd, data_only ? IORING_FSYNC_DATASYNC : 0);
}

void laio_prep_accept(void *sqe, int fd, void *address, void *length, int flags) {
    io_uring_prep_accept(sqe, fd, address, length, flags);
}

void laio_prep_connect(void *sqe, int fd, const void *address, unsigned length) {
    io_uring_prep_connect(sqe, fd, address, (socklen_t)length);
}

void laio_prep_recv(void *sqe, int fd, void *buffer, size_t count, int flags) {
    io_uring_prep_recv(sqe, fd, buffer, count, flags);
}

void laio_prep_send(void *sqe, int fd, const void *buffer, size_t count, int flags) {
    io_uring_prep_send(sqe, fd, buffer, count, flags);
}

void laio_prep_recvmsg(void *sqe, int fd, void *message, unsigned flags) {
    io_uring_prep_recvmsg(sqe, fd, message, flags);
}

void laio_prep_sendmsg(void *sqe, int fd, const void *message, unsigned flags) {
    io_uring_prep_sendmsg(sqe, fd, message, flags);
}

void laio_prep_splice(void *sqe, int in_fd, int64_t in_offset, int out_fd, int64_t out_offset, unsigned count,
                      unsigned flags) {
    io_uring_prep_splice(sqe, in_fd, in_offset, out_fd, out_offset, count, flags);
}

void laio_prep_unlinkat(void *sqe, int dirfd, const char *path, int flags) {
    io_uring_prep_unlinkat(sqe, dirfd, path, flags);
}

void laio_prep_renameat(void *sqe, int old_dirfd, const char *old_path, int new_dirfd, const char *new_path,
                        unsigned flags) {
    io_uring_prep_renameat(sqe, old_dirfd, old_path, new_dirfd, new_path, flags);
}

void laio_prep_mkdirat(void *sqe, int dirfd, const char *path, unsigned mode) {
    io_uring_prep_mkdirat(sqe, dirfd, path, (mode_t)mode);
}

void laio_prep_timeout(void *sqe, void *timespec, unsigned count, unsigned flags) {
    io_uring_prep_timeout(sqe, timespec, count, flags);
}

void laio_prep_cancel64(void *sqe, uint64_t user_data, int flags) {
    io_uring_prep_cancel64(sqe, user_data, flags);
}

void laio_prep_poll_add(void *sqe, int fd, unsigned events) {
    io_uring_prep_poll_add(sqe, fd, events);
}

size_t laio_prep_entry_size(void) {
    return sizeof(struct io_uring_sqe);
}
