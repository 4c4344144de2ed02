// What loading liblaio costs a program, timed by scripts/bench-c over many starts:
//   laio-load load    links liblaio and returns at once: exec, the loader's work for the
//                     library and what it needs, and their constructors
//   laio-load start   also makes the process-wide context (laio_backend(); LAIO_BACKEND's)
// Built with -DLAIO_LOAD_BASELINE it links nothing of LAIO: the exec and process cost that
// bench-c takes off the other two.
#include <stdio.h>
#include <string.h>
#ifndef LAIO_LOAD_BASELINE
#include <laio.h>
#endif

int main(int argc, char **argv) {
#ifndef LAIO_LOAD_BASELINE
    // A use of the library in every mode, so a linker that drops unused libraries
    // (--as-needed) keeps liblaio a dependency of this program.
    const char *(*volatile backend)(void) = laio_backend;
    if (argc > 1 && strcmp(argv[1], "start") == 0 && backend() == NULL) {
        perror("laio_backend");
        return 1;
    }
#else
    (void)argc;
    (void)argv;
#endif
    return 0;
}
