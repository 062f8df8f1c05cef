// The fault suite: libesp against the mock server through a fault-injecting
// proxy, over HTTP/1.1 and HTTP/2 (TLS). Every case checks the documented
// status, that no call outlives its timeout by more than 50 ms, that the
// server received each request exactly as often as the client says it sent
// it, that the pool works afterwards, and that esp_shutdown leaves no
// descriptor or thread behind.
#include <dirent.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "fault_proxy.h"
#include "helpers.h"
#include "stall_watch.h"

namespace {

MockServer *g_mock = nullptr;

int count_dir(const char *path) {
  int n = 0;
  DIR *d = opendir(path);
  while (d && readdir(d)) ++n;
  if (d) closedir(d);
  return n;
}

// Threads listed in /proc/self/task once joined ones are gone: pthread_join returns when
// the kernel clears the thread's id, a moment before it stops listing the task (seen in 1
// run of ~15). A thread still running is listed for the whole 200 ms.
int threads_settled(int expected) {
  int n = count_dir("/proc/self/task");
  for (int i = 0; i < 200 && n > expected; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    n = count_dir("/proc/self/task");
  }
  return n;
}

std::string new_key() {
  static std::atomic<int> n{0};
  return "fault-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

size_t receptions(const std::string &key) {
  cJSON *arr = cJSON_Parse(mock().control("/_mock/requests?key=" + key).c_str());
  size_t n = static_cast<size_t>(cJSON_GetArraySize(arr));
  cJSON_Delete(arr);
  return n;
}

struct Call {
  int rc = 0;
  int status = 0;
  int attempts = 0;
  int sent = 0;
  int64_t ms = 0;
  std::string error;
};

const int64_t kSlackMs = 50;  // no call may end later than its timeout + this + the scheduler's stalls (stall_watch.h)

}  // namespace

MockServer &mock() {
  if (!g_mock) g_mock = new MockServer();
  return *g_mock;
}

// Parameter: true for HTTP/2 over TLS, false for HTTP/1.1 over plain TCP.
class Faults : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    mock();
    proxy_ = std::make_unique<FaultProxy>(h2() ? mock().https_port : mock().http_port);
    esp_shutdown(5000);
    fds_before_ = count_dir("/proc/self/fd");
    threads_before_ = count_dir("/proc/self/task");
  }

  void TearDown() override {
    if (lease_) {
      // The pool works again once the fault and its connections are gone.
      proxy_->mode("pass");
      proxy_->send("{\"cmd\":\"drop_all\"}");
      Call ok = call("models", nullptr, {}, 5000);
      EXPECT_EQ(ok.status, 200) << "after the fault: " << ok.error;
      lease_.reset();
    }
    EXPECT_EQ(esp_shutdown(5000), ESP_OK);
    EXPECT_EQ(stat({"in_flight"}), 0);
    EXPECT_EQ(count_dir("/proc/self/fd"), fds_before_) << "a descriptor outlived esp_shutdown";
    EXPECT_EQ(threads_settled(threads_before_), threads_before_) << "a thread outlived esp_shutdown";
    proxy_.reset();
  }

  bool h2() const { return GetParam(); }

  // A fresh client (its own stats) reaching the mock through the proxy.
  void open_client(const std::string &extra = "") {
    static std::atomic<int> n{0};
    std::string base = (h2() ? "https://localhost:" : "http://127.0.0.1:") + std::to_string(proxy_->port) + "/v1";
    std::string cfg = "{\"base_url\":\"" + base + "\",\"api_key\":\"sk-fault-SECRET\",\"breaker_failures\":0," +
                      "\"retry_base_ms\":1,\"retry_max_ms\":5,\"name\":\"fault-" + std::to_string(n++) + "\"" +
                      (h2() ? ",\"ca_file\":\"" + mock().ca_file + "\"" : std::string(",\"http2\":false")) +
                      (extra.empty() ? "" : "," + extra) + "}";
    lease_ = std::make_unique<Lease>(cfg);
    ASSERT_EQ(lease_->rc, ESP_OK) << esp_last_error();
  }

  Call call(const char *path, const std::string *body, std::vector<esp_header> headers, int64_t timeout_ms,
            uint32_t flags = 0) {
    esp_request_opts o = opts(path, body, &headers);
    o.timeout_ms = timeout_ms;
    o.flags = flags;
    Call c;
    StallWatch stalls;
    auto t0 = std::chrono::steady_clock::now();
    esp_response *r = nullptr;
    c.rc = esp_request(lease_->handle, &o, &r);
    c.ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    const int64_t stalled_ms = stalls.worst_ms();
    if (c.rc != ESP_OK) {
      c.error = esp_last_error();
      c.sent = esp_last_error_sent();
    }
    if (r) {
      c.status = esp_response_status(r);
      c.attempts = esp_response_attempts(r);
      esp_response_free(r);
    }
    EXPECT_LE(c.ms, timeout_ms + kSlackMs + stalled_ms) << path << ": " << c.error << " (sleepers stalled up to "
                                                        << stalled_ms << " ms meanwhile)";
    return c;
  }

  double client_attempts() { return json_number(client_stats(lease_->handle), {"client", "attempts"}); }

  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<Lease> lease_;
  int fds_before_ = 0;
  int threads_before_ = 0;
};

TEST_P(Faults, StalledConnectionEndsAtTheTotalTimeout) {
  open_client();
  proxy_->mode("stall");
  std::string key = new_key();
  Call c = call("models", nullptr, {{"x-mock-key", key.c_str()}}, 400);
  EXPECT_EQ(c.rc, ESP_ETIMEDOUT) << c.error;
  EXPECT_EQ(c.error.rfind("total timeout", 0), 0u) << c.error;
  EXPECT_GE(c.ms, 400);
  EXPECT_EQ(receptions(key), 0u);
}

TEST_P(Faults, SlowBandwidthEndsAtTheTotalTimeout) {
  open_client();
  proxy_->mode("slow", 0, 40000);
  std::string key = new_key();
  Call c = call("models", nullptr, {{"x-mock-key", key.c_str()}, {"x-mock-body-bytes", "400000"}}, 700);
  EXPECT_EQ(c.rc, ESP_ETIMEDOUT) << c.error;
  EXPECT_EQ(c.sent, 1);
  EXPECT_EQ(receptions(key), 1u);
  EXPECT_EQ(client_attempts(), 1);
}

TEST_P(Faults, CutMidBodyIsAnIoErrorAfterTheSend) {
  open_client();
  proxy_->mode("cut_response", h2() ? 40000 : 3000);
  std::string key = new_key();
  Call c = call("models", nullptr, {{"x-mock-key", key.c_str()}, {"x-mock-body-bytes", "200000"}}, 3000);
  EXPECT_EQ(c.rc, ESP_EIO) << c.error;
  EXPECT_EQ(c.sent, 1);
  // Body bytes were in: not retried, sent once.
  EXPECT_EQ(receptions(key), 1u);
  EXPECT_EQ(client_attempts(), 1);
}

TEST_P(Faults, CutOrResetBeforeTheResponseIsRetriedAsTheTransportSays) {
  for (const char *fault : {"cut_request", "reset_request"}) {
    open_client("\"max_retries\":2");
    proxy_->mode(fault);
    std::string key = new_key();
    Call c = call("models", nullptr, {{"x-mock-key", key.c_str()}}, 3000);
    if (h2()) {
      // In the TLS handshake: a connection failure, never a TLS one.
      EXPECT_EQ(c.rc, ESP_ECONNECT) << fault << ": " << c.error;
      EXPECT_EQ(c.sent, 0) << fault;
    } else {
      // The request was out: an I/O failure that may have reached the server.
      EXPECT_EQ(c.rc, ESP_EIO) << fault << ": " << c.error;
      EXPECT_EQ(c.sent, 1) << fault;
    }
    EXPECT_EQ(client_attempts(), 3) << fault << ": retried like a connection failure";
    EXPECT_EQ(receptions(key), 0u) << fault;
  }
}

TEST_P(Faults, ResetWhileWaitingForTheResponseIsRetriedAndEverySendCounted) {
  open_client("\"max_retries\":2");
  proxy_->mode("reset_after_ms", 150);
  std::string key = new_key();
  Call c = call("models", nullptr, {{"x-mock-key", key.c_str()}, {"x-mock-delay-ms", "400"}}, 3000);
  EXPECT_EQ(c.rc, ESP_EIO) << c.error;
  EXPECT_EQ(c.sent, 1);
  EXPECT_EQ(client_attempts(), 3);
  EXPECT_EQ(receptions(key), 3u);
  // A POST without a key, or with ESP_REQ_NO_RETRY, goes out once.
  key = new_key();
  c = call("chat/completions", &kChat, {{"x-mock-key", key.c_str()}, {"x-mock-delay-ms", "400"}}, 3000,
           ESP_REQ_NO_RETRY);
  EXPECT_EQ(c.rc, ESP_EIO) << c.error;
  EXPECT_EQ(c.sent, 1);
  EXPECT_EQ(receptions(key), 1u);
}

TEST_P(Faults, PooledConnectionsCutWhileIdleNeverSendUnseen) {
  open_client("\"max_retries\":2");
  for (const char *action : {"cut", "reset"}) {
    ASSERT_EQ(call("models", nullptr, {}, 3000).status, 200);  // a pooled connection
    proxy_->send(std::string("{\"cmd\":\"arm_pooled\",\"action\":\"") + action + "\"}");
    std::string key = new_key();
    Call c = call("chat/completions", &kChat, {{"x-mock-key", key.c_str()}}, 3000);
    EXPECT_EQ(c.status, 200) << action << ": " << c.error;
    EXPECT_EQ(receptions(key), static_cast<size_t>(c.attempts)) << action;
    // Without a retry: at most one send, and the caller is told.
    ASSERT_EQ(call("models", nullptr, {}, 3000).status, 200);
    proxy_->send(std::string("{\"cmd\":\"arm_pooled\",\"action\":\"") + action + "\"}");
    key = new_key();
    c = call("chat/completions", &kChat, {{"x-mock-key", key.c_str()}}, 3000, ESP_REQ_NO_RETRY);
    EXPECT_EQ(receptions(key), 1u) << action;
    EXPECT_EQ(c.rc, ESP_EIO) << action << ": " << c.error;
    EXPECT_EQ(c.sent, 1) << action;
  }
}

TEST_P(Faults, ServerDownAndBack) {
  open_client("\"max_retries\":1");
  ASSERT_EQ(call("models", nullptr, {}, 3000).status, 200);
  proxy_->send("{\"cmd\":\"down\"}");
  std::string key = new_key();
  for (int i = 0; i < 2; ++i) {
    Call c = call("models", nullptr, {{"x-mock-key", key.c_str()}}, 2000);
    EXPECT_EQ(c.rc, ESP_ECONNECT) << c.error;
    // The first call may have sent on the pooled connection before it
    // learnt of the reset; with no connection left nothing is sent.
    if (i == 1) {
      EXPECT_EQ(c.sent, 0) << c.error;
    }
    EXPECT_LT(c.ms, 500);
  }
  EXPECT_EQ(receptions(key), 0u);
  proxy_->send("{\"cmd\":\"up\"}");
  EXPECT_EQ(call("models", nullptr, {}, 3000).status, 200);
}

// Issue 15 #9: a connection that opens slowly must not starve the requests
// that wait for it (over HTTP/2 they share it) past a connection of their own.
TEST_P(Faults, ASlowConnectDoesNotStarveTheOthers) {
  open_client("\"max_retries\":0");
  // A fresh engine: the first connection to the origin hangs in its connect.
  proxy_->mode("stall");
  struct Done {
    std::atomic<int> status{1};
    std::chrono::steady_clock::time_point at;
  } slow;
  esp_callbacks cb = ESP_CALLBACKS_INIT;
  cb.on_complete = [](void *user, int status, esp_response *r) {
    esp_response_free(r);
    static_cast<Done *>(user)->at = std::chrono::steady_clock::now();
    static_cast<Done *>(user)->status = status;
  };
  esp_request_opts o = opts("models");
  o.timeout_ms = 1500;
  const auto slow_start = std::chrono::steady_clock::now();
  ASSERT_EQ(esp_request_async(lease_->handle, &o, &cb, &slow, nullptr), ESP_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // its connect is under way
  // Issue 15 #8: one that waits for that connection still ends at its own
  // deadline (libcurl 7.88 does not time out a transfer waiting for an
  // HTTP/2 connection).
  Call stuck = call("models", nullptr, {}, 600);
  EXPECT_EQ(stuck.rc, ESP_ETIMEDOUT) << stuck.error;
  proxy_->mode("pass");
  esp_request_opts fast = opts("models");
  fast.timeout_ms = 3000;
  fast.pool_timeout_ms = 1000;
  auto t0 = std::chrono::steady_clock::now();
  Result r = request(lease_->handle, fast);
  int64_t took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_LE(took, 500) << "waited for the stalled connection";
  for (int i = 0; i < 300 && slow.status == 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(slow.status.load(), ESP_ETIMEDOUT);
  EXPECT_LE(std::chrono::duration_cast<std::chrono::milliseconds>(slow.at - slow_start).count(), 1500 + kSlackMs)
      << "the stalled call outlived its timeout";
}

TEST_P(Faults, RateLimitAndUnavailableStorms) {
  open_client("\"max_retries\":3,\"max_connections\":4");
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      std::string key = new_key();
      const bool limited = i % 2 == 0;
      // 429s that clear after two, or 503s that never do.
      Call c = call("chat/completions", &kChat,
                    {{"x-mock-key", key.c_str()},
                     {"x-mock-status", limited ? "429" : "503"},
                     {"x-mock-fail-times", limited ? "2" : "100"},
                     {"x-mock-retry-after-ms", "20"}},
                    4000);
      const int want_status = limited ? 200 : 503, want_attempts = limited ? 3 : 4;
      if (c.rc != ESP_OK || c.status != want_status || c.attempts != want_attempts ||
          receptions(key) != static_cast<size_t>(c.attempts))
        ++bad;
    });
  for (auto &t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Transports, Faults, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool> &p) { return p.param ? "Http2" : "Http1"; });

int main(int argc, char **argv) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  esp_shutdown(5000);
  delete g_mock;
  return rc;
}
