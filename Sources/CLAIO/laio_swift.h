/* The entry points liblaio's Swift half exports to its C half (not public API).
 * Each returns a value >= 0, or -errno. */
#ifndef LAIO_SWIFT_H
#define LAIO_SWIFT_H

struct laio_completion;

long laio_swift_syscall(long number, const long arguments[6], void **handle);
int laio_swift_poll(struct laio_completion *completions, int count, int wait, long seconds, long nanoseconds);
int laio_swift_cancel(void *handle);
int laio_swift_pollfd(void);
/* Sets *name to the backend's word (a string kept for the life of the process). */
int laio_swift_backend(const char **name);

#endif
