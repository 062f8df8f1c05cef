// Rate limits per credential: the GCRA bucket, header learning, token
// estimates and usage parsing as units; then against the mock server's
// rate-limited mode: pacing without 429s, ESP_ERATELIMITED, learnt limits,
// 429 pauses shared by a credential's clients, usage totals in stats.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "helpers.h"
#include "ratelimit.h"
#include "response.h"
#include "usage.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kSec = 1000000;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

esp_response head_with(int status, esp::HeaderList headers) {
  esp_response r;
  r.status = status;
  for (auto &h : headers) r.add_header(std::move(h.first), std::move(h.second));
  r.index_headers();
  return r;
}

std::string unique_key() {
  static std::atomic<int> n{0};
  return "sk-rl-" + std::to_string(getpid()) + "-" + std::to_string(n++) + "-SECRET";
}

// A client config for `server` with its own key and extra members.
std::string config_for(const MockServer &server, const std::string &key, const std::string &extra) {
  return "{\"base_url\":\"" + server.http_base() + "/v1\",\"api_key\":\"" + key + "\"," + extra + "}";
}

// Fires n chat completions at once and waits for all; returns the HTTP statuses.
std::vector<int> burst(esp_client c, int n, const std::string &body = kChat) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<int> statuses;
    int left;
  } st;
  st.left = n;
  esp_callbacks cb{};
  cb.struct_size = sizeof cb;
  cb.on_complete = [](void *user, int status, esp_response *r) {
    auto *s = static_cast<State *>(user);
    int http = status == ESP_OK ? esp_response_status(r) : status;
    esp_response_free(r);
    std::lock_guard<std::mutex> lock(s->mu);
    s->statuses.push_back(http);
    if (--s->left == 0) s->cv.notify_all();
  };
  esp_request_opts o = opts("chat/completions", &body);
  for (int i = 0; i < n; ++i) {
    int rc = esp_request_async(c, &o, &cb, &st, nullptr);
    if (rc != ESP_OK) {
      std::lock_guard<std::mutex> lock(st.mu);
      st.statuses.push_back(rc);
      --st.left;
    }
  }
  std::unique_lock<std::mutex> lock(st.mu);
  st.cv.wait_for(lock, std::chrono::seconds(30), [&] { return st.left == 0; });
  return st.statuses;
}

int count_of(const std::vector<int> &v, int x) { return static_cast<int>(std::count(v.begin(), v.end(), x)); }

double rate_limit_stat(esp_client c, std::initializer_list<const char *> path) {
  std::vector<const char *> full = {"client", "rate_limit"};
  full.insert(full.end(), path.begin(), path.end());
  cJSON *root = cJSON_Parse(client_stats(c).c_str());
  const cJSON *j = root;
  for (const char *k : full) j = j ? cJSON_GetObjectItemCaseSensitive(j, k) : nullptr;
  double v = j && cJSON_IsNumber(j) ? j->valuedouble : -1;
  cJSON_Delete(root);
  return v;
}

}  // namespace

// ---- units -------------------------------------------------------------------

TEST(RateLimitUnits, GcraAllowsOneSecondBurstThenPacesAtTheLimit) {
  esp::Gcra g;
  g.set_limit(600);  // 10 per second: 100 ms apart, a burst of 10
  int64_t now = 50 * kSec;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(g.earliest(1, now), now) << i;
    g.take(1, now);
  }
  EXPECT_EQ(g.earliest(1, now), now + 100000);
  g.take(1, g.earliest(1, now));
  EXPECT_EQ(g.earliest(1, now), now + 200000);
  // Idle for a while: full again, but never more than the burst.
  now += 10 * kSec;
  for (int i = 0; i < 10; ++i) g.take(1, g.earliest(1, now));
  EXPECT_EQ(g.earliest(1, now), now + 100000);
  g.give_back(1);
  EXPECT_EQ(g.earliest(1, now), now);
}

TEST(RateLimitUnits, GcraLetsACostLargerThanTheBurstGoWhenFullAndKeepsTheRate) {
  esp::Gcra g;
  g.set_limit(6000);  // 100 tokens per second, burst 100
  int64_t now = 50 * kSec;
  EXPECT_EQ(g.earliest(500, now), now);  // larger than the burst, bucket full
  g.take(500, now);
  EXPECT_EQ(g.earliest(500, now), now + 5 * kSec);  // the debt is paid first
  EXPECT_EQ(g.earliest(10, now), now + 5 * kSec - kSec + 100000);
  g.hold_until(now + 20 * kSec);
  EXPECT_GE(g.earliest(1, now), now + 20 * kSec - kSec);
  esp::Gcra unlimited;
  EXPECT_EQ(unlimited.earliest(1000000, now), now);
}

TEST(RateLimitUnits, ResetDurations) {
  EXPECT_EQ(esp::parse_reset_duration("6m0s"), 360 * kSec);
  EXPECT_EQ(esp::parse_reset_duration("1.5s"), 1500000);
  EXPECT_EQ(esp::parse_reset_duration("20ms"), 20000);
  EXPECT_EQ(esp::parse_reset_duration("1h2m"), 3720 * kSec);
  EXPECT_EQ(esp::parse_reset_duration("7"), 7 * kSec);
  EXPECT_EQ(esp::parse_reset_duration("2026-12-01T15:00:00Z"), -1);
  EXPECT_EQ(esp::parse_reset_duration(""), -1);
  EXPECT_EQ(esp::parse_reset_duration("5x"), -1);
}

TEST(RateLimitUnits, LearnsOpenAIAnthropicAndAzureHeaders) {
  esp::LearnedLimits o = esp::learn_from_headers(
      head_with(200, {{"x-ratelimit-limit-requests", "5000"}, {"x-ratelimit-limit-tokens", "800000"},
                      {"x-ratelimit-remaining-requests", "4999"}, {"x-ratelimit-remaining-tokens", "0"},
                      {"x-ratelimit-reset-tokens", "1.5s"}}),
      0);
  EXPECT_EQ(o.requests_limit, 5000);
  EXPECT_EQ(o.tokens_limit, 800000);
  EXPECT_EQ(o.pause_us, 1500000);
  EXPECT_EQ(o.pause_reason, "tokens");

  const double now = 1796137200;  // 2026-12-01T15:00:00Z
  esp::LearnedLimits a = esp::learn_from_headers(
      head_with(200, {{"anthropic-ratelimit-requests-limit", "50"}, {"anthropic-ratelimit-requests-remaining", "0"},
                      {"anthropic-ratelimit-requests-reset", "2026-12-01T15:00:30Z"},
                      {"anthropic-ratelimit-tokens-limit", "40000"}}),
      now);
  EXPECT_EQ(a.requests_limit, 50);
  EXPECT_EQ(a.tokens_limit, 40000);
  EXPECT_EQ(a.pause_us, 30 * kSec);
  EXPECT_EQ(a.pause_reason, "requests");

  esp::LearnedLimits z = esp::learn_from_headers(head_with(200, {{"x-ratelimit-remaining-requests", "0"}}), 0);
  EXPECT_EQ(z.requests_limit, 0);
  EXPECT_EQ(z.pause_us, kSec);  // Azure says no reset time: the default pause

  esp::LearnedLimits r = esp::learn_from_headers(head_with(429, {{"retry-after-ms", "250"}}), 0);
  EXPECT_EQ(r.pause_us, 250000);
  EXPECT_EQ(r.pause_reason, "429");
  EXPECT_EQ(esp::learn_from_headers(head_with(200, {}), 0).pause_us, -1);
}

TEST(RateLimitUnits, TokenEstimateIsBytesOverFourPlusTheReplyLimit) {
  std::string body = R"({"model":"m","max_tokens":100,"messages":[{"role":"user","content":")" +
                     std::string(300, 'a') + "\"}]}";
  EXPECT_EQ(esp::estimate_tokens(body), static_cast<int64_t>(body.size() / 4) + 100);
  std::string completion = R"({"max_completion_tokens":64,"input":"x"})";
  EXPECT_EQ(esp::estimate_tokens(completion), static_cast<int64_t>(completion.size() / 4) + 64);
  std::string responses = R"({"max_output_tokens":7,"input":"x"})";
  EXPECT_EQ(esp::estimate_tokens(responses), static_cast<int64_t>(responses.size() / 4) + 7);
  EXPECT_EQ(esp::estimate_tokens(std::string(40, 'z')), 10);  // not JSON: bytes only
  EXPECT_EQ(esp::estimate_tokens(""), 1);
}

TEST(RateLimitUnits, UsageFromOpenAIAnthropicGeminiAndStreams) {
  esp::Usage o = esp::find_usage(
      R"({"choices":[{"message":{"content":"the \"usage\": {\"total_tokens\": 999}"}}],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}})");
  EXPECT_EQ(o.input, 11);
  EXPECT_EQ(o.output, 5);
  EXPECT_EQ(o.total, 16);  // the text inside the content is not a usage object

  const std::string anthropic_stream =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
      "event: content_block_delta\ndata: {\"delta\":{\"text\":\"hi\"}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n";
  esp::UsageScanner s;
  for (char c : anthropic_stream) s.feed(&c, 1);  // any chunking
  esp::Usage a = s.result();
  EXPECT_EQ(a.input, 25);
  EXPECT_EQ(a.output, 15);
  EXPECT_EQ(a.total, 40);

  esp::Usage g = esp::find_usage(R"({"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"totalTokenCount":7}})");
  EXPECT_EQ(g.total, 7);
  EXPECT_FALSE(esp::find_usage(R"({"choices":[]})").known());

  // A long stream: the usage is in the last event, far past the first 16 KiB.
  esp::UsageScanner big;
  std::string filler = "data: {\"choices\":[{\"delta\":{\"content\":\"xxxxxxxxxxxxxxxx\"}}]}\n\n";
  for (int i = 0; i < 5000; ++i) big.feed(filler.data(), filler.size());
  std::string last = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5000,\"total_tokens\":5009}}\n\n";
  big.feed(last.data(), last.size());
  EXPECT_EQ(big.result().total, 5009);
}

TEST(RateLimitUnits, CredentialIdIsAStableHashThatRevealsNothing) {
  const std::string a = esp::credential_id("sk-live-SECRET-a", "{}");
  EXPECT_EQ(a, esp::credential_id("sk-live-SECRET-a", "{\"other\":1}"));  // the key decides
  EXPECT_NE(a, esp::credential_id("sk-live-SECRET-b", "{}"));
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a.find("SECRET"), std::string::npos);
  EXPECT_NE(esp::credential_id("", "{\"a\":1}"), esp::credential_id("", "{\"a\":2}"));
}

TEST(RateLimitUnits, ReservationsFailOnlyWhenTheTimeoutCannotBeMetAndSayWhy) {
  esp::Limiter l("test-credential");
  esp::RateLimitConfig cfg;
  cfg.enabled = true;
  cfg.requests_per_minute = 60;  // one a second
  l.configure(cfg);
  const int64_t now = 100 * kSec;
  esp::Reservation first = l.reserve(10, now, now + kSec);
  ASSERT_TRUE(first.ok);
  EXPECT_EQ(first.at_us, now);
  esp::Reservation second = l.reserve(10, now, now + 2 * kSec);
  ASSERT_TRUE(second.ok);
  EXPECT_EQ(second.at_us, now + kSec);  // waits its turn
  esp::Reservation third = l.reserve(10, now, now + 500000);
  EXPECT_FALSE(third.ok);
  EXPECT_NE(third.why.find("requests_per_minute 60"), std::string::npos) << third.why;
  EXPECT_NE(third.why.find("resets in 2000 ms"), std::string::npos) << third.why;
  l.cancel(second);  // given back: the next one goes at the second's time
  EXPECT_TRUE(l.reserve(10, now, now + kSec).ok);
  EXPECT_EQ(l.rejected.load(), 1u);
}

// ---- against the mock server -----------------------------------------------------

TEST(Config, RateLimitIsValidated) {
  for (const char *bad : {"\"rate_limit\":5", "\"rate_limit\":{\"rpm\":5}", "\"rate_limit\":{\"requests_per_minute\":-1}",
                          "\"rate_limit\":{\"tokens_per_minute\":1.5}",
                          "\"rate_limit\":{\"requests_per_minute\":1,\"requests_per_minute\":2}"}) {
    Lease l(mock().config(bad));
    EXPECT_EQ(l.rc, ESP_ECONFIG) << bad;
    EXPECT_NE(std::string(esp_last_error()).find("rate_limit"), std::string::npos) << esp_last_error();
  }
  Lease ok(mock().config("\"rate_limit\":{}"));
  EXPECT_EQ(ok.rc, ESP_OK);
  EXPECT_STREQ(esp_strerror(ESP_ERATELIMITED), "rate limit: no budget before the request's timeout");
}

TEST(RateLimit, OneProcessStaysUnderTheServersLimitWithoutA429) {
  // 1200 a minute is 20 a second; the server's bucket holds 2 seconds' worth.
  MockServer server({"--rpm", "1200", "--rl-window-ms", "2000", "--rl-headers", "none"});
  const std::string key = unique_key();
  Lease lease(config_for(server, key, "\"max_retries\":0,\"rate_limit\":{\"requests_per_minute\":1200}"));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  auto t0 = Clock::now();
  std::vector<int> statuses = burst(lease.handle, 80);
  double ms = ms_since(t0);
  EXPECT_EQ(count_of(statuses, 200), 80);
  EXPECT_EQ(server.stat("rate_limited_429"), 0);
  // 20 at once, then one every 50 ms: the last goes out at about 3 s.
  EXPECT_GT(ms, 2700);
  EXPECT_LT(ms, 6000);
  EXPECT_EQ(rate_limit_stat(lease.handle, {"delayed"}), 60);

  // The same burst without the limit: the server refuses a share with 429.
  Lease unlimited(config_for(server, unique_key(), "\"max_retries\":0"));
  std::vector<int> raw = burst(unlimited.handle, 80);
  EXPECT_GT(count_of(raw, 429), 20);
  EXPECT_EQ(server.stat("rate_limited_429"), count_of(raw, 429));
}

TEST(RateLimit, ARequestThatCannotMeetItsTimeoutFailsWithRateLimitedAndIsNeverSent) {
  const std::string key = unique_key();
  Lease lease(config_for(mock(), key, "\"rate_limit\":{\"requests_per_minute\":6}"));  // one per 10 s
  ASSERT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  const long before = mock().stat("requests");
  esp_request_opts o = opts("chat/completions", &kChat);
  o.timeout_ms = 500;
  auto t0 = Clock::now();
  Result r = request(lease.handle, o);
  EXPECT_LT(ms_since(t0), 200);  // known at once: no point waiting
  EXPECT_EQ(r.rc, ESP_ERATELIMITED);
  EXPECT_NE(r.error.find("requests_per_minute 6"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("resets in"), std::string::npos) << r.error;
  EXPECT_EQ(mock().stat("requests"), before);
  EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "outcomes", "rate_limited"}), 1);
}

TEST(RateLimit, WaitersKeepTheirOrderAndAnAsyncWaiterCanBeCancelled) {
  const std::string key = unique_key();
  Lease lease(config_for(mock(), key, "\"rate_limit\":{\"requests_per_minute\":600}"));  // burst 10, then 100 ms apart
  struct Done {
    std::mutex mu;
    std::vector<int> order;
    std::vector<int> statuses;
  } done;
  struct Item {
    Done *d;
    int i;
  };
  std::vector<Item> items;
  for (int i = 0; i < 14; ++i) items.push_back({&done, i});
  esp_callbacks cb{};
  cb.struct_size = sizeof cb;
  cb.on_complete = [](void *user, int status, esp_response *r) {
    auto *it = static_cast<Item *>(user);
    esp_response_free(r);
    std::lock_guard<std::mutex> lock(it->d->mu);
    it->d->order.push_back(it->i);
    it->d->statuses.push_back(status);
  };
  esp_request_opts o = opts("chat/completions", &kChat);
  std::vector<esp_call> calls(items.size());
  for (size_t i = 0; i < items.size(); ++i) ASSERT_EQ(esp_request_async(lease.handle, &o, &cb, &items[i], &calls[i]), ESP_OK);
  ASSERT_EQ(esp_call_cancel(calls[13]), ESP_OK);  // waiting for its turn: cancelled, never sent
  for (int spin = 0; spin < 300; ++spin) {
    {
      std::lock_guard<std::mutex> lock(done.mu);
      if (done.order.size() == items.size()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard<std::mutex> lock(done.mu);
  ASSERT_EQ(done.order.size(), items.size());
  // The paced ones (past the burst of 10) complete in the order they were made.
  std::vector<int> paced;
  for (size_t k = 0; k < done.order.size(); ++k)
    if (done.order[k] >= 10 && done.statuses[k] == ESP_OK) paced.push_back(done.order[k]);
  EXPECT_EQ(paced, (std::vector<int>{10, 11, 12}));
  EXPECT_EQ(count_of(done.statuses, ESP_ECANCELLED), 1);
}

TEST(RateLimit, LearnsTheLimitFromTheProvidersHeaders) {
  MockServer server({"--rpm", "1200", "--rl-window-ms", "2000", "--rl-headers", "openai"});
  Lease lease(config_for(server, unique_key(), "\"max_retries\":0,\"rate_limit\":{}"));
  ASSERT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  EXPECT_EQ(rate_limit_stat(lease.handle, {"learned", "requests_per_minute"}), 1200);
  EXPECT_EQ(rate_limit_stat(lease.handle, {"requests_per_minute"}), 1200);
  std::vector<int> statuses = burst(lease.handle, 60);
  EXPECT_EQ(count_of(statuses, 200), 60);
  EXPECT_EQ(server.stat("rate_limited_429"), 0);

  MockServer anthropic({"--rpm", "300", "--tpm", "90000", "--rl-headers", "anthropic"});
  Lease a(config_for(anthropic, unique_key(), "\"rate_limit\":{\"requests_per_minute\":1000}"));
  ASSERT_EQ(post(a.handle, "messages", kChat).status, 200);
  EXPECT_EQ(rate_limit_stat(a.handle, {"requests_per_minute"}), 300);  // the smaller one applies
  EXPECT_EQ(rate_limit_stat(a.handle, {"tokens_per_minute"}), 90000);
  EXPECT_EQ(rate_limit_stat(a.handle, {"configured", "requests_per_minute"}), 1000);
}

TEST(RateLimit, A429PausesEveryClientOfTheCredential) {
  // One request a second, a bucket of one; no headers but the 429's retry-after.
  MockServer server({"--rpm", "60", "--rl-window-ms", "1000", "--rl-headers", "none"});
  const std::string key = unique_key();
  Lease a(config_for(server, key, "\"name\":\"rl-a\",\"max_retries\":0,\"rate_limit\":{}"));
  Lease b(config_for(server, key, "\"name\":\"rl-b\",\"max_retries\":0,\"rate_limit\":{}"));
  ASSERT_EQ(post(a.handle, "chat/completions", kChat).status, 200);
  ASSERT_EQ(post(a.handle, "chat/completions", kChat).status, 429);  // the credential pauses
  auto t0 = Clock::now();
  Result r = post(b.handle, "chat/completions", kChat);  // another client, same key: waits
  EXPECT_EQ(r.status, 200);
  EXPECT_GT(ms_since(t0), 700);
  EXPECT_EQ(server.stat("rate_limited_429"), 1);
  EXPECT_EQ(rate_limit_stat(b.handle, {"server_429"}), 1);
  EXPECT_GE(rate_limit_stat(b.handle, {"pauses"}), 1);
}

TEST(RateLimit, UsageCorrectsTheEstimateAndIsTotalledPerClientAndCredential) {
  const std::string key = unique_key();
  Lease lease(config_for(mock(), key, "\"rate_limit\":{\"tokens_per_minute\":100000}"));
  // "hello pool" -> 2 prompt words, "echo: hello pool" -> 3 reply words.
  ASSERT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  std::string stream_usage =
      R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]})";
  ASSERT_EQ(post(lease.handle, "chat/completions", stream_usage).status, 200);
  ASSERT_EQ(post(lease.handle, "messages", kChatStream).status, 200);  // Anthropic events: 4 in, 5 out
  const std::string stats = client_stats(lease.handle);
  EXPECT_EQ(json_number(stats, {"client", "usage", "input_tokens"}), 2 + 3 + 4);
  EXPECT_EQ(json_number(stats, {"client", "usage", "output_tokens"}), 3 + 4 + 5);
  EXPECT_EQ(json_number(stats, {"client", "usage", "total_tokens"}), 5 + 7 + 9);
  EXPECT_EQ(json_number(stats, {"client", "rate_limit", "usage", "total_tokens"}), 21);
  EXPECT_EQ(json_number(stats, {"client", "usage", "responses_with_usage"}), 3);
  EXPECT_EQ(stats.find("SECRET"), std::string::npos);
  char *prom = nullptr;
  ASSERT_EQ(esp_metrics_prometheus(&prom), ESP_OK);
  const std::string text = prom;
  esp_free(prom);
  EXPECT_NE(text.find("esp_client_usage_tokens_total{"), std::string::npos);
  EXPECT_NE(text.find("esp_credential_tokens_per_minute{credential=\"" + esp::credential_id(key, "") + "\"} 100000"),
            std::string::npos);
}
