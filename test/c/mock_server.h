// Starts the bundled mock LLM server (test/mock/server.js) as a child
// process on ephemeral loopback ports, and talks to its control endpoints
// with plain libcurl (its own connections, never libesp's pool).
#pragma once

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "node_child.h"

class MockServer {
 public:
  explicit MockServer(const std::vector<std::string> &extra_args = {})
      : node_("test/mock/server.js", extra_args) {
    const std::string line = node_.read_line();
    node_.stop_reading();
    cJSON *j = cJSON_Parse(line.c_str());
    if (!j) throw std::runtime_error("mock server printed no JSON");
    http_port = cJSON_GetObjectItem(j, "http_port")->valueint;
    https_port = cJSON_GetObjectItem(j, "https_port")->valueint;
    ca_file = cJSON_GetObjectItem(j, "ca_file")->valuestring;
    cJSON_Delete(j);
  }

  void stop() { node_.stop(); }

  std::string http_base() const { return "http://127.0.0.1:" + std::to_string(http_port); }
  std::string https_base() const { return "https://localhost:" + std::to_string(https_port); }

  // Client config JSON for the plain-HTTP listener plus extra members ("\"k\":v,...").
  std::string config(const std::string &extra = "") const {
    return "{\"base_url\":\"" + http_base() + "/v1\",\"api_key\":\"sk-test-SECRET\"" +
           (extra.empty() ? "" : "," + extra) + "}";
  }
  std::string tls_config(const std::string &extra = "") const {
    return "{\"base_url\":\"" + https_base() + "/v1\",\"api_key\":\"sk-test-SECRET\",\"ca_file\":\"" + ca_file +
           "\"" + (extra.empty() ? "" : "," + extra) + "}";
  }

  // GET/POST on the control API with a fresh connection; returns the body.
  std::string control(const std::string &path, bool post = false) const {
    CURL *e = curl_easy_init();
    std::string body;
    curl_easy_setopt(e, CURLOPT_URL, (http_base() + path).c_str());
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    if (post) curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, +[](char *p, size_t s, size_t n, void *u) {
      static_cast<std::string *>(u)->append(p, s * n);
      return s * n;
    });
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    curl_easy_perform(e);
    curl_easy_cleanup(e);
    return body;
  }

  // A counter of /_mock/stats (control requests never count in them).
  long stat(const char *name) const {
    cJSON *j = cJSON_Parse(control("/_mock/stats").c_str());
    long v = j && cJSON_GetObjectItem(j, name) ? static_cast<long>(cJSON_GetObjectItem(j, name)->valuedouble) : -1;
    cJSON_Delete(j);
    return v;
  }

  int http_port = 0;
  int https_port = 0;
  std::string ca_file;

 private:
  NodeChild node_;
};
