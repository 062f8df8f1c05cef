# Benchmarks (included by the top Makefile).
#
#   make bench                 every scenario, writes bench/RESULTS.md and bench/*.png
#   make bench SCEN=agents     one scenario (or a comma list): prints its table and rewrites
#                              only its sections of bench/RESULTS.md
#   make bench REPS=5          repetitions per measurement (default 3; medians)
#
# Scenarios: seq conc pool agents h2 registry accounting bindings profile fleet streams.
# Everything runs on loopback against nginx started under build/bench/nginx.

BENCH_B := $(B)/bench
BENCH_PROGS := seq conc pool agents h2 registry sse_streams
BENCH_BINS := $(BENCH_PROGS:%=$(BENCH_B)/%)
BENCH_CXXFLAGS = -std=c++17 -O2 -g -Wall -Iinclude $(shell pkg-config --cflags $(C_DEPS) 2>/dev/null)
BENCH_LIBS = -L$(B) -lesp -Wl,-rpath,$(CURDIR)/$(B) $(DEP_LIBS)
BENCH_VENV := $(BENCH_B)/venv
SCEN ?=
REPS ?= 3

.PHONY: bench bench-build bench-deps bench-venv bench-report

bench: bench-deps bench-build bench-venv
	python3 bench/run.py --root $(CURDIR) --reps $(REPS) $(if $(SCEN),--scen $(SCEN))

bench-build: lib $(BENCH_BINS) $(BENCH_B)/nv/libesp.so.0 $(B)/fleet_worker redis-tool

$(BENCH_B)/%: bench/%.cpp bench/common.h include/esp.h $(B)/libesp.so
	@mkdir -p $(@D)
	$(CXX) $(BENCH_CXXFLAGS) $< -o $@ $(BENCH_LIBS)

# Throwaway variant of the library for the accounting measurement: the same
# sources, except that ESP_BENCH_NO_DETECTOR=1 in the environment skips the
# silent-resend detector, whichever form src/transfer.cpp gives it
# (CURLOPT_PREREQFUNCTION, or CURLOPT_VERBOSE + CURLOPT_DEBUGFUNCTION before).
# Built from a patched copy under build/; src/ itself is never changed.
$(BENCH_B)/nv/libesp.so.0: $(SRCS) $(wildcard src/*.h) src/esp.map include/esp.h
	@rm -rf $(BENCH_B)/nv && mkdir -p $(BENCH_B)/nv/src
	cp src/*.cpp src/*.h src/esp.map $(BENCH_B)/nv/src/
	sed -i -E 's/^( *)(curl_easy_setopt\(e, CURLOPT_(VERBOSE|DEBUGFUNCTION|PREREQFUNCTION),)/\1if (!getenv("ESP_BENCH_NO_DETECTOR")) \2/' \
	  $(BENCH_B)/nv/src/transfer.cpp
	grep -q ESP_BENCH_NO_DETECTOR $(BENCH_B)/nv/src/transfer.cpp || { echo "bench: could not patch transfer.cpp"; exit 1; }
	sed -i '1i #include <cstdlib>' $(BENCH_B)/nv/src/transfer.cpp
	$(CXX) $(ESP_CXXFLAGS) $(CXXFLAGS) -shared -o $@ $(BENCH_B)/nv/src/*.cpp -Wl,-soname,$(SONAME) \
	  -Wl,--version-script,src/esp.map -Wl,-z,nodelete -Wl,--no-undefined $(LDFLAGS) $(DEP_LIBS)

# Debian packages the benchmarks need, installed only when missing.
bench-deps:
	@missing=""; \
	command -v nginx >/dev/null || missing="$$missing nginx-light"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v h2load >/dev/null || missing="$$missing nghttp2-client"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then echo "bench: installing$$missing"; \
	  (apt-get update -q >/dev/null; $(SUDO) apt-get install -y -q $$missing >/dev/null) || \
	  echo "bench: could not install$$missing (scenarios that need them are skipped)"; fi

# matplotlib for the charts, in a venv under build/ (charts are skipped if
# it cannot be installed; the tables do not need it).
bench-venv:
	@[ -x $(BENCH_VENV)/bin/python ] && $(BENCH_VENV)/bin/python -c 'import matplotlib' 2>/dev/null || { \
	  echo "bench: installing matplotlib into $(BENCH_VENV)"; \
	  python3 -m venv $(BENCH_VENV) && $(BENCH_VENV)/bin/pip install -q matplotlib || \
	  echo "bench: no matplotlib: charts will be skipped"; }

# Rewrite bench/RESULTS.md and the charts from the last saved results (no run).
bench-report:
	python3 bench/run.py --root $(CURDIR) --report

# The streaming-at-scale scenario's own programs: the paced SSE server, the Go
# clients (libesp's binding and net/http), the Python venv with aiohttp and
# httpx beside libesp's binding, the Node addon with undici, and the Rust
# example (libesp and reqwest). bench/run.py makes this when the scenario runs.
.PHONY: bench-streams-tools
bench-streams-tools: lib $(BENCH_B)/sse_streams
	@mkdir -p $(BENCH_B)
	go build -o $(BENCH_B)/sse_server ./bench/streams/sse_server.go
	PKG_CONFIG_PATH=$(CURDIR)/$(B)/pkgconfig go build -tags esp_system -o $(BENCH_B)/goclient ./bench/streams/goclient
	$(MAKE) -C bindings/python .venv/.bench-deps ESP_ROOT=$(CURDIR)
	$(MAKE) -C bindings/node node_modules/.installed addon ESP_ROOT=$(CURDIR)
	cd bindings/rust && ESP_SYS_USE_PKG_CONFIG=1 PKG_CONFIG_PATH=$(CURDIR)/$(B)/pkgconfig \
	  cargo build --release --example sse_streams
