// Token estimates before a request and usage found in its response; see usage.h.
#include "usage.h"

#include <cjson/cJSON.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace esp {

namespace {

int64_t number_of(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!cJSON_IsNumber(v) || !std::isfinite(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 1e15)
    return -1;
  return static_cast<int64_t>(v->valuedouble);
}

int64_t first_of(const cJSON *obj, std::initializer_list<const char *> names) {
  for (const char *n : names) {
    int64_t v = number_of(obj, n);
    if (v >= 0) return v;
  }
  return -1;
}

void merge(Usage &into, const cJSON *u) {
  if (!cJSON_IsObject(u)) return;
  into.input = std::max(into.input, first_of(u, {"prompt_tokens", "input_tokens", "promptTokenCount"}));
  into.output = std::max(into.output, first_of(u, {"completion_tokens", "output_tokens", "candidatesTokenCount"}));
  into.total = std::max(into.total, first_of(u, {"total_tokens", "totalTokenCount"}));
}

// Every `"name": {...}` in text that is a JSON member (not text inside a
// string, where the quotes would be escaped).
void scan(const std::string &text, const char *name, Usage &out) {
  const std::string needle = std::string("\"") + name + "\"";
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    if (at > 0 && text[at - 1] == '\\') continue;
    size_t p = at + needle.size();
    while (p < text.size() && std::strchr(" \t\r\n", text[p])) ++p;
    if (p >= text.size() || text[p] != ':') continue;
    ++p;
    while (p < text.size() && std::strchr(" \t\r\n", text[p])) ++p;
    if (p >= text.size() || text[p] != '{') continue;
    const char *end = nullptr;
    cJSON *obj = cJSON_ParseWithOpts(text.c_str() + p, &end, 0);
    if (!obj) continue;  // cut off at the edge of what was kept
    merge(out, obj);
    cJSON_Delete(obj);
  }
}

}  // namespace

int64_t estimate_tokens(const std::string &body) {
  int64_t estimate = static_cast<int64_t>(body.size() / 4);
  if (!body.empty() && body[0] == '{') {
    cJSON *j = cJSON_ParseWithLength(body.data(), body.size());
    if (j) {
      int64_t reply = first_of(j, {"max_tokens", "max_completion_tokens", "max_output_tokens"});
      if (reply > 0) estimate += reply;
      cJSON_Delete(j);
    }
  }
  return std::max<int64_t>(estimate, 1);
}

Usage find_usage(const std::string &text) {
  Usage u;
  scan(text, "usage", u);
  scan(text, "usageMetadata", u);
  if (u.input >= 0 || u.output >= 0) u.total = std::max(u.total, std::max<int64_t>(u.input, 0) + std::max<int64_t>(u.output, 0));
  return u;
}

void UsageScanner::feed(const char *p, size_t n) {
  if (head_.size() < kKeep) {
    size_t take = std::min(n, kKeep - head_.size());
    head_.append(p, take);
    p += take;
    n -= take;
  }
  if (n == 0) return;
  tail_.append(p, n);
  if (tail_.size() > 2 * kKeep) tail_.erase(0, tail_.size() - kKeep);
}

Usage UsageScanner::result() const {
  Usage u = find_usage(head_);
  if (!tail_.empty()) {
    Usage t = find_usage(tail_);
    u.input = std::max(u.input, t.input);
    u.output = std::max(u.output, t.output);
    u.total = std::max(u.total, t.total);
  }
  return u;
}

void UsageTotals::add(const Usage &u) {
  if (!u.known()) {
    responses_without_usage.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  responses_with_usage.fetch_add(1, std::memory_order_relaxed);
  if (u.input > 0) input_tokens.fetch_add(static_cast<uint64_t>(u.input), std::memory_order_relaxed);
  if (u.output > 0) output_tokens.fetch_add(static_cast<uint64_t>(u.output), std::memory_order_relaxed);
  total_tokens.fetch_add(static_cast<uint64_t>(u.total), std::memory_order_relaxed);
}

}  // namespace esp
