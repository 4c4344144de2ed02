// The submit-then-peek loop of the uring backend written directly against liburing: the
// yardstick the Swift layers are measured against.
#ifndef SWIFT_LAIO_CURINGLOOP_H
#define SWIFT_LAIO_CURINGLOOP_H

/// Sets up the benchmark's ring with the flags the backend prefers (falling back as it
/// does). Returns 0 or -errno. Idempotent.
int laio_bench_ring_init(void);

/// Runs `iterations` 4 KiB reads of `fd` at offsets cycling over 16 MiB: each one gets a
/// submission entry, is submitted, and its completion is looked for at once (waited for
/// only if it is not there). Returns how many completed inline, or -errno.
long laio_bench_ring_pread_loop(int fd, void *buffer, long iterations);

#endif
