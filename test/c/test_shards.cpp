// An engine's shards (one I/O thread each) under one pool limit: the work
// spreads over them while max_connections, the FIFO queue, the breaker and
// the per-origin stats stay those of one origin.
#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "helpers.h"

namespace {

// Sets ESP_IO_THREADS for the engine the test starts afresh, and leaves
// the next test a fresh engine (no open breaker) with the previous value.
struct IoThreads {
  explicit IoThreads(const char *n) {
    if (const char *old = std::getenv("ESP_IO_THREADS")) saved = old, had = true;
    setenv("ESP_IO_THREADS", n, 1);
    esp_shutdown(5000);
  }
  ~IoThreads() {
    if (had)
      setenv("ESP_IO_THREADS", saved.c_str(), 1);
    else
      unsetenv("ESP_IO_THREADS");
    esp_shutdown(5000);
  }
  std::string saved;
  bool had = false;
};

// Sync GETs of models from several threads at once, each making its own in
// turn; returns how many answered 200.
int sync_calls_from_threads(esp_client c, int thread_count, int calls_each) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < thread_count; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < calls_each; ++j) ok += get(c, "models").status == 200;
    });
  for (auto &t : threads) t.join();
  return ok.load();
}

// Async calls that record the order and the thread of their completions.
struct Batch {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> order;  // call index, as completed
  std::vector<int> statuses;
  std::set<std::thread::id> threads;
  int done = 0;

  struct Slot {
    Batch *batch;
    int index;
  };
  std::vector<Slot> slots;

  static void on_complete(void *u, int status, esp_response *r) {
    auto *slot = static_cast<Slot *>(u);
    Batch &b = *slot->batch;
    esp_response_free(r);
    std::lock_guard<std::mutex> lock(b.mu);
    b.order.push_back(slot->index);
    b.statuses.push_back(status);
    b.threads.insert(std::this_thread::get_id());
    ++b.done;
    b.cv.notify_all();
  }

  // Starts n calls to path with these headers, one after another.
  void start(esp_client c, int n, const char *path, std::vector<esp_header> headers) {
    slots.resize(static_cast<size_t>(n));
    esp_callbacks cb;
    std::memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.on_complete = on_complete;
    for (int i = 0; i < n; ++i) {
      slots[static_cast<size_t>(i)] = {this, i};
      esp_request_opts o = opts(path, nullptr, &headers);
      esp_call call = 0;
      ASSERT_EQ(esp_request_async(c, &o, &cb, &slots[static_cast<size_t>(i)], &call), ESP_OK) << esp_last_error();
    }
  }
  bool wait(int n, int ms = 20000) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return done == n; });
  }
  int ok() const {
    int n = 0;
    for (int s : statuses) n += s == ESP_OK;
    return n;
  }
};

}  // namespace

TEST(Shards, CallsRunOnEveryShardsThread) {
  IoThreads two("2");
  Lease lease(mock().config("\"http2\":false"));
  Batch b;
  b.start(lease.handle, 64, "models", {{"x-mock-delay-ms", "30"}});
  ASSERT_TRUE(b.wait(64));
  EXPECT_EQ(b.ok(), 64);
  EXPECT_EQ(b.threads.size(), 2u);  // one I/O thread would run every callback
}

TEST(Shards, OneConnectionServesTheQueueInOrderAcrossShards) {
  IoThreads two("2");
  long before = mock().stat("connections");
  Lease lease(mock().config("\"http2\":false,\"max_connections\":1"));
  // The slot is taken (the server has the request): every call below waits.
  const long served = mock().stat("requests");
  Batch blocker;
  blocker.start(lease.handle, 1, "models", {{"x-mock-delay-ms", "300"}});
  for (int spin = 0; spin < 2000 && mock().stat("requests") == served; ++spin)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Batch b;
  b.start(lease.handle, 24, "models", {{"x-mock-delay-ms", "2"}});
  ASSERT_TRUE(b.wait(24));
  ASSERT_TRUE(blocker.wait(1));
  EXPECT_EQ(b.ok(), 24);
  std::vector<int> fifo(24);
  for (int i = 0; i < 24; ++i) fifo[static_cast<size_t>(i)] = i;
  EXPECT_EQ(b.order, fifo);  // first come, first served, whichever shard each call reached
  EXPECT_EQ(mock().stat("connections") - before, 1);
  EXPECT_GT(json_number(client_stats(lease.handle), {"client", "queued_peak"}), 0);
}

// Connections to an HTTP/1.1 origin stay within max_connections as the server
// counts them: a shard never opens one while another shard has one idle.
TEST(Shards, ConnectionsStayWithinMaxConnectionsAsTheServerSeesThem) {
  IoThreads two("2");
  long before = mock().stat("connections");
  Lease lease(mock().config("\"http2\":false,\"max_connections\":3"));
  for (int round = 0; round < 3; ++round) {
    Batch b;
    b.start(lease.handle, 30, "models", {{"x-mock-delay-ms", round == 1 ? "1" : "15"}});
    ASSERT_TRUE(b.wait(30));
    EXPECT_EQ(b.ok(), 30);
  }
  EXPECT_EQ(sync_calls_from_threads(lease.handle, 6, 5), 30);
  EXPECT_LE(mock().stat("connections") - before, 3);
  EXPECT_LE(mock().stat("open_connections"), 3);
  EXPECT_LE(stat({"sockets_open"}), 3);
}

TEST(Shards, TheBreakerCountsFailuresOnceForTheOrigin) {
  IoThreads two("2");
  Lease lease(mock().config("\"http2\":false,\"max_retries\":0,\"breaker_failures\":4,\"breaker_cooldown_ms\":60000"));
  Batch b;
  b.start(lease.handle, 4, "models", {{"x-mock-status", "500"}, {"x-mock-delay-ms", "50"}});
  ASSERT_TRUE(b.wait(4));
  EXPECT_EQ(b.threads.size(), 2u);  // the failures were split between the shards
  Result r = get(lease.handle, "models");
  EXPECT_EQ(r.rc, ESP_ECIRCUIT) << r.error;
  EXPECT_NE(r.error.find("after 4 consecutive failures"), std::string::npos) << r.error;
}

TEST(Shards, StatsShowTheOriginOnceWithEveryShardsRequests) {
  IoThreads two("2");
  Lease lease(mock().config("\"http2\":false"));
  Batch b;
  b.start(lease.handle, 40, "models", {{"x-mock-delay-ms", "20"}});
  ASSERT_TRUE(b.wait(40));
  EXPECT_EQ(b.threads.size(), 2u);
  EXPECT_EQ(json_number(client_stats(lease.handle), {"origin_stats", "requests"}), 40);
  cJSON *root = cJSON_Parse(process_stats().c_str());
  ASSERT_NE(root, nullptr);
  int entries = 0;
  cJSON *o = nullptr;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(root, "origins")) {
    const cJSON *label = cJSON_GetObjectItem(o, "origin");
    if (cJSON_IsString(label) && mock().http_base() == label->valuestring) {
      ++entries;
      EXPECT_EQ(cJSON_GetObjectItem(o, "requests")->valuedouble, 40);
    }
  }
  cJSON_Delete(root);
  EXPECT_EQ(entries, 1);
  char *text = nullptr;
  ASSERT_EQ(esp_metrics_prometheus(&text), ESP_OK);
  std::string prom(text);
  esp_free(text);
  const std::string labels = "{origin=\"" + mock().http_base() + "\"";
  size_t lines = 0;
  for (size_t at = prom.find("esp_origin_breaker_state" + labels); at != std::string::npos;
       at = prom.find("esp_origin_breaker_state" + labels, at + 1))
    ++lines;
  EXPECT_EQ(lines, 1u) << prom;
  EXPECT_NE(prom.find("esp_origin_requests_total" + labels + ",outcome=\"ok\"} 40\n"), std::string::npos) << prom;
}

// libcurl reuses a plain-HTTP connection for any client with the same proxy
// (http2 and the TLS settings do not apply to it), so such clients share one
// origin and its connection tokens: else one shard lent another client's
// idle connections while another shard opened new ones, past the peak in
// flight (Pool.ManyThreadsShareOneClientSafely, 1 run in 15).
TEST(Shards, PlainHttpClientsThatDifferOnlyInHttp2ShareTheOrigin) {
  IoThreads two("2");
  Lease h1(mock().config("\"http2\":false"));
  Lease h2(mock().config("\"verify_tls\":false"));
  ASSERT_EQ(get(h1.handle, "models").status, 200);
  ASSERT_EQ(get(h2.handle, "models").status, 200);
  cJSON *root = cJSON_Parse(process_stats().c_str());
  ASSERT_NE(root, nullptr);
  int entries = 0;
  cJSON *o = nullptr;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(root, "origins")) {
    const cJSON *label = cJSON_GetObjectItem(o, "origin");
    if (!cJSON_IsString(label) || mock().http_base() != label->valuestring) continue;
    ++entries;
    EXPECT_EQ(cJSON_GetObjectItem(o, "requests")->valuedouble, 2);
    EXPECT_EQ(cJSON_GetObjectItem(o, "connections_opened")->valuedouble, 1);
  }
  cJSON_Delete(root);
  EXPECT_EQ(entries, 1);
}

namespace {

// The threads that logged a new connection (the thread driving the multi).
struct ConnectionLog {
  std::mutex mu;
  std::vector<std::thread::id> openers;
  static void log(void *user, int, const char *line) {
    if (!std::strstr(line, "event=connection_opened")) return;
    auto *c = static_cast<ConnectionLog *>(user);
    std::lock_guard<std::mutex> lock(c->mu);
    c->openers.push_back(std::this_thread::get_id());
  }
};

}  // namespace

// A synchronous request drives a shard itself (no hop to an I/O thread)
// when one has nothing to do, even while another shard is busy.
TEST(Shards, ASyncRequestIsDrivenByItsCallerOnAnIdleShard) {
  IoThreads two("2");
  Lease lease(mock().config("\"http2\":false"));
  ConnectionLog seen;
  ASSERT_EQ(esp_set_logger(ConnectionLog::log, &seen, ESP_LOG_DEBUG), ESP_OK);
  // Read before the call starts: read after, it may already count the call,
  // and the wait below would outlast it.
  const long served = mock().stat("requests");
  Batch busy;  // one shard busy on the only connection for 400 ms
  busy.start(lease.handle, 1, "models", {{"x-mock-delay-ms", "400"}});
  for (int spin = 0; spin < 2000 && mock().stat("requests") == served; ++spin)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Result r = get(lease.handle, "models");
  ASSERT_TRUE(busy.wait(1));
  esp_set_logger(nullptr, nullptr, 0);
  EXPECT_EQ(r.status, 200);
  std::lock_guard<std::mutex> lock(seen.mu);
  ASSERT_EQ(seen.openers.size(), 2u);
  EXPECT_NE(seen.openers[0], std::this_thread::get_id());  // the async call's, on an I/O thread
  EXPECT_EQ(seen.openers[1], std::this_thread::get_id());  // this request's, on this thread
}

// A TLS origin is taken for HTTP/2 until it answers: the first calls to one
// that refuses h2 by ALPN (nginx without http2) are admitted as multiplexed
// streams, before the origin is known to be HTTP/1.1-only. Still the server
// sees no more than max_connections, across both shards, in that first burst
// and after it.
TEST(Shards, FirstCallsToAnOriginThatRefusesHttp2StayWithinMaxConnections) {
  IoThreads two("2");
  MockServer h1_only({"--tls-http1-only"});
  Lease lease(h1_only.tls_config("\"max_connections\":3"));
  for (int round = 0; round < 2; ++round) {
    Batch b;
    b.start(lease.handle, 40, "models", {{"x-mock-delay-ms", "20"}});
    ASSERT_TRUE(b.wait(40));
    EXPECT_EQ(b.ok(), 40);
    EXPECT_LE(h1_only.stat("connections"), 3) << "round " << round;
  }
  EXPECT_EQ(sync_calls_from_threads(lease.handle, 6, 5), 30);
  EXPECT_LE(h1_only.stat("connections"), 3);
  EXPECT_LE(h1_only.stat("open_connections"), 3);
  EXPECT_LE(stat({"sockets_open"}), 3);
}

namespace {

// The threads that logged a fail-over and the opening of a connection to
// one origin.
struct HandOverLog {
  std::string origin;  // "origin=https://localhost:PORT"
  std::mutex mu;
  std::vector<std::thread::id> failovers, opened;
  static void log(void *user, int, const char *line) {
    auto *h = static_cast<HandOverLog *>(user);
    const bool failover = std::strstr(line, "event=failover") != nullptr;
    const bool opened = std::strstr(line, "event=connection_opened") && std::strstr(line, h->origin.c_str());
    if (!failover && !opened) return;
    std::lock_guard<std::mutex> lock(h->mu);
    (failover ? h->failovers : h->opened).push_back(std::this_thread::get_id());
  }
};

}  // namespace

// A deployment fail-over onto an HTTP/2 origin whose home is the other
// shard hands the transfer over (kAdoptStart) between its attempts: the call
// succeeds once, each server saw the request once (the failed attempt was
// answered and retry-safe), and the stats count one request, one fail-over.
// The origin's home is a hash of its key: the CA path is spelt anew (same
// file) until the first attempt's shard and the origin's home differ.
TEST(Shards, AFailOverOntoAnHttp2OriginOfTheOtherShardIsHandedOver) {
  IoThreads two("2");
  MockServer h2;
  const std::string dir = h2.ca_file.substr(0, h2.ca_file.rfind('/'));
  const std::string file = h2.ca_file.substr(h2.ca_file.rfind('/') + 1);
  std::string spelt = dir + "/";
  bool handed_over = false;
  for (int attempt = 0; attempt < 16 && !handed_over; ++attempt, spelt += "./") {
    HandOverLog seen;
    seen.origin = "origin=" + h2.https_base();
    const std::string failing = mock().http_base() + "/_faults/status=500/v1";
    const std::string config =
        "{\"deployments\":[{\"base_url\":\"" + failing + "\",\"api_key\":\"sk-A-SECRET\"},{\"base_url\":\"" +
        h2.https_base() + "/v1\",\"api_key\":\"sk-B-SECRET\"}],\"routing\":\"ordered\",\"breaker_failures\":0," +
        "\"max_retries\":2,\"retry_base_ms\":10,\"ca_file\":\"" + spelt + file + "\"}";
    Lease lease(config);
    ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
    static std::atomic<int> calls{0};  // a key of its own in every run (--gtest_repeat)
    const std::string key = "handover-" + std::to_string(getpid()) + "-" + std::to_string(calls++);
    ASSERT_EQ(esp_set_logger(HandOverLog::log, &seen, ESP_LOG_DEBUG), ESP_OK);
    Result r = post(lease.handle, "chat/completions", kChat, {{"x-mock-key", key.c_str()}});
    esp_set_logger(nullptr, nullptr, 0);
    ASSERT_EQ(r.rc, ESP_OK) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.attempts, 2);
    EXPECT_EQ(r.http_version, 20);
    std::string seen_by_failing = mock().control("/_mock/requests?key=" + key);
    std::string seen_by_h2 = h2.control("/_mock/requests?key=" + key);
    cJSON *a = cJSON_Parse(seen_by_failing.c_str()), *b = cJSON_Parse(seen_by_h2.c_str());
    EXPECT_EQ(cJSON_GetArraySize(a), 1) << seen_by_failing;
    EXPECT_EQ(cJSON_GetArraySize(b), 1) << seen_by_h2;
    cJSON_Delete(a);
    cJSON_Delete(b);
    EXPECT_EQ(deployment_stat(lease.handle, 0, "failures"), 1);
    EXPECT_EQ(deployment_stat(lease.handle, 0, "failovers"), 1);
    EXPECT_EQ(deployment_stat(lease.handle, 1, "picked"), 1);
    EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "requests"}), 1);
    EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "outcomes", "ok"}), 1);
    std::lock_guard<std::mutex> lock(seen.mu);
    ASSERT_EQ(seen.failovers.size(), 1u);
    ASSERT_EQ(seen.opened.size(), 1u);
    handed_over = seen.failovers[0] != seen.opened[0];
  }
  EXPECT_TRUE(handed_over) << "no spelling of the CA path put the HTTP/2 origin's home on the other shard";
}

namespace {

size_t entries_of(const char *dir) {
  size_t n = 0;
  if (DIR *d = opendir(dir)) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}

}  // namespace

// A shard starts its I/O thread and descriptors (epoll set, eventfd,
// libcurl's wake-up pair) on first use: sequential requests use one, so an
// engine of four holds one thread and four descriptors, not four and 16.
TEST(Shards, OnlyTheShardsInUseHoldAThreadAndDescriptors) {
  IoThreads four("4");
  Lease lease(mock().config("\"http2\":false"));
  const size_t fds = entries_of("/proc/self/fd"), threads = entries_of("/proc/self/task");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(get(lease.handle, "models").status, 200);
  EXPECT_EQ(entries_of("/proc/self/task") - threads, 1u);
  EXPECT_EQ(entries_of("/proc/self/fd") - fds, 4u + 1u);  // one shard's, and the connection
  // Work in flight spreads over the others, which start then (another
  // origin: this one's idle connection would draw every call to its shard).
  Lease other("{\"base_url\":\"http://localhost:" + std::to_string(mock().http_port) +
              "/v1\",\"api_key\":\"sk-test-SECRET\",\"http2\":false}");
  ASSERT_EQ(other.rc, ESP_OK) << esp_last_error();
  Batch b;
  b.start(other.handle, 64, "models", {{"x-mock-delay-ms", "30"}});
  ASSERT_TRUE(b.wait(64));
  EXPECT_EQ(b.ok(), 64);
  EXPECT_GT(b.threads.size(), 1u);
}
