# Sanitizers, valgrind, fuzzing, ABI checks, static analysis, coverage.
#
#   make test-sanitize   C suite under ASan+UBSan, concurrency tests under TSan
#   make test-valgrind   C suite under valgrind memcheck
#   make fuzz            libFuzzer targets, FUZZ_SECONDS each (default 30)
#   make check-abi       exported symbols == test/abi/symbols.txt, dlopen test,
#                        a program built against the 0.1.0 header still works
#   make check-header    include/esp.h compiles as C99 and C++17, pedantic, twice
#   make lint            clang-tidy (.clang-tidy) and cppcheck on src/, the layer check, README's config table
#   make coverage        line coverage of src/ by the C suite (>= COVERAGE_MIN %)
#   make hardening       all of the above
#
# Everything builds under $(B)/asan, $(B)/tsan, $(B)/valgrind, $(B)/fuzz,
# $(B)/cov and $(B)/abi straight from src/*.cpp; only check-abi looks at the
# real $(B)/libesp.so. Tools missing on a fresh Debian machine are installed
# with apt-get on first use. Suppression files live in test/sanitizers/ and
# explain every entry.

.PHONY: hardening hardening-ci hardening-deps hardening-build hardening-tools fuzz-tools lint-tools lint-layers coverage test-asan test-tsan build-asan build-tsan test-valgrind \
  build-valgrind fuzz fuzz-build fuzz-replay check-abi update-abi lint lint-tidy lint-cppcheck lint-config-table config-table

HARDENING_HDRS := include/esp.h $(wildcard src/*.h) $(wildcard test/c/*.h)
SAN_CXX ?= clang++
SAN_CC ?= clang
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
SUPP := $(CURDIR)/test/sanitizers
, := ,
# The suite needs the mock server: ESP_ROOT tells it where test/mock is.
SUITE_ENV := ESP_ROOT=$(CURDIR)
# Instrumented allocators keep freed memory (ASan's quarantine, valgrind's
# free list): the soak test's RSS bound is skipped there, its leak and fd
# checks are not.
SAN_SUITE_ENV := $(SUITE_ENV) ESP_TEST_RSS_UNRELIABLE=1

# Installs a Debian package when a command (or file) is missing. $(1): what
# to test for (a command name, or a path starting with /), $(2): package.
define need_tool
@if case "$(1)" in /*) test -e "$(1)";; *) command -v "$(1)" >/dev/null;; esac; then :; else \
  echo "installing $(2)"; $(SUDO) apt-get update -q >/dev/null 2>&1 || true; \
  $(APT_GET) $(2) >/dev/null; fi
endef

# The fuzzer runtime's package is named after clang's major version, which
# is known only once clang is installed: the shell asks clang at that point
# (make expands a whole recipe before running its first line).
hardening-tools: gtest-dev
	$(call need_tool,$(SAN_CXX),clang)
	@rt="$$($(SAN_CXX) -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"; test -e "$$rt" || { \
	  pkg="libclang-rt-$$($(SAN_CXX) -dumpversion | cut -d. -f1)-dev"; echo "installing $$pkg"; \
	  $(APT_GET) "$$pkg" >/dev/null; test -e "$$rt" || { echo "hardening-tools: $$pkg has no $$rt"; exit 1; }; }

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
# Every test runs threads against the I/O thread, so TSan gets the whole
# suite except Fork.*: TSan cannot start threads in the child of a
# multi-threaded fork ("not supported. Dying"); ASan and valgrind cover it.
TSAN_TESTS ?= *:-Fork.*

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
	@$(SAN_SUITE_ENV) $(ASAN_ENV) $(call sharded,$(B)/asan/suite.log,$< $(GTEST_ARGS)); rc=$$?; cat $(B)/asan/suite.log; exit $$rc

test-tsan: $(B)/tsan/esp_tests
	@$(SAN_SUITE_ENV) $(TSAN_ENV) $(call sharded,$(B)/tsan/suite.log,$< --gtest_filter='$(TSAN_TESTS)' $(GTEST_ARGS)); rc=$$?; \
	  cat $(B)/tsan/suite.log; exit $$rc

# Both binaries build in parallel under -j; the runs go one after the other,
# each in $(SHARDS) shards (the suites time things: two suites at once would
# be four processes on two cores).
test-sanitize: $(B)/asan/esp_tests $(B)/tsan/esp_tests
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan

# ---- fuzzing (libFuzzer, with ASan+UBSan) ---------------------------------------
# Targets in test/fuzz/fuzz_<name>.cpp, seeds in test/fuzz/corpus/<name>/
# (committed, small; crash reproducers are added there and replayed by
# fuzz-replay), what a run discovers goes to $(B)/fuzz/corpus/<name>/.

FUZZ_SECONDS ?= 30
FUZZ_TARGETS := config sse headers
FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_RT = $(shell $(SAN_CXX) -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-x86_64.a
FUZZ_OPTS_config := -dict=test/fuzz/config.dict -max_len=2048
FUZZ_OPTS_sse := -max_len=4096
FUZZ_OPTS_headers := -dict=test/fuzz/headers.dict -max_len=4096
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 LSAN_OPTIONS=suppressions=$(SUPP)/lsan.supp \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$(SUPP)/ubsan.supp

# clang's sanitizer and libFuzzer runtimes come in one Debian package.
fuzz-tools: hardening-tools

$(B)/fuzz/obj/%.o: src/%.cpp $(HARDENING_HDRS) | deps fuzz-tools
	@mkdir -p $(@D)
	$(SAN_CXX) $(filter-out -fvisibility-inlines-hidden,$(ESP_CXXFLAGS)) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# An archive: each target links only the objects it reaches.
$(B)/fuzz/libesp_fuzz.a: $(SRCS:src/%.cpp=$(B)/fuzz/obj/%.o)
	rm -f $@
	ar rcs $@ $^

$(B)/fuzz/fuzz_%: test/fuzz/fuzz_%.cpp $(B)/fuzz/libesp_fuzz.a | fuzz-tools
	$(SAN_CXX) $(TEST_CXXFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(B)/fuzz/libesp_fuzz.a $(DEP_LIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)

# Every committed corpus file (seeds and past crashes) once: a regression test.
fuzz-replay: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_ENV) $(B)/fuzz/fuzz_$$t -runs=0 test/fuzz/corpus/$$t 2>$(B)/fuzz/replay_$$t.log \
	    || { tail -40 $(B)/fuzz/replay_$$t.log; echo "fuzz-replay: $$t FAILED"; exit 1; }; \
	  echo "fuzz-replay $$t: $$(ls test/fuzz/corpus/$$t | wc -l) inputs ok"; \
	done

# FUZZ_SECONDS per target, all targets at once (each fuzzer is one process
# on its own input; none waits on another), then a summary line each; fails
# on any crash, leak, UB or timeout, leaving the reproducer in
# $(B)/fuzz/artifacts/.
fuzz: fuzz-replay
	@mkdir -p $(B)/fuzz/artifacts; : > $(B)/fuzz/summary.txt
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(B)/fuzz/corpus/$$t; \
	  echo "fuzz $$t for $(FUZZ_SECONDS) s"; \
	  { $(FUZZ_ENV) $(B)/fuzz/fuzz_$$t $(FUZZ_OPTS_$$t) -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(B)/fuzz/artifacts/$$t- \
	      $(B)/fuzz/corpus/$$t test/fuzz/corpus/$$t > $(B)/fuzz/run_$$t.log 2>&1; \
	    echo $$? > $(B)/fuzz/rc_$$t; } & \
	done; wait; failed=0; \
	for t in $(FUZZ_TARGETS); do \
	  rc=$$(cat $(B)/fuzz/rc_$$t); \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(B)/fuzz/run_$$t.log); \
	  cov=$$(grep -o 'cov: [0-9]*' $(B)/fuzz/run_$$t.log | tail -1 | cut -d' ' -f2); \
	  echo "$$t: $${execs:-?} execs in $(FUZZ_SECONDS) s, coverage $${cov:-?} edges, corpus $$(ls $(B)/fuzz/corpus/$$t | wc -l) files, exit $$rc" \
	    | tee -a $(B)/fuzz/summary.txt; \
	  if [ "$$rc" != 0 ]; then grep -A30 -m1 'ERROR\|==ERROR\|runtime error\|deadly signal' $(B)/fuzz/run_$$t.log; failed=1; fi; \
	done; \
	if [ $$failed -ne 0 ]; then ls $(B)/fuzz/artifacts/; exit 1; fi

# ---- ABI and header ---------------------------------------------------------------
# test/abi/symbols.txt is the committed list of exported symbols (sorted, one
# a line). check-abi fails when $(B)/libesp.so exports something not on it,
# drops something on it, or the header declares a different set; then a C
# program dlopen()s the library and dlsym()s every listed symbol. After a
# deliberate ABI addition: `make update-abi` and commit the list.

ABI_SYMBOLS := test/abi/symbols.txt
abi_exported = nm -D --defined-only $(B)/libesp.so | awk '$$2 ~ /^[TtWwDdBbRrVviu]$$/ {print $$3}' | sed 's/@.*//' | LC_ALL=C sort -u
abi_declared = sed -n 's/^ESP_API[^(]*[ *]\(esp_[a-z0-9_]*\)(.*/\1/p' include/esp.h | LC_ALL=C sort -u

# A 0.1.0 program: compiled against the frozen 0.1.0 header, run against
# the current library (struct sizes of the first release stay accepted).
$(B)/abi/old_caller: test/abi/old_caller.c test/abi/v0.1.0/esp.h $(B)/libesp.so
	@mkdir -p $(@D)
	$(CC) -std=c99 -Wall -Wextra -pedantic -Werror -Itest/abi/v0.1.0 -o $@ $< -L$(B) -lesp -Wl,-rpath,$(CURDIR)/$(B)

$(B)/abi/dlopen_test: test/abi/dlopen_test.c include/esp.h
	@mkdir -p $(@D)
	$(CC) -std=c99 -Wall -Wextra -pedantic -Werror -Iinclude -o $@ $< -ldl

check-abi: $(B)/libesp.so $(B)/abi/dlopen_test $(B)/abi/old_caller
	@mkdir -p $(B)/abi
	@$(abi_exported) > $(B)/abi/exported.txt
	@$(abi_declared) > $(B)/abi/declared.txt
	@LC_ALL=C sort -c $(ABI_SYMBOLS) || { echo "check-abi: $(ABI_SYMBOLS) is not sorted"; exit 1; }
	@if ! diff -u $(ABI_SYMBOLS) $(B)/abi/exported.txt > $(B)/abi/diff.txt; then \
	  echo "check-abi: $(B)/libesp.so exports differ from $(ABI_SYMBOLS) (+ exported, not listed; - listed, not exported):"; \
	  tail -n +3 $(B)/abi/diff.txt | grep '^[-+]'; exit 1; fi
	@if ! diff -u $(ABI_SYMBOLS) $(B)/abi/declared.txt > $(B)/abi/diff.txt; then \
	  echo "check-abi: ESP_API declarations in include/esp.h differ from $(ABI_SYMBOLS):"; \
	  tail -n +3 $(B)/abi/diff.txt | grep '^[-+]'; exit 1; fi
	@readelf -d $(B)/libesp.so | grep -q 'SONAME.*\[$(SONAME)\]' || { echo "check-abi: soname is not $(SONAME)"; exit 1; }
	$(B)/abi/dlopen_test $(CURDIR)/$(B)/$(SONAME) $(ABI_SYMBOLS)
	test/mock/with-mock.sh $(B)/abi/old_caller
	@echo "check-abi: $$(wc -l < $(ABI_SYMBOLS)) symbols, exports, header and dlsym agree"

update-abi: $(B)/libesp.so
	$(abi_exported) > $(ABI_SYMBOLS)

# The header alone, twice, as C99 and C++17 (gcc and clang when present).
HEADER_WARN := -Wall -Wextra -pedantic -Werror -Iinclude
check-header:
	@mkdir -p $(B)/abi
	$(CC) -std=c99 $(HEADER_WARN) -Wstrict-prototypes -Wmissing-prototypes -c test/abi/header_test.c -o $(B)/abi/header_c99.o
	$(CXX) -std=c++17 $(HEADER_WARN) -x c++ -c test/abi/header_test.c -o $(B)/abi/header_cxx17.o
	@if command -v $(SAN_CC) >/dev/null && command -v $(SAN_CXX) >/dev/null; then \
	  echo "$(SAN_CC) -std=c99 ..."; $(SAN_CC) -std=c99 $(HEADER_WARN) -Wstrict-prototypes -c test/abi/header_test.c -o $(B)/abi/header_c99_clang.o && \
	  echo "$(SAN_CXX) -std=c++17 ..."; $(SAN_CXX) -std=c++17 $(HEADER_WARN) -x c++ -c test/abi/header_test.c -o $(B)/abi/header_cxx17_clang.o; fi
	@echo "check-header: include/esp.h is clean C99 and C++17, and idempotent"

# ---- valgrind memcheck ---------------------------------------------------------
# The suite built without sanitizers (-O1 -g) under memcheck: any error, and
# any definitely or indirectly lost byte, fails the run. Threads are
# scheduled fairly so the I/O thread keeps up with callers.
# Fork.* runs on its own with leaks not counted as errors: a child of a
# multi-threaded process inherits only the forking thread, so whatever the
# other threads (the I/O thread, libcurl's resolver) held only on their
# stacks at that instant is unreachable in the child: inherent, and it
# varies with timing. Memory errors in parent and children still fail it.

VALGRIND_FLAGS := --tool=memcheck --error-exitcode=99 --leak-check=full \
  --show-leak-kinds=definite,indirect --fair-sched=yes --child-silent-after-fork=yes \
  --num-callers=30 --suppressions=$(SUPP)/valgrind.supp --gen-suppressions=all
VALGRIND_TESTS ?= *:-Fork.*

$(B)/valgrind/obj/src/%.o: src/%.cpp $(HARDENING_HDRS) | deps
	@mkdir -p $(@D)
	$(CXX) $(ESP_CXXFLAGS) -O1 -g -c $< -o $@
$(B)/valgrind/obj/test/%.o: test/c/%.cpp $(HARDENING_HDRS) | deps hardening-tools
	@mkdir -p $(@D)
	$(CXX) $(TEST_CXXFLAGS) -c $< -o $@
$(B)/valgrind/esp_tests: $(call SAN_SRC_OBJS,valgrind) $(call SAN_TEST_OBJS,valgrind)
	$(CXX) -o $@ $^ $(GTEST_LIBS) -ldl

build-valgrind: $(B)/valgrind/esp_tests

# $(1): log name, $(2): gtest filter, $(3): which leak kinds are errors.
# In $(SHARDS) shards: valgrind runs one thread at a time, so each shard is
# one core's worth; every shard writes its own log ($(1).<shard>.log).
define valgrind_run
	@rm -f $(B)/valgrind/$(1).*.log
	@$(SAN_SUITE_ENV) $(call sharded,$(B)/valgrind/$(1).out,valgrind $(VALGRIND_FLAGS) --errors-for-leak-kinds=$(3) \
	  --log-file=$(B)/valgrind/$(1).%q{GTEST_SHARD_INDEX}.log $(B)/valgrind/esp_tests --gtest_filter='$(2)' $(GTEST_ARGS)) \
	  || { cat $(B)/valgrind/$(1).out; \
	       grep -B2 -A40 -m3 'Invalid\|uninitialised\|definitely lost in\|indirectly lost in\|Mismatched\|overlap' $(B)/valgrind/$(1).*.log; \
	       grep -A8 'LEAK SUMMARY\|ERROR SUMMARY' $(B)/valgrind/$(1).*.log; exit 1; }
	@grep -h '^\[  PASSED\|^\[==========\] [0-9]* tests\? from .* ran' $(B)/valgrind/$(1).out
	@echo "valgrind $(1):"; for log in $(B)/valgrind/$(1).*.log; do echo "  $${log##*/}:"; \
	  grep -A3 'LEAK SUMMARY' $$log | tail -3; grep 'ERROR SUMMARY' $$log; done | sed 's/^==[0-9]*== */  /'
endef

test-valgrind: $(B)/valgrind/esp_tests
	$(call need_tool,valgrind,valgrind)
	$(call valgrind_run,memcheck,$(VALGRIND_TESTS),definite$(,)indirect)
	$(call valgrind_run,memcheck-fork,Fork.*,none)

# ---- static analysis ---------------------------------------------------------------
# clang-tidy with the committed .clang-tidy (warnings are errors), then
# cppcheck; both on src/ only. Suppressions are inline and say why.

TIDY ?= clang-tidy
TIDY_FLAGS = -std=c++17 -Iinclude -Isrc $(shell pkg-config --cflags $(C_DEPS) 2>/dev/null)
# cppcheck: warning, performance, portability and style, minus these style
# ids: unreadVariable/variableScope (RAII holders such as `expired` in the
# registry exist to be destroyed after a lock is released), constVariable/
# constParameter/useStlAlgorithm/shadowFunction (taste, not bugs),
# unusedFunction (needs the whole program, the ABI is called from outside).
# knownConditionTrueFalse in src/response.cpp: cppcheck 2.10 assumes the
# CR/LF-trimming loop of parse_header_line always empties the line, then
# calls `len >= 5` always false and `len == 0` always true (fuzz_headers
# exercises both branches); the check stays on for every other file.
CPPCHECK_FLAGS := --std=c++17 --language=c++ --enable=warning,performance,portability,style \
  --inline-suppr --error-exitcode=1 --quiet -Iinclude -Isrc --library=posix \
  --suppress=missingIncludeSystem --suppress=unmatchedSuppression \
  --suppress=unreadVariable --suppress=variableScope --suppress=constVariable \
  --suppress=constParameter --suppress=useStlAlgorithm --suppress=shadowFunction \
  --suppress=unusedFunction --suppress=knownConditionTrueFalse:src/response.cpp \
  -DCURL_ERROR_SIZE=256

lint-tools:
	$(call need_tool,$(TIDY),clang-tidy)
	$(call need_tool,cppcheck,cppcheck)

$(B)/lint/%.tidy: src/%.cpp $(HARDENING_HDRS) .clang-tidy | lint-tools deps
	@mkdir -p $(@D)
	@$(TIDY) --quiet $< -- $(TIDY_FLAGS) > $@.log 2>&1 || { grep -A6 'warning:\|error:' $@.log; exit 1; }
	@touch $@

lint-tidy: $(SRCS:src/%.cpp=$(B)/lint/%.tidy)
	@echo "clang-tidy: $(words $(SRCS)) files, no findings"

lint-cppcheck: | lint-tools
	cppcheck $(CPPCHECK_FLAGS) src/
	@echo "cppcheck: src/ clean"

# The dependency direction of src/ (docs/DESIGN.md): no include cycle, no
# upward include, every module in a layer. Plain python3, under a second.
lint-layers:
	python3 test/lint/layers.py src

# README's config table is generated from esp_config_schema(): `make
# config-table` rewrites it, lint fails while it differs.
config-table: lib
	python3 packaging/config-table.py --lib $(B)/libesp.so README.md
lint-config-table: lib
	python3 packaging/config-table.py --check --lib $(B)/libesp.so README.md

lint: lint-layers lint-config-table lint-tidy lint-cppcheck

# ---- coverage ----------------------------------------------------------------------
# Line coverage of src/ by the C suite (gcc --coverage, lcov), built in
# $(B)/cov; fails below COVERAGE_MIN percent. HTML in $(B)/cov/html.

COVERAGE_MIN ?= 85
COV_FLAGS := -O0 -g --coverage -fprofile-update=atomic  # atomic: the I/O thread and callers run the same lines
LCOV := lcov --quiet --rc lcov_branch_coverage=0

$(B)/cov/obj/src/%.o: src/%.cpp $(HARDENING_HDRS) | deps
	@mkdir -p $(@D)
	$(CXX) $(ESP_CXXFLAGS) $(COV_FLAGS) -c $< -o $@
$(B)/cov/obj/test/%.o: test/c/%.cpp $(HARDENING_HDRS) | deps hardening-tools
	@mkdir -p $(@D)
	$(CXX) $(TEST_CXXFLAGS) -c $< -o $@
$(B)/cov/esp_tests: $(call SAN_SRC_OBJS,cov) $(call SAN_TEST_OBJS,cov)
	$(CXX) --coverage -o $@ $^ $(GTEST_LIBS) -ldl

coverage: $(B)/cov/esp_tests
	$(call need_tool,lcov,lcov)
	@find $(B)/cov -name '*.gcda' -delete
	@$(SUITE_ENV) $(call sharded,$(B)/cov/suite.log,$< $(GTEST_ARGS)); rc=$$?; cat $(B)/cov/suite.log; exit $$rc
	@$(LCOV) --capture --directory $(B)/cov/obj/src --base-directory $(CURDIR) --output-file $(B)/cov/all.info
	@$(LCOV) --extract $(B)/cov/all.info '$(CURDIR)/src/*' --output-file $(B)/cov/src.info
	@genhtml --quiet --output-directory $(B)/cov/html $(B)/cov/src.info >/dev/null 2>&1 || true
	@$(LCOV) --list $(B)/cov/src.info | sed 's|$(CURDIR)/||'
	@lcov --rc lcov_branch_coverage=0 --summary $(B)/cov/src.info 2>&1 | grep -v '^Reading' | tee $(B)/cov/summary.txt
	@pct=$$(sed -n 's/.*lines[.]*: *\([0-9.]*\)%.*/\1/p' $(B)/cov/summary.txt); \
	  if awk "BEGIN{exit !($$pct < $(COVERAGE_MIN))}"; then \
	    echo "coverage: $$pct% of src/ lines, below $(COVERAGE_MIN)%"; exit 1; fi; \
	  echo "coverage: $$pct% of src/ lines (minimum $(COVERAGE_MIN)%)"

# ---- everything -----------------------------------------------------------------------
hardening: check-header check-abi lint test-sanitize test-valgrind coverage fuzz

# Every Debian package the hardening steps use. CI installs them before
# anything runs side by side: two apt-get runs at once fail on dpkg's lock.
hardening-deps: hardening-tools lint-tools
	$(call need_tool,valgrind,valgrind)
	$(call need_tool,lcov,lcov)

# The hardening programs and clang-tidy's verdicts, made ahead of time. CI
# makes them niced while `make test` and test-packages run: those suites
# mostly wait, and nice 19 yields the cores whenever a suite wants them.
# hardening-ci then finds them up to date and only runs them.
hardening-build: build-asan build-tsan build-valgrind $(B)/cov/esp_tests fuzz-build lint-tidy

# What CI runs, one step after the other (builds use -j from the caller);
# prints the wall time of each step.
hardening-ci:
	@for step in "check-header check-abi" "test-sanitize" "test-valgrind" "coverage" "fuzz FUZZ_SECONDS=60" "lint"; do \
	  start=$$(date +%s); echo "==== make $$step"; \
	  $(MAKE) --no-print-directory $$step || exit 1; \
	  echo "==== make $$step: $$(( $$(date +%s) - start )) s"; \
	done
