# libesp: the one entry point. `make` builds the shared and static library,
# `make test` runs every test suite, `make demo` runs the main job.

VERSION_MAJOR := $(shell sed -n 's/^\#define ESP_VERSION_MAJOR \([0-9]*\)/\1/p' include/esp.h)
VERSION_MINOR := $(shell sed -n 's/^\#define ESP_VERSION_MINOR \([0-9]*\)/\1/p' include/esp.h)
VERSION_PATCH := $(shell sed -n 's/^\#define ESP_VERSION_PATCH \([0-9]*\)/\1/p' include/esp.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SONAME := libesp.so.$(VERSION_MAJOR)

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include

# libesp's C link dependencies (pkg-config names) and their Debian packages:
# packaging/c-deps.txt is the one list; add a dependency there.
C_DEPS := $(shell awk '!/^\#/ && NF {print $$1}' packaging/c-deps.txt)
C_DEPS_DEBIAN := $(shell awk '!/^\#/ && NF {print $$2}' packaging/c-deps.txt)

CXX ?= g++
CC ?= gcc
B := build
CXXFLAGS ?= -O2 -g
# Recursive (=), not simple (:=): on a fresh machine the `deps` target installs
# pkg-config and the libraries during this very run, after the Makefile is read.
ESP_CXXFLAGS = -std=c++17 -fPIC -fvisibility=hidden -fvisibility-inlines-hidden -Wall -Wextra \
  -Iinclude $(shell pkg-config --cflags $(C_DEPS) 2>/dev/null)
DEP_LIBS = $(shell pkg-config --libs $(C_DEPS) 2>/dev/null || echo $(addprefix -l,$(patsubst lib%,%,$(C_DEPS)))) -pthread

SRCS := $(wildcard src/*.cpp)
OBJS := $(SRCS:src/%.cpp=$(B)/obj/%.o)

.PHONY: all lib deps test test-c test-go test-rust test-node test-python test-mock test-sanitize test-frameworks-go \
  check-abi check-header install uninstall demo bench fuzz coverage clean

all: lib
lib: $(B)/libesp.so $(B)/libesp.a $(B)/pkgconfig/esp.pc

# Debian packages the build needs, installed only when missing.
deps:
	@pkg-config --exists $(C_DEPS) 2>/dev/null && command -v node >/dev/null || { \
	  echo "installing build dependencies ($(C_DEPS_DEBIAN) pkg-config)"; \
	  pkgs="$(C_DEPS_DEBIAN) pkg-config"; command -v node >/dev/null || pkgs="$$pkgs nodejs"; \
	  $(SUDO) apt-get install -y -q $$pkgs >/dev/null || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $$pkgs >/dev/null; }; }

$(B)/obj/%.o: src/%.cpp $(wildcard src/*.h) include/esp.h | deps
	@mkdir -p $(@D)
	$(CXX) $(ESP_CXXFLAGS) $(CXXFLAGS) -c $< -o $@

$(B)/libesp.so.$(VERSION): $(OBJS) src/esp.map
	$(CXX) -shared -o $@ $(OBJS) -Wl,-soname,$(SONAME) -Wl,--version-script,src/esp.map \
	  -Wl,-z,nodelete -Wl,--no-undefined $(LDFLAGS) $(DEP_LIBS)

$(B)/libesp.so: $(B)/libesp.so.$(VERSION)
	ln -sf libesp.so.$(VERSION) $(B)/$(SONAME)
	ln -sf libesp.so.$(VERSION) $@

$(B)/libesp.a: $(OBJS)
	rm -f $@
	ar rcs $@ $(OBJS)

# esp.pc from its template: the fields every install shares.
FILL_PC := sed -e 's|@VERSION@|$(VERSION)|' -e 's|@REQUIRES_PRIVATE@|$(C_DEPS)|'

# Uninstalled .pc for the bindings and tests: points into the build tree.
$(B)/pkgconfig/esp.pc: pkgconfig/esp.pc.in include/esp.h packaging/c-deps.txt
	@mkdir -p $(@D)
	$(FILL_PC) -e 's|@PREFIX@|$(CURDIR)|' -e 's|@INCLUDEDIR@|$(CURDIR)/include|' \
	  -e 's|@LIBDIR@|$(CURDIR)/$(B)|' $< > $@

install: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 644 include/esp.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(B)/libesp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libesp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libesp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libesp.so
	install -m 644 $(B)/libesp.a $(DESTDIR)$(LIBDIR)/
	$(FILL_PC) -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	  pkgconfig/esp.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/esp.pc
	install -d $(DESTDIR)$(PREFIX)/share/licenses/libesp
	install -m 644 LICENSE $(DESTDIR)$(PREFIX)/share/licenses/libesp/
# A straight install (no DESTDIR: not a package build) refreshes the loader's
# cache, or programs exit 127 until someone runs ldconfig. Not being root only
# warns: a private prefix is found through rpath or LD_LIBRARY_PATH anyway.
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then \
	  ldconfig 2>/dev/null || echo "note: run ldconfig as root so the loader finds $(LIBDIR)/$(SONAME)"; fi

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/esp.h $(DESTDIR)$(LIBDIR)/libesp.* $(DESTDIR)$(LIBDIR)/pkgconfig/esp.pc
	rm -rf $(DESTDIR)$(PREFIX)/share/licenses/libesp

include test/test.mk
include test/hardening.mk
include bench/bench.mk
include packaging/packages.mk

clean:
	rm -rf $(B)
