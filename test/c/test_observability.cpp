// Logs and metrics: the events users debug with, at the levels they ask
// for, and never a secret in any of them.
#include <mutex>
#include <thread>

#include "helpers.h"

namespace {

struct Captured {
  std::mutex mu;
  std::vector<std::pair<int, std::string>> lines;
  static void log(void *user, int level, const char *line) {
    auto *c = static_cast<Captured *>(user);
    std::lock_guard<std::mutex> lock(c->mu);
    c->lines.emplace_back(level, line);
  }
  bool has(const std::string &needle) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto &l : lines)
      if (l.second.find(needle) != std::string::npos) return true;
    return false;
  }
  std::string all() {
    std::lock_guard<std::mutex> lock(mu);
    std::string out;
    for (auto &l : lines) out += l.second + "\n";
    return out;
  }
};

}  // namespace

TEST(Logging, EventsAreSingleKeyValueLinesWithoutSecrets) {
  esp_shutdown(5000);
  Captured cap;
  ASSERT_EQ(esp_set_logger(Captured::log, &cap, ESP_LOG_DEBUG), ESP_OK);
  const std::string secret_cfg = mock().config(
      "\"name\":\"log-agent\",\"idle_ttl_ms\":0,\"retry_base_ms\":5,\"breaker_failures\":2,"
      "\"breaker_cooldown_ms\":100,\"slow_request_ms\":50,\"organization\":\"org-SECRET\"");
  {
    Lease a(secret_cfg);
    Lease b(secret_cfg);
    ASSERT_EQ(post(a.handle, "chat/completions", kChat).status, 200);
    post(a.handle, "chat/completions", kChat, {{"x-mock-status", "500"}});  // retries, then the breaker opens
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    EXPECT_EQ(get(a.handle, "models", {{"x-mock-delay-ms", "80"}}).status, 200);  // probe closes it; slow
    get(a.handle, (mock().http_base() + "/echo?key=sk-test-SECRET").c_str());
  }
  Lease c(mock().config("\"name\":\"other\""));  // sweeps the lingering one
  esp_set_logger(nullptr, nullptr, 0);
  for (const char *event : {"event=client_created", "event=client_reused", "event=client_lingering",
                            "event=client_freed", "event=connection_opened", "event=retry", "event=breaker_open",
                            "event=breaker_half_open", "event=breaker_closed", "event=slow_request"})
    EXPECT_TRUE(cap.has(event)) << event << " missing in:\n" << cap.all();
  EXPECT_TRUE(cap.has("client=log-agent"));
  EXPECT_TRUE(cap.has("reason=http_500"));
  std::string all = cap.all();
  EXPECT_EQ(all.find("SECRET"), std::string::npos) << all;
  for (auto &l : cap.lines) {
    EXPECT_EQ(l.second.find('\n'), std::string::npos);
    EXPECT_EQ(l.second.rfind("level=", 0), 0u) << l.second;
  }
}

TEST(Logging, MinLevelFiltersAndNullDisables) {
  Captured cap;
  ASSERT_EQ(esp_set_logger(Captured::log, &cap, ESP_LOG_WARN), ESP_OK);
  {
    Lease a(mock().config("\"name\":\"quiet\""));
    EXPECT_EQ(get(a.handle, "models").status, 200);
  }
  esp_set_logger(nullptr, nullptr, 0);
  for (auto &l : cap.lines) EXPECT_GE(l.first, ESP_LOG_WARN) << l.second;
  EXPECT_FALSE(cap.has("client_created"));
  size_t n = cap.lines.size();
  Lease b(mock().config("\"name\":\"quiet2\""));
  EXPECT_EQ(get(b.handle, "models").status, 200);
  EXPECT_EQ(cap.lines.size(), n);
}

TEST(Metrics, StatsCarryTheSchemaAndNoSecrets) {
  Lease lease(mock().config("\"name\":\"metrics-agent\",\"headers\":{\"x-api-key\":\"sk-test-SECRET\"}"));
  for (int i = 0; i < 5; ++i) ASSERT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  get(lease.handle, "models", {{"x-mock-status", "404"}});
  std::string s = client_stats(lease.handle);
  EXPECT_EQ(json_number(s, {"schema"}), 1);
  EXPECT_EQ(json_number(s, {"client", "requests"}), 6);
  EXPECT_EQ(json_number(s, {"client", "outcomes", "ok"}), 5);
  EXPECT_EQ(json_number(s, {"client", "outcomes", "http_4xx"}), 1);
  EXPECT_GT(json_number(s, {"client", "total_time", "p50_ms"}), 0);
  EXPECT_GE(json_number(s, {"client", "total_time", "p99_ms"}), json_number(s, {"client", "total_time", "p50_ms"}));
  EXPECT_GT(json_number(s, {"client", "bytes_received"}), 0);
  EXPECT_GT(json_number(s, {"client", "bytes_sent"}), 0);
  std::string p = process_stats();
  EXPECT_EQ(json_number(p, {"schema"}), 1);
  EXPECT_GE(json_number(p, {"registry", "leases_live"}), 1);
  char *prom = nullptr;
  ASSERT_EQ(esp_metrics_prometheus(&prom), ESP_OK);
  std::string text = prom;
  esp_free(prom);
  EXPECT_NE(text.find("esp_client_requests_total{client=\"metrics-agent\""), std::string::npos);
  EXPECT_NE(text.find("esp_origin_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(text.find("esp_leases_live"), std::string::npos);
  for (const std::string &out : {s, p, text}) EXPECT_EQ(out.find("SECRET"), std::string::npos);
  if (const char *path = std::getenv("ESP_PROM_OUT")) {  // for the parser check in test.mk
    FILE *f = std::fopen(path, "w");
    if (f) {
      std::fputs(text.c_str(), f);
      std::fclose(f);
    }
  }
}
