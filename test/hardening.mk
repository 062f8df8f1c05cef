# Sanitizers, valgrind, fuzzing, ABI checks, static analysis, coverage.
#
#   make test-sanitize   C suite under ASan+UBSan, concurrency tests under TSan
#   make test-valgrind   C suite under valgrind memcheck
#   make fuzz            libFuzzer targets, FUZZ_SECONDS each (default 30)
#   make check-abi       exported symbols == test/abi/symbols.txt, dlopen test
#   make check-header    include/esp.h compiles as C99 and C++17, pedantic, twice
#   make lint            clang-tidy (.clang-tidy) and cppcheck on src/
#   make coverage        line coverage of src/ by the C suite (>= COVERAGE_MIN %)
#   make hardening       all of the above
#
# Everything builds under $(B)/asan, $(B)/tsan, $(B)/valgrind, $(B)/fuzz,
# $(B)/cov and $(B)/abi straight from src/*.cpp; only check-abi looks at the
# real $(B)/libesp.so. Tools missing on a fresh Debian machine are installed
# with apt-get on first use. Suppression files live in test/sanitizers/ and
# explain every entry.

.PHONY: hardening hardening-tools test-asan test-tsan build-asan build-tsan test-valgrind \
  build-valgrind fuzz fuzz-build fuzz-replay check-abi update-abi lint lint-tidy lint-cppcheck

HARDENING_HDRS := include/esp.h $(wildcard src/*.h) $(wildcard test/c/*.h)
SAN_CXX ?= clang++
SAN_CC ?= clang
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
SUPP := $(CURDIR)/test/sanitizers
# The suite needs the mock server: ESP_ROOT tells it where test/mock is.
SUITE_ENV := ESP_ROOT=$(CURDIR)

# Installs a Debian package when a command (or file) is missing. $(1): what
# to test for (a command name, or a path starting with /), $(2): package.
define need_tool
@if case "$(1)" in /*) test -e "$(1)";; *) command -v "$(1)" >/dev/null;; esac; then :; else \
  echo "installing $(2)"; $(SUDO) apt-get update -q >/dev/null 2>&1 || true; \
  $(APT_GET) $(2) >/dev/null; fi
endef

hardening-tools:
	$(call need_tool,$(SAN_CXX),clang)
	$(call need_tool,/usr/include/gtest/gtest.h,libgtest-dev)

# ---- sanitizers ------------------------------------------------------------

SAN_COMMON := -O1 -g -fno-omit-frame-pointer
ASAN_FLAGS := $(SAN_COMMON) -fsanitize=address,undefined -fno-sanitize-recover=all \
  -fsanitize-address-use-after-scope
TSAN_FLAGS := $(SAN_COMMON) -fsanitize=thread
# halt on the first error; leaks are errors; libcurl/OpenSSL are not
# instrumented, so only their known one-time allocations are suppressed.
ASAN_ENV := ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1 \
  LSAN_OPTIONS=suppressions=$(SUPP)/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$(SUPP)/ubsan.supp
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:history_size=4:suppressions=$(SUPP)/tsan.supp
# The tests that run threads against each other (all of them start the I/O
# thread; these are the ones with many callers, callbacks, cancels, streams).
TSAN_TESTS ?= *

SAN_SRC_OBJS = $(SRCS:src/%.cpp=$(B)/$(1)/obj/src/%.o)
SAN_TEST_OBJS = $(TEST_SRCS:test/c/%.cpp=$(B)/$(1)/obj/test/%.o)

# $(1): build name (asan/tsan), $(2): compiler flags
define san_build
$(B)/$(1)/obj/src/%.o: src/%.cpp $(HARDENING_HDRS) | deps hardening-tools
	@mkdir -p $$(@D)
	$(SAN_CXX) $(filter-out -fvisibility-inlines-hidden,$(ESP_CXXFLAGS)) $(2) -c $$< -o $$@
$(B)/$(1)/obj/test/%.o: test/c/%.cpp $(HARDENING_HDRS) | deps hardening-tools
	@mkdir -p $$(@D)
	$(SAN_CXX) $(TEST_CXXFLAGS) $(2) -c $$< -o $$@
$(B)/$(1)/esp_tests: $(call SAN_SRC_OBJS,$(1)) $(call SAN_TEST_OBJS,$(1))
	$(SAN_CXX) $(2) -o $$@ $$^ $(GTEST_LIBS) -ldl
endef
$(eval $(call san_build,asan,$(ASAN_FLAGS)))
$(eval $(call san_build,tsan,$(TSAN_FLAGS)))

build-asan: $(B)/asan/esp_tests
build-tsan: $(B)/tsan/esp_tests

test-asan: $(B)/asan/esp_tests
	$(SUITE_ENV) $(ASAN_ENV) $< $(GTEST_ARGS)

test-tsan: $(B)/tsan/esp_tests
	$(SUITE_ENV) $(TSAN_ENV) $< --gtest_filter='$(TSAN_TESTS)' $(GTEST_ARGS)

# Both binaries build in parallel under -j; the runs go one after the other
# (the suites time things, they should not compete for the two cores).
test-sanitize: $(B)/asan/esp_tests $(B)/tsan/esp_tests
	$(SUITE_ENV) $(ASAN_ENV) $(B)/asan/esp_tests $(GTEST_ARGS)
	$(SUITE_ENV) $(TSAN_ENV) $(B)/tsan/esp_tests --gtest_filter='$(TSAN_TESTS)' $(GTEST_ARGS)
