# C test suite (GoogleTest against the bundled mock server) and checks.
TEST_SRCS := $(wildcard test/c/*.cpp)
TEST_CXXFLAGS := -std=c++17 -O1 -g -Wall -Wextra -Iinclude -Isrc -Itest/c $(shell pkg-config --cflags libcurl libcjson 2>/dev/null)
GTEST_LIBS := -lgtest -lpthread

$(B)/esp_tests: $(TEST_SRCS) $(wildcard test/c/*.h) $(B)/libesp.so
	$(CXX) $(TEST_CXXFLAGS) -o $@ $(TEST_SRCS) -L$(B) -lesp -Wl,-rpath,$(CURDIR)/$(B) $(GTEST_LIBS) -ldl

test-c: $(B)/esp_tests
	ESP_ROOT=$(CURDIR) $(B)/esp_tests $(GTEST_ARGS)

test: test-c check-header check-abi
