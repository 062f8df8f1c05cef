# C test suite (GoogleTest against the bundled mock server) and checks.
TEST_SRCS := $(wildcard test/c/*.cpp)
# test_units.cpp reaches into these; the shared library hides their symbols,
# so the test binary built against it compiles them in.
TEST_UNITS := src/sse.cpp src/response.cpp src/ratelimit.cpp src/usage.cpp src/log.cpp src/shared_state.cpp
TEST_CXXFLAGS := -std=c++17 -O1 -g -Wall -Wextra -Iinclude -Isrc -Itest/c $(shell pkg-config --cflags $(DEP_PC) 2>/dev/null)
GTEST_LIBS := -lgtest -lpthread $(DEP_LIBS)

$(B)/esp_tests: $(TEST_SRCS) $(wildcard test/c/*.h) $(B)/libesp.so $(B)/fleet_worker
	$(CXX) $(TEST_CXXFLAGS) -o $@ $(TEST_SRCS) $(TEST_UNITS) -L$(B) -lesp -Wl,-rpath,$(CURDIR)/$(B) $(GTEST_LIBS) -ldl

# One process of a fleet (the fleet tests and `make bench SCEN=fleet` run several).
$(B)/fleet_worker: test/fleet/worker.c include/esp.h $(B)/libesp.so
	$(CC) -std=c99 -O2 -Wall -Wextra -pedantic -Iinclude -o $@ $< -L$(B) -lesp -Wl,-rpath,$(CURDIR)/$(B) -pthread

# The fleet tests start a real redis-server.
redis-tool:
	$(call need_tool,redis-server,redis-server)

# The suite runs with debug logging on and with recognisable fake keys
# ("...SECRET"): no log line, stats document or error may contain one.
test-c: $(B)/esp_tests redis-tool
	@ESP_ROOT=$(CURDIR) ESP_LOG=debug $(B)/esp_tests $(GTEST_ARGS) > $(B)/test-c.log 2>&1; rc=$$?; \
	  grep -v '^level=' $(B)/test-c.log; exit $$rc
	@! grep -n 'SECRET' $(B)/test-c.log || { echo "a secret reached the output above"; exit 1; }
	@echo "redaction: $$(grep -c '^level=' $(B)/test-c.log) debug log lines, no key in any"

$(B)/venv-tools/ok:
	python3 -m venv $(B)/venv-tools
	$(B)/venv-tools/bin/pip install -q prometheus_client
	touch $@

# The Prometheus text, checked by the reference parser.
test-prometheus: $(B)/esp_tests $(B)/venv-tools/ok
	@ESP_ROOT=$(CURDIR) ESP_PROM_OUT=$(B)/metrics.prom $(B)/esp_tests --gtest_filter='Metrics.*' --gtest_brief=1
	$(B)/venv-tools/bin/python test/prom_check.py $(B)/metrics.prom

test: test-c test-prometheus test-install test-fork-python check-header check-abi test-bindings

$(B)/examples/demo: examples/c/demo.c include/esp.h $(B)/libesp.so
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -pedantic -Iinclude -o $@ $< -L$(B) -lesp \
	  -Wl,-rpath,$(CURDIR)/$(B) -pthread

demo: $(B)/examples/demo
	test/mock/with-mock.sh $(B)/examples/demo

# Each binding's own suite, against the freshly built library.
test-go test-rust test-node test-python: test-%: lib
	$(MAKE) -C bindings/$* test ESP_ROOT=$(CURDIR)

test-bindings: test-go test-rust test-node test-python

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
