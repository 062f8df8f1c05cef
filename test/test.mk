# C test suite (GoogleTest against the bundled mock server) and checks.
TEST_SRCS := $(wildcard test/c/*.cpp)
TEST_CXXFLAGS := -std=c++17 -O1 -g -Wall -Wextra -Iinclude -Isrc -Itest/c $(shell pkg-config --cflags libcurl libcjson 2>/dev/null)
GTEST_LIBS := -lgtest -lpthread $(DEP_LIBS)

$(B)/esp_tests: $(TEST_SRCS) $(wildcard test/c/*.h) $(B)/libesp.so
	$(CXX) $(TEST_CXXFLAGS) -o $@ $(TEST_SRCS) -L$(B) -lesp -Wl,-rpath,$(CURDIR)/$(B) $(GTEST_LIBS) -ldl

test-c: $(B)/esp_tests
	ESP_ROOT=$(CURDIR) $(B)/esp_tests $(GTEST_ARGS)

test: test-c check-header check-abi test-bindings

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
