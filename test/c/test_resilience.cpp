// Faults: retries and their limits, duplicate-send protection, the circuit
// breaker, servers that die, lie or speak garbage, fork, and a soak.
#include <dirent.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <random>
#include <thread>

#include "helpers.h"

namespace {

std::string unique_key(const char *prefix) {
  static std::atomic<int> n{0};
  return std::string(prefix) + "-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

// The requests the mock server recorded for a fault key.
std::vector<std::pair<double, std::string>> recorded(const std::string &key) {
  std::vector<std::pair<double, std::string>> out;
  cJSON *arr = cJSON_Parse(mock().control("/_mock/requests?key=" + key).c_str());
  for (cJSON *r = arr ? arr->child : nullptr; r; r = r->next) {
    const cJSON *ik = cJSON_GetObjectItem(r, "idempotency_key");
    out.emplace_back(cJSON_GetObjectItem(r, "t_ms")->valuedouble, cJSON_IsString(ik) ? ik->valuestring : "");
  }
  cJSON_Delete(arr);
  return out;
}

int open_fds() {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  while (d && readdir(d)) ++n;
  if (d) closedir(d);
  return n;
}

long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

TEST(Retry, RateLimitHonoursRetryAfterMsWithOneIdempotencyKey) {
  Lease lease(mock().config("\"retry_base_ms\":10"));
  std::string key = unique_key("429");
  Result r = post(lease.handle, "chat/completions", kChat,
                  {{"x-mock-key", key.c_str()}, {"x-mock-fail-times", "1"}, {"x-mock-status", "429"},
                   {"x-mock-retry-after-ms", "200"}});
  ASSERT_EQ(r.rc, ESP_OK) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  auto reqs = recorded(key);
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_GE(reqs[1].first - reqs[0].first, 195.0);
  EXPECT_FALSE(reqs[0].second.empty());
  EXPECT_EQ(reqs[0].second, reqs[1].second);
}

TEST(Retry, ServerErrorsAreRetriedUpToMaxRetriesAndNoMore) {
  Lease lease(mock().config("\"retry_base_ms\":5,\"retry_max_ms\":20"));
  std::string key = unique_key("500x2");
  Result r = post(lease.handle, "chat/completions", kChat,
                  {{"x-mock-key", key.c_str()}, {"x-mock-fail-times", "2"}, {"x-mock-status", "500"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 3);
  key = unique_key("500x10");
  r = post(lease.handle, "chat/completions", kChat,
           {{"x-mock-key", key.c_str()}, {"x-mock-fail-times", "10"}, {"x-mock-status", "500"}});
  EXPECT_EQ(r.rc, ESP_OK);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_NE(r.body.find("error"), std::string::npos);  // the last attempt's body, not a withheld one
  EXPECT_EQ(recorded(key).size(), 3u);
}

TEST(Retry, ShouldRetryHeaderAndNoRetryFlagOverride) {
  Lease lease(mock().config("\"retry_base_ms\":5"));
  std::string key = unique_key("noretry-hdr");
  Result r = get(lease.handle, "models",
                 {{"x-mock-key", key.c_str()}, {"x-mock-fail-times", "1"}, {"x-mock-status", "503"},
                  {"x-mock-should-retry", "false"}});
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.attempts, 1);
  key = unique_key("force-retry");
  r = get(lease.handle, "models",
          {{"x-mock-key", key.c_str()}, {"x-mock-fail-times", "1"}, {"x-mock-status", "400"},
           {"x-mock-should-retry", "true"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  key = unique_key("flag");
  std::vector<esp_header> h = {{"x-mock-key", key.c_str()}, {"x-mock-fail-times", "1"}, {"x-mock-status", "500"}};
  esp_request_opts o = opts("chat/completions", &kChat, &h);
  o.flags = ESP_REQ_NO_RETRY;
  r = request(lease.handle, o);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.attempts, 1);
  auto reqs = recorded(key);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_TRUE(reqs[0].second.empty());  // a POST that is never retried needs no key
}

TEST(Retry, RetriesStayInsideTheTotalTimeout) {
  Lease lease(mock().config("\"timeout_ms\":500"));
  std::string key = unique_key("late");
  auto t0 = std::chrono::steady_clock::now();
  Result r = get(lease.handle, "models",
                 {{"x-mock-key", key.c_str()}, {"x-mock-fail-times", "5"}, {"x-mock-status", "429"},
                  {"x-mock-retry-after", "5"}});
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.status, 429);  // a 5 s wait does not fit in 500 ms: the 429 is the answer
  EXPECT_EQ(r.attempts, 1);
  EXPECT_LT(ms, 2000);
}

TEST(Retry, ConnectionDropsAreRetriedAndReported) {
  Lease lease(mock().config("\"retry_base_ms\":5"));
  ASSERT_EQ(get(lease.handle, "models").status, 200);  // a warm connection to be dropped
  const double resends_before = json_number(client_stats(lease.handle), {"client", "silent_resends"});
  std::string key = unique_key("drop");
  Result r = post(lease.handle, "chat/completions", kChat,
                  {{"x-mock-key", key.c_str()}, {"x-mock-fail-times", "1"}, {"x-mock-drop", "before-headers"}});
  EXPECT_EQ(r.status, 200) << r.error;
  // On a reused connection libcurl would resend by itself: libesp refuses
  // that (and counts the refusal) and retries as an attempt of its own. The
  // server saw the POST twice, under one idempotency key, and the client says so.
  const double refused = json_number(client_stats(lease.handle), {"client", "silent_resends"}) - resends_before;
  EXPECT_EQ(r.attempts, 2) << "silent resends refused " << refused;
  EXPECT_LE(refused, 1);
  auto reqs = recorded(key);
  ASSERT_EQ(reqs.size(), static_cast<size_t>(r.attempts));
  EXPECT_EQ(reqs[0].second, reqs[1].second);
  Lease once(mock().config("\"max_retries\":0"));
  r = get(once.handle, "models", {{"x-mock-drop", "before-headers"}});
  EXPECT_EQ(r.rc, ESP_EIO) << r.error;
  r = get(once.handle, "models", {{"x-mock-drop", "mid-body"}});
  EXPECT_EQ(r.rc, ESP_EIO) << r.error;
}

TEST(Faults, GarbageHangsAndOversizedBodiesEndCleanly) {
  Lease lease(mock().config("\"max_retries\":0,\"timeout_ms\":2000,\"max_response_bytes\":100000"));
  Result r = get(lease.handle, "models", {{"x-mock-garbage", "1"}});
  EXPECT_TRUE(r.rc == ESP_EPROTOCOL || r.rc == ESP_EIO) << r.rc << " " << r.error;
  r = get(lease.handle, "models", {{"x-mock-body-bytes", "200000"}});
  EXPECT_EQ(r.rc, ESP_ETOOLARGE) << r.error;
  EXPECT_NE(r.error.find("max_response_bytes"), std::string::npos) << r.error;
  r = get(lease.handle, "models", {{"x-mock-body-bytes", "100000"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 100000u);
  // Streamed (chunked) bodies are capped as well.
  std::vector<esp_header> h = {{"x-mock-events", "5000"}};
  esp_request_opts o = opts("chat/completions", &kChatStream, &h);
  EXPECT_EQ(request(lease.handle, o).rc, ESP_ETOOLARGE);
  EXPECT_EQ(get(lease.handle, "models").status, 200);  // and the pool is fine
}

TEST(Breaker, OpensAfterConsecutiveFailuresThenHalfOpensAndCloses) {
  // An origin of its own: the breaker counts per origin, and the shared mock's failures from
  // earlier tests would otherwise be counted too (it opened one failure early after Retry.*).
  MockServer own;
  Lease lease(own.config("\"max_retries\":0,\"breaker_failures\":3,\"breaker_cooldown_ms\":300"));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(get(lease.handle, "models", {{"x-mock-status", "500"}}).status, 500);
  long before = own.stat("requests");
  Result r = get(lease.handle, "models");
  EXPECT_EQ(r.rc, ESP_ECIRCUIT);
  EXPECT_NE(r.error.find("circuit breaker open"), std::string::npos) << r.error;
  EXPECT_EQ(own.stat("requests"), before);  // failed fast, nothing sent
  EXPECT_NE(process_stats().find("\"breaker\":\"open\""), std::string::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  EXPECT_EQ(get(lease.handle, "models").status, 200);  // the probe
  EXPECT_EQ(get(lease.handle, "models").status, 200);
  EXPECT_EQ(process_stats().find("\"breaker\":\"open\""), std::string::npos);
  EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "outcomes", "circuit_open"}), 1);
}

TEST(Faults, ServerKilledAndRestartedMidRun) {
  MockServer first;
  const int port = first.http_port;
  std::string cfg = "{\"base_url\":\"http://127.0.0.1:" + std::to_string(port) +
                    "/v1\",\"max_retries\":1,\"retry_base_ms\":5,\"breaker_failures\":3,"
                    "\"breaker_cooldown_ms\":200,\"connect_timeout_ms\":500}";
  Lease lease(cfg);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(get(lease.handle, "models").status, 200);
  const int fds_before = open_fds();
  first.stop();
  int clean_errors = 0, circuit = 0;
  for (int i = 0; i < 10; ++i) {
    Result r = get(lease.handle, "models");
    ASSERT_NE(r.rc, ESP_OK);
    clean_errors += r.rc == ESP_ECONNECT || r.rc == ESP_EIO;
    circuit += r.rc == ESP_ECIRCUIT;
  }
  EXPECT_GE(clean_errors, 1);
  EXPECT_GE(circuit, 1);
  MockServer second({"--port", std::to_string(port)});
  ASSERT_EQ(second.http_port, port);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  int ok = 0;
  for (int i = 0; i < 20; ++i) ok += get(lease.handle, "models").status == 200;
  EXPECT_EQ(ok, 20);
  EXPECT_LE(open_fds(), fds_before + 1);
}

TEST(Resend, ServerClosingIdleConnectionsNeverDuplicatesRequests) {
  MockServer closing({"--idle-close-ms", "20"});
  Lease lease("{\"base_url\":\"" + closing.http_base() + "/v1\",\"retry_base_ms\":5,\"max_connections\":4}");
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pause_us(0, 40000);
  const int n = 300;
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    ok += post(lease.handle, "chat/completions", kChat).status == 200;
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us(rng)));
  }
  EXPECT_EQ(ok, n);
  std::string s = client_stats(lease.handle);
  double attempts = json_number(s, {"client", "attempts"});
  double resends = json_number(s, {"client", "silent_resends"});
  // Every request the server saw is an attempt the client counted: a resend
  // libcurl made on a dead connection never reached the server twice.
  EXPECT_EQ(closing.stat("requests"), static_cast<long>(attempts));
  EXPECT_GE(resends, 0);
  RecordProperty("silent_resends", std::to_string(static_cast<long>(resends)));
}

TEST(Resend, ServerClosingEveryConnectionTenThousandRequests) {
  MockServer closing({"--close-after-response"});
  Lease lease("{\"base_url\":\"" + closing.http_base() + "/v1\",\"retry_base_ms\":5,\"max_connections\":8}");
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2500; ++i) ok += post(lease.handle, "chat/completions", kChat).status == 200;
    });
  for (auto &t : threads) t.join();
  EXPECT_EQ(ok.load(), 10000);
  std::string s = client_stats(lease.handle);
  const long attempts = static_cast<long>(json_number(s, {"client", "attempts"}));
  const long resends = static_cast<long>(json_number(s, {"client", "silent_resends"}));
  // What the server received is what the client sent: attempts, plus any
  // resend libcurl made by itself (each one detected and counted).
  EXPECT_GE(closing.stat("requests"), attempts);
  EXPECT_LE(closing.stat("requests"), attempts + resends);
  EXPECT_EQ(json_number(s, {"client", "connections_opened"}), attempts);
  RecordProperty("silent_resends", std::to_string(resends));
}

TEST(Fork, ChildrenOfAWarmParentWorkAndTheParentToo) {
  Lease lease(mock().tls_config());
  for (int i = 0; i < 10; ++i) ASSERT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; ++k) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // The inherited lease works: the child re-resolves it to a fresh engine.
      int ok = 0;
      for (int i = 0; i < 100; ++i) ok += post(lease.handle, "chat/completions", kChat).status == 200;
      esp_client own = 0;
      if (esp_client_get(mock().tls_config().c_str(), &own) == ESP_OK) {
        ok += get(own, "models").status == 200;
        esp_client_release(own);
      }
      _exit(ok == 101 ? 0 : 1);
    }
    kids.push_back(pid);
  }
  int parent_ok = 0;
  for (int i = 0; i < 100; ++i) parent_ok += post(lease.handle, "chat/completions", kChat).status == 200;
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << pid << " status " << status;
  }
  EXPECT_EQ(parent_ok, 100);
  EXPECT_EQ(get(lease.handle, "models").status, 200);
}

TEST(Soak, RssAndDescriptorsStayFlat) {
  const char *env = std::getenv("ESP_SOAK_SECONDS");
  const double seconds = env ? std::atof(env) : 6.0;
  Lease lease(mock().config());
  for (int i = 0; i < 500; ++i) ASSERT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  const long rss0 = rss_kb();
  const int fds0 = open_fds();
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  long n = 0, ok = 0;
  std::vector<std::thread> threads;
  std::atomic<long> total{0}, good{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      while (std::chrono::steady_clock::now() < end) {
        Lease own(mock().config());
        good += post(own.handle, "chat/completions", kChat).status == 200;
        ++total;
      }
    });
  for (auto &t : threads) t.join();
  n = total.load();
  ok = good.load();
  EXPECT_EQ(ok, n);
  EXPECT_LE(open_fds(), fds0 + 4);
  // ASan's quarantine and valgrind's allocator hold freed memory: the
  // sanitizer runs set ESP_TEST_RSS_UNRELIABLE (leaks are their own check).
  if (!std::getenv("ESP_TEST_RSS_UNRELIABLE")) {
    EXPECT_LT(rss_kb() - rss0, 8 * 1024) << n << " requests";
  }
  RecordProperty("soak_requests", std::to_string(n));
}
