// Whether and when to try a request again (see retry.h): the rules of the
// provider SDKs (2 retries, 408/409/429/5xx, Retry-After honoured up to a cap,
// x-should-retry overriding) plus libesp's own: never a second send of a
// request that is not safe to replay, never past the deadline.
#include "retry.h"

#include <curl/curl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "esp.h"
#include "response.h"

namespace esp {

double random_jitter() {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.75, 1.0)(gen);
}

bool status_retryable(int http_status) {
  return http_status == 408 || http_status == 409 || http_status == 429 || http_status >= 500;
}

// Hints are capped at a day: a larger double does not fit the int64_t
// microseconds (undefined behaviour).
int64_t retry_after_us(const esp_response &r, std::time_t wall_now) {
  constexpr double kMaxUs = 86400e6;
  if (const char *ms = r.header("retry-after-ms")) {
    char *end = nullptr;
    double v = std::strtod(ms, &end);
    if (end != ms && std::isfinite(v) && v >= 0) return static_cast<int64_t>(std::min(v * 1000.0, kMaxUs));
  }
  if (const char *ra = r.header("retry-after")) {
    char *end = nullptr;
    double v = std::strtod(ra, &end);
    if (end != ra && *end == '\0' && std::isfinite(v) && v >= 0)
      return static_cast<int64_t>(std::min(v * 1e6, kMaxUs));
    std::time_t when = curl_getdate(ra, nullptr);
    if (when > 0) {
      double secs = std::difftime(when, wall_now);
      return secs > 0 ? static_cast<int64_t>(std::min(secs * 1e6, kMaxUs)) : 0;
    }
  }
  return -1;
}

int64_t backoff_us(const ClientConfig &cfg, int attempts, double jitter) {
  double backoff = static_cast<double>(cfg.retry_base_ms) * std::pow(2.0, attempts - 1);
  backoff = std::min(backoff, static_cast<double>(cfg.retry_max_ms));
  return static_cast<int64_t>(backoff * jitter * 1000.0);
}

RetryDecision decide_retry(const RetryFacts &f, const ClientConfig &cfg, int64_t now_us, int64_t deadline_us,
                           Jitter jitter) {
  RetryDecision no;
  if (f.cancelled) return no;
  const bool out_of_retries = !f.retry_allowed || f.attempts > cfg.max_retries;
  // A pooled connection found dead once the request was on it is the pool's
  // fault, not the server's: a request safe to send again gets one fresh
  // connection even with max_retries 0, as libcurl's own resend gave it
  // (but as a counted attempt). ESP_REQ_NO_RETRY still means one send.
  if (f.silent_resend && f.replay_safe && !f.no_retry_flag && !f.stale_retried && out_of_retries)
    return now_us >= deadline_us ? no : RetryDecision{0, true};
  if (out_of_retries) return no;
  // Sent once already and not safe to send again: at most one send.
  if (f.sent && !f.replay_safe) return no;
  int64_t hinted = -1;
  if (f.attempt_status == ESP_OK) {
    const char *should = f.resp ? f.resp->should_retry_hint() : nullptr;
    if (should && std::strcmp(should, "false") == 0) return no;
    const bool forced = should && std::strcmp(should, "true") == 0;
    if (!forced && !(f.resp && status_retryable(f.resp->status))) return no;
    if (f.resp) hinted = retry_after_us(*f.resp);
  } else {
    const bool transient = f.attempt_status == ESP_ECONNECT || f.attempt_status == ESP_EIO ||
                           (f.attempt_status == ESP_ETIMEDOUT && f.timeout_kind != TimeoutKind::kTotal);
    // Data already handed to the user cannot be taken back.
    if (!transient || f.delivered) return no;
  }
  int64_t delay;
  if (f.silent_resend)
    delay = 0;  // a stale pooled connection, not a struggling server
  else if (hinted >= 0 && hinted <= cfg.retry_after_max_ms * 1000)
    delay = hinted;
  else
    delay = backoff_us(cfg, f.attempts, jitter());
  if (now_us + delay >= deadline_us) return no;
  return RetryDecision{delay, false};
}

}  // namespace esp
