// Deployments: the policy's pure functions, and clients with several
// deployments against real mock servers (a failing base path, a second
// server, a closed port): fail-over, cool-down, weights, credentials and
// rate-limit budgets.
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "deployments.h"
#include "fleet_helpers.h"
#include "helpers.h"

namespace {

using esp::AttemptEnd;
using esp::PickerState;
using esp::Routing;

PickerState picker(std::vector<int64_t> weights) {
  PickerState s;
  for (int64_t w : weights) {
    esp::DeploymentState d;
    d.weight = w;
    s.deployments.push_back(d);
  }
  return s;
}

std::string unique_key(const char *prefix) {
  static std::atomic<int> n{0};
  return std::string(prefix) + "-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

std::string deployment(const std::string &base_url, const std::string &key, const std::string &extra = "") {
  return "{\"base_url\":\"" + base_url + "\",\"api_key\":\"" + key + "\"" + (extra.empty() ? "" : "," + extra) + "}";
}

std::string config(const std::vector<std::string> &deployments, const std::string &extra) {
  std::string list;
  for (const auto &d : deployments) list += (list.empty() ? "" : ",") + d;
  return "{\"deployments\":[" + list + "]" + (extra.empty() ? "" : "," + extra) + "}";
}

// The authorization headers a server saw for a fault key, in order.
std::vector<std::string> authorizations(const MockServer &m, const std::string &key) {
  std::vector<std::string> out;
  cJSON *arr = cJSON_Parse(m.control("/_mock/requests?key=" + key).c_str());
  for (cJSON *r = arr ? arr->child : nullptr; r; r = r->next) {
    const cJSON *a = cJSON_GetObjectItem(r, "authorization");
    out.push_back(cJSON_IsString(a) ? a->valuestring : "");
  }
  cJSON_Delete(arr);
  return out;
}


// A failing base path on the shared mock server. Its clients run without a
// breaker: the breaker is per origin, and the healthy path shares this one.
std::string failing(const char *faults) { return mock().http_base() + "/_faults/" + faults + "/v1"; }
const char *const kNoBreaker = "\"breaker_failures\":0,";
std::string healthy() { return mock().http_base() + "/v1"; }

}  // namespace

// ---- the policy ------------------------------------------------------------------------

TEST(DeploymentPolicy, WeightedFollowsTheWeightsExactly) {
  PickerState s = picker({5, 1, 2});
  int counts[3] = {0, 0, 0};
  int previous = -1, repeats = 0;
  for (int i = 0; i < 800; ++i) {
    int d = esp::pick_deployment(s, Routing::kWeighted, 0, 0);
    ASSERT_GE(d, 0);
    ++counts[d];
    if (d == previous && d != 0) ++repeats;
    previous = d;
  }
  EXPECT_EQ(counts[0], 500);
  EXPECT_EQ(counts[1], 100);
  EXPECT_EQ(counts[2], 200);
  EXPECT_EQ(repeats, 0);  // the light ones are spread out, not bunched
}

TEST(DeploymentPolicy, LeastBusyTakesTheFewestInFlightAndRotatesTies) {
  PickerState s = picker({1, 1, 1});
  s.deployments[0].in_flight = 3;
  s.deployments[1].in_flight = 1;
  s.deployments[2].in_flight = 2;
  EXPECT_EQ(esp::pick_deployment(s, Routing::kLeastBusy, 0, 0), 1);
  PickerState idle = picker({1, 1, 1});
  std::vector<int> order;
  for (int i = 0; i < 6; ++i) order.push_back(esp::pick_deployment(idle, Routing::kLeastBusy, 0, 0));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST(DeploymentPolicy, OrderedSkipsTriedAndCoolingOnes) {
  PickerState s = picker({1, 1, 1});
  EXPECT_EQ(esp::pick_deployment(s, Routing::kOrdered, 0, 0), 0);
  EXPECT_EQ(esp::pick_deployment(s, Routing::kOrdered, 0b001, 0), 1);
  s.deployments[1].cool_until_us = 1000;
  EXPECT_EQ(esp::pick_deployment(s, Routing::kOrdered, 0b001, 999), 2);
  EXPECT_EQ(esp::pick_deployment(s, Routing::kOrdered, 0b001, 1000), 1);  // cooled down
  EXPECT_EQ(esp::pick_deployment(s, Routing::kOrdered, 0b111, 0), -1);
}

TEST(DeploymentPolicy, AllCoolingTakesTheOneThatCoolsFirst) {
  PickerState s = picker({1, 1, 1});
  s.deployments[0].cool_until_us = 900;
  s.deployments[1].cool_until_us = 500;
  s.deployments[2].cool_until_us = 700;
  for (Routing r : {Routing::kOrdered, Routing::kLeastBusy, Routing::kWeighted})
    EXPECT_EQ(esp::pick_deployment(s, r, 0, 100), 1);
  EXPECT_EQ(esp::pick_deployment(s, Routing::kOrdered, 0b010, 100), 2);
}

TEST(DeploymentPolicy, CooldownTakesALongerRetryAfterUpToItsCap) {
  EXPECT_EQ(esp::cooldown_us(5000, -1, 60000000), 5000000);
  EXPECT_EQ(esp::cooldown_us(5000, 2000000, 60000000), 5000000);
  EXPECT_EQ(esp::cooldown_us(5000, 30000000, 60000000), 30000000);
  EXPECT_EQ(esp::cooldown_us(5000, 900000000, 60000000), 60000000);
}

TEST(DeploymentPolicy, FailsOverOnlyWhereNothingReachedTheCallerAndASecondSendIsSafe) {
  auto end = [](int status, int http) {
    AttemptEnd e;
    e.status = status;
    e.http_status = http;
    e.replay_safe = true;
    return e;
  };
  EXPECT_TRUE(esp::fails_over(end(ESP_OK, 500)));
  EXPECT_TRUE(esp::fails_over(end(ESP_OK, 503)));
  EXPECT_TRUE(esp::fails_over(end(ESP_OK, 429)));
  EXPECT_FALSE(esp::fails_over(end(ESP_OK, 400)));
  EXPECT_FALSE(esp::fails_over(end(ESP_OK, 200)));
  EXPECT_TRUE(esp::fails_over(end(ESP_ECONNECT, 0)));
  EXPECT_TRUE(esp::fails_over(end(ESP_ECIRCUIT, 0)));
  EXPECT_FALSE(esp::fails_over(end(ESP_ECANCELLED, 0)));
  AttemptEnd delivered = end(ESP_EIO, 0);
  delivered.delivered = true;
  EXPECT_FALSE(esp::fails_over(delivered));
  AttemptEnd total = end(ESP_ETIMEDOUT, 0);
  total.total_timeout = true;
  EXPECT_FALSE(esp::fails_over(total));
  AttemptEnd unsafe = end(ESP_OK, 500);
  unsafe.sent = true;
  unsafe.replay_safe = false;
  EXPECT_FALSE(esp::fails_over(unsafe));
  AttemptEnd no_retry = end(ESP_OK, 500);
  no_retry.sent = true;
  no_retry.no_retry = true;
  EXPECT_FALSE(esp::fails_over(no_retry));
  no_retry.sent = false;  // refused before a byte went out: another deployment may take it
  EXPECT_TRUE(esp::fails_over(no_retry));
}

// ---- clients with deployments ------------------------------------------------------------

TEST(Deployments, ConfigErrorsNameTheEntry) {
  esp_client c = 0;
  EXPECT_EQ(esp_client_get("{\"deployments\":[]}", &c), ESP_ECONFIG);
  EXPECT_EQ(esp_client_get("{\"deployments\":[{\"api_key\":\"k\"}]}", &c), ESP_ECONFIG);
  EXPECT_NE(std::string(esp_last_error()).find("'deployments[0]' needs 'base_url'"), std::string::npos)
      << esp_last_error();
  EXPECT_EQ(esp_client_get("{\"deployments\":[{\"base_url\":\"http://a\"},{\"base_url\":\"http://b\",\"region\":1}]}", &c),
            ESP_ECONFIG);
  EXPECT_NE(std::string(esp_last_error()).find("'deployments[1]' has unknown key 'region'"), std::string::npos);
  EXPECT_EQ(esp_client_get("{\"deployments\":[{\"base_url\":\"ftp://a\"}]}", &c), ESP_ECONFIG);
  EXPECT_NE(std::string(esp_last_error()).find("(in 'deployments[0]')"), std::string::npos);
  EXPECT_EQ(esp_client_get("{\"deployments\":[{\"base_url\":\"http://a\",\"weight\":0}]}", &c), ESP_ECONFIG);
  EXPECT_EQ(esp_client_get("{\"routing\":\"random\",\"deployments\":[{\"base_url\":\"http://a\"}]}", &c), ESP_ECONFIG);
  EXPECT_EQ(esp_client_get("{\"deployments\":[{\"base_url\":\"http://a\",\"api_key_env\":\"ESP_TEST_UNSET_VAR\"}]}", &c),
            ESP_ECONFIG);
}

TEST(Deployments, FailsOverOn500WithEachDeploymentsOwnKey) {
  MockServer other;
  const std::string a = other.http_base() + "/_faults/status=500/v1";
  Lease lease(config({deployment(a, "sk-A-SECRET"), deployment(healthy(), "sk-B-SECRET")},
                     "\"routing\":\"ordered\",\"max_retries\":2,\"retry_base_ms\":10"));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  const std::string key = unique_key("dep500");
  Result r = post(lease.handle, "chat/completions", kChat, {{"x-mock-key", key.c_str()}});
  ASSERT_EQ(r.rc, ESP_OK) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);  // straight to the next deployment, no retry on the failing one
  // Each server saw its own deployment's key and never the other's.
  EXPECT_EQ(authorizations(other, key), (std::vector<std::string>{"Bearer sk-A-SECRET"}));
  EXPECT_EQ(authorizations(mock(), key), (std::vector<std::string>{"Bearer sk-B-SECRET"}));
  EXPECT_EQ(deployment_stat(lease.handle, 0, "failures"), 1);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "failovers"), 1);
  EXPECT_EQ(deployment_stat(lease.handle, 1, "picked"), 1);
  EXPECT_GT(deployment_stat(lease.handle, 0, "cooling_down_ms"), 0);
  // The client counts the request once; each deployment counts its part.
  EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "requests"}), 1);
  EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "outcomes", "ok"}), 1);
}

TEST(Deployments, KeysNeverCrossDeploymentsOverManyRequests) {
  MockServer other;
  Lease lease(config({deployment(other.http_base() + "/v1", "sk-A-SECRET"), deployment(healthy(), "sk-B-SECRET")}, ""));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  const std::string key = unique_key("depkeys");
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(post(lease.handle, "chat/completions", kChat, {{"x-mock-key", key.c_str()}}).rc, ESP_OK);
  auto seen_a = authorizations(other, key), seen_b = authorizations(mock(), key);
  EXPECT_EQ(seen_a.size() + seen_b.size(), 20u);
  EXPECT_EQ(seen_a.size(), 10u);  // least_busy rotates over idle deployments
  for (auto &h : seen_a) EXPECT_EQ(h, "Bearer sk-A-SECRET");
  for (auto &h : seen_b) EXPECT_EQ(h, "Bearer sk-B-SECRET");
}

TEST(Deployments, FailsOverOn429AndCoolsDownForItsRetryAfter) {
  Lease lease(config({deployment(failing("status=429,retry-after=30"), "sk-A-SECRET"),
                      deployment(healthy(), "sk-B-SECRET")},
                     std::string(kNoBreaker) + "\"routing\":\"ordered\",\"deployment_cooldown_ms\":1000"));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  Result first = post(lease.handle, "chat/completions", kChat);
  ASSERT_EQ(first.rc, ESP_OK) << first.error;
  EXPECT_EQ(first.attempts, 2);
  EXPECT_GT(deployment_stat(lease.handle, 0, "cooling_down_ms"), 20000);  // the server's 30 s, not 1 s
  Result second = post(lease.handle, "chat/completions", kChat);
  ASSERT_EQ(second.rc, ESP_OK) << second.error;
  EXPECT_EQ(second.attempts, 1);  // the cooling deployment is skipped
  EXPECT_EQ(deployment_stat(lease.handle, 0, "picked"), 1);
  EXPECT_EQ(deployment_stat(lease.handle, 1, "picked"), 2);
}

TEST(Deployments, FailsOverOnConnectionRefused) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(free_loopback_port()) + "/v1";
  Lease lease(config({deployment(dead, "sk-A-SECRET"), deployment(healthy(), "sk-B-SECRET")},
                     "\"routing\":\"ordered\""));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  Result r = post(lease.handle, "chat/completions", kChat);
  ASSERT_EQ(r.rc, ESP_OK) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "failures"), 1);
}

TEST(Deployments, ACooledDownDeploymentIsPickedAgain) {
  const std::string key = unique_key("depcool");
  // The first deployment fails once (fail-times 1), then recovers.
  Lease lease(config({deployment(failing(("key=" + key + ",fail-times=1").c_str()), "sk-A-SECRET"),
                      deployment(healthy(), "sk-B-SECRET")},
                     std::string(kNoBreaker) + "\"routing\":\"ordered\",\"deployment_cooldown_ms\":300"));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  EXPECT_EQ(post(lease.handle, "chat/completions", kChat).attempts, 2);
  EXPECT_EQ(post(lease.handle, "chat/completions", kChat).rc, ESP_OK);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "picked"), 1);  // cooling: skipped
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  Result back = post(lease.handle, "chat/completions", kChat);
  ASSERT_EQ(back.rc, ESP_OK) << back.error;
  EXPECT_EQ(back.attempts, 1);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "picked"), 2);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "cooling_down_ms"), 0);
}

TEST(Deployments, WeightsAreHonouredOverManyRequests) {
  Lease lease(config({deployment(healthy(), "sk-A-SECRET", "\"weight\":3"),
                      deployment(failing("delay-ms=0"), "sk-B-SECRET", "\"weight\":1")},
                     std::string(kNoBreaker) + "\"routing\":\"weighted\""));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  for (int i = 0; i < 200; ++i) ASSERT_EQ(get(lease.handle, "models").rc, ESP_OK);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "picked"), 150);
  EXPECT_EQ(deployment_stat(lease.handle, 1, "picked"), 50);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "requests"), 150);
}

TEST(Deployments, NoFailoverOnceBodyBytesReachedTheCaller) {
  const std::string key = unique_key("depbody");
  Lease lease(config({deployment(failing("drop=mid-body,body-bytes=100000"), "sk-A-SECRET"),
                      deployment(healthy(), "sk-B-SECRET")},
                     std::string(kNoBreaker) + "\"routing\":\"ordered\""));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  Result r = post(lease.handle, "chat/completions", kChat, {{"x-mock-key", key.c_str()}});
  EXPECT_NE(r.rc, ESP_OK);
  EXPECT_EQ(authorizations(mock(), key).size(), 1u);  // only the first deployment's path saw it
  EXPECT_EQ(deployment_stat(lease.handle, 1, "picked"), 0);
}

TEST(Deployments, ExhaustedDeploymentsEndWithTheLastAnswer) {
  Lease lease(config({deployment(failing("status=503"), "sk-A-SECRET"), deployment(failing("status=502"), "sk-B-SECRET")},
                     std::string(kNoBreaker) + "\"routing\":\"ordered\",\"max_retries\":1,\"retry_base_ms\":10"));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  Result r = post(lease.handle, "chat/completions", kChat);
  ASSERT_EQ(r.rc, ESP_OK) << r.error;
  EXPECT_EQ(r.status, 502);  // the last deployment's answer, as without deployments
  EXPECT_EQ(r.attempts, 3);  // one on the first, then the last one with its retry
}

TEST(Deployments, APostSentWithoutAnIdempotencyKeyIsNotSentAgain) {
  // max_retries 0: libesp adds no idempotency key, so a POST that reached a
  // server goes nowhere else (it may have been processed there).
  Lease lease(config({deployment(failing("status=503"), "sk-A-SECRET"), deployment(healthy(), "sk-B-SECRET")},
                     std::string(kNoBreaker) + "\"routing\":\"ordered\",\"max_retries\":0"));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  Result r = post(lease.handle, "chat/completions", kChat);
  ASSERT_EQ(r.rc, ESP_OK) << r.error;
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(get(lease.handle, "models").status, 200);  // a GET may go on to the next
}

TEST(Deployments, AnOpenBreakerSendsRequestsToTheNextWithoutAnAttempt) {
  MockServer other;
  Lease lease(config({deployment(other.http_base() + "/_faults/status=500/v1", "sk-A-SECRET"),
                      deployment(healthy(), "sk-B-SECRET")},
                     "\"routing\":\"ordered\",\"breaker_failures\":1,\"breaker_cooldown_ms\":300,"
                     "\"deployment_cooldown_ms\":0"));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  EXPECT_EQ(post(lease.handle, "chat/completions", kChat).attempts, 2);  // opens A's breaker
  const std::string key = unique_key("depbreaker");
  Result r = post(lease.handle, "chat/completions", kChat, {{"x-mock-key", key.c_str()}});
  ASSERT_EQ(r.rc, ESP_OK) << r.error;
  EXPECT_EQ(r.attempts, 1);  // A refused by its breaker before a send
  EXPECT_TRUE(authorizations(other, key).empty());
  EXPECT_EQ(deployment_stat(lease.handle, 0, "failovers"), 2);
  // Close the breaker again (a probe that succeeds): other tests look for open ones.
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  Lease plain("{\"base_url\":\"" + other.http_base() + "/v1\",\"breaker_failures\":1,\"breaker_cooldown_ms\":300}");
  EXPECT_EQ(get(plain.handle, "models").status, 200);
}

TEST(Deployments, ADeploymentWithoutBudgetPassesRequestsToOneWithBudget) {
  // A: 60 a minute (one a second); B: plenty. Ordered: A first every time.
  Lease lease(config({deployment(healthy(), unique_key("sk-rlA") + "-SECRET", "\"rate_limit\":{\"requests_per_minute\":60}"),
                      deployment(healthy(), unique_key("sk-rlB") + "-SECRET", "\"rate_limit\":{\"requests_per_minute\":60000}")},
                     "\"routing\":\"ordered\""));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  for (int i = 0; i < 5; ++i) {
    Result r = post(lease.handle, "chat/completions", kChat);
    ASSERT_EQ(r.rc, ESP_OK) << r.error;
    EXPECT_EQ(r.attempts, 1);  // no attempt on A without budget
  }
  // Nobody waited for A's next second: neither limiter delayed a request.
  cJSON *root = cJSON_Parse(client_stats(lease.handle).c_str());
  const cJSON *list = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "client"), "deployments");
  for (int i = 0; i < 2; ++i) {
    const cJSON *rl = cJSON_GetObjectItem(cJSON_GetArrayItem(list, i), "rate_limit");
    ASSERT_NE(rl, nullptr);
    EXPECT_EQ(cJSON_GetObjectItem(rl, "delayed")->valuedouble, 0) << i;
    EXPECT_EQ(cJSON_GetObjectItem(rl, "rejected")->valuedouble, 0) << i;
  }
  cJSON_Delete(root);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "rate_limited"), 4);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "failovers"), 4);
  EXPECT_EQ(deployment_stat(lease.handle, 0, "failures"), 0);  // no budget is not a failure: no cool-down
  EXPECT_EQ(deployment_stat(lease.handle, 0, "cooling_down_ms"), 0);
  EXPECT_EQ(deployment_stat(lease.handle, 1, "picked"), 4);
  EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "outcomes", "ok"}), 5);
  EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "retries"}), 0);
}

TEST(Deployments, WithoutBudgetAnywhereARequestWaitsForTheSoonestOrFailsInTime) {
  const std::string a = unique_key("sk-rlA") + "-SECRET", b = unique_key("sk-rlB") + "-SECRET";
  const std::string per_second = "\"rate_limit\":{\"requests_per_minute\":60}";
  auto cfg = [&](const std::string &timeout) {
    return config({deployment(healthy(), a, per_second), deployment(healthy(), b, per_second)},
                  "\"routing\":\"ordered\",\"timeout_ms\":" + timeout);
  };
  Lease quick(cfg("300"));
  ASSERT_EQ(quick.rc, ESP_OK) << esp_last_error();
  const std::string key = unique_key("deprl");
  const std::vector<esp_header> tagged = {{"x-mock-key", key.c_str()}};
  EXPECT_EQ(post(quick.handle, "chat/completions", kChat, tagged).rc, ESP_OK);  // A's second
  EXPECT_EQ(post(quick.handle, "chat/completions", kChat, tagged).rc, ESP_OK);  // B's
  Result refused = post(quick.handle, "chat/completions", kChat, tagged);
  EXPECT_EQ(refused.rc, ESP_ERATELIMITED);
  EXPECT_NE(refused.error.find("rate limited on every deployment"), std::string::npos) << refused.error;
  EXPECT_EQ(authorizations(mock(), key).size(), 2u);  // the refused one was never sent
  // Time enough: it waits for the deployment whose budget comes first (A's).
  Lease patient(cfg("5000"));  // the same credentials: the same budgets
  auto t0 = std::chrono::steady_clock::now();
  Result waited = post(patient.handle, "chat/completions", kChat, tagged);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(waited.rc, ESP_OK) << waited.error;
  EXPECT_EQ(waited.attempts, 1);
  EXPECT_LT(ms, 2500);  // at most A's one second (and the request itself)
  EXPECT_EQ(authorizations(mock(), key).back(), "Bearer " + a);
  cJSON *root = cJSON_Parse(client_stats(patient.handle).c_str());
  const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "client"), "deployments"), 0);
  EXPECT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "rate_limit"), "delayed")->valuedouble, 1);  // it waited
  cJSON_Delete(root);
}

TEST(Deployments, OrderedDeploymentsWithTheirOwnLimitsTogetherUseBothLimits) {
  // Each key may make 1200 requests a minute (20 a second) at the server.
  MockServer server({"--rpm", "1200", "--rl-window-ms", "2000", "--rl-headers", "none"});
  const std::string limit = "\"rate_limit\":{\"requests_per_minute\":1200}";
  const std::string cfg = config({deployment(server.http_base() + "/v1", unique_key("sk-budA") + "-SECRET", limit),
                                  deployment(server.http_base() + "/v1", unique_key("sk-budB") + "-SECRET", limit)},
                                 "\"routing\":\"ordered\",\"max_retries\":0");
  Worker worker({cfg, "3000", "8"});  // 8 agents back to back for 3 s
  const std::string out = worker.wait();
  ASSERT_EQ(worker.exit_code, 0) << out;
  cJSON *rl = cJSON_Parse(server.control("/_mock/rate-limit").c_str());
  double admitted[2] = {0, 0}, window_s = 0;
  int n = 0;
  for (const cJSON *k = cJSON_GetObjectItem(rl, "keys")->child; k && n < 2; k = k->next, ++n) {
    admitted[n] = cJSON_GetObjectItem(k, "requests")->valuedouble;
    window_s = std::max(window_s, (cJSON_GetObjectItem(k, "last_ms")->valuedouble -
                                   cJSON_GetObjectItem(k, "first_ms")->valuedouble) / 1000);
  }
  const double server_429 = cJSON_GetObjectItem(rl, "sent_429")->valuedouble;
  cJSON_Delete(rl);
  ASSERT_EQ(n, 2) << "both deployments served";
  // A second's burst plus the rate over the run, per key.
  const double budget = 20 * (1 + window_s);
  EXPECT_GE(admitted[0], 0.9 * budget);
  EXPECT_GE(admitted[1], 0.9 * budget);  // the fallback takes what the first has no budget for
  EXPECT_EQ(server_429, 0);
  std::printf("[ deploy   ] ordered, 2 x 20/s: %.0f + %.0f admitted over %.2f s = %.1f %% of the two limits, "
              "%.0f server 429s\n",
              admitted[0], admitted[1], window_s, 100 * (admitted[0] + admitted[1]) / (2 * budget), server_429);
}

TEST(Deployments, AbsoluteUrlsAreNotRouted) {
  MockServer other;
  Lease lease(config({deployment(other.http_base() + "/v1", "sk-A-SECRET")}, ""));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  const std::string url = mock().http_base() + "/echo";
  Result r = get(lease.handle, url.c_str());
  ASSERT_EQ(r.rc, ESP_OK) << r.error;
  EXPECT_EQ(r.body.find("sk-A-SECRET"), std::string::npos);  // another origin never gets a deployment's key
  EXPECT_EQ(deployment_stat(lease.handle, 0, "picked"), 0);
}

TEST(Deployments, PrometheusHasAFamilyPerDeployment) {
  Lease lease(config({deployment(healthy(), "sk-A-SECRET", "\"name\":\"east\"")}, "\"name\":\"dep-prom\""));
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  ASSERT_EQ(get(lease.handle, "models").rc, ESP_OK);
  char *text = nullptr;
  ASSERT_EQ(esp_metrics_prometheus(&text), ESP_OK);
  std::string prom = text;
  esp_free(text);
  EXPECT_NE(prom.find("esp_deployment_requests_total{client=\"dep-prom\",deployment=\"east\""), std::string::npos);
  EXPECT_NE(prom.find("esp_deployment_cooling_down_ms{client=\"dep-prom\",deployment=\"east\""), std::string::npos);
  // The router's counters, with the values the stats JSON reports.
  const std::string labels = "{client=\"dep-prom\",deployment=\"east\",origin=\"" + mock().http_base() + "\"} ";
  for (const char *counter : {"picked", "failures", "failovers", "rate_limited"}) {
    const std::string line = "esp_deployment_" + std::string(counter) + "_total" + labels +
                             std::to_string(static_cast<long long>(deployment_stat(lease.handle, 0, counter))) + "\n";
    EXPECT_NE(prom.find(line), std::string::npos) << line << "\nnot in\n" << prom;
  }
  EXPECT_NE(prom.find("esp_deployment_picked_total" + labels + "1\n"), std::string::npos);
}
