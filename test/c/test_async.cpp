// Asynchronous calls, SSE streaming, the pull reader and cancellation.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "helpers.h"

namespace {

// Collects one async call's callbacks and lets the test wait for on_complete.
struct Call {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<int> completions{0};
  int status = 1;
  int http_status = 0;
  int head_status = 0;
  std::string body;
  std::string raw;
  std::vector<std::string> events;
  std::vector<std::string> event_names;
  std::string error;
  esp_call handle = 0;

  static void on_headers(void *u, const esp_response *head) {
    static_cast<Call *>(u)->head_status = esp_response_status(head);
  }
  static void on_data(void *u, const void *p, size_t n) {
    static_cast<Call *>(u)->raw.append(static_cast<const char *>(p), n);
  }
  static void on_event(void *u, const esp_sse_event *ev) {
    auto *c = static_cast<Call *>(u);
    c->events.emplace_back(ev->data, ev->data_len);
    c->event_names.emplace_back(ev->event);
  }
  static void on_complete(void *u, int status, esp_response *r) {
    auto *c = static_cast<Call *>(u);
    std::lock_guard<std::mutex> lock(c->mu);
    c->status = status;
    if (status != ESP_OK) c->error = esp_last_error();
    if (r) {
      c->http_status = esp_response_status(r);
      size_t n = 0;
      const char *b = static_cast<const char *>(esp_response_body(r, &n));
      c->body.assign(b, n);
      esp_response_free(r);
    }
    c->completions++;
    c->cv.notify_all();
  }
  bool wait(int ms = 10000) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return completions.load() > 0; });
  }
};

esp_callbacks callbacks(bool stream) {
  esp_callbacks cb;
  std::memset(&cb, 0, sizeof cb);
  cb.struct_size = sizeof cb;
  cb.on_headers = Call::on_headers;
  cb.on_complete = Call::on_complete;
  if (stream) {
    cb.on_data = Call::on_data;
    cb.on_event = Call::on_event;
  }
  return cb;
}

int start(esp_client c, Call &call, const char *path, const std::string *body,
          std::vector<esp_header> headers = {}, bool stream = false) {
  esp_request_opts o = opts(path, body, &headers);
  esp_callbacks cb = callbacks(stream);
  return esp_request_async(c, &o, &cb, &call, &call.handle);
}

long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

std::vector<std::string> pull_all_events(esp_client c, const std::string &body, std::vector<esp_header> headers) {
  esp_request_opts o = opts("chat/completions", &body, &headers);
  esp_stream s = 0;
  esp_response *head = nullptr;
  std::vector<std::string> out;
  EXPECT_EQ(esp_stream_open(c, &o, &s, &head), ESP_OK) << esp_last_error();
  if (!s) return out;
  EXPECT_EQ(esp_response_status(head), 200);
  EXPECT_STREQ(esp_response_header(head, "content-type"), "text/event-stream");
  esp_response_free(head);
  esp_stream_item item;
  std::memset(&item, 0, sizeof item);
  item.struct_size = sizeof item;
  int rc;
  while ((rc = esp_stream_next(s, 5000, &item)) == 1) {
    EXPECT_EQ(item.kind, ESP_ITEM_EVENT);
    out.emplace_back(item.event.data, item.event.data_len);
  }
  EXPECT_EQ(rc, 0) << esp_last_error();
  EXPECT_EQ(esp_stream_close(s), ESP_OK);
  return out;
}

}  // namespace

TEST(Async, ThousandConcurrentCallsCompleteExactlyOnceOverFewConnections) {
  esp_shutdown(5000);
  long before = mock().stat("connections");
  Lease lease(mock().config("\"max_connections\":16,\"http2\":false"));
  std::vector<Call> calls(1000);
  for (auto &c : calls) ASSERT_EQ(start(lease.handle, c, "chat/completions", &kChat), ESP_OK) << esp_last_error();
  for (auto &c : calls) ASSERT_TRUE(c.wait());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (auto &c : calls) {
    EXPECT_EQ(c.completions.load(), 1);
    EXPECT_EQ(c.status, ESP_OK);
    EXPECT_EQ(c.http_status, 200);
    EXPECT_EQ(c.head_status, 200);
    EXPECT_NE(c.body.find("echo: hello pool"), std::string::npos);
  }
  EXPECT_LE(mock().stat("connections") - before, 16);
  EXPECT_EQ(stat({"calls_live"}), 0);
  EXPECT_EQ(stat({"in_flight"}), 0);
}

TEST(Async, ThousandCallsOverHttp2UseAHandfulOfConnections) {
  esp_shutdown(5000);
  long before = mock().stat("connections");
  Lease lease(mock().tls_config());
  Call warm;
  ASSERT_EQ(start(lease.handle, warm, "models", nullptr), ESP_OK);
  ASSERT_TRUE(warm.wait());
  const int n = std::getenv("N") ? std::atoi(std::getenv("N")) : 1000;
  std::vector<Call> calls(n);
  for (auto &c : calls) ASSERT_EQ(start(lease.handle, c, "chat/completions", &kChat), ESP_OK);
  for (auto &c : calls) ASSERT_TRUE(c.wait(20000));
  int ok = 0;
  for (auto &c : calls) ok += c.status == ESP_OK && c.http_status == 200;
  EXPECT_EQ(ok, n);
  EXPECT_LE(mock().stat("connections") - before, 4);
}

TEST(Streaming, SameEventsWhateverTheChunking) {
  Lease lease(mock().config());
  Call whole, bytes;
  ASSERT_EQ(start(lease.handle, whole, "chat/completions", &kChatStream, {}, true), ESP_OK);
  ASSERT_EQ(start(lease.handle, bytes, "chat/completions", &kChatStream, {{"x-mock-byte-by-byte", "1"}}, true), ESP_OK);
  ASSERT_TRUE(whole.wait());
  ASSERT_TRUE(bytes.wait());
  EXPECT_EQ(whole.status, ESP_OK);
  EXPECT_EQ(bytes.status, ESP_OK);
  ASSERT_GE(whole.events.size(), 4u);
  EXPECT_EQ(whole.events.back(), "[DONE]");
  // Chunk ids and timestamps differ between responses: compare the deltas.
  auto deltas = [](const std::vector<std::string> &evs) {
    std::string all;
    for (auto &e : evs) {
      cJSON *j = cJSON_Parse(e.c_str());
      const cJSON *ch = j ? cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0) : nullptr;
      const cJSON *content = ch ? cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "content") : nullptr;
      if (cJSON_IsString(content)) all += content->valuestring;
      cJSON_Delete(j);
    }
    return all;
  };
  EXPECT_EQ(whole.events.size(), bytes.events.size());
  EXPECT_EQ(deltas(whole.events), deltas(bytes.events));
  EXPECT_NE(deltas(whole.events).find("one two three four"), std::string::npos) << deltas(whole.events);
  EXPECT_EQ(whole.raw.size() > 0, true);
  EXPECT_TRUE(whole.body.empty());  // streamed bodies are not also buffered
  for (auto &n : whole.event_names) EXPECT_EQ(n, "message");
}

TEST(Streaming, PullReaderYieldsEventsAndEnds) {
  Lease lease(mock().config());
  auto whole = pull_all_events(lease.handle, kChatStream, {});
  auto bytes = pull_all_events(lease.handle, kChatStream, {{"x-mock-byte-by-byte", "1"}});
  ASSERT_FALSE(whole.empty());
  EXPECT_EQ(whole.back(), "[DONE]");
  EXPECT_EQ(whole.size(), bytes.size());
  auto many = pull_all_events(lease.handle, kChatStream, {{"x-mock-events", "200"}});
  EXPECT_GE(many.size(), 200u);
}

TEST(Streaming, PullReaderWaitTimesOutWithEagain) {
  Lease lease(mock().config());
  std::vector<esp_header> h = {{"x-mock-events", "3"}, {"x-mock-chunk-delay-ms", "400"}};
  esp_request_opts o = opts("chat/completions", &kChatStream, &h);
  esp_stream s = 0;
  ASSERT_EQ(esp_stream_open(lease.handle, &o, &s, nullptr), ESP_OK);
  esp_stream_item item;
  std::memset(&item, 0, sizeof item);
  item.struct_size = sizeof item;
  int first = esp_stream_next(s, 2000, &item);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(esp_stream_next(s, 10, &item), ESP_EAGAIN);
  EXPECT_EQ(esp_stream_close(s), ESP_OK);  // unfinished: cancels
  EXPECT_EQ(esp_stream_close(s), ESP_EHANDLE);
  EXPECT_EQ(esp_stream_next(s, 10, &item), ESP_EHANDLE);
}

TEST(Streaming, RawFlagGivesChunksAndErrorsKeepTheirBody) {
  Lease lease(mock().config());
  esp_request_opts o = opts("chat/completions", &kChatStream);
  o.flags = ESP_REQ_STREAM_RAW;
  esp_stream s = 0;
  ASSERT_EQ(esp_stream_open(lease.handle, &o, &s, nullptr), ESP_OK);
  esp_stream_item item;
  std::memset(&item, 0, sizeof item);
  item.struct_size = sizeof item;
  std::string raw;
  while (esp_stream_next(s, 5000, &item) == 1) {
    EXPECT_EQ(item.kind, ESP_ITEM_CHUNK);
    raw.append(static_cast<const char *>(item.chunk), item.chunk_len);
  }
  esp_stream_close(s);
  EXPECT_NE(raw.find("data: [DONE]"), std::string::npos);

  Lease noretry(mock().config("\"max_retries\":0"));
  std::vector<esp_header> h = {{"x-mock-status", "400"}};
  o = opts("chat/completions", &kChatStream, &h);
  esp_response *head = nullptr;
  ASSERT_EQ(esp_stream_open(noretry.handle, &o, &s, &head), ESP_OK);
  EXPECT_EQ(esp_response_status(head), 400);
  esp_response_free(head);
  std::string body;
  while (esp_stream_next(s, 5000, &item) == 1) body.append(static_cast<const char *>(item.chunk), item.chunk_len);
  esp_stream_close(s);
  EXPECT_NE(body.find("error"), std::string::npos);
}

TEST(Streaming, SlowConsumerPausesInsteadOfBuffering) {
  Lease lease(mock().config("\"max_response_bytes\":268435456"));
  const long total = 48L << 20;
  std::string n = std::to_string(total);
  std::vector<esp_header> h = {{"x-mock-body-bytes", n.c_str()}};
  esp_request_opts o = opts("models", nullptr, &h);
  long before = rss_kb();
  esp_stream s = 0;
  ASSERT_EQ(esp_stream_open(lease.handle, &o, &s, nullptr), ESP_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a consumer that does not read
  long grown = rss_kb() - before;
  EXPECT_LT(grown, 16 * 1024) << "RSS grew by " << grown << " kB while the reader was idle";
  esp_stream_item item;
  std::memset(&item, 0, sizeof item);
  item.struct_size = sizeof item;
  long got = 0;
  int rc;
  while ((rc = esp_stream_next(s, 10000, &item)) == 1) got += static_cast<long>(item.chunk_len);
  EXPECT_EQ(rc, 0) << esp_last_error();
  EXPECT_EQ(got, total);
  esp_stream_close(s);
}

TEST(Timeouts, FirstByteAndIdleTimeoutsSayWhichFired) {
  Lease lease(mock().config("\"first_byte_timeout_ms\":200,\"idle_timeout_ms\":300,\"max_retries\":0"));
  Result r = get(lease.handle, "models", {{"x-mock-delay-ms", "2000"}});
  EXPECT_EQ(r.rc, ESP_ETIMEDOUT);
  EXPECT_NE(r.error.find("first-byte timeout"), std::string::npos) << r.error;
  r = get(lease.handle, "models", {{"x-mock-slowloris", "1000"}});
  EXPECT_EQ(r.rc, ESP_ETIMEDOUT);
  EXPECT_NE(r.error.find("idle timeout"), std::string::npos) << r.error;
  std::string s = client_stats(lease.handle);
  EXPECT_EQ(json_number(s, {"client", "outcomes", "timeout_first_byte"}), 1);
  EXPECT_EQ(json_number(s, {"client", "outcomes", "timeout_idle"}), 1);
  // A stream that keeps talking within the idle timeout is fine.
  EXPECT_EQ(get(lease.handle, "models", {{"x-mock-slowloris", "50"}}).status, 200);
}

// esp_request_opts' first_byte_timeout_ms and idle_timeout_ms (undici's
// headersTimeout and bodyTimeout): one bounds the wait for the head, the
// other the silences inside the body, apart, so a slow first token is not
// cut by a short between-chunks limit.
TEST(Timeouts, PerRequestFirstByteAndIdleAreBoundedApart) {
  Lease lease(mock().config("\"first_byte_timeout_ms\":100,\"max_retries\":0,\"breaker_failures\":0"));
  auto timed = [&](const esp_request_opts &o, int64_t *took_ms) {
    auto t0 = std::chrono::steady_clock::now();
    Result r = request(lease.handle, o);
    *took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    return r;
  };
  int64_t took = 0;
  std::vector<esp_header> late_head = {{"x-mock-delay-ms", "500"}};
  esp_request_opts o = opts("models", nullptr, &late_head);
  o.first_byte_timeout_ms = 200;  // over the client's 100 ms
  Result r = timed(o, &took);
  EXPECT_EQ(r.rc, ESP_ETIMEDOUT);
  EXPECT_EQ(r.error.rfind("first-byte timeout", 0), 0u) << r.error;
  EXPECT_NE(r.error.find("(200 ms)"), std::string::npos) << r.error;
  EXPECT_GE(took, 200);
  EXPECT_LE(took, 200 + 150);

  // A short idle limit leaves the late head alone.
  o.first_byte_timeout_ms = ESP_NO_TIMEOUT;
  o.idle_timeout_ms = 150;
  EXPECT_EQ(request(lease.handle, o).status, 200);

  // ... and cuts a body that falls silent; the first-byte limit does not.
  std::vector<esp_header> slow_body = {{"x-mock-slowloris", "400"}};
  esp_request_opts b = opts("models", nullptr, &slow_body);
  b.idle_timeout_ms = 150;
  r = timed(b, &took);
  EXPECT_EQ(r.rc, ESP_ETIMEDOUT);
  EXPECT_EQ(r.error.rfind("idle timeout", 0), 0u) << r.error;
  EXPECT_NE(r.error.find("(150 ms)"), std::string::npos) << r.error;
  std::vector<esp_header> steady_body = {{"x-mock-slowloris", "30"}};
  esp_request_opts steady = opts("models", nullptr, &steady_body);
  steady.first_byte_timeout_ms = 150;  // the head came at once; 20 bytes then take ~600 ms
  steady.idle_timeout_ms = 150;
  EXPECT_EQ(request(lease.handle, steady).status, 200);

  esp_request_opts bad = opts("models");
  bad.first_byte_timeout_ms = -2;
  r = request(lease.handle, bad);
  EXPECT_EQ(r.rc, ESP_EINVAL);
  EXPECT_NE(r.error.find("first_byte_timeout_ms"), std::string::npos) << r.error;
  bad.first_byte_timeout_ms = 0;
  bad.idle_timeout_ms = -2;
  r = request(lease.handle, bad);
  EXPECT_EQ(r.rc, ESP_EINVAL);
  EXPECT_NE(r.error.find("idle_timeout_ms"), std::string::npos) << r.error;
}

TEST(Cancel, BeforeStartMidHeadersMidStreamAndAfterCompletion) {
  esp_shutdown(5000);
  Lease lease(mock().config("\"max_retries\":0"));
  ASSERT_EQ(get(lease.handle, "models").status, 200);
  const double sockets_before = stat({"sockets_open"});

  Call before_start;
  ASSERT_EQ(start(lease.handle, before_start, "models", nullptr, {{"x-mock-delay-ms", "200"}}), ESP_OK);
  EXPECT_EQ(esp_call_cancel(before_start.handle), ESP_OK);
  ASSERT_TRUE(before_start.wait());
  EXPECT_EQ(before_start.status, ESP_ECANCELLED);

  Call mid_headers;
  ASSERT_EQ(start(lease.handle, mid_headers, "models", nullptr, {{"x-mock-hang", "1"}}), ESP_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(esp_call_cancel(mid_headers.handle), ESP_OK);
  ASSERT_TRUE(mid_headers.wait());
  EXPECT_EQ(mid_headers.status, ESP_ECANCELLED);

  Call mid_stream;
  ASSERT_EQ(start(lease.handle, mid_stream, "chat/completions", &kChatStream,
                  {{"x-mock-events", "50"}, {"x-mock-chunk-delay-ms", "20"}}, true),
            ESP_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(esp_call_cancel(mid_stream.handle), ESP_OK);
  ASSERT_TRUE(mid_stream.wait());
  EXPECT_EQ(mid_stream.status, ESP_ECANCELLED);
  EXPECT_GT(mid_stream.events.size(), 0u);
  EXPECT_LT(mid_stream.events.size(), 50u);

  Call done;
  ASSERT_EQ(start(lease.handle, done, "models", nullptr), ESP_OK);
  ASSERT_TRUE(done.wait());
  EXPECT_EQ(esp_call_cancel(done.handle), ESP_EHANDLE);
  EXPECT_EQ(done.completions.load(), 1);

  // The pool is still usable and no connection leaked.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(get(lease.handle, "models").status, 200);
  EXPECT_LE(stat({"sockets_open"}), sockets_before);
  EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "outcomes", "cancelled"}), 3);
  // The cancelled transfers that had a connection closed it: counted as aborted.
  EXPECT_GE(json_number(client_stats(lease.handle), {"origin_stats", "connections_closed_by_reason", "aborted"}), 2);
}

TEST(Cancel, ShutdownWithFiveHundredCallsInFlightCompletesEveryOne) {
  Lease lease(mock().config("\"max_connections\":32,\"http2\":false"));
  std::vector<Call> calls(500);
  for (auto &c : calls) ASSERT_EQ(start(lease.handle, c, "models", nullptr, {{"x-mock-delay-ms", "3000"}}), ESP_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(esp_shutdown(5000), ESP_OK);
  for (auto &c : calls) {
    ASSERT_TRUE(c.wait(1));
    EXPECT_EQ(c.completions.load(), 1);
    EXPECT_TRUE(c.status == ESP_ESHUTDOWN || c.status == ESP_ECANCELLED) << c.status;
  }
}

namespace {

// The demo's three-stage synthesis pipeline, chained from callbacks:
// N answers, then N reviews (each started when its answer lands), then one
// synthesis when the last review lands.
struct Pipeline {
  esp_client client = 0;
  int n = 0;
  std::atomic<int> answers{0}, reviews{0};
  std::atomic<int> failures{0};
  Call final_call;
  std::string body = kChat;
  std::vector<int> blocked_rc;
  std::mutex mu;

  static void answer_done(void *u, int status, esp_response *r) {
    auto *p = static_cast<Pipeline *>(u);
    esp_response_free(r);
    if (status != ESP_OK) p->failures++;
    p->answers++;
    esp_request_opts o = opts("chat/completions", &p->body);
    esp_callbacks cb;
    std::memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.on_complete = review_done;
    if (esp_request_async(p->client, &o, &cb, p, nullptr) != ESP_OK) p->failures++;
    // Blocking calls are refused on the I/O thread instead of deadlocking.
    esp_response *sync = nullptr;
    std::lock_guard<std::mutex> lock(p->mu);
    p->blocked_rc.push_back(esp_request(p->client, &o, &sync));
  }
  static void review_done(void *u, int status, esp_response *r) {
    auto *p = static_cast<Pipeline *>(u);
    esp_response_free(r);
    if (status != ESP_OK) p->failures++;
    if (++p->reviews == p->n) {
      esp_request_opts o = opts("chat/completions", &p->body);
      esp_callbacks cb = callbacks(false);
      if (esp_request_async(p->client, &o, &cb, &p->final_call, nullptr) != ESP_OK) p->failures++;
    }
  }
};

}  // namespace

TEST(Async, CallbacksChainAPipeline) {
  Lease lease(mock().config());
  Pipeline p;
  p.client = lease.handle;
  p.n = 20;
  for (int i = 0; i < p.n; ++i) {
    esp_request_opts o = opts("chat/completions", &p.body);
    esp_callbacks cb;
    std::memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.on_complete = Pipeline::answer_done;
    ASSERT_EQ(esp_request_async(lease.handle, &o, &cb, &p, nullptr), ESP_OK);
  }
  ASSERT_TRUE(p.final_call.wait(20000));
  EXPECT_EQ(p.final_call.status, ESP_OK);
  EXPECT_EQ(p.final_call.http_status, 200);
  EXPECT_EQ(p.answers.load(), 20);
  EXPECT_EQ(p.reviews.load(), 20);
  EXPECT_EQ(p.failures.load(), 0);
  for (int rc : p.blocked_rc) EXPECT_EQ(rc, ESP_EINVAL);
}

TEST(Cancel, PreparedCallRunsBlockingAndCancelsFromAnotherThread) {
  Lease lease(mock().config("\"max_retries\":0"));
  esp_call call = 0;
  esp_request_opts o = opts("chat/completions", &kChat);
  ASSERT_EQ(esp_call_prepare(lease.handle, &o, &call), ESP_OK);
  esp_response *r = nullptr;
  ASSERT_EQ(esp_call_run(call, &r), ESP_OK) << esp_last_error();
  EXPECT_EQ(esp_response_status(r), 200);
  esp_response_free(r);
  EXPECT_EQ(esp_call_run(call, &r), ESP_EHANDLE);  // stale after its run
  EXPECT_EQ(esp_call_cancel(call), ESP_EHANDLE);

  std::vector<esp_header> hang = {{"x-mock-hang", "1"}};
  esp_request_opts slow = opts("models", nullptr, &hang);
  ASSERT_EQ(esp_call_prepare(lease.handle, &slow, &call), ESP_OK);
  std::thread canceller([call] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    EXPECT_EQ(esp_call_cancel(call), ESP_OK);
  });
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(esp_call_run(call, &r), ESP_ECANCELLED);
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(r, nullptr);

  ASSERT_EQ(esp_call_prepare(lease.handle, &o, &call), ESP_OK);
  EXPECT_EQ(esp_call_cancel(call), ESP_OK);  // before its run
  EXPECT_EQ(esp_call_run(call, &r), ESP_ECANCELLED);
  EXPECT_EQ(get(lease.handle, "models").status, 200);
  EXPECT_EQ(stat({"calls_live"}), 0);
}

TEST(Cancel, ConcurrentShutdownsAreSafe) {
  Lease lease(mock().config());
  std::vector<Call> calls(50);
  for (auto &c : calls) ASSERT_EQ(start(lease.handle, c, "models", nullptr, {{"x-mock-delay-ms", "2000"}}), ESP_OK);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) threads.emplace_back([&] { ok += esp_shutdown(5000) == ESP_OK; });
  for (auto &t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  for (auto &c : calls) {
    ASSERT_TRUE(c.wait(1));
    EXPECT_EQ(c.completions.load(), 1);
  }
  Lease again(mock().config());
  EXPECT_EQ(get(again.handle, "models").status, 200);
}
