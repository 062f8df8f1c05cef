// Scenario 2: a fixed number of requests in flight.
//   conc esp|multi URL CONC TOTAL [CA] [h2]
// esp:   esp_request_async; each completion (on the I/O thread) starts the
//        next request, so CONC stay in flight until TOTAL are done.
// multi: the raw limit: one curl multi, CONC easy handles re-added as they
//        finish, driven by curl_multi_poll on the calling thread.
// h1 URLs use CONC connections (max_connections = CONC), h2 ones multiplex.
#include <condition_variable>
#include <mutex>

#include "common.h"

using namespace bench;

namespace {

struct EspLoad {
  esp_client client = 0;
  esp_request_opts opts{};
  esp_callbacks cb{};
  long total = 0;
  std::atomic<long> started{0};
  std::atomic<long> done{0};
  std::atomic<long> failed{0};
  std::mutex mu;
  std::condition_variable cv;

  void start_one() {
    if (started.fetch_add(1) >= total) return;
    int rc = esp_request_async(client, &opts, &cb, this, nullptr);
    if (rc != ESP_OK) {
      std::fprintf(stderr, "async: %s %s\n", esp_strerror(rc), esp_last_error());
      finish_one(false);
    }
  }
  void finish_one(bool ok) {
    if (!ok) failed.fetch_add(1);
    if (done.fetch_add(1) + 1 == total) {
      std::lock_guard<std::mutex> l(mu);
      cv.notify_all();
    }
  }
  static void on_complete(void *user, int status, esp_response *r) {
    EspLoad &L = *static_cast<EspLoad *>(user);
    bool ok = status == ESP_OK && esp_response_status(r) == 200;
    esp_response_free(r);
    L.finish_one(ok);
    L.start_one();
  }
};

}  // namespace

int main(int argc, char **argv) {
  if (argc < 5) die("usage: conc esp|multi URL CONC TOTAL [CA] [h2]");
  std::string mode = argv[1], url = argv[2];
  long conc = std::atol(argv[3]), total = std::atol(argv[4]);
  const char *ca = arg(argc, argv, 5);
  bool h2 = std::string(arg(argc, argv, 6)) == "h2";
  long warm = conc * 2;
  double secs = 0, cpu = 0;
  long conns = 0, failed = 0;

  if (mode == "esp") {
    std::string extra = h2 ? "\"http2\":true" : "\"http2\":false,\"max_connections\":" + std::to_string(conc);
    extra += ",\"max_retries\":0";
    EspLoad L;
    check(esp_client_get(esp_config(origin_of(url), ca, extra).c_str(), &L.client), "client_get");
    std::string path = path_of(url);
    L.opts.struct_size = sizeof L.opts;
    L.opts.path = path.c_str();
    L.cb.struct_size = sizeof L.cb;
    L.cb.on_complete = &EspLoad::on_complete;
    for (int phase = 0; phase < 2; ++phase) {  // 0: warm-up (opens the connections)
      long n = phase == 0 ? warm : total;
      L.total = n;
      L.started = 0;
      L.done = 0;
      double t0 = now_s(), c0 = cpu_s();
      for (long i = 0; i < conc; ++i) L.start_one();
      std::unique_lock<std::mutex> l(L.mu);
      L.cv.wait(l, [&] { return L.done.load() >= n; });
      secs = now_s() - t0;
      cpu = cpu_s() - c0;
    }
    failed = L.failed.load();
    conns = (long)esp_stat("connections_opened");
    esp_client_release(L.client);
  } else if (mode == "multi") {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, conc);
    if (h2) curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    std::vector<CURL *> easies(conc);
    size_t bytes = 0;
    for (auto &e : easies) {
      e = curl_easy_init();
      curl_common(e, url.c_str(), ca, h2, &bytes);
      if (h2) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    }
    for (int phase = 0; phase < 2; ++phase) {
      long n = phase == 0 ? warm : total;
      long started = 0, done = 0;
      double t0 = now_s(), c0 = cpu_s();
      for (auto &e : easies)
        if (started < n) {
          curl_multi_add_handle(m, e);
          ++started;
        }
      while (done < n) {
        int running = 0;
        curl_multi_perform(m, &running);
        int q = 0;
        while (CURLMsg *msg = curl_multi_info_read(m, &q)) {
          if (msg->msg != CURLMSG_DONE) continue;
          CURL *e = msg->easy_handle;
          long status = 0;
          curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
          if (msg->data.result != CURLE_OK || status != 200) ++failed;
          curl_multi_remove_handle(m, e);
          ++done;
          if (started < n) {
            curl_multi_add_handle(m, e);
            ++started;
          }
        }
        if (done < n) curl_multi_poll(m, nullptr, 0, 100, nullptr);
      }
      secs = now_s() - t0;
      cpu = cpu_s() - c0;
    }
    conns = curl_sockets_opened().load();
    for (auto &e : easies) curl_easy_cleanup(e);
    curl_multi_cleanup(m);
  } else {
    die("unknown mode", mode.c_str());
  }
  Result()
      .str("mode", mode)
      .str("proto", h2 ? "h2" : "http")
      .num("conc", conc)
      .num("n", total)
      .num("secs", secs)
      .num("rps", total / secs)
      .num("cpu_us_per_req", cpu * 1e6 / total)
      .num("connections", conns)
      .num("failed", failed)
      .print();
  return failed ? 1 : 0;
}
