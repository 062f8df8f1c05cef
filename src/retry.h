// The retry decision as free functions of plain facts: which attempt outcomes
// are retried, the Retry-After forms a server may send, backoff with jitter,
// and the deadline. Transfer gathers the facts; test/c/test_units.cpp covers each rule.
#pragma once

#include <cstdint>
#include <ctime>

#include "config.h"
#include "status.h"

struct esp_response;

namespace esp {

// What is known when an attempt ends (or its head arrives).
struct RetryFacts {
  int attempt_status = 0;                  // ESP status of the attempt; ESP_OK: an HTTP answer
  const esp_response *resp = nullptr;      // that answer's head, when attempt_status is ESP_OK
  TimeoutKind timeout_kind = TimeoutKind::kNone;
  int attempts = 0;                        // attempts made, this one included
  bool sent = false;                       // this attempt's request went out
  bool silent_resend = false;              // the pooled connection died under the request
  bool delivered = false;                  // part of the answer reached the user already
  bool cancelled = false;
  // Of the request:
  bool retry_allowed = true;               // max_retries > 0 and no ESP_REQ_NO_RETRY
  bool no_retry_flag = false;              // ESP_REQ_NO_RETRY: one send, whatever happens
  bool replay_safe = false;                // idempotent method or idempotency key
  bool stale_retried = false;              // its one retry for a dead pooled connection is used
};

struct RetryDecision {
  int64_t delay_us = -1;     // wait this long, then try again; -1: do not retry
  bool stale_retry = false;  // this retry is the one for a dead pooled connection
};

// A draw in [0.75, 1): the jitter applied to exponential backoff.
using Jitter = double (*)();
double random_jitter();

RetryDecision decide_retry(const RetryFacts &f, const ClientConfig &cfg, int64_t now_us, int64_t deadline_us,
                           Jitter jitter = random_jitter);

// 408, 409, 429 and 5xx: the answers worth asking again (as the provider SDKs do).
bool status_retryable(int http_status);

// retry-after-ms (milliseconds), else retry-after (seconds, or an HTTP date
// relative to wall_now), in microseconds capped at a day; -1 when absent or
// unreadable.
int64_t retry_after_us(const esp_response &r, std::time_t wall_now);
inline int64_t retry_after_us(const esp_response &r) { return retry_after_us(r, std::time(nullptr)); }

// min(retry_base_ms * 2^(attempts-1), retry_max_ms) * jitter, in microseconds.
int64_t backoff_us(const ClientConfig &cfg, int attempts, double jitter);

}  // namespace esp
