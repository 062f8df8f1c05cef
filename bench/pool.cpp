// Scenario 3: pooling. Sequential HTTPS requests, the connection kept or not.
//   pool MODE URL N [CA]
// esp-shared:    one lease, esp_request N times (pooled).
// esp-lease:     esp_client_get + esp_request + esp_client_release per request
//                on one config (the agent-per-row pattern libesp makes cheap).
// esp-isolated:  a new client per request: "isolate":true, "idle_ttl_ms":0,
//                released after each request (the anti-pattern).
// curl-reuse:    one easy handle reused (the raw limit).
// curl-new:      a new easy handle per request (the raw anti-pattern).
#include "common.h"

using namespace bench;

int main(int argc, char **argv) {
  if (argc < 4) die("usage: pool MODE URL N [CA]");
  std::string mode = argv[1], url = argv[2];
  long n = std::atol(argv[3]);
  const char *ca = arg(argc, argv, 4);
  std::string path = path_of(url);
  double t0 = now_s();
  long conns = 0;
  size_t bytes = 0;

  if (mode.compare(0, 4, "esp-") == 0) {
    bool isolated = mode == "esp-isolated";
    std::string cfg = esp_config(origin_of(url), ca, isolated ? "\"isolate\":true,\"idle_ttl_ms\":0" : "");
    esp_request_opts o{};
    o.struct_size = sizeof o;
    o.path = path.c_str();
    esp_client keep = 0;
    if (mode == "esp-shared") check(esp_client_get(cfg.c_str(), &keep), "client_get");
    for (long i = 0; i < n; ++i) {
      esp_client c = keep;
      if (!keep) check(esp_client_get(cfg.c_str(), &c), "client_get");
      esp_response *r = nullptr;
      check(esp_request(c, &o, &r), "request");
      if (esp_response_status(r) != 200) die("status");
      size_t len = 0;
      esp_response_body(r, &len);
      bytes += len;
      esp_response_free(r);
      if (isolated) {  // its engine goes with it: count its connections first
        char *json = nullptr;
        if (esp_client_stats(c, &json) == ESP_OK) {
          const char *p = std::strstr(json, "\"connections_opened\":");
          if (p) conns += std::atol(p + 21);
          esp_free(json);
        }
      }
      if (!keep) esp_client_release(c);
    }
    if (!isolated) conns = (long)esp_stat("connections_opened");
    if (keep) esp_client_release(keep);
  } else if (mode == "curl-reuse" || mode == "curl-new") {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *keep = nullptr;
    if (mode == "curl-reuse") {
      keep = curl_easy_init();
      curl_common(keep, url.c_str(), ca, true, &bytes);
    }
    for (long i = 0; i < n; ++i) {
      CURL *e = keep;
      if (!e) {
        e = curl_easy_init();
        curl_common(e, url.c_str(), ca, true, &bytes);
      }
      CURLcode rc = curl_easy_perform(e);
      if (rc != CURLE_OK) die("curl", curl_easy_strerror(rc));
      if (!keep) curl_easy_cleanup(e);
    }
    if (keep) curl_easy_cleanup(keep);
    conns = curl_sockets_opened().load();
  } else {
    die("unknown mode", mode.c_str());
  }
  double secs = now_s() - t0;
  Result()
      .str("mode", mode)
      .num("n", n)
      .num("secs", secs)
      .num("rps", n / secs)
      .num("ms_per_req", secs * 1e3 / n)
      .num("connections", conns)
      .print();
  return 0;
}
