# C test suite (GoogleTest against the bundled mock server) and checks.
.PHONY: gtest-dev test-faults test-build
TEST_SRCS := $(wildcard test/c/*.cpp)
# test_units.cpp reaches into these; the shared library hides their symbols,
# so the test binary built against it compiles them in.
TEST_UNITS := src/sse.cpp src/response.cpp src/deployments.cpp src/breaker.cpp src/retry.cpp src/ratelimit.cpp src/usage.cpp src/log.cpp src/shared_state.cpp
TEST_CXXFLAGS = -std=c++17 -O1 -g -Wall -Wextra -Iinclude -Isrc -Itest/c $(shell pkg-config --cflags $(C_DEPS) 2>/dev/null)
GTEST_LIBS = -lgtest -lpthread $(DEP_LIBS)

# GoogleTest from Debian, installed when missing (a fresh CI machine).
gtest-dev:
	@test -e /usr/include/gtest/gtest.h || { echo "installing libgtest-dev"; \
	  $(SUDO) apt-get update -q >/dev/null 2>&1 || true; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libgtest-dev >/dev/null; }

# One object per file, so that `make -j2 test-build` compiles them two at a time.
TEST_OBJS := $(TEST_SRCS:test/c/%.cpp=$(B)/test-obj/%.o) $(TEST_UNITS:src/%.cpp=$(B)/test-obj/units/%.o)
$(B)/test-obj/%.o: test/c/%.cpp $(wildcard test/c/*.h) $(wildcard src/*.h) include/esp.h | gtest-dev deps
	@mkdir -p $(@D)
	$(CXX) $(TEST_CXXFLAGS) -c $< -o $@
$(B)/test-obj/units/%.o: src/%.cpp $(wildcard src/*.h) include/esp.h | deps
	@mkdir -p $(@D)
	$(CXX) $(TEST_CXXFLAGS) -c $< -o $@
$(B)/esp_tests: $(TEST_OBJS) $(B)/libesp.so $(B)/fleet_worker
	$(CXX) -o $@ $(TEST_OBJS) -L$(B) -lesp -Wl,-rpath,$(CURDIR)/$(B) $(GTEST_LIBS) -ldl

# One process of a fleet (the fleet tests and `make bench SCEN=fleet` run several).
$(B)/fleet_worker: test/fleet/worker.c include/esp.h $(B)/libesp.so
	$(CC) -std=c99 -O2 -Wall -Wextra -pedantic -Iinclude -o $@ $< -L$(B) -lesp -Wl,-rpath,$(CURDIR)/$(B) -pthread

# The fleet tests start a real redis-server.
redis-tool:
	$(call need_tool,redis-server,redis-server)

# The C suites run as $(SHARDS) processes at once, each with its share of the
# tests (test/shards.sh): they mostly wait on servers and timers.
# $(call sharded,LOG,COMMAND): runs it so, leaves the joined output in LOG.
SHARDS ?= 2
sharded = test/shards.sh $(SHARDS) $(1) $(2)

# The suite runs with debug logging on and with recognisable fake keys
# ("...SECRET"): no log line, stats document or error may contain one.
test-c: $(B)/esp_tests redis-tool
	@ESP_ROOT=$(CURDIR) ESP_LOG=debug $(call sharded,$(B)/test-c.log,$(B)/esp_tests $(GTEST_ARGS)); rc=$$?; \
	  grep -v '^level=' $(B)/test-c.log; exit $$rc
	@! grep -n 'SECRET' $(B)/test-c.log || { echo "a secret reached the output above"; exit 1; }
	@echo "redaction: $$(grep -c '^level=' $(B)/test-c.log) debug log lines, no key in any"

# The fault suite: libesp through a fault-injecting proxy (test/faults/proxy.js)
# to the mock server, over HTTP/1.1 and HTTP/2.
FAULT_SRCS := $(wildcard test/faults/*.cpp)
$(B)/esp_faults: $(FAULT_SRCS) $(wildcard test/faults/*.h) $(wildcard test/c/*.h) $(B)/libesp.so | gtest-dev
	$(CXX) $(TEST_CXXFLAGS) -Itest/faults -o $@ $(FAULT_SRCS) -L$(B) -lesp -Wl,-rpath,$(CURDIR)/$(B) $(GTEST_LIBS)

# The C test programs, built (CI: `make -j2 lib test-build` before `make test`).
test-build: $(B)/esp_tests $(B)/esp_faults $(B)/fleet_worker

test-faults: $(B)/esp_faults
	ESP_ROOT=$(CURDIR) $(B)/esp_faults $(GTEST_ARGS)

$(B)/venv-tools/ok:
	python3 -m venv $(B)/venv-tools
	$(B)/venv-tools/bin/pip install -q prometheus_client
	touch $@

# The Prometheus text, checked by the reference parser.
test-prometheus: $(B)/esp_tests $(B)/venv-tools/ok
	@ESP_ROOT=$(CURDIR) ESP_PROM_OUT=$(B)/metrics.prom $(B)/esp_tests --gtest_filter='Metrics.*' --gtest_brief=1
	$(B)/venv-tools/bin/python test/prom_check.py $(B)/metrics.prom

test: lint-layers lint-config-table test-c test-faults test-prometheus test-install test-fork-python check-header check-abi test-bindings

$(B)/examples/demo: examples/c/demo.c include/esp.h $(B)/libesp.so
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -pedantic -Iinclude -o $@ $< -L$(B) -lesp \
	  -Wl,-rpath,$(CURDIR)/$(B) -pthread

demo: $(B)/examples/demo
	test/mock/with-mock.sh $(B)/examples/demo
	@$(MAKE) -s -C bindings/python demo ESP_ROOT=$(CURDIR)

# Each binding's own suite, against the freshly built library.
test-go test-rust test-node test-python: test-%: lib
	$(MAKE) -C bindings/$* test ESP_ROOT=$(CURDIR)

test-bindings: test-go test-rust test-node test-python

# The framework recipes at pinned versions: heavy installs, so not in `make test`;
# CI runs them on their own. Python: openai, anthropic, LangChain, LlamaIndex,
# Esperanto, Langroid in a venv of their own. Go: openai-go and anthropic-sdk-go
# on esp.Install. Node's SDK tests are quick and stay in test-node.
.PHONY: test-frameworks test-frameworks-python test-frameworks-go test-frameworks-deps
test-frameworks: test-frameworks-python test-frameworks-go
# Only their downloads and installs (no test): CI runs this while test-packages
# compiles, so the two wait on the network and on the compiler at once.
test-frameworks-deps:
	$(MAKE) -C bindings/python frameworks-deps ESP_ROOT=$(CURDIR)
	$(MAKE) -C bindings/go frameworks-deps ESP_ROOT=$(CURDIR)
test-frameworks-python: lib
	$(MAKE) -C bindings/python test-frameworks ESP_ROOT=$(CURDIR)
test-frameworks-go: lib
	$(MAKE) -C bindings/go test-frameworks ESP_ROOT=$(CURDIR)

# `make install` into a staging prefix, then a C program built with nothing
# but pkg-config runs a request against the mock server.
test-install: lib
	rm -rf $(B)/stage
	$(MAKE) -s install PREFIX=$(CURDIR)/$(B)/stage
	PKG_CONFIG_PATH=$(CURDIR)/$(B)/stage/lib/pkgconfig sh -c \
	  '$(CC) -std=c99 -Wall -Wextra -pedantic -Werror examples/c/chat.c $$(pkg-config --cflags --libs esp) \
	   -Wl,-rpath,$(CURDIR)/$(B)/stage/lib -o $(B)/stage/chat'
	OPENAI_API_KEY=sk-test test/mock/with-mock.sh sh -c 'OPENAI_BASE_URL=$$ESP_MOCK_HTTP/v1 $(B)/stage/chat'

test-fork-python: lib
	test/mock/with-mock.sh python3 test/fork_ctypes.py $(CURDIR)/$(B)/libesp.so

# The soak of the C suite, for as long as asked (default 2 minutes):
# RSS and open descriptors must stay flat.
SOAK_SECONDS ?= 120
soak: $(B)/esp_tests
	ESP_ROOT=$(CURDIR) ESP_SOAK_SECONDS=$(SOAK_SECONDS) $(B)/esp_tests --gtest_filter='Soak.*' \
	  --gtest_output=xml:$(B)/soak.xml
	@grep -o 'name="soak_requests" value="[0-9]*"' $(B)/soak.xml
