// An origin's circuit breaker as data and free functions: closed, open after
// breaker_failures consecutive failures, half-open after the cooldown with a
// single probe. The engine calls these; test/c/test_units.cpp covers each move.
#pragma once

#include <atomic>
#include <cstdint>

namespace esp {

enum class BreakerState { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
const char *breaker_state_name(BreakerState s);

// Changed by the driving thread only; `state` is also read by stats.
struct Breaker {
  std::atomic<int> state{static_cast<int>(BreakerState::kClosed)};
  int consecutive_failures = 0;
  int64_t open_until_us = 0;
  bool probe_in_flight = false;

  BreakerState current() const { return static_cast<BreakerState>(state.load(std::memory_order_relaxed)); }
};

// What the breaker says about a new request.
enum class BreakerAdmit {
  kPass,           // closed (or disabled): go
  kProbe,          // the cooldown is over: this request is the half-open probe
  kRejectOpen,     // open, cooling down
  kRejectProbing,  // half-open, and the probe is still out
};
// failures_to_open <= 0 disables the breaker (always kPass). kProbe moves the
// breaker to half-open with its probe in flight.
BreakerAdmit breaker_admit(Breaker &b, int64_t failures_to_open, int64_t now_us);

// The same with a fleet sharing the breaker (shared_state): the fleet's
// answer decides while Redis gives one (`fleet_known`). Its kProbe makes this
// breaker half-open with the probe out here; its kPass (closed: another
// process's probe succeeded) closes this breaker; open and probing answers
// are passed on. Unknown (Redis down): this breaker alone, as breaker_admit.
BreakerAdmit breaker_admit_in_fleet(Breaker &b, int64_t failures_to_open, bool fleet_known, BreakerAdmit fleet,
                                    int64_t now_us);

// What recording an attempt's result changed (for logs and the fleet).
enum class BreakerChange { kNone, kOpened, kClosed };
// A success closes the breaker; a failure in half-open, or the
// failures_to_open-th in a row, opens it for cooldown_ms (again).
BreakerChange breaker_record(Breaker &b, bool failure, int64_t failures_to_open, int64_t cooldown_ms,
                             int64_t now_us);
// The probe ended without a recorded result (cancelled, shut down): the
// next request may probe.
inline void breaker_probe_done(Breaker &b) { b.probe_in_flight = false; }

// Attempt outcomes that count against an origin: connection-level failures
// and 5xx answers (status is the attempt's ESP status, http_status its answer).
bool counts_as_failure(int status, int http_status);

}  // namespace esp
