// The circuit breaker's transitions (see breaker.h): plain functions of the
// breaker's state, the config's thresholds and the time, so each transition is
// unit-tested without a socket.
#include "breaker.h"

#include "esp.h"

namespace esp {

const char *breaker_state_name(BreakerState s) {
  switch (s) {
    case BreakerState::kOpen: return "open";
    case BreakerState::kHalfOpen: return "half_open";
    default: return "closed";
  }
}

BreakerAdmit breaker_admit(Breaker &b, int64_t failures_to_open, int64_t now_us) {
  const BreakerState s = b.current();
  if (failures_to_open <= 0 || s == BreakerState::kClosed) return BreakerAdmit::kPass;
  if (s == BreakerState::kOpen && now_us < b.open_until_us) return BreakerAdmit::kRejectOpen;
  if (b.probe_in_flight) return BreakerAdmit::kRejectProbing;
  b.state.store(static_cast<int>(BreakerState::kHalfOpen), std::memory_order_relaxed);
  b.probe_in_flight = true;
  return BreakerAdmit::kProbe;
}

BreakerAdmit breaker_admit_in_fleet(Breaker &b, int64_t failures_to_open, bool fleet_known, BreakerAdmit fleet,
                                    int64_t now_us) {
  if (failures_to_open <= 0) return BreakerAdmit::kPass;
  if (!fleet_known) return breaker_admit(b, failures_to_open, now_us);
  switch (fleet) {
    case BreakerAdmit::kProbe:
      b.state.store(static_cast<int>(BreakerState::kHalfOpen), std::memory_order_relaxed);
      b.probe_in_flight = true;
      return BreakerAdmit::kProbe;
    case BreakerAdmit::kPass:
      if (b.current() != BreakerState::kClosed) {
        b.state.store(static_cast<int>(BreakerState::kClosed), std::memory_order_relaxed);
        b.consecutive_failures = 0;
      }
      return BreakerAdmit::kPass;
    default:
      return fleet;
  }
}

BreakerChange breaker_record(Breaker &b, bool failure, int64_t failures_to_open, int64_t cooldown_ms,
                             int64_t now_us) {
  if (failures_to_open <= 0) return BreakerChange::kNone;
  const BreakerState s = b.current();
  if (!failure) {
    b.consecutive_failures = 0;
    if (s == BreakerState::kClosed) return BreakerChange::kNone;
    b.state.store(static_cast<int>(BreakerState::kClosed), std::memory_order_relaxed);
    return BreakerChange::kClosed;
  }
  ++b.consecutive_failures;
  if (s != BreakerState::kHalfOpen && b.consecutive_failures < failures_to_open) return BreakerChange::kNone;
  b.state.store(static_cast<int>(BreakerState::kOpen), std::memory_order_relaxed);
  b.open_until_us = now_us + cooldown_ms * 1000;
  return s == BreakerState::kOpen ? BreakerChange::kNone : BreakerChange::kOpened;
}

bool counts_as_failure(int status, int http_status) {
  switch (status) {
    case ESP_OK: return http_status >= 500;
    case ESP_ECONNECT:
    case ESP_ETIMEDOUT:
    case ESP_EIO:
    case ESP_ETLS:
    case ESP_EPROTOCOL: return true;
    default: return false;
  }
}

}  // namespace esp
