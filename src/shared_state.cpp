// The fleet's shared state in Redis through hiredis; see shared_state.h.
#include "shared_state.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "log.h"

namespace esp {

std::string credential_id(const std::string &api_key, const std::string &canonical_config) {
  const std::string what = api_key.empty() ? "config:" + canonical_config : "key:" + api_key;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char *>(what.data()), what.size(), digest);
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {  // 64 bits name a credential well enough, and reveal nothing
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

namespace {

constexpr int64_t kReconnectEveryUs = 1000000;
constexpr int64_t kBreakerRecheckUs = 100000;

int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Times are Redis's own (TIME), so the processes' clocks never need to agree.
const char *const kNowLua =
    "pcall(redis.replicate_commands)\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n";

// GCRA over the fleet: KEYS request tat, token tat, pause, learnt limits;
// ARGV configured rpm, tpm, the request's tokens, the longest wait (us).
// Returns {reserved 0|1, wait us, rpm in force, tpm in force, 0 requests | 1 tokens | 2 pause}.
const char *const kReserveLua =
    "local learnt = redis.call('HMGET', KEYS[4], 'rpm', 'tpm')\n"
    "local function in_force(c, l)\n"
    "  c = tonumber(c) or 0\n"
    "  l = tonumber(l) or 0\n"
    "  if c > 0 and l > 0 then return math.min(c, l) end\n"
    "  if c > 0 then return c end\n"
    "  return l\n"
    "end\n"
    "local rpm = in_force(ARGV[1], learnt[1])\n"
    "local tpm = in_force(ARGV[2], learnt[2])\n"
    "local function bucket(key, limit, cost)\n"
    "  if limit <= 0 then return now, 0, 0 end\n"
    "  local interval = 60000000 / limit\n"
    "  local tol = math.max(1, limit / 60) * interval\n"
    "  local tat = tonumber(redis.call('GET', key) or '0') or 0\n"
    "  return math.max(now, tat + math.min(cost * interval - tol, 0)), tat, interval\n"
    "end\n"
    "local cost = tonumber(ARGV[3])\n"
    "local ra, rtat, ri = bucket(KEYS[1], rpm, 1)\n"
    "local ta, ttat, ti = bucket(KEYS[2], tpm, cost)\n"
    "local pause = tonumber(redis.call('GET', KEYS[3]) or '0') or 0\n"
    "local at = math.max(ra, ta, pause)\n"
    "local why = 0\n"
    "if pause >= at and pause > now then why = 2 elseif ta > ra then why = 1 end\n"
    "if at - now > tonumber(ARGV[4]) then return {0, math.floor(at - now), rpm, tpm, why} end\n"
    "local function take(key, tat, interval, c)\n"
    "  if interval <= 0 then return end\n"
    "  local new = math.max(tat, at) + c * interval\n"
    "  redis.call('SET', key, string.format('%.0f', new), 'PX', math.floor((new - now) / 1000) + 60000)\n"
    "end\n"
    "take(KEYS[1], rtat, ri, 1)\n"
    "take(KEYS[2], ttat, ti, cost)\n"
    "return {1, math.floor(at - now), rpm, tpm, why}\n";

// Moves a bucket's tat by ARGV[1] units at ARGV[2] per minute (give back < 0).
const char *const kAdjustLua =
    "local limit = tonumber(ARGV[2])\n"
    "if limit <= 0 then return 0 end\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "local delta = tonumber(ARGV[1]) * 60000000 / limit\n"
    "local new = (delta > 0 and math.max(tat, now) or tat) + delta\n"
    "if new <= now then redis.call('DEL', KEYS[1]) return 1 end\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.floor((new - now) / 1000) + 60000)\n"
    "return 1\n";

// A pause of ARGV[1] us for KEYS pause, request tat, token tat: nothing goes before it ends.
const char *const kPauseLua =
    "local untl = now + tonumber(ARGV[1])\n"
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "if untl <= cur then return 0 end\n"
    "local px = math.floor(tonumber(ARGV[1]) / 1000) + 1\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', px)\n"
    "for i = 2, 3 do\n"
    "  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0\n"
    "  if tat < untl then redis.call('SET', KEYS[i], string.format('%.0f', untl), 'PX', px + 60000) end\n"
    "end\n"
    "return 1\n";

// An origin's breaker, a hash {open_until, probe_until} in Redis time: no key
// is closed; open before open_until; half-open after it, where the caller
// that finds no probe lease running takes one (ARGV[1] us).
// Returns {0 closed | 1 open | 2 probing elsewhere | 3 this caller probes, us left}.
const char *const kBreakerAdmitLua =
    "local s = redis.call('HMGET', KEYS[1], 'open_until', 'probe_until')\n"
    "local open_until = tonumber(s[1])\n"
    "if not open_until then return {0, 0} end\n"
    "if now < open_until then return {1, math.floor(open_until - now)} end\n"
    "local probe_until = tonumber(s[2]) or 0\n"
    "if now < probe_until then return {2, math.floor(probe_until - now)} end\n"
    "redis.call('HSET', KEYS[1], 'probe_until', string.format('%.0f', now + tonumber(ARGV[1])))\n"
    "return {3, 0}\n";

// Opens the breaker for ARGV[1] us (no probe out); the key outlives the
// half-open phase by ARGV[2] ms, after which an unprobed breaker is closed.
const char *const kBreakerOpenLua =
    "redis.call('HSET', KEYS[1], 'open_until', string.format('%.0f', now + tonumber(ARGV[1])), 'probe_until', '0')\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n";

// The probe ended without an outcome: the next caller may probe.
const char *const kBreakerReleaseLua =
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'probe_until', '0') end\n"
    "return 1\n";

// A cool-down of at least ARGV[1] ms: extended, never shortened.
const char *const kCoolDownLua =
    "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end\n"
    "return 1\n";

enum Script { kReserve, kAdjust, kPause, kBreakerAdmit, kBreakerOpen, kBreakerRelease, kCoolDown, kScriptCount };
const char *const kScripts[kScriptCount] = {kReserveLua,      kAdjustLua,        kPauseLua,  kBreakerAdmitLua,
                                            kBreakerOpenLua, kBreakerReleaseLua, kCoolDownLua};

// How long an open breaker's key outlives its cool-down: time enough for a
// probe, and then an origin nobody asked for is closed again.
constexpr int64_t kBreakerKeepMs = 600000;

struct ReplyDeleter {
  void operator()(redisReply *r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

int64_t element_int(const redisReply *r, size_t i) {
  if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements) return 0;
  const redisReply *e = r->element[i];
  return e->type == REDIS_REPLY_INTEGER ? e->integer : 0;
}

std::string hash_of(const std::string &s) { return credential_id(s, ""); }

// One command, binary-safe; null when the connection failed or timed out.
redisReply *send_argv(redisContext *c, const std::vector<std::string> &argv) {
  std::vector<const char *> parts;
  std::vector<size_t> lengths;
  parts.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const std::string &a : argv) {
    parts.push_back(a.c_str());
    lengths.push_back(a.size());
  }
  return static_cast<redisReply *>(redisCommandArgv(c, static_cast<int>(parts.size()), parts.data(), lengths.data()));
}

}  // namespace

SharedState::SharedState(const SharedStateConfig &cfg)
    : label("redis://" + cfg.host + ":" + std::to_string(cfg.port) + "/" + std::to_string(cfg.db)),
      ns(cfg.ns),
      host_(cfg.host),
      port_(cfg.port),
      db_(cfg.db),
      password_(cfg.password),
      timeout_ms_(cfg.timeout_ms) {}

SharedState::~SharedState() {
  if (ctx_) redisFree(ctx_);
}

std::string SharedState::key(const std::string &id, const char *what) const {
  return "esp:{" + ns + ":" + id + "}:" + what;
}

void SharedState::mark_down_locked(const char *why) {
  errors.fetch_add(1, std::memory_order_relaxed);
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
  retry_at_us_ = steady_us() + kReconnectEveryUs;
  if (up.exchange(false) || !logged_down_) {
    outages.fetch_add(1, std::memory_order_relaxed);
    logged_down_ = true;
    log_event(ESP_LOG_WARN, "shared_state_down",
              {{"redis", label}, {"namespace", ns}, {"reason", why}, {"fallback", "local limits"}});
  }
}

bool SharedState::connected_locked() {
  if (ctx_ && owner_pid_ != getpid()) {  // the parent's connection: close our copy, send nothing on it
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  if (ctx_) return true;
  if (steady_us() < retry_at_us_) return false;
  const struct timeval tv = {static_cast<time_t>(timeout_ms_ / 1000), static_cast<suseconds_t>((timeout_ms_ % 1000) * 1000)};
  ctx_ = redisConnectWithTimeout(host_.c_str(), port_, tv);
  if (!ctx_ || ctx_->err) {
    mark_down_locked(ctx_ && ctx_->err == REDIS_ERR_IO ? "cannot connect" : "connect failed");
    return false;
  }
  owner_pid_ = getpid();
  fcntl(ctx_->fd, F_SETFD, FD_CLOEXEC);
  redisSetTimeout(ctx_, tv);
  auto simple = [&](const std::vector<std::string> &argv) {
    ReplyPtr r(send_argv(ctx_, argv));
    return r && r->type != REDIS_REPLY_ERROR ? std::move(r) : nullptr;
  };
  const char *refused = nullptr;
  if (!password_.empty() && !simple({"AUTH", password_})) refused = "AUTH refused";
  if (!refused && db_ != 0 && !simple({"SELECT", std::to_string(db_)})) refused = "SELECT refused";
  shas_.clear();
  // Every script in one round trip (pipelined): a reconnect costs one wait, not one per script.
  for (const char *body : kScripts) {
    if (refused) break;
    const std::string text = std::string(kNowLua) + body;
    const char *parts[] = {"SCRIPT", "LOAD", text.c_str()};
    const size_t lengths[] = {6, 4, text.size()};
    if (redisAppendCommandArgv(ctx_, 3, parts, lengths) != REDIS_OK) refused = "SCRIPT LOAD refused";
  }
  for (size_t i = 0; i < kScriptCount && !refused; ++i) {
    void *raw = nullptr;
    ReplyPtr r(redisGetReply(ctx_, &raw) == REDIS_OK ? static_cast<redisReply *>(raw) : nullptr);
    if (!r || r->type != REDIS_REPLY_STRING) refused = "SCRIPT LOAD refused";
    else shas_.emplace_back(r->str, r->len);
  }
  if (refused) {
    mark_down_locked(refused);
    return false;
  }
  if (!up.exchange(true) && logged_down_)
    log_event(ESP_LOG_WARN, "shared_state_up", {{"redis", label}, {"namespace", ns}});
  logged_down_ = false;
  return true;
}

redisReply *SharedState::command_locked(const std::vector<std::string> &argv) {
  if (!connected_locked()) {
    fallbacks.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  calls.fetch_add(1, std::memory_order_relaxed);
  redisReply *r = send_argv(ctx_, argv);
  if (!r) {
    mark_down_locked(ctx_->err == REDIS_ERR_IO ? "timeout or connection lost" : "connection lost");
    fallbacks.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    // A script error, or a restarted server without our scripts: start over.
    const std::string msg(r->str, r->len);
    freeReplyObject(r);
    mark_down_locked(msg.compare(0, 8, "NOSCRIPT") == 0 ? "scripts lost" : "command refused");
    fallbacks.fetch_add(1, std::memory_order_relaxed);
    retry_at_us_ = 0;  // try again at once next time
    return nullptr;
  }
  return r;
}

redisReply *SharedState::script_locked(int which, const std::vector<std::string> &keys,
                                       const std::vector<std::string> &args) {
  if (!connected_locked()) {
    fallbacks.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  std::vector<std::string> argv = {"EVALSHA", shas_[static_cast<size_t>(which)], std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return command_locked(argv);
}

bool SharedState::reserve(const std::string &credential, int64_t configured_rpm, int64_t configured_tpm,
                          int64_t tokens, int64_t max_wait_us, Admission *out) {
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr r(script_locked(kReserve,
                           {key(credential, "requests"), key(credential, "tokens"), key(credential, "pause"),
                            key(credential, "learned")},
                           {std::to_string(configured_rpm), std::to_string(configured_tpm), std::to_string(tokens),
                            std::to_string(std::max<int64_t>(0, max_wait_us))}));
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 5) return false;
  out->ok = element_int(r.get(), 0) == 1;
  out->wait_us = element_int(r.get(), 1);
  out->requests_per_minute = element_int(r.get(), 2);
  out->tokens_per_minute = element_int(r.get(), 3);
  out->paused = element_int(r.get(), 4) == 2;
  out->tokens_bound = element_int(r.get(), 4) == 1;
  return true;
}

void SharedState::adjust_tokens(const std::string &credential, int64_t delta_tokens, int64_t tokens_per_minute) {
  if (delta_tokens == 0 || tokens_per_minute <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr r(script_locked(kAdjust, {key(credential, "tokens")},
                           {std::to_string(delta_tokens), std::to_string(tokens_per_minute)}));
}

void SharedState::give_back_request(const std::string &credential, int64_t requests_per_minute) {
  if (requests_per_minute <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr r(script_locked(kAdjust, {key(credential, "requests")}, {"-1", std::to_string(requests_per_minute)}));
}

void SharedState::learn(const std::string &credential, int64_t rpm, int64_t tpm) {
  std::vector<std::string> argv = {"HSET", key(credential, "learned")};
  if (rpm > 0) argv.insert(argv.end(), {"rpm", std::to_string(rpm)});
  if (tpm > 0) argv.insert(argv.end(), {"tpm", std::to_string(tpm)});
  if (argv.size() == 2) return;
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr set(command_locked(argv));
  if (set) ReplyPtr expire(command_locked({"PEXPIRE", key(credential, "learned"), "3600000"}));
}

void SharedState::pause(const std::string &credential, int64_t pause_us) {
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr r(script_locked(kPause, {key(credential, "pause"), key(credential, "requests"), key(credential, "tokens")},
                           {std::to_string(std::max<int64_t>(pause_us, 1000))}));
}

int64_t SharedState::pause_left_us(const std::string &credential) {
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr r(command_locked({"PTTL", key(credential, "pause")}));
  return r && r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? r->integer * 1000 : 0;
}

void SharedState::breaker_opened(const std::string &origin, int64_t cooldown_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t open_ms = std::max<int64_t>(cooldown_ms, 1);
  ReplyPtr r(script_locked(kBreakerOpen, {key("origin-" + hash_of(origin), "breaker")},
                           {std::to_string(open_ms * 1000), std::to_string(open_ms + kBreakerKeepMs)}));
  breakers_.clear();
}

void SharedState::breaker_closed(const std::string &origin) {
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr r(command_locked({"DEL", key("origin-" + hash_of(origin), "breaker")}));
  breakers_.clear();
}

void SharedState::breaker_probe_released(const std::string &origin) {
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr r(script_locked(kBreakerRelease, {key("origin-" + hash_of(origin), "breaker")}, {}));
  breakers_.clear();
}

SharedState::FleetBreaker SharedState::breaker_admit(const std::string &origin, int64_t probe_lease_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = steady_us();
  auto it = std::find_if(breakers_.begin(), breakers_.end(), [&](const BreakerCache &b) { return b.origin == origin; });
  if (it != breakers_.end() && now < it->valid_until_us) {
    FleetBreaker cached = it->answer;
    if (cached.admit == BreakerAdmit::kRejectOpen) cached.left_ms = std::max<int64_t>(1, (it->valid_until_us - now) / 1000);
    return cached;
  }
  ReplyPtr r(script_locked(kBreakerAdmit, {key("origin-" + hash_of(origin), "breaker")},
                           {std::to_string(std::max<int64_t>(probe_lease_ms, 1) * 1000)}));
  FleetBreaker out;
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return out;  // unknown: decide locally
  out.known = true;
  const int64_t left_us = element_int(r.get(), 1);
  out.left_ms = (left_us + 999) / 1000;
  static const BreakerAdmit kAnswers[] = {BreakerAdmit::kPass, BreakerAdmit::kRejectOpen, BreakerAdmit::kRejectProbing,
                                          BreakerAdmit::kProbe};
  const int64_t answer = element_int(r.get(), 0);
  out.admit = kAnswers[answer >= 0 && answer <= 3 ? answer : 0];
  if (out.admit == BreakerAdmit::kProbe) {
    if (it != breakers_.end()) breakers_.erase(it);  // the next caller asks again (and meets the lease)
    return out;
  }
  // An open breaker stays open to its end (a re-open only extends it).
  const int64_t valid_us = out.admit == BreakerAdmit::kRejectOpen ? std::max<int64_t>(left_us, 1000) : kBreakerRecheckUs;
  if (it == breakers_.end()) it = breakers_.insert(breakers_.end(), {origin, 0, out});
  it->valid_until_us = now + valid_us;
  it->answer = out;
  return out;
}

void SharedState::cool_down(const std::string &deployment, int64_t ms) {
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr r(script_locked(kCoolDown, {key("deployment-" + hash_of(deployment), "cooldown")},
                           {std::to_string(std::max<int64_t>(ms, 1))}));
}

void SharedState::end_cooldown(const std::string &deployment) {
  std::lock_guard<std::mutex> lock(mu_);
  ReplyPtr r(command_locked({"DEL", key("deployment-" + hash_of(deployment), "cooldown")}));
}

std::vector<int64_t> SharedState::cooldowns_left_ms(const std::vector<std::string> &deployments) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int64_t> out;
  for (const std::string &d : deployments) {
    ReplyPtr r(command_locked({"PTTL", key("deployment-" + hash_of(d), "cooldown")}));
    if (!r) return {};
    out.push_back(r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? r->integer : 0);
  }
  return out;
}

namespace {
std::mutex g_states_mu;
std::map<std::string, std::weak_ptr<SharedState>> &states() {
  static auto *m = new std::map<std::string, std::weak_ptr<SharedState>>;
  return *m;
}
}  // namespace

std::shared_ptr<SharedState> shared_state_for(const SharedStateConfig &cfg) {
  const std::string id = cfg.host + "|" + std::to_string(cfg.port) + "|" + std::to_string(cfg.db) + "|" +
                         cfg.password + "|" + cfg.ns + "|" + std::to_string(cfg.timeout_ms);
  std::lock_guard<std::mutex> lock(g_states_mu);
  auto &m = states();
  std::shared_ptr<SharedState> s = m[id].lock();
  if (!s) {
    s = std::make_shared<SharedState>(cfg);
    m[id] = s;
  }
  for (auto it = m.begin(); it != m.end();) it = it->second.expired() ? m.erase(it) : std::next(it);
  return s;
}

std::vector<std::shared_ptr<SharedState>> live_shared_states() {
  std::lock_guard<std::mutex> lock(g_states_mu);
  std::vector<std::shared_ptr<SharedState>> out;
  for (auto &kv : states())
    if (auto s = kv.second.lock()) out.push_back(std::move(s));
  return out;
}

}  // namespace esp
