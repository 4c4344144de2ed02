/* laio.h must compile on its own, first, as C99 and as C++, with every warning an error
 * (scripts/test-c builds this file both ways). It also pins the API's types: a change to
 * a signature fails here. */
#include <laio.h>
#include <laio.h> /* twice: the include guard */

#include <stddef.h>

struct laio_completion record;

long (*const check_syscall)(long, ...) = laio_syscall;
void *(*const check_gethandle)(void) = laio_gethandle;
int (*const check_poll)(struct laio_completion *, int, const struct timespec *) = laio_poll;
int (*const check_cancel)(void *) = laio_cancel;
int (*const check_pollfd)(void) = laio_pollfd;
const char *(*const check_backend)(void) = laio_backend;

int header_check(void);
int header_check(void) {
    record.laio_h = NULL;
    record.laio_rv = -1;
    record.laio_errno = 0;
    return LAIO_VERSION_MAJOR + LAIO_VERSION_MINOR + (int)sizeof record;
}
