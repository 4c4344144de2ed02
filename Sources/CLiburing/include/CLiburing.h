// liburing for swift-laio's io_uring backend (LAIOUring is its only importer). Swift calls
// liburing's static inline functions directly; nothing else is needed here.
#ifndef SWIFT_LAIO_CLIBURING_H
#define SWIFT_LAIO_CLIBURING_H

// The system headers come first, with the default feature macros, so that they are the
// same declarations Swift's Glibc module has; <liburing.h> would otherwise define
// _XOPEN_SOURCE first and give types such as fd_set a second, conflicting shape.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
// swift-system (SystemPackage) imports the kernel's <linux/io_uring.h>; liburing ships its own
// copy of it under the same include guard. Including the kernel's first makes both modules
// see one definition of the io_uring structs (clang rejects two different ones).
#include <linux/io_uring.h>
#include <liburing.h>

#endif
