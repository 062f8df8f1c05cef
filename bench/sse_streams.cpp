// Streaming at scale, C side (bench/run.py scenario streams): N concurrent SSE streams from the
// paced server bench/streams/sse_server.go through esp_request_async + on_event, measuring what
// an LLM gateway lives on: events/s reaching user code, CPU per event, RSS per live stream and
// the delay from the server writing an event to on_event seeing it.
//
// Usage: sse_streams esp <url with ?n=&ms=> <streams>
#include <sys/resource.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
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

void on_event(void *, const esp_sse_event *ev) {
  long n = events.fetch_add(1);
  const char *t = std::strstr(ev->data, "\"t\":");
  if (!t || (n & 7)) return;
  int64_t sent = std::atoll(t + 4);
  size_t i = delay_count.fetch_add(1);
  if (i < kDelaySlots) delays_us[i] = (int32_t)((wall_ns() - sent) / 1000);
}

void on_complete(void *, int status, esp_response *resp) {
  if (status != ESP_OK || esp_response_status(resp) != 200) {
    failed.fetch_add(1);
    std::fprintf(stderr, "stream failed: %s %s\n", esp_strerror(status), esp_last_error());
  }
  if (resp) esp_response_free(resp);
  live.fetch_sub(1);
  std::lock_guard<std::mutex> l(mu);
  done.fetch_add(1);
  all_done.notify_one();
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
  if (mode != "esp" || url.empty()) die("usage: sse_streams esp <url> <streams>");
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
  target->start(n, nullptr);
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
