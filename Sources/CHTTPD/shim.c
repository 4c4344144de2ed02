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
