#include <curl/curl.h>

#include "helpers.h"

namespace {
MockServer *g_mock = nullptr;

class MockEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    esp_shutdown(5000);
    delete g_mock;
    g_mock = nullptr;
  }
};
}  // namespace

MockServer &mock() {
  if (!g_mock) g_mock = new MockServer();
  return *g_mock;
}

int main(int argc, char **argv) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new MockEnvironment);
  return RUN_ALL_TESTS();
}
