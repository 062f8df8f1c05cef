// Shared fixtures of the C test suite: the mock server (one per test
// binary), RAII leases, request helpers and stats lookups.
#pragma once

#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "esp.h"
#include "mock_server.h"

MockServer &mock();

struct Lease {
  explicit Lease(const std::string &config) { rc = esp_client_get(config.c_str(), &handle); }
  ~Lease() {
    if (handle) esp_client_release(handle);
  }
  Lease(const Lease &) = delete;
  Lease &operator=(const Lease &) = delete;
  esp_client handle = 0;
  int rc = 0;
};

inline esp_request_opts opts(const char *path, const std::string *body = nullptr,
                             const std::vector<esp_header> *headers = nullptr) {
  esp_request_opts o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.path = path;
  if (body) {
    o.body = body->data();
    o.body_len = body->size();
  }
  if (headers) {
    o.headers = headers->data();
    o.header_count = headers->size();
  }
  return o;
}

struct Result {
  int rc = 0;
  int status = 0;
  int attempts = 0;
  int http_version = 0;  // 11, 20, ...
  std::string body;
  std::string error;
  std::string header(const char *name) const {
    for (auto &h : headers)
      if (strcasecmp(h.first.c_str(), name) == 0) return h.second;
    return "";
  }
  std::vector<std::pair<std::string, std::string>> headers;
};

inline Result capture(int rc, esp_response *r) {
  Result out;
  out.rc = rc;
  if (rc != ESP_OK) out.error = esp_last_error();
  if (r) {
    out.status = esp_response_status(r);
    out.attempts = esp_response_attempts(r);
    out.http_version = esp_response_http_version(r);
    size_t n = 0;
    const char *b = static_cast<const char *>(esp_response_body(r, &n));
    out.body.assign(b, n);
    for (size_t i = 0; i < esp_response_header_count(r); ++i) {
      const char *k, *v;
      esp_response_header_at(r, i, &k, &v);
      out.headers.emplace_back(k, v);
    }
    esp_response_free(r);
  }
  return out;
}

inline Result request(esp_client c, const esp_request_opts &o) {
  esp_response *r = nullptr;
  int rc = esp_request(c, &o, &r);
  return capture(rc, r);
}

inline Result get(esp_client c, const char *path, std::vector<esp_header> headers = {}) {
  esp_request_opts o = opts(path, nullptr, &headers);
  return request(c, o);
}

inline Result post(esp_client c, const char *path, const std::string &body, std::vector<esp_header> headers = {}) {
  esp_request_opts o = opts(path, &body, &headers);
  return request(c, o);
}

inline const std::string kChat = R"({"model":"gpt-test","messages":[{"role":"user","content":"hello pool"}]})";
inline const std::string kChatStream =
    R"({"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"one two three four"}]})";

// A number in a stats JSON document by path, e.g. {"registry","leases_live"}.
inline double json_number(const std::string &json, std::initializer_list<const char *> path) {
  cJSON *root = cJSON_Parse(json.c_str());
  const cJSON *j = root;
  for (const char *k : path) j = j ? cJSON_GetObjectItemCaseSensitive(j, k) : nullptr;
  double v = j && cJSON_IsNumber(j) ? j->valuedouble : -1;
  cJSON_Delete(root);
  return v;
}

inline std::string process_stats() {
  char *s = nullptr;
  EXPECT_EQ(esp_stats(&s), ESP_OK);
  std::string out = s ? s : "";
  esp_free(s);
  return out;
}

inline std::string client_stats(esp_client c) {
  char *s = nullptr;
  EXPECT_EQ(esp_client_stats(c, &s), ESP_OK);
  std::string out = s ? s : "";
  esp_free(s);
  return out;
}

// A member of deployment `index` in the client's stats; -1 when absent.
inline double deployment_stat(esp_client c, int index, const char *name) {
  cJSON *root = cJSON_Parse(client_stats(c).c_str());
  const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "client"), "deployments"), index);
  const cJSON *v = d ? cJSON_GetObjectItem(d, name) : nullptr;
  double out = cJSON_IsNumber(v) ? v->valuedouble : -1;
  cJSON_Delete(root);
  return out;
}

inline double stat(std::initializer_list<const char *> path) { return json_number(process_stats(), path); }
