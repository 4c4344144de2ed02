#include "CStressHeap.h"
#include <malloc.h>

size_t laio_stress_heap_in_use(void) {
    return mallinfo2().uordblks;
}
