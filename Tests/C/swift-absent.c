// Part of scripts/test-c's check that the C tests run where Swift is not: exits 0 when no
// name given can be loaded with dlopen (the Swift runtime's libraries, by name and by the
// path where the toolchain keeps them), 1 naming the first that loads.
//   swift-absent NAME-OR-PATH...
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: swift-absent NAME-OR-PATH...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        void *library = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
        if (library != NULL) {
            fprintf(stderr, "FAIL: %s loads here, so the Swift runtime is reachable\n", argv[i]);
            return 1;
        }
        printf("%s does not load: %s\n", argv[i], dlerror());
    }
    return 0;
}
