/* Reads the first 4 KiB of a file: at once if they are cached, else through laio_poll. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <laio.h>

int main(int argc, char **argv) {
    static char buf[4096];
    int fd = open(argc > 1 ? argv[1] : "/etc/os-release", O_RDONLY);
    long n = laio_syscall(SYS_pread64, fd, buf, sizeof buf, 0L);
    if (n >= 0) {                             /* did not block */
        printf("%ld bytes at once\n", n);
    } else if (errno == EINPROGRESS) {        /* buf is the call's until laio_poll reports it */
        struct laio_completion done;
        while (laio_poll(&done, 1, NULL) != 1) {}      /* NULL: wait; {0, 0}: never wait */
        printf("in the background: %ld (errno %d)\n", done.laio_rv, done.laio_errno);
    } else {                                  /* failed at once, errno as syscall(2) sets it */
        perror("laio_syscall");
        return 1;
    }
    return 0;
}
