# liblaio for C programs: `make` builds liblaio.so, `make install` installs it with laio.h
# and laio.pc, so that `cc app.c $(pkg-config --cflags --libs laio)` builds and runs.
#
#   make install PREFIX=/usr/local      (the default; DESTDIR=... stages a package)
#   make uninstall PREFIX=/usr/local
#
# `make bench` is the main job (scripts/bench: every backend against its peers, about 9
# minutes, results in results/); `make bench-quick` is its one-minute form; `make test`
# runs every test (scripts/test). `make faultfs` builds the fault-injecting FUSE file
# system for tests and benchmarks (tools/faultfs/README.md) into .build/faultfs.
#
# The library uses the Swift runtime of the toolchain that built it (found through its
# RUNPATH); it needs liburing at run time.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
VERSION = 0.1.0
SONAME = liblaio.so.0
SWIFT ?= swift
BUILT = .build/release/liblaio.so

.PHONY: all install uninstall clean bench bench-quick test faultfs
all:
	$(SWIFT) build -c release --product laio -Xlinker -soname=$(SONAME)

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
	rm -rf .build/release/liblaio.so

bench:
	scripts/bench

bench-quick:
	scripts/bench --quick

test:
	scripts/test

faultfs:
	tools/faultfs/build
