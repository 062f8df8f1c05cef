// State shared by a fleet of processes through Redis (hiredis): the rate
// limit buckets, learnt limits and 429 pauses of each credential, the
// circuit breaker of each origin (with one half-open probe for the whole
// fleet) and the cool-downs of deployments, changed atomically by
// server-side Lua scripts. Every key is "esp:{<namespace>:<id>}:<what>" (one
// hash tag per credential, origin or deployment, so Redis Cluster keeps a
// script's keys in one slot) and holds no secret: credentials, origins and
// deployments appear only as hashes.
//
// Redis unreachable or slower than timeout_ms: calls fail fast and the
// callers fall back to their local state (fail open); the next attempt to
// reconnect is a second later. Each transition is logged once and counted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "breaker.h"
#include "config.h"

struct redisContext;
struct redisReply;

namespace esp {

// The hash that names a credential: of the API key, or of the config's
// identity when there is no key. Hex, never reversible to the key.
std::string credential_id(const std::string &api_key, const std::string &canonical_config);

class SharedState {
 public:
  explicit SharedState(const SharedStateConfig &cfg);
  ~SharedState();
  SharedState(const SharedState &) = delete;
  SharedState &operator=(const SharedState &) = delete;

  // "redis://host:port/db" (no password) and the namespace, for stats.
  const std::string label;
  const std::string ns;

  // A GCRA reservation on the fleet's buckets of a credential: the limits in
  // force are the configured ones or the learnt ones in Redis, whichever is
  // smaller. False when Redis did not answer (then decide locally).
  struct Admission {
    bool ok = false;         // reserved
    int64_t wait_us = 0;     // from now until it may go (also when !ok)
    int64_t requests_per_minute = 0;
    int64_t tokens_per_minute = 0;
    bool paused = false;     // the binding constraint is a pause
    bool tokens_bound = false;  // else requests
  };
  bool reserve(const std::string &credential, int64_t configured_rpm, int64_t configured_tpm, int64_t tokens,
               int64_t max_wait_us, Admission *out);
  // Gives back (negative) or takes more (positive) tokens, e.g. after usage.
  void adjust_tokens(const std::string &credential, int64_t delta_tokens, int64_t tokens_per_minute);
  void give_back_request(const std::string &credential, int64_t requests_per_minute);
  // Publishes learnt limits (0: not learnt) and a pause for the fleet.
  void learn(const std::string &credential, int64_t rpm, int64_t tpm);
  void pause(const std::string &credential, int64_t pause_us);
  // Microseconds the credential stays paused (0: not paused or unknown).
  int64_t pause_left_us(const std::string &credential);

  // The breaker of an origin, by its "scheme://host:port": what the fleet
  // says of a new request. Open until its cool-down ends; then half-open,
  // and exactly one caller in the fleet gets kProbe (a lease on the probe
  // for probe_lease_ms, so a probe whose process died is not waited for
  // long); the others get kProbing until the probe's outcome is recorded.
  // A closed, open or probing answer is reused for up to 100 ms per origin.
  // kUnknown: Redis did not answer (decide locally).
  struct FleetBreaker {
    BreakerAdmit admit = BreakerAdmit::kPass;
    bool known = false;
    int64_t left_ms = 0;  // open: until half-open; probing: the probe's lease
  };
  FleetBreaker breaker_admit(const std::string &origin, int64_t probe_lease_ms);
  // The origin's breaker opened (or its probe failed): open for the fleet.
  void breaker_opened(const std::string &origin, int64_t cooldown_ms);
  // Closed (its probe, or any request, succeeded).
  void breaker_closed(const std::string &origin);
  // A probe taken by this process ended without an outcome: another may probe.
  void breaker_probe_released(const std::string &origin);

  // Deployment cool-downs, by an identity text (hashed): cool_down extends
  // the fleet's cool-down to at least `ms`, end_cooldown ends it, and
  // cooldowns_left_ms gives what is left of each (empty when Redis is down).
  void cool_down(const std::string &deployment, int64_t ms);
  void end_cooldown(const std::string &deployment);
  std::vector<int64_t> cooldowns_left_ms(const std::vector<std::string> &deployments);

  std::atomic<bool> up{false};
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> fallbacks{0};  // decisions taken locally because Redis was down
  std::atomic<uint64_t> outages{0};    // transitions to down

  // Hash tag and key of a credential's or origin's state.
  std::string key(const std::string &id, const char *what) const;

 private:
  // Runs a command; null (and Redis marked down) on failure. Needs mu_.
  redisReply *command_locked(const std::vector<std::string> &argv);
  redisReply *script_locked(int which, const std::vector<std::string> &keys, const std::vector<std::string> &args);
  bool connected_locked();
  void mark_down_locked(const char *why);

  const std::string host_;
  const int port_;
  const int db_;
  const std::string password_;
  const int64_t timeout_ms_;
  std::mutex mu_;
  redisContext *ctx_ = nullptr;
  int owner_pid_ = 0;          // a forked child must not use its parent's connection
  int64_t retry_at_us_ = 0;    // next reconnect attempt while down
  bool logged_down_ = false;
  std::vector<std::string> shas_;  // of the loaded scripts
  struct BreakerCache {
    std::string origin;
    int64_t valid_until_us;
    FleetBreaker answer;
  };
  std::vector<BreakerCache> breakers_;
};

// The process's SharedState for a config (one per redis URL and namespace).
std::shared_ptr<SharedState> shared_state_for(const SharedStateConfig &cfg);
std::vector<std::shared_ptr<SharedState>> live_shared_states();

}  // namespace esp
