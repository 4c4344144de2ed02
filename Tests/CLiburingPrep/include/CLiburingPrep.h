// liburing's own io_uring_prep_* helpers, compiled by the C compiler, for the kernel-free
// tests of LAIOUring's translation (LAIOUringTranslationTests): the expected side of every
// comparison is what these write. Entries and the structures they point at are passed as
// untyped pointers, so that this module declares no io_uring type of its own.
#ifndef SWIFT_LAIO_CLIBURINGPREP_H
#define SWIFT_LAIO_CLIBURINGPREP_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

/// Sets `user_data` (io_uring_sqe_set_data64) and, with `to_worker`, IOSQE_ASYNC
/// (io_uring_sqe_set_flags), as the last step after a prep call.
void laio_prep_finish(void *sqe, uint64_t user_data, bool to_worker);

void laio_prep_read(void *sqe, int fd, void *buffer, unsigned count, uint64_t offset);
void laio_prep_write(void *sqe, int fd, const void *buffer, unsigned count, uint64_t offset);
void laio_prep_readv(void *sqe, int fd, const void *iovecs, unsigned count, uint64_t offset);
void laio_prep_writev(void *sqe, int fd, const void *iovecs, unsigned count, uint64_t offset);
void laio_prep_openat(void *sqe, int dirfd, const char *path, int flags, unsigned mode);
void laio_prep_openat2(void *sqe, int dirfd, const char *path, void *how);
void laio_prep_close(void *sqe, int fd);
void laio_prep_statx(void *sqe, int dirfd, const char *path, int flags, unsigned mask, void *buffer);
void laio_prep_fsync(void *sqe, int fd, bool data_only);
void laio_prep_accept(void *sqe, int fd, void *address, void *length, int flags);
void laio_prep_connect(void *sqe, int fd, const void *address, unsigned length);
void laio_prep_recv(void *sqe, int fd, void *buffer, size_t count, int flags);
void laio_prep_send(void *sqe, int fd, const void *buffer, size_t count, int flags);
void laio_prep_recvmsg(void *sqe, int fd, void *message, unsigned flags);
void laio_prep_sendmsg(void *sqe, int fd, const void *message, unsigned flags);
void laio_prep_splice(void *sqe, int in_fd, int64_t in_offset, int out_fd, int64_t out_offset, unsigned count,
                      unsigned flags);
void laio_prep_unlinkat(void *sqe, int dirfd, const char *path, int flags);
void laio_prep_renameat(void *sqe, int old_dirfd, const char *old_path, int new_dirfd, const char *new_path,
                        unsigned flags);
void laio_prep_mkdirat(void *sqe, int dirfd, const char *path, unsigned mode);
void laio_prep_timeout(void *sqe, void *timespec, unsigned count, unsigned flags);
void laio_prep_cancel64(void *sqe, uint64_t user_data, int flags);
void laio_prep_poll_add(void *sqe, int fd, unsigned events);

/// sizeof(struct io_uring_sqe) as liburing's header has it.
size_t laio_prep_entry_size(void);

#endif
