// Streaming at scale, C side (bench/run.py scenario streams): N concurrent SSE streams from the
// paced server bench/streams/sse_server.go through esp_request_async + on_event, measuring what
// an LLM gateway lives on: events/s reaching user code, CPU per event, RSS per live stream and
// the delay from the server writing an event to on_event seeing it. Mode pull reads the same
// streams the way every binding does (esp_stream_start; its ready callback queues the stream for
// one reader thread, standing in for the language's event loop, which takes items with
// esp_stream_next(stream, 0) until ESP_EAGAIN), so the C cost of that path is measured alone.
//
// Usage: sse_streams esp|pull <url with ?n=&ms=> <streams>
#include <sys/resource.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "common.h"

using namespace bench;

namespace {

// Every 8th event's delay, in a buffer touched before the RSS baseline is read.
constexpr size_t kDelaySlots = 1 << 18;
std::vector<int32_t> delays_us(kDelaySlots);
std::atomic<size_t> delay_count{0};
std::atomic<long> events{0}, live{0}, done{0}, failed{0};
std::mutex mu;
std::condition_variable all_done;

int64_t wall_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void on_headers(void *, const esp_response *) { live.fetch_add(1); }

void seen(const esp_sse_event *ev) {
  long n = events.fetch_add(1);
  const char *t = std::strstr(ev->data, "\"t\":");
  if (!t || (n & 7)) return;
  int64_t sent = std::atoll(t + 4);
  size_t i = delay_count.fetch_add(1);
  if (i < kDelaySlots) delays_us[i] = (int32_t)((wall_ns() - sent) / 1000);
}

void on_event(void *, const esp_sse_event *ev) { seen(ev); }

void stream_ended() {
  live.fetch_sub(1);
  std::lock_guard<std::mutex> l(mu);
  done.fetch_add(1);
  all_done.notify_one();
}

void on_complete(void *, int status, esp_response *resp) {
  if (status != ESP_OK || esp_response_status(resp) != 200) {
    failed.fetch_add(1);
    std::fprintf(stderr, "stream failed: %s %s\n", esp_strerror(status), esp_last_error());
  }
  if (resp) esp_response_free(resp);
  stream_ended();
}

// Pull mode: streams whose ready callback ran, for the reader thread.
struct Pulled {
  std::vector<esp_stream> handles;
  std::vector<bool> headed;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<size_t> ready;
  bool stop = false;
};
Pulled pulled;

void on_ready(void *user) {
  std::lock_guard<std::mutex> l(pulled.mu);
  pulled.ready.push_back(reinterpret_cast<size_t>(user));
  if (pulled.ready.size() == 1) pulled.cv.notify_one();
}

// Reads stream i until it has nothing more now; closes it at its end.
void pull(size_t i) {
  esp_stream s = pulled.handles[i];
  if (!pulled.headed[i]) {
    esp_response *head = nullptr;
    int rc = esp_stream_head(s, &head);
    if (rc == ESP_EAGAIN) return;
    if (rc != ESP_OK || esp_response_status(head) != 200) failed.fetch_add(1);
    if (head) esp_response_free(head);
    pulled.headed[i] = true;
    live.fetch_add(1);
  }
  for (;;) {
    esp_stream_item item = ESP_STREAM_ITEM_INIT;
    int rc = esp_stream_next(s, 0, &item);
    if (rc == 1) {
      if (item.kind == ESP_ITEM_EVENT) seen(item.ev);
      continue;
    }
    if (rc == ESP_EAGAIN) return;
    if (rc < 0) {
      failed.fetch_add(1);
      std::fprintf(stderr, "stream failed: %s %s\n", esp_strerror(rc), esp_last_error());
    }
    esp_stream_close(s);
    stream_ended();
    return;
  }
}

void reader() {
  std::unique_lock<std::mutex> l(pulled.mu);
  for (;;) {
    pulled.cv.wait(l, [] { return pulled.stop || !pulled.ready.empty(); });
    if (pulled.stop) return;
    std::deque<size_t> batch;
    batch.swap(pulled.ready);
    l.unlock();
    for (size_t i : batch) pull(i);
    l.lock();
  }
}

double pct(std::vector<int32_t> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, (size_t)(p * v.size()))] / 1000.0;
}

}  // namespace

int main(int argc, char **argv) {
  std::string mode = arg(argc, argv, 1), url = arg(argc, argv, 2);
  long n = std::atol(arg(argc, argv, 3, "100"));
  if ((mode != "esp" && mode != "pull") || url.empty()) die("usage: sse_streams esp|pull <url> <streams>");
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  std::fill(delays_us.begin(), delays_us.end(), 0);

  auto target = std::make_unique<EspTarget>(
      url, "", "\"max_retries\":0,\"timeout_ms\":600000,\"max_connections\":" + std::to_string(n));
  target->cb.on_headers = on_headers;
  target->cb.on_event = on_event;
  target->cb.on_complete = on_complete;

  long rss0 = rss_kb();
  double cpu0 = cpu_s(), t0 = now_s();
  std::thread pull_reader;
  if (mode == "pull") {
    pulled.handles.resize(n);
    pulled.headed.resize(n);
    for (long i = 0; i < n; ++i)
      check(esp_stream_start(target->client, &target->opts, on_ready, reinterpret_cast<void *>(i), &pulled.handles[i]),
            "stream_start");
    pull_reader = std::thread(reader);  // after every handle is in: a ready may come first
  } else {
    target->start(n, nullptr);
  }
  // RSS per live stream: the reading at the most streams open at once (on a saturated machine
  // the first streams may end before the last ones start).
  long rss_live = 0, peak_live = 0;
  {
    std::unique_lock<std::mutex> l(mu);
    while (!all_done.wait_for(l, std::chrono::milliseconds(100), [&] { return done.load() >= n; })) {
      long lv = live.load();
      if (lv > peak_live) peak_live = lv, rss_live = rss_kb();
    }
  }
  double secs = now_s() - t0, cpu = cpu_s() - cpu0;
  if (pull_reader.joinable()) {
    {
      std::lock_guard<std::mutex> l(pulled.mu);
      pulled.stop = true;
    }
    pulled.cv.notify_one();
    pull_reader.join();
  }
  std::vector<int32_t> d(delays_us.begin(), delays_us.begin() + std::min(delay_count.load(), kDelaySlots));
  target.reset();
  Result()
      .str("mode", mode)
      .num("streams", n)
      .num("events", events.load())
      .num("failed", failed.load())
      .num("secs", secs)
      .num("events_per_s", events.load() / secs)
      .num("cpu_us_per_event", cpu * 1e6 / std::max(1L, events.load()))
      .num("peak_live", peak_live)
      .num("rss_per_stream_kb", peak_live ? (double)(rss_live - rss0) / peak_live : -1)
      .num("delay_p50_ms", pct(d, 0.5))
      .num("delay_p99_ms", pct(d, 0.99))
      .print();
  return failed.load() ? 1 : 0;
}
