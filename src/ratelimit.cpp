// Rate limits per credential: GCRA buckets, header learning, 429 pauses; see ratelimit.h.
#include "ratelimit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>

#include "log.h"
#include "response.h"
#include "shared_state.h"

namespace esp {

namespace {

constexpr double kMinuteUs = 60e6;
// A 429 without retry-after, or an exhausted limit without a reset time
// (Azure sends none): pause this long.
constexpr int64_t kDefaultPauseUs = 1000000;
// A reset or retry-after longer than this is not believed.
constexpr int64_t kMaxPauseUs = int64_t{600} * 1000000;

// "2026-12-01T15:00:30Z", "...30.25+01:00": Unix seconds, or -1.
double parse_rfc3339(const char *v) {
  struct tm tm = {};
  int consumed = 0;
  if (std::sscanf(v, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) != 6 || consumed == 0)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const char *p = v + consumed;
  double fraction = 0;
  if (*p == '.') {
    char *end = nullptr;
    fraction = std::strtod(p, &end);
    p = end;
  }
  long offset_s = 0;
  if (*p == '+' || *p == '-') {
    int hh = 0, mm = 0;
    if (std::sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return -1;
    offset_s = (*p == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
  } else if (*p != 'Z' && *p != 'z') {
    return -1;
  }
  time_t t = timegm(&tm);
  return t < 0 ? -1 : static_cast<double>(t - offset_s) + fraction;
}

int64_t header_int(const esp_response &r, const char *name) {
  const char *v = r.header(name);
  if (!v) return -1;
  char *end = nullptr;
  double d = std::strtod(v, &end);
  if (end == v || !std::isfinite(d) || d < 0 || d > 1e15) return -1;
  return static_cast<int64_t>(d);
}

// Anthropic: an RFC 3339 instant; OpenAI: a duration.
int64_t reset_in_us(const esp_response &r, const char *name, double wall_now_s) {
  const char *v = r.header(name);
  if (!v) return -1;
  int64_t d = parse_reset_duration(v);
  if (d >= 0) return d;
  double when = parse_rfc3339(v);
  if (when <= 0) return -1;
  double secs = when - wall_now_s;
  return secs <= 0 ? 0 : static_cast<int64_t>(std::min(secs * 1e6, 86400e6));
}

void note_exhausted(LearnedLimits &out, int64_t pause_us, const char *what) {
  if (pause_us < 0) pause_us = kDefaultPauseUs;
  if (pause_us > out.pause_us) {
    out.pause_us = pause_us;
    out.pause_reason = what;
  }
}

int64_t retry_after_hint_us(const esp_response &r) {
  if (const char *ms = r.header("retry-after-ms")) {
    char *end = nullptr;
    double v = std::strtod(ms, &end);
    if (end != ms && std::isfinite(v) && v >= 0) return static_cast<int64_t>(std::min(v * 1000.0, 86400e6));
  }
  if (const char *s = r.header("retry-after")) {
    char *end = nullptr;
    double v = std::strtod(s, &end);
    if (end != s && std::isfinite(v) && v >= 0) return static_cast<int64_t>(std::min(v * 1e6, 86400e6));
  }
  return -1;
}

std::string when_text(int64_t us) {
  if (us < 1000) return "now";
  return "in " + std::to_string((us + 999) / 1000) + " ms";
}

}  // namespace

// ---- the bucket ---------------------------------------------------------------

void Gcra::set_limit(int64_t per_minute) {
  if (per_minute == per_minute_) return;
  per_minute_ = per_minute;
  if (per_minute <= 0) {
    interval_us_ = tolerance_us_ = 0;
    return;
  }
  interval_us_ = kMinuteUs / static_cast<double>(per_minute);
  const double burst = std::max(1.0, static_cast<double>(per_minute) / 60.0);
  tolerance_us_ = burst * interval_us_;
}

int64_t Gcra::earliest(int64_t cost, int64_t now) const {
  if (per_minute_ <= 0) return now;
  const double need = static_cast<double>(cost) * interval_us_;
  // Within the burst: when the bucket has room for `cost`. Past it: when
  // the bucket is full (tat reached), leaving it in debt after.
  const double at = tat_ + std::min(need - tolerance_us_, 0.0);
  return std::max<int64_t>(now, static_cast<int64_t>(std::ceil(at)));
}

void Gcra::take(int64_t cost, int64_t at) {
  if (per_minute_ <= 0) return;
  tat_ = std::max(tat_, static_cast<double>(at)) + static_cast<double>(cost) * interval_us_;
}

void Gcra::give_back(int64_t cost) {
  if (per_minute_ <= 0) return;
  tat_ -= static_cast<double>(cost) * interval_us_;
}

void Gcra::hold_until(int64_t until) { tat_ = std::max(tat_, static_cast<double>(until)); }

// ---- headers ------------------------------------------------------------------

int64_t parse_reset_duration(const char *text) {
  if (!text) return -1;
  const char *p = text;
  while (*p == ' ') ++p;
  if (!*p) return -1;
  double total_s = 0;
  bool any = false;
  while (*p) {
    char *end = nullptr;
    double v = std::strtod(p, &end);
    if (end == p || !std::isfinite(v) || v < 0) return -1;
    p = end;
    double unit;
    if (std::strncmp(p, "ms", 2) == 0) unit = 1e-3, p += 2;
    else if (*p == 'h') unit = 3600, ++p;
    else if (*p == 'm') unit = 60, ++p;
    else if (*p == 's') unit = 1, ++p;
    else if (*p == '\0' && !any) unit = 1;  // plain seconds
    else return -1;
    total_s += v * unit;
    any = true;
  }
  return static_cast<int64_t>(std::min(total_s, 86400.0) * 1e6);
}

LearnedLimits learn_from_headers(const esp_response &r, double wall_now_s) {
  LearnedLimits out;
  // OpenAI (and OpenAI-compatible servers); Azure sends the remaining ones only.
  out.requests_limit = std::max<int64_t>(0, header_int(r, "x-ratelimit-limit-requests"));
  out.tokens_limit = std::max<int64_t>(0, header_int(r, "x-ratelimit-limit-tokens"));
  if (header_int(r, "x-ratelimit-remaining-requests") == 0)
    note_exhausted(out, reset_in_us(r, "x-ratelimit-reset-requests", wall_now_s), "requests");
  if (header_int(r, "x-ratelimit-remaining-tokens") == 0)
    note_exhausted(out, reset_in_us(r, "x-ratelimit-reset-tokens", wall_now_s), "tokens");
  // Anthropic: tokens (the most restrictive), or input and output tokens separately.
  if (int64_t v = header_int(r, "anthropic-ratelimit-requests-limit"); v > 0) out.requests_limit = v;
  if (int64_t v = header_int(r, "anthropic-ratelimit-tokens-limit"); v > 0) out.tokens_limit = v;
  for (const char *dim : {"requests", "tokens", "input-tokens", "output-tokens"}) {
    const std::string base = std::string("anthropic-ratelimit-") + dim;
    if (header_int(r, (base + "-remaining").c_str()) == 0)
      note_exhausted(out, reset_in_us(r, (base + "-reset").c_str(), wall_now_s),
                     std::strcmp(dim, "requests") == 0 ? "requests" : "tokens");
  }
  if (r.status == 429) {
    int64_t hint = retry_after_hint_us(r);
    if (hint >= 0) {
      out.pause_us = hint;  // the server's word beats the reset times
      out.pause_reason = "429";
    } else {
      note_exhausted(out, -1, "429");
    }
  }
  if (out.pause_us > kMaxPauseUs) out.pause_us = kMaxPauseUs;
  return out;
}

// ---- the limiter -----------------------------------------------------------------

void Limiter::configure(const RateLimitConfig &cfg) {
  std::lock_guard<std::mutex> lock(mu_);
  auto smaller = [](int64_t have, int64_t add) { return add > 0 && (have == 0 || add < have) ? add : have; };
  configured_rpm_ = smaller(configured_rpm_, cfg.requests_per_minute);
  configured_tpm_ = smaller(configured_tpm_, cfg.tokens_per_minute);
  apply_limits_locked();
}

void Limiter::apply_limits_locked() {
  auto in_force = [](int64_t configured, int64_t learned) {
    if (configured > 0 && learned > 0) return std::min(configured, learned);
    return configured > 0 ? configured : learned;
  };
  requests_.set_limit(in_force(configured_rpm_, learned_rpm_));
  tokens_.set_limit(in_force(configured_tpm_, learned_tpm_));
}

void Limiter::attach_shared(std::shared_ptr<SharedState> shared) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!shared_) shared_ = std::move(shared);
}

bool Limiter::reserve_in_fleet(SharedState &shared, int64_t tokens, int64_t now, int64_t deadline_us,
                               Reservation &r) {
  int64_t rpm, tpm;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rpm = requests_.limit();  // configured or learnt here; Redis may know smaller ones
    tpm = tokens_.limit();
  }
  SharedState::Admission a;
  if (!shared.reserve(id, rpm, tpm, tokens, deadline_us - now, &a)) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fleet_rpm_ = a.requests_per_minute;
    fleet_tpm_ = a.tokens_per_minute;
  }
  r.fleet = true;
  r.fleet_rpm = a.requests_per_minute;
  r.fleet_tpm = a.tokens_per_minute;
  if (!a.ok) {
    r.available_us = now + a.wait_us;
    if (a.paused)
      r.why = "rate limited: the provider paused this credential for the fleet; resets " + when_text(a.wait_us) +
              ", after this request's timeout";
    else if (a.tokens_bound)
      r.why = "rate limited: tokens_per_minute " + std::to_string(a.tokens_per_minute) +
              " (shared by the fleet) leaves no budget for this request (" + std::to_string(tokens) +
              " tokens) before its timeout; budget resets " + when_text(a.wait_us);
    else
      r.why = "rate limited: requests_per_minute " + std::to_string(a.requests_per_minute) +
              " (shared by the fleet) leaves no budget for this request before its timeout; budget resets " +
              when_text(a.wait_us);
    return true;
  }
  r.ok = true;
  r.at_us = now + a.wait_us;
  r.tokens = tokens;
  return true;
}

Reservation Limiter::reserve(int64_t tokens, int64_t now, int64_t deadline_us, bool count_refusal) {
  Reservation r;
  std::shared_ptr<SharedState> shared;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shared = shared_;
  }
  if (!shared || !reserve_in_fleet(*shared, tokens, now, deadline_us, r)) {
    // Alone, or Redis is down: the local buckets decide (fail open).
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t by_requests = requests_.earliest(1, now);
    const int64_t by_tokens = tokens_.earliest(tokens, now);
    const int64_t at = std::max({by_requests, by_tokens, paused_until_, now});
    if (at > deadline_us) {
      r.available_us = at;
      if (paused_until_ > std::max(by_requests, by_tokens))
        r.why = "rate limited: the provider paused this credential (" + pause_reason_ + "); resets " +
                when_text(at - now) + ", after this request's timeout";
      else if (by_tokens > by_requests)
        r.why = "rate limited: tokens_per_minute " + std::to_string(tokens_.limit()) +
                " leaves no budget for this request (" + std::to_string(tokens) +
                " tokens) before its timeout; budget resets " + when_text(at - now);
      else
        r.why = "rate limited: requests_per_minute " + std::to_string(requests_.limit()) +
                " leaves no budget for this request before its timeout; budget resets " + when_text(at - now);
    } else {
      requests_.take(1, at);
      tokens_.take(tokens, at);
      r.ok = true;
      r.at_us = at;
      r.tokens = tokens;
    }
  }
  if (!r.ok) {
    if (count_refusal) rejected.fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  admitted.fetch_add(1, std::memory_order_relaxed);
  if (r.at_us > now) {
    delayed.fetch_add(1, std::memory_order_relaxed);
    wait_us_total.fetch_add(static_cast<uint64_t>(r.at_us - now), std::memory_order_relaxed);
  }
  return r;
}

void Limiter::cancel(const Reservation &r) {
  if (!r.ok) return;
  if (r.fleet) {
    shared_->give_back_request(id, r.fleet_rpm);
    shared_->adjust_tokens(id, -r.tokens, r.fleet_tpm);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  requests_.give_back(1);
  tokens_.give_back(r.tokens);
}

void Limiter::settle(const Reservation &r, int64_t used_tokens) {
  if (used_tokens < 0 || used_tokens == r.tokens) return;
  if (r.fleet) return shared_->adjust_tokens(id, used_tokens - r.tokens, r.fleet_tpm);
  std::lock_guard<std::mutex> lock(mu_);
  if (used_tokens < r.tokens)
    tokens_.give_back(r.tokens - used_tokens);
  else
    tokens_.take(used_tokens - r.tokens, 0);
}

void Limiter::pause_locked(int64_t until, const std::string &reason) {
  if (until <= paused_until_) return;
  paused_until_ = until;
  pause_reason_ = reason;
  requests_.hold_until(until);
  tokens_.hold_until(until);
  pauses.fetch_add(1, std::memory_order_relaxed);
}

void Limiter::learn(const esp_response &head, int64_t now) {
  const double wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  LearnedLimits l = learn_from_headers(head, wall);
  if (head.status == 429) server_429.fetch_add(1, std::memory_order_relaxed);
  if (l.requests_limit == 0 && l.tokens_limit == 0 && l.pause_us < 0) return;
  std::shared_ptr<SharedState> shared;
  int64_t publish_rpm = 0, publish_tpm = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (l.requests_limit > 0 && l.requests_limit != learned_rpm_) {
      learned_rpm_ = l.requests_limit;
      log_event(ESP_LOG_INFO, "rate_limit_learned",
                {{"credential", id}, {"requests_per_minute", std::to_string(learned_rpm_)}});
    }
    if (l.tokens_limit > 0 && l.tokens_limit != learned_tpm_) {
      learned_tpm_ = l.tokens_limit;
      log_event(ESP_LOG_INFO, "rate_limit_learned", {{"credential", id}, {"tokens_per_minute", std::to_string(learned_tpm_)}});
    }
    apply_limits_locked();
    if (l.pause_us >= 0) {
      const int64_t until = now + l.pause_us;
      if (until > paused_until_)
        log_event(ESP_LOG_INFO, "rate_limit_pause",
                  {{"credential", id}, {"reason", l.pause_reason}, {"ms", std::to_string(l.pause_us / 1000)}});
      pause_locked(until, l.pause_reason);
    }
    shared = shared_;
    if (shared && (learned_rpm_ != pushed_rpm_ || learned_tpm_ != pushed_tpm_)) {
      publish_rpm = pushed_rpm_ = learned_rpm_;
      publish_tpm = pushed_tpm_ = learned_tpm_;
    }
  }
  if (!shared) return;
  if (publish_rpm || publish_tpm) shared->learn(id, publish_rpm, publish_tpm);
  if (l.pause_us >= 0) shared->pause(id, l.pause_us);
}

int64_t Limiter::paused_until(int64_t now) const {
  std::shared_ptr<SharedState> shared;
  int64_t local;
  {
    std::lock_guard<std::mutex> lock(mu_);
    local = paused_until_;
    shared = shared_;
  }
  const int64_t fleet_left = shared ? shared->pause_left_us(id) : 0;
  return std::max(local, fleet_left > 0 ? now + fleet_left : 0);
}

Limiter::Snapshot Limiter::snapshot(int64_t now) const {
  std::lock_guard<std::mutex> lock(mu_);
  const bool fleet = shared_ && (fleet_rpm_ || fleet_tpm_);
  return {fleet ? fleet_rpm_ : requests_.limit(), fleet ? fleet_tpm_ : tokens_.limit(), configured_rpm_, configured_tpm_,
          learned_rpm_, learned_tpm_, paused_until_ > now ? (paused_until_ - now) / 1000 : 0};
}

// ---- credentials ------------------------------------------------------------------

namespace {
std::mutex g_limiters_mu;
std::map<std::string, std::weak_ptr<Limiter>> &limiters() {
  static auto *m = new std::map<std::string, std::weak_ptr<Limiter>>;
  return *m;
}
}  // namespace

std::shared_ptr<Limiter> limiter_for(const std::string &credential, const RateLimitConfig &cfg) {
  std::lock_guard<std::mutex> lock(g_limiters_mu);
  auto &m = limiters();
  std::shared_ptr<Limiter> l = m[credential].lock();
  if (!l) {
    l = std::make_shared<Limiter>(credential);
    m[credential] = l;
  }
  l->configure(cfg);
  for (auto it = m.begin(); it != m.end();) it = it->second.expired() ? m.erase(it) : std::next(it);
  return l;
}

std::vector<std::shared_ptr<Limiter>> live_limiters() {
  std::lock_guard<std::mutex> lock(g_limiters_mu);
  std::vector<std::shared_ptr<Limiter>> out;
  for (auto &kv : limiters())
    if (auto l = kv.second.lock()) out.push_back(std::move(l));
  return out;
}

}  // namespace esp
