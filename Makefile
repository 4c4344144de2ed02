# liblaio for C programs: `make` builds liblaio.so, `make install` installs it with laio.h
# and laio.pc, so that `cc app.c $(pkg-config --cflags --libs laio)` builds and runs.
#
#   make install PREFIX=/usr/local      (the default; DESTDIR=... stages a package)
#   make uninstall PREFIX=/usr/local
#
# `make bench` is the main job (scripts/bench: every backend against its peers, about 9
# minutes, results in results/); `make bench-quick` is its one-minute form; `make check`
# is the quick loop before a commit (scripts/check: build, swift test, the API check);
# `make test` runs every test (scripts/test). `make faultfs` builds the fault-injecting FUSE file
# system for tests and benchmarks (tools/faultfs/README.md) into .build/faultfs.
#
# The library carries the Swift runtime inside it, linked statically and hidden: its
# dynamic symbol table holds only the laio_* functions of laio.h, each at a version node of
# Sources/CLAIO/liblaio.map. At run time it needs libc, libm, liburing, libstdc++ and
# libgcc_s (the Swift runtime is written in C++), not the toolchain that built it.
# It is built in a scratch folder of its own (.build-clib), so that its flags neither reach
# nor rebuild the rest of the package's builds in .build.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
VERSION = 0.1.0
SONAME = liblaio.so.0
SWIFT ?= swift
SCRATCH = .build-clib
BUILT = $(SCRATCH)/release/liblaio.so
MAP = Sources/CLAIO/liblaio.map

.PHONY: all install uninstall clean bench bench-quick check test faultfs
all:
	@# SwiftPM does not know the version script is an input of the link: relink when it changed.
	@if [ -e $(BUILT) ] && [ $(MAP) -nt $(BUILT) ]; then rm -f $(BUILT); fi
	$(SWIFT) build -c release --product laio --scratch-path $(SCRATCH) --disable-local-rpath \
	    -Xswiftc -static-stdlib -Xlinker --version-script=$(CURDIR)/$(MAP) -Xlinker -soname=$(SONAME)

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(BUILT) $(DESTDIR)$(LIBDIR)/liblaio.so.$(VERSION)
	ln -sf liblaio.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/liblaio.so
	install -m 644 Sources/CLAIO/include/laio.h $(DESTDIR)$(INCLUDEDIR)/laio.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' laio.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/laio.pc
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/liblaio.so $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/liblaio.so.$(VERSION) \
	    $(DESTDIR)$(INCLUDEDIR)/laio.h $(DESTDIR)$(PKGCONFIGDIR)/laio.pc

clean:
	rm -f $(BUILT)

bench:
	scripts/bench

bench-quick:
	scripts/bench --quick

check:
	scripts/check

test:
	scripts/test

faultfs:
	scripts/faultfs build
