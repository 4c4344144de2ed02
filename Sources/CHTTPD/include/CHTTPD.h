// What laio-httpd needs from Linux that Swift's Glibc module does not import.
#ifndef CHTTPD_H
#define CHTTPD_H
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <netinet/tcp.h>
#include <sys/vfs.h>

/// memmem(3) (a GNU extension, declared only under _GNU_SOURCE, which shim.c sets).
const void *laio_httpd_memmem(const void *haystack, size_t length, const void *needle, size_t needle_length);
/// accept4(2) without the peer address (a GNU extension, like memmem).
int laio_httpd_accept4(int fd, int flags);
#endif
