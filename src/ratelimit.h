// Client-side rate limits per credential: requests and tokens per minute as
// GCRA buckets, limits learnt from the provider's response headers, and the
// pause a 429 imposes on everyone using the credential.
//
// A request reserves its place when it is admitted: the reservation says when
// it may go, so waiting requests keep their order without a queue of their own.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "shared_state.h"
#include "usage.h"

struct esp_response;

namespace esp {


// One GCRA bucket ("generic cell rate algorithm"): tat is the theoretical
// arrival time of the next unit. It allows a burst of one second's worth of
// the limit (at least one unit), which is never more than a provider's
// minute-sized bucket holds; a cost larger than the burst goes once the
// bucket is full and leaves it in debt, so the long-run rate never exceeds
// the limit. Times are microseconds on one monotonic clock.
class Gcra {
 public:
  void set_limit(int64_t per_minute);  // 0: unlimited
  int64_t limit() const { return per_minute_; }
  // The earliest instant >= now at which `cost` units may go.
  int64_t earliest(int64_t cost, int64_t now) const;
  // Takes `cost` units at instant `at` (from earliest()).
  void take(int64_t cost, int64_t at);
  // Gives back units reserved but not used.
  void give_back(int64_t cost);
  // Nothing goes before `until`; the bucket restarts full then.
  void hold_until(int64_t until);
  double interval_us() const { return interval_us_; }
  double tolerance_us() const { return tolerance_us_; }

 private:
  int64_t per_minute_ = 0;
  double interval_us_ = 0;   // per unit
  double tolerance_us_ = 0;  // the burst, in time
  double tat_ = 0;
};

// What a provider's response head says about the credential's limits.
struct LearnedLimits {
  int64_t requests_limit = 0;  // per minute; 0: not said
  int64_t tokens_limit = 0;
  int64_t pause_us = -1;       // a limit is exhausted (or a 429): wait this long; -1: no pause
  std::string pause_reason;    // "requests", "tokens", "429"
};
// Reads OpenAI x-ratelimit-*, Anthropic anthropic-ratelimit-* and Azure's
// headers, and retry-after on a 429. `wall_now_s` (Unix seconds) dates
// Anthropic's RFC 3339 reset times.
LearnedLimits learn_from_headers(const esp_response &head, double wall_now_s);
// "6m0s", "1.5s", "20ms", "1h2m" or plain seconds, in microseconds; -1 when unreadable.
int64_t parse_reset_duration(const char *text);

// Admission of one request.
struct Reservation {
  bool ok = false;
  int64_t at_us = 0;     // when it may go (ok)
  int64_t tokens = 0;    // tokens reserved
  std::string why;       // !ok: which limit and when it resets
  int64_t available_us = 0;  // !ok: when it could have gone
  bool fleet = false;    // made in the fleet's buckets (shared_state), not the local ones
  int64_t fleet_rpm = 0, fleet_tpm = 0;  // the fleet's limits in force then
};

// The shared view of one credential's limits, used by every client with
// that credential in this process (and, with shared_state, in the fleet).
class Limiter {
 public:
  explicit Limiter(std::string credential_id) : id(std::move(credential_id)) {}
  const std::string id;  // a hash: never the key itself

  // Each client with this credential adds its configured limits; the
  // smallest non-zero one applies.
  void configure(const RateLimitConfig &cfg);
  // Reserves one request and `tokens` if they can go by `deadline_us`. A
  // refusal counts in `rejected` unless the caller has somewhere else to go.
  Reservation reserve(int64_t tokens, int64_t now, int64_t deadline_us, bool count_refusal = true);
  // A reservation that was never used (cancelled while waiting).
  void cancel(const Reservation &r);
  // Corrects a reservation's token estimate with what the response used.
  void settle(const Reservation &r, int64_t used_tokens);
  // Learns limits and pauses from a response head.
  void learn(const esp_response &head, int64_t now);
  // Earliest instant anything may go (0: not paused), the fleet's pause included.
  int64_t paused_until(int64_t now) const;

  // With shared_state: reservations, learnt limits and pauses go through
  // the fleet's Redis first, and the local buckets only when it is down.
  void attach_shared(std::shared_ptr<SharedState> shared);

  struct Snapshot {
    int64_t requests_per_minute, tokens_per_minute;  // in force
    int64_t configured_rpm, configured_tpm, learned_rpm, learned_tpm;
    int64_t paused_ms;  // left now
  };
  Snapshot snapshot(int64_t now) const;

  UsageTotals usage;
  std::atomic<uint64_t> admitted{0};        // reservations made
  std::atomic<uint64_t> delayed{0};         // of those, ones that had to wait
  std::atomic<uint64_t> rejected{0};        // ESP_ERATELIMITED
  std::atomic<uint64_t> pauses{0};          // pauses imposed (429s, exhausted limits)
  std::atomic<uint64_t> server_429{0};      // 429 responses seen
  std::atomic<uint64_t> wait_us_total{0};   // time reservations waited

 private:
  void apply_limits_locked();
  bool reserve_in_fleet(SharedState &shared, int64_t tokens, int64_t now, int64_t deadline_us, Reservation &r);
  void pause_locked(int64_t until, const std::string &reason);

  mutable std::mutex mu_;
  int64_t configured_rpm_ = 0, configured_tpm_ = 0;
  int64_t learned_rpm_ = 0, learned_tpm_ = 0;
  Gcra requests_, tokens_;
  int64_t paused_until_ = 0;
  std::string pause_reason_;
  std::shared_ptr<SharedState> shared_;
  int64_t fleet_rpm_ = 0, fleet_tpm_ = 0;      // in force in the fleet, as last seen
  int64_t pushed_rpm_ = 0, pushed_tpm_ = 0;    // learnt limits last published
};

// The process's limiter for a credential (created on first use).
std::shared_ptr<Limiter> limiter_for(const std::string &credential, const RateLimitConfig &cfg);
// Every limiter alive now, for stats.
std::vector<std::shared_ptr<Limiter>> live_limiters();

}  // namespace esp
