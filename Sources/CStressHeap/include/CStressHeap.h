// laio-stress's heap counter: glibc's mallinfo2(), which Swift's Glibc module does not import.
#ifndef SWIFT_LAIO_CSTRESSHEAP_H
#define SWIFT_LAIO_CSTRESSHEAP_H
#include <stddef.h>

/// Bytes of heap in use (mallinfo2(): uordblks and the mapped chunks, hblkhd), for
/// laio-stress's leak checks.
size_t laio_stress_heap_in_use(void);

/// Whether glibc's malloc is the heap counted: 0 when built with AddressSanitizer or
/// ThreadSanitizer, whose allocators mallinfo2 does not see (LeakSanitizer checks leaks there).
int laio_stress_heap_is_counted(void);

#endif
