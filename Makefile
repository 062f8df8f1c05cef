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

CXX ?= g++
CC ?= gcc
B := build
CXXFLAGS ?= -O2 -g
# The one list of libraries libesp builds against: pkg-config names, the
# link flags to use before they are installed, and their Debian packages.
DEP_PC := libcurl libcjson libcrypto hiredis
DEP_FALLBACK_LIBS := -lcurl -lcjson -lcrypto -lhiredis
DEP_DEBS := libcurl4-openssl-dev libcjson-dev libssl-dev libhiredis-dev pkg-config
ESP_CXXFLAGS := -std=c++17 -fPIC -fvisibility=hidden -fvisibility-inlines-hidden -Wall -Wextra \
  -Iinclude $(shell pkg-config --cflags $(DEP_PC) 2>/dev/null)
DEP_LIBS := $(shell pkg-config --libs $(DEP_PC) 2>/dev/null || echo $(DEP_FALLBACK_LIBS)) -pthread

SRCS := $(wildcard src/*.cpp)
OBJS := $(SRCS:src/%.cpp=$(B)/obj/%.o)

.PHONY: all lib deps test test-c test-go test-rust test-node test-python test-mock test-sanitize \
  check-abi check-header install uninstall demo bench fuzz coverage clean

all: lib
lib: $(B)/libesp.so $(B)/libesp.a $(B)/pkgconfig/esp.pc

# Debian packages the build needs, installed only when missing.
deps:
	@pkg-config --exists $(DEP_PC) 2>/dev/null && command -v node >/dev/null || { \
	  echo "installing build dependencies ($(DEP_DEBS))"; \
	  pkgs="$(DEP_DEBS)"; command -v node >/dev/null || pkgs="$$pkgs nodejs"; \
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

# Uninstalled .pc for the bindings and tests: points into the build tree.
$(B)/pkgconfig/esp.pc: pkgconfig/esp.pc.in include/esp.h
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(CURDIR)|' -e 's|@INCLUDEDIR@|$(CURDIR)/include|' \
	  -e 's|@LIBDIR@|$(CURDIR)/$(B)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

install: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 644 include/esp.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(B)/libesp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libesp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libesp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libesp.so
	install -m 644 $(B)/libesp.a $(DESTDIR)$(LIBDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	  -e 's|@VERSION@|$(VERSION)|' pkgconfig/esp.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/esp.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/esp.h $(DESTDIR)$(LIBDIR)/libesp.* $(DESTDIR)$(LIBDIR)/pkgconfig/esp.pc

include test/test.mk
include test/hardening.mk
include bench/bench.mk

clean:
	rm -rf $(B)
