// Scenario 6: the registry.
//   registry PAIRS LEASES
// 1. ns per esp_client_get + esp_client_release pair on a hot config (a lease
//    is held throughout, so the client stays live); reference: parsing the
//    same config with cJSON, the floor of a registry that parses every time.
// 2. RSS growth for LEASES live leases on one config: bytes per lease.
#include <cjson/cJSON.h>
#include <malloc.h>

#include "common.h"

using namespace bench;

int main(int argc, char **argv) {
  long pairs = argc > 1 ? std::atol(argv[1]) : 1000000;
  long leases = argc > 2 ? std::atol(argv[2]) : 100000;
  const char *cfg =
      "{\"provider\":\"openai\",\"api_key\":\"sk-bench-0123456789abcdef\",\"base_url\":"
      "\"http://127.0.0.1:9/v1\",\"timeout_ms\":30000,\"max_retries\":1}";
  esp_client hold = 0;
  check(esp_client_get(cfg, &hold), "client_get");

  // 1. get/release pairs.
  for (long i = 0; i < pairs / 10; ++i) {  // warm-up
    esp_client c;
    esp_client_get(cfg, &c);
    esp_client_release(c);
  }
  double t0 = now_s();
  for (long i = 0; i < pairs; ++i) {
    esp_client c;
    if (esp_client_get(cfg, &c) != ESP_OK) die("get");
    if (esp_client_release(c) != ESP_OK) die("release");
  }
  double pair_ns = (now_s() - t0) * 1e9 / pairs;

  long parses = pairs / 10;
  t0 = now_s();
  for (long i = 0; i < parses; ++i) cJSON_Delete(cJSON_Parse(cfg));
  double parse_ns = (now_s() - t0) * 1e9 / parses;

  // 2. live leases.
  std::vector<esp_client> v;
  v.reserve(leases);  // the caller's own array is not the library's cost
  malloc_trim(0);
  long rss0 = rss_kb();
  t0 = now_s();
  for (long i = 0; i < leases; ++i) {
    esp_client c;
    if (esp_client_get(cfg, &c) != ESP_OK) die("get");
    v.push_back(c);
  }
  double get_ns = (now_s() - t0) * 1e9 / leases;
  long rss1 = rss_kb();
  t0 = now_s();
  for (esp_client c : v) esp_client_release(c);
  double rel_ns = (now_s() - t0) * 1e9 / leases;
  malloc_trim(0);
  long rss2 = rss_kb();
  esp_client_release(hold);
  Result()
      .num("pairs", pairs)
      .num("pair_ns", pair_ns)
      .num("cjson_parse_ns", parse_ns)
      .num("leases", leases)
      .num("rss_before_kb", rss0)
      .num("rss_leases_kb", rss1)
      .num("rss_after_release_kb", rss2)
      .num("bytes_per_lease", (rss1 - rss0) * 1024.0 / leases)
      .num("get_ns_growing", get_ns)
      .num("release_ns", rel_ns)
      .print();
  return 0;
}
