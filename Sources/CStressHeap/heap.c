#include "CStressHeap.h"
#include <malloc.h>

size_t laio_stress_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    // Chunks in use from the arenas, and the large ones malloc maps by themselves.
    return info.uordblks + info.hblkhd;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LAIO_STRESS_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LAIO_STRESS_SANITIZED 1
#endif

int laio_stress_heap_is_counted(void) {
#ifdef LAIO_STRESS_SANITIZED
    return 0;
#else
    return 1;
#endif
}
