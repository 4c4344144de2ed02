#define _GNU_SOURCE
#include <string.h>
#include "CHTTPD.h"

const void *laio_httpd_memmem(const void *haystack, size_t length, const void *needle, size_t needle_length) {
    return memmem(haystack, length, needle, needle_length);
}

#include <sys/socket.h>

int laio_httpd_accept4(int fd, int flags) {
    return accept4(fd, NULL, NULL, flags);
}

#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_cachestat
#define SYS_cachestat 451   /* the same number on every architecture */
#endif

/* cachestat(2)'s structures (<linux/mman.h> of Linux 6.5+, not in older headers). */
struct laio_httpd_cachestat_range { uint64_t off, len; };
struct laio_httpd_cachestat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

int laio_httpd_cached(int fd, long long offset, long long length) {
    static long page;
    if (page == 0) page = sysconf(_SC_PAGESIZE);
    struct laio_httpd_cachestat_range range = {(uint64_t)offset, (uint64_t)length};
    struct laio_httpd_cachestat stat;
    if (syscall(SYS_cachestat, fd, &range, &stat, 0) != 0) return -errno;
    long long pages = (offset + length + page - 1) / page - offset / page;
    return (long long)stat.nr_cache >= pages;
}
