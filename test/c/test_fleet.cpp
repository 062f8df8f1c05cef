// A fleet sharing one credential's limits and the breakers through a real
// redis-server (shared_state): processes (fleet_worker) against the mock
// server's rate-limited mode stay under the limit and use most of it; a
// learnt limit spreads; Redis killed mid-run stops nothing; a breaker opened
// by one process is open for the others, and after its cool-down exactly one
// process probes; a deployment cooled down by one is cooled down for all.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "fleet_helpers.h"
#include "helpers.h"
#include "ratelimit.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string unique(const char *what) {
  static std::atomic<int> n{0};
  return std::string(what) + "-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

// `shared_extra`: more members of "shared_state".
std::string fleet_config(const MockServer &server, const std::string &key, const RedisServer &redis,
                         const std::string &ns, const std::string &extra, const std::string &shared_extra = "") {
  return "{\"base_url\":\"" + server.http_base() + "/v1\",\"api_key\":\"" + key +
         "\",\"shared_state\":{\"redis\":\"" + redis.url() + "\",\"namespace\":\"" + ns + "\"" +
         (shared_extra.empty() ? "" : "," + shared_extra) + "}" + (extra.empty() ? "" : "," + extra) + "}";
}

struct Outcome {
  double ok = 0, http_429 = 0, http_other = 0, elapsed_ms = 0, failures = 0;
  std::string raw;
};

Outcome parse(const std::string &line) {
  Outcome o;
  o.raw = line;
  cJSON *j = cJSON_Parse(line.c_str());
  auto num = [&](const char *k) {
    const cJSON *v = j ? cJSON_GetObjectItem(j, k) : nullptr;
    return v && cJSON_IsNumber(v) ? v->valuedouble : -1;
  };
  o.ok = num("ok");
  o.http_429 = num("http_429");
  o.http_other = num("http_other");
  o.elapsed_ms = num("elapsed_ms");
  const cJSON *f = j ? cJSON_GetObjectItem(j, "failures") : nullptr;
  for (const cJSON *c = f ? f->child : nullptr; c; c = c->next) o.failures += c->valuedouble;
  cJSON_Delete(j);
  return o;
}

// A member of the first element of a stats array, e.g. ("shared_state", "fallbacks").
double first_of(const std::string &line, const char *array, const char *member) {
  cJSON *j = cJSON_Parse(line.c_str());
  const cJSON *stats = j ? cJSON_GetObjectItem(j, "stats") : nullptr;
  const cJSON *arr = stats ? cJSON_GetObjectItem(stats, array) : nullptr;
  const cJSON *v = arr && arr->child ? cJSON_GetObjectItem(arr->child, member) : nullptr;
  double out = !v ? -1 : cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? 1 : 0) : v->valuedouble;
  cJSON_Delete(j);
  return out;
}

}  // namespace

TEST(Fleet, TwoAndFourProcessesShareOneLimitWithoutServer429s) {
  RedisServer redis;
  // 1200 a minute: 20 a second; the server's bucket holds 2 seconds' worth.
  MockServer server({"--rpm", "1200", "--rl-window-ms", "2000", "--rl-headers", "none"});
  constexpr double kSeconds = 3, kPerSecond = 20;
  for (int processes : {2, 4}) {
    const std::string key = unique("sk-fleet") + "-SECRET";
    // What is tested is sharing while Redis answers: a wait of up to a second
    // for it, so that a loaded machine does not turn a slow answer into a
    // local decision (fail open after the default 50 ms, tested on its own
    // below); the workers' fallback counts say that none was taken.
    const std::string cfg = fleet_config(server, key, redis, unique("ns"),
                                         "\"max_retries\":0,\"rate_limit\":{\"requests_per_minute\":1200}",
                                         "\"timeout_ms\":1000");
    server.control("/_mock/rate-limit", true);  // every key afresh, 429 count zeroed
    std::vector<std::unique_ptr<Worker>> workers;
    for (int i = 0; i < processes; ++i) workers.push_back(std::make_unique<Worker>(std::vector<std::string>{cfg, "3000", "8"}));
    double ok = 0, failures = 0;
    for (auto &w : workers) {
      Outcome o = parse(w->wait());
      ASSERT_EQ(w->exit_code, 0) << o.raw;
      EXPECT_EQ(first_of(o.raw, "shared_state", "fallbacks"), 0) << o.raw;
      ok += o.ok;
      failures += o.failures + o.http_other;
    }
    // The server's view of the run: what it admitted, from the first request to the last.
    cJSON *rl = cJSON_Parse(server.control("/_mock/rate-limit").c_str());
    const cJSON *k = cJSON_GetObjectItem(rl, "keys")->child;
    ASSERT_NE(k, nullptr);
    const double admitted = cJSON_GetObjectItem(k, "requests")->valuedouble;
    const double window_s = (cJSON_GetObjectItem(k, "last_ms")->valuedouble - cJSON_GetObjectItem(k, "first_ms")->valuedouble) / 1000;
    const double server_429 = cJSON_GetObjectItem(rl, "sent_429")->valuedouble;
    cJSON_Delete(rl);
    // The most a client could have had: a second's burst plus the rate over the window.
    const double budget = kPerSecond * (1 + window_s);
    EXPECT_EQ(admitted, ok);
    // Under the limit: the server refused (almost) nothing...
    EXPECT_LE(server_429, (ok + server_429) / 100) << processes << " processes";
    // ...and together they used at least 90 % of it.
    EXPECT_GE(admitted, 0.9 * budget) << processes << " processes";
    EXPECT_GE(window_s, kSeconds - 0.5);
    EXPECT_EQ(failures, 0);
    std::printf("[ fleet    ] %d processes: %.0f ok over %.2f s at %.0f/s = %.1f %% of the limit, %.0f server 429s\n",
                processes, ok, window_s, kPerSecond, 100 * admitted / budget, server_429);
  }
}

TEST(Fleet, ALearntLimitSpreadsToTheOtherProcesses) {
  RedisServer redis;
  MockServer limited({"--rpm", "600", "--rl-headers", "openai"});
  MockServer open_server;
  const std::string key = unique("sk-learn") + "-SECRET", ns = unique("ns");
  // Process A meets the provider's headers once...
  Worker a({fleet_config(limited, key, redis, ns, "\"rate_limit\":{}"), "100", "1"});
  a.wait();
  ASSERT_EQ(a.exit_code, 0);
  // ...process B, on a server that says nothing, paces at the learnt limit.
  Worker b({fleet_config(open_server, key, redis, ns, "\"rate_limit\":{}"), "500", "4"});
  const std::string out = b.wait();
  ASSERT_EQ(b.exit_code, 0) << out;
  EXPECT_EQ(first_of(out, "credentials", "requests_per_minute"), 600) << out;
  // 600 a minute is 10 a second: about 10 + 5 in half a second, not hundreds.
  EXPECT_LE(parse(out).ok, 20) << out;
  EXPECT_GE(parse(out).ok, 3) << out;
}

TEST(Fleet, RedisKilledMidRunStopsNothingAndTheFleetRejoins) {
  RedisServer redis;
  MockServer server({"--rpm", "1200", "--rl-window-ms", "2000", "--rl-headers", "none"});
  const std::string cfg = fleet_config(server, unique("sk-down") + "-SECRET", redis, unique("ns"),
                                       "\"rate_limit\":{\"requests_per_minute\":1200}");
  auto t0 = Clock::now();
  // 3.5 s of run after the restart: several reconnect periods (1 s), so one slow Redis reply
  // under load (a 50 ms command timeout, then a second down) still leaves time to rejoin.
  Worker a({cfg, "6000", "8"}), b({cfg, "6000", "8"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  redis.kill_now();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  redis.start();  // same port, empty: the fleet starts its buckets afresh
  for (Worker *w : {&a, &b}) {
    const std::string out = w->wait();
    ASSERT_EQ(w->exit_code, 0) << out;
    Outcome o = parse(out);
    EXPECT_EQ(o.failures, 0) << out;
    EXPECT_GT(o.ok, 20) << out;
    EXPECT_GT(first_of(out, "shared_state", "fallbacks"), 0) << out;  // decided locally meanwhile
    EXPECT_GE(first_of(out, "shared_state", "outages"), 1) << out;
    EXPECT_EQ(first_of(out, "shared_state", "up"), 1) << out;  // and back on Redis at the end
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  EXPECT_LT(ms, 9000);  // a 6 s run: nothing waited on the dead Redis
  EXPECT_NE(redis.command("KEYS *\r\n").find("esp:{"), std::string::npos);  // state written again
}

TEST(Fleet, AFrozenRedisCostsOneBoundedWaitThenLocalLimitsDecide) {
  RedisServer redis;
  Lease lease(fleet_config(mock(), unique("sk-frozen") + "-SECRET", redis, unique("ns"),
                           "\"rate_limit\":{\"requests_per_minute\":6000}"));
  ASSERT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  redis.freeze(true);
  auto t0 = Clock::now();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  redis.freeze(false);
  EXPECT_LT(ms, 1000);  // one 50 ms timeout, then local decisions (Redis retried after a second)
  const std::string stats = process_stats();
  cJSON *j = cJSON_Parse(stats.c_str());
  double fallbacks = 0, outages = 0;
  for (const cJSON *s = cJSON_GetObjectItem(j, "shared_state")->child; s; s = s->next)
    if (std::string(cJSON_GetObjectItem(s, "redis")->valuestring) == redis.url()) {
      fallbacks = cJSON_GetObjectItem(s, "fallbacks")->valuedouble;
      outages = cJSON_GetObjectItem(s, "outages")->valuedouble;
    }
  cJSON_Delete(j);
  EXPECT_GE(fallbacks, 9);
  EXPECT_EQ(outages, 1);  // one transition, logged once
}

TEST(Fleet, ABreakerOpenedByOneProcessIsOpenForAnother) {
  RedisServer redis;
  const std::string ns = unique("ns");
  const std::string cfg = fleet_config(mock(), unique("sk-brk") + "-SECRET", redis, ns,
                                       "\"max_retries\":0,\"breaker_failures\":2,\"breaker_cooldown_ms\":5000");
  Worker failing({cfg, "300", "1", "chat/completions", "x-mock-status:500"});
  failing.wait();
  ASSERT_EQ(failing.exit_code, 0);
  Lease here(cfg);  // this process never saw a failure
  const long before = mock().stat("requests");
  Result r = post(here.handle, "chat/completions", kChat);
  EXPECT_EQ(r.rc, ESP_ECIRCUIT);
  EXPECT_NE(r.error.find("opened by a process of the fleet"), std::string::npos) << r.error;
  EXPECT_EQ(mock().stat("requests"), before);  // failed fast, never sent
  // The key names the origin by a hash, in the namespace's hash tag.
  const std::string keys = redis.command("KEYS *\r\n");
  EXPECT_NE(keys.find("esp:{" + ns + ":origin-"), std::string::npos) << keys;
  EXPECT_EQ(keys.find("127.0.0.1"), std::string::npos) << keys;
}

TEST(Fleet, KeysHoldNoSecretAndUseOneHashTagPerCredential) {
  RedisServer redis;
  const std::string key = unique("sk-keys") + "-SECRET", ns = unique("ns");
  Lease lease(fleet_config(mock(), key, redis, ns, "\"rate_limit\":{\"requests_per_minute\":600,\"tokens_per_minute\":60000}"));
  ASSERT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  const std::string keys = redis.command("KEYS *\r\n");
  EXPECT_EQ(keys.find("SECRET"), std::string::npos) << keys;
  EXPECT_EQ(keys.find("sk-keys"), std::string::npos) << keys;
  const std::string tag = "esp:{" + ns + ":" + esp::credential_id(key, "") + "}:";
  EXPECT_NE(keys.find(tag + "requests"), std::string::npos) << keys;
  for (size_t at = keys.find("esp:"); at != std::string::npos; at = keys.find("esp:", at + 1))
    EXPECT_EQ(keys.compare(at, tag.size(), tag), 0) << keys;  // one hash tag: one Cluster slot
}

TEST(Fleet, ConfigIsValidatedAndRedisDownAtStartFailsOpen) {
  for (const char *bad : {"\"shared_state\":{}", "\"shared_state\":{\"redis\":\"http://x\"}",
                          "\"shared_state\":{\"redis\":\"redis://h:99999/0\"}",
                          "\"shared_state\":{\"redis\":\"redis://h:1/0\",\"namespace\":\"a b\"}",
                          "\"shared_state\":{\"redis\":\"redis://h:1/0\",\"other\":1}"}) {
    Lease l(mock().config(bad));
    EXPECT_EQ(l.rc, ESP_ECONFIG) << bad;
    EXPECT_NE(std::string(esp_last_error()).find("shared_state"), std::string::npos) << esp_last_error();
  }
  // Nothing listens there: requests go on under the local limits.
  const int dead_port = free_loopback_port();
  Lease lease(mock().config("\"rate_limit\":{\"requests_per_minute\":6000},\"shared_state\":{\"redis\":\"redis://:pw-SECRET@127.0.0.1:" +
                            std::to_string(dead_port) + "/0\",\"namespace\":\"" + unique("ns") + "\"}"));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  auto t0 = Clock::now();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  EXPECT_LT(ms, 2000);
  const std::string stats = process_stats();
  EXPECT_EQ(stats.find("pw-SECRET"), std::string::npos);
  EXPECT_NE(stats.find("\"redis\":\"redis://127.0.0.1:" + std::to_string(dead_port) + "/0\""), std::string::npos) << stats;
}

TEST(Fleet, AfterTheCooldownExactlyOneProcessOfTheFleetProbes) {
  RedisServer redis;
  MockServer server;
  const std::string key = unique("brk-probe");
  // The origin fails for 2.5 s from now (the server's clock), then recovers.
  cJSON *rl = cJSON_Parse(server.control("/_mock/rate-limit").c_str());
  const long long recover_ms = static_cast<long long>(cJSON_GetObjectItem(rl, "now_ms")->valuedouble) + 2500;
  cJSON_Delete(rl);
  constexpr double kCooldownMs = 300;
  const std::string cfg = "{\"base_url\":\"" + server.http_base() + "/_faults/key=" + key +
                          ",fail-until-ms=" + std::to_string(recover_ms) +
                          "/v1\",\"api_key\":\"sk-probe-SECRET\",\"max_retries\":0,\"breaker_failures\":2,"
                          "\"breaker_cooldown_ms\":300,\"shared_state\":{\"redis\":\"" + redis.url() +
                          "\",\"namespace\":\"" + unique("ns") + "\"}}";
  // Four processes of four agents; an agent pauses 20 ms after a failure.
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < 4; ++i)
    workers.push_back(std::make_unique<Worker>(std::vector<std::string>{cfg, "4000", "4", "chat/completions", "", "20"}));
  double ok = 0;
  for (auto &w : workers) {
    const std::string out = w->wait();
    ASSERT_EQ(w->exit_code, 0) << out;
    EXPECT_GT(parse(out).ok, 0) << out;  // every process is served again once the origin recovered
    ok += parse(out).ok;
  }
  // What reached the server: the first failures open the breaker (each
  // process within ~100 ms); from then on until the recovery, only probes.
  cJSON *records = cJSON_Parse(server.control("/_mock/requests?key=" + key).c_str());
  std::vector<double> failing;
  double served = 0;
  for (const cJSON *r = records ? records->child : nullptr; r; r = r->next) {
    const double t = cJSON_GetObjectItem(r, "t_ms")->valuedouble;
    if (cJSON_IsTrue(cJSON_GetObjectItem(r, "failed"))) failing.push_back(t);
    else served += 1;
  }
  cJSON_Delete(records);
  ASSERT_GT(failing.size(), 2u);
  std::sort(failing.begin(), failing.end());
  const double settled = failing.front() + 500;
  std::vector<double> probes;
  for (double t : failing)
    if (t >= settled) probes.push_back(t);
  double closest = 1e9;
  for (size_t i = 1; i < probes.size(); ++i) closest = std::min(closest, probes[i] - probes[i - 1]);
  const double window_ms = static_cast<double>(recover_ms) - settled;
  // One probe per cool-down window for the whole fleet: never two close together...
  EXPECT_GE(closest, 0.9 * kCooldownMs) << probes.size() << " probes";
  // ...and no more than the windows that fit, but some.
  EXPECT_LE(probes.size(), window_ms / kCooldownMs + 1);
  EXPECT_GE(probes.size(), 2u);
  EXPECT_GT(served, 20);  // the probe after the recovery closed it for everyone
  std::printf("[ fleet    ] breaker: %zu failures reached the origin, %zu of them in %.0f ms of open/half-open "
              "(%.1f windows of %.0f ms), probes at least %.0f ms apart; %.0f served after the recovery\n",
              failing.size(), probes.size(), window_ms, window_ms / kCooldownMs, kCooldownMs, closest, ok);
}

TEST(Fleet, ADeploymentCooledDownByOneProcessIsCooledDownForAnother) {
  RedisServer redis;
  MockServer failing_server;  // deployment A: every request fails
  const std::string ns = unique("ns");
  const std::string cfg =
      "{\"routing\":\"ordered\",\"breaker_failures\":0,\"deployment_cooldown_ms\":5000,"
      "\"shared_state\":{\"redis\":\"" + redis.url() + "\",\"namespace\":\"" + ns + "\"},\"deployments\":["
      "{\"base_url\":\"" + failing_server.http_base() + "/_faults/status=500/v1\",\"api_key\":\"sk-depA-SECRET\"},"
      "{\"base_url\":\"" + mock().http_base() + "/v1\",\"api_key\":\"sk-depB-SECRET\"}]}";
  // A second: at load the first (failed) attempt alone can take 200 ms.
  Worker first({cfg, "1000", "1"});
  const std::string out = first.wait();
  ASSERT_EQ(first.exit_code, 0) << out;
  EXPECT_GT(parse(out).ok, 1) << out;  // failed over to B, and stayed there
  EXPECT_EQ(failing_server.stat("requests"), 1);  // A once, then cooled down
  // This process never saw A fail: the fleet's cool-down keeps it off A.
  Lease here(cfg);
  ASSERT_EQ(here.rc, ESP_OK) << esp_last_error();
  for (int i = 0; i < 3; ++i) {
    Result r = post(here.handle, "chat/completions", kChat);
    ASSERT_EQ(r.rc, ESP_OK) << r.error;
    EXPECT_EQ(r.attempts, 1);
  }
  EXPECT_EQ(failing_server.stat("requests"), 1);
  EXPECT_EQ(deployment_stat(here.handle, 0, "picked"), 0);
  EXPECT_GT(deployment_stat(here.handle, 0, "cooling_down_ms"), 3000);
  // The key names the deployment by a hash, in the namespace's hash tag.
  const std::string keys = redis.command("KEYS *\r\n");
  EXPECT_NE(keys.find("esp:{" + ns + ":deployment-"), std::string::npos) << keys;
  EXPECT_EQ(keys.find("SECRET"), std::string::npos) << keys;
  EXPECT_EQ(keys.find("127.0.0.1"), std::string::npos) << keys;
  // Redis gone: each process goes on with its own cool-downs (fail open).
  redis.kill_now();
  MockServer other_failing;
  const std::string alone = "{\"routing\":\"ordered\",\"breaker_failures\":0,\"deployment_cooldown_ms\":5000,"
      "\"shared_state\":{\"redis\":\"" + redis.url() + "\",\"namespace\":\"" + ns + "\"},\"deployments\":["
      "{\"base_url\":\"" + other_failing.http_base() + "/_faults/status=500/v1\",\"api_key\":\"sk-depC-SECRET\"},"
      "{\"base_url\":\"" + mock().http_base() + "/v1\",\"api_key\":\"sk-depB-SECRET\"}]}";
  Lease down(alone);
  auto t0 = Clock::now();
  EXPECT_EQ(post(down.handle, "chat/completions", kChat).attempts, 2);
  EXPECT_EQ(post(down.handle, "chat/completions", kChat).attempts, 1);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  EXPECT_LT(ms, 1000);
  EXPECT_EQ(other_failing.stat("requests"), 1);
}
