// Scenario 1: sequential requests on one keep-alive connection.
//   seq esp|curl URL N [CA] [post]
// esp:  esp_request in a loop on one lease (the caller-driven sync path).
// curl: one easy handle reused in a curl_easy_perform loop: the limit for
//       any libcurl-based client.
// "post" sends a chat-sized JSON body (POST) instead of a GET.
#include "common.h"

using namespace bench;

static const char kChatBody[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful "
    "assistant.\"},{\"role\":\"user\",\"content\":\"Summarise the following paragraph in one sentence: "
    "libesp is a C-ABI shared library that gives every language in a process one shared, pooled, "
    "config-keyed HTTP client for LLM provider APIs.\"}],\"temperature\":0.2,\"max_tokens\":256}";

int main(int argc, char **argv) {
  if (argc < 4) die("usage: seq esp|curl URL N [CA] [post]");
  std::string mode = argv[1], url = argv[2];
  long n = std::atol(argv[3]);
  const char *ca = arg(argc, argv, 4);
  bool post = std::string(arg(argc, argv, 5)) == "post";
  long warm = std::max(50L, n / 20);
  bool https = url.compare(0, 6, "https:") == 0;
  double t0 = 0, t1 = 0, c0 = 0, c1 = 0;
  size_t bytes = 0;
  long conns = 0;

  if (mode == "esp") {
    esp_client c = 0;
    // HTTP/1.1 on both sides: one keep-alive connection, like the raw loop.
    check(esp_client_get(esp_config(origin_of(url), ca, "\"http2\":false").c_str(), &c), "client_get");
    std::string path = path_of(url);
    esp_request_opts o{};
    o.struct_size = sizeof o;
    o.path = path.c_str();
    if (post) {
      o.method = "POST";
      o.body = kChatBody;
      o.body_len = sizeof kChatBody - 1;
    }
    for (long i = 0; i < warm + n; ++i) {
      if (i == warm) {
        t0 = now_s();
        c0 = cpu_s();
      }
      esp_response *r = nullptr;
      check(esp_request(c, &o, &r), "request");
      if (esp_response_status(r) != 200) die("status", std::to_string(esp_response_status(r)).c_str());
      size_t len = 0;
      esp_response_body(r, &len);
      bytes += len;
      esp_response_free(r);
    }
    t1 = now_s();
    c1 = cpu_s();
    conns = (long)esp_stat("connections_opened");
    esp_client_release(c);
  } else if (mode == "curl") {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *e = curl_easy_init();
    curl_common(e, url.c_str(), ca, false, &bytes);
    if (post) {
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, esp_wire_lines(true));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, kChatBody);
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(sizeof kChatBody - 1));
    }
    for (long i = 0; i < warm + n; ++i) {
      if (i == warm) {
        t0 = now_s();
        c0 = cpu_s();
      }
      CURLcode rc = curl_easy_perform(e);
      if (rc != CURLE_OK) die("curl", curl_easy_strerror(rc));
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      if (status != 200) die("status", std::to_string(status).c_str());
    }
    t1 = now_s();
    c1 = cpu_s();
    conns = curl_sockets_opened().load();
    curl_easy_cleanup(e);
  } else {
    die("unknown mode", mode.c_str());
  }
  double secs = t1 - t0;
  Result()
      .str("mode", mode)
      .str("proto", https ? "https" : "http")
      .num("n", n)
      .num("secs", secs)
      .num("rps", n / secs)
      .num("us_per_req", secs * 1e6 / n)
      .num("cpu_us_per_req", (c1 - c0) * 1e6 / n)
      .num("connections", conns)
      .num("bytes", bytes)
      .print();
  return 0;
}
