// Scenario 5: HTTP/2. STREAMS streamed (SSE) requests started at once over
// TLS, WAVES times, from a cold start.
//   h2 esp|multi-pipewait|multi-naive URL STREAMS WAVES [CA]
// esp:              esp_request_async with on_event (parsed SSE).
// multi-pipewait:   raw curl multi, HTTP/2, CURLOPT_PIPEWAIT=1 (the limit).
// multi-naive:      raw curl multi, HTTP/2 without PIPEWAIT: every stream
//                   that starts before the first connection is up opens one.
#include <condition_variable>
#include <mutex>

#include "common.h"

using namespace bench;

namespace {
struct Wave {
  std::atomic<long> done{0}, failed{0}, events{0};
  long n = 0;
  std::mutex mu;
  std::condition_variable cv;
};
void on_event(void *user, const esp_sse_event *) { static_cast<Wave *>(user)->events++; }
void on_complete(void *user, int status, esp_response *r) {
  Wave &w = *static_cast<Wave *>(user);
  if (status != ESP_OK || esp_response_status(r) != 200) w.failed++;
  esp_response_free(r);
  if (w.done.fetch_add(1) + 1 == w.n) {
    std::lock_guard<std::mutex> l(w.mu);
    w.cv.notify_all();
  }
}
}  // namespace

int main(int argc, char **argv) {
  if (argc < 5) die("usage: h2 MODE URL STREAMS WAVES [CA]");
  std::string mode = argv[1], url = argv[2];
  long streams = std::atol(argv[3]), waves = std::atol(argv[4]);
  const char *ca = arg(argc, argv, 5);
  std::vector<double> wave_secs;
  long conns = 0, failed = 0, events = 0, peak_socks = 0;
  double t0 = now_s();

  if (mode == "esp") {
    EspTarget target(url, ca, "\"max_retries\":0");
    target.cb.on_event = on_event;
    target.cb.on_complete = on_complete;
    for (long w = 0; w < waves; ++w) {
      Wave wave;
      wave.n = streams;
      double ws = now_s();
      target.start(streams, &wave);
      std::unique_lock<std::mutex> l(wave.mu);
      wave.cv.wait(l, [&] { return wave.done.load() >= wave.n; });
      wave_secs.push_back(now_s() - ws);
      failed += wave.failed;
      events += wave.events;
      peak_socks = std::max<long>(peak_socks, socket_fds());
    }
    conns = (long)esp_stat("connections_opened");
  } else if (mode == "multi-pipewait" || mode == "multi-naive") {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 1024L);
    size_t bytes = 0;
    std::vector<CURL *> easies(streams);
    for (auto &e : easies) {
      e = curl_easy_init();
      curl_common(e, url.c_str(), ca, true, &bytes);
      if (mode == "multi-pipewait") curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    }
    for (long w = 0; w < waves; ++w) {
      double ws = now_s();
      for (auto &e : easies) curl_multi_add_handle(m, e);
      long done = 0;
      while (done < streams) {
        int running = 0;
        curl_multi_perform(m, &running);
        int q = 0;
        while (CURLMsg *msg = curl_multi_info_read(m, &q)) {
          if (msg->msg != CURLMSG_DONE) continue;
          long status = 0;
          curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
          if (msg->data.result != CURLE_OK || status != 200) ++failed;
          curl_multi_remove_handle(m, msg->easy_handle);
          ++done;
        }
        if (done < streams) curl_multi_poll(m, nullptr, 0, 100, nullptr);
      }
      wave_secs.push_back(now_s() - ws);
      peak_socks = std::max<long>(peak_socks, socket_fds());
    }
    conns = curl_sockets_opened().load();
    for (auto &e : easies) curl_easy_cleanup(e);
    curl_multi_cleanup(m);
  } else {
    die("unknown mode", mode.c_str());
  }
  double secs = now_s() - t0;
  double warm = 0;
  for (size_t i = 1; i < wave_secs.size(); ++i) warm += wave_secs[i];
  if (wave_secs.size() > 1) warm /= (double)(wave_secs.size() - 1);
  Result()
      .str("mode", mode)
      .num("streams", streams)
      .num("waves", waves)
      .num("secs", secs)
      .num("first_wave_ms", wave_secs.empty() ? 0 : wave_secs[0] * 1e3)
      .num("warm_wave_ms", warm * 1e3)
      .num("streams_per_s", streams * waves / secs)
      .num("connections", conns)
      .num("peak_sockets", peak_socks)
      .num("events", events)
      .num("failed", failed)
      .print();
  return failed ? 1 : 0;
}
