// Scenario 4: short-lived agents. AGENTS agents, PAR at a time (PAR
// threads), each: get a client, one HTTPS request, release.
//   agents esp|curl-new URL AGENTS PAR [CA]
// esp:      esp_client_get + esp_request + esp_client_release (default config:
//           HTTP/2, max_connections 64).
// curl-new: a new curl easy handle per agent (init, perform, cleanup).
// A sampler thread records open sockets (/proc/self/fd) and RSS every 5 ms.
#include <thread>

#include "common.h"

using namespace bench;

int main(int argc, char **argv) {
  if (argc < 5) die("usage: agents esp|curl-new URL AGENTS PAR [CA]");
  std::string mode = argv[1], url = argv[2];
  long agents = std::atol(argv[3]), par = std::atol(argv[4]);
  const char *ca = arg(argc, argv, 5);
  bool esp = mode == "esp";
  if (!esp && mode != "curl-new") die("unknown mode", mode.c_str());
  std::string cfg = esp_config(origin_of(url), ca);
  std::string path = path_of(url);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  // Load everything once before the baseline RSS is taken.
  if (esp) {
    esp_client c;
    check(esp_client_get(cfg.c_str(), &c), "client_get");
    esp_client_release(c);
  }
  long rss0 = rss_kb();

  std::atomic<long> next{0}, failed{0};
  std::atomic<bool> stop{false};
  struct Sample {
    double t;
    int socks;
    long rss;
    long esp_socks;
  };
  std::vector<Sample> samples;
  double t0 = now_s();
  std::thread sampler([&] {
    while (!stop.load()) {
      samples.push_back({now_s() - t0, socket_fds(), rss_kb(), esp ? (long)esp_stat("sockets_open") : -1});
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::vector<std::thread> workers;
  for (long w = 0; w < par; ++w)
    workers.emplace_back([&] {
      esp_request_opts o{};
      o.struct_size = sizeof o;
      o.path = path.c_str();
      size_t bytes = 0;
      while (next.fetch_add(1) < agents) {
        if (esp) {
          esp_client c = 0;
          if (esp_client_get(cfg.c_str(), &c) != ESP_OK) {
            failed++;
            continue;
          }
          esp_response *r = nullptr;
          int rc = esp_request(c, &o, &r);
          if (rc != ESP_OK || esp_response_status(r) != 200) {
            if (failed++ < 3) std::fprintf(stderr, "agent: %s %s\n", esp_strerror(rc), esp_last_error());
          }
          esp_response_free(r);
          esp_client_release(c);
        } else {
          CURL *e = curl_easy_init();
          curl_common(e, url.c_str(), ca, true, &bytes);
          CURLcode rc = curl_easy_perform(e);
          if (rc != CURLE_OK && failed++ < 3) std::fprintf(stderr, "agent: %s\n", curl_easy_strerror(rc));
          curl_easy_cleanup(e);
        }
      }
    });
  for (auto &t : workers) t.join();
  double secs = now_s() - t0;
  stop = true;
  sampler.join();
  long rss_end = rss_kb();

  int peak_socks = 0;
  long peak_rss = 0, peak_esp = -1;
  for (auto &s : samples) {
    peak_socks = std::max(peak_socks, s.socks);
    peak_rss = std::max(peak_rss, s.rss);
    peak_esp = std::max(peak_esp, s.esp_socks);
  }
  // RSS at 10 % of the run vs at the end: "flat" means no growth with agents.
  long rss_10 = samples.empty() ? rss0 : samples[samples.size() / 10].rss;
  std::string series = "[";
  size_t step = std::max<size_t>(1, samples.size() / 120);
  for (size_t i = 0; i < samples.size(); i += step) {
    char b[96];
    std::snprintf(b, sizeof b, "%s[%.3f,%d,%ld]", i ? "," : "", samples[i].t, samples[i].socks, samples[i].rss);
    series += b;
  }
  series += "]";
  long conns = esp ? (long)esp_stat("connections_opened") : curl_sockets_opened().load();
  Result()
      .str("mode", mode)
      .num("agents", agents)
      .num("par", par)
      .num("secs", secs)
      .num("agents_per_s", agents / secs)
      .num("peak_sockets", peak_socks)
      .num("peak_esp_sockets_open", peak_esp)
      .num("connections", conns)
      .num("rss_start_kb", rss0)
      .num("rss_10pct_kb", rss_10)
      .num("rss_end_kb", rss_end)
      .num("rss_peak_kb", peak_rss)
      .num("failed", failed.load())
      .raw("series", series)
      .print();
  return failed.load() ? 1 : 0;
}
