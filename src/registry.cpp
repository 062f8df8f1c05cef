// The config-keyed client registry: leases, lingering after the last release,
// and the sweep that frees idle clients (see registry.h).
#include "registry.h"

#include <cstring>

#include "esp.h"
#include "log.h"
#include "clock.h"
#include "engines.h"
#include "router.h"
#include "status.h"

namespace esp {

namespace {
constexpr size_t kMaxRawAliases = 8;
}

Registry &registry() {
  static Registry *r = new Registry;  // never destroyed: handles may be used during exit
  return *r;
}

uint64_t Registry::acquire(const char *config_json) {
  ensure_initialized();
  collect_retired_engines();
  const std::string raw = config_json ? config_json : "";
  // Configs that read the environment are parsed every time: it may change.
  const bool cacheable = raw.find("api_key_env") == std::string::npos;
  std::shared_ptr<ClientState> state;
  Evicted evicted;
  int64_t now = now_us();
  bool hit = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sweep_locked(now, evicted);
    if (cacheable) {
      auto it = by_raw_.find(raw);
      if (it != by_raw_.end()) state = it->second;
    }
    if (state) {
      hit = true;
      ++counts_.hits;
      if (state->leases++ == 0) state->linger_until_us = 0;
    }
  }
  if (!state) {
    ClientConfig cfg = parse_config(config_json);  // may throw: nothing taken yet
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_canonical_.find(cfg.canonical);
    if (it != by_canonical_.end()) {
      state = it->second;
      hit = true;
      ++counts_.hits;
    } else {
      state = std::make_shared<ClientState>();
      const uint64_t id = next_id_++;
      std::shared_ptr<Router> router =
          cfg.deployments.empty() ? nullptr : std::make_shared<Router>(cfg, client_label(cfg, id));
      state->client = std::make_shared<Client>(std::move(cfg), id, std::move(router));
      by_canonical_.emplace(state->client->config.canonical, state);
      ++counts_.misses;
    }
    if (state->leases++ == 0) state->linger_until_us = 0;
    if (cacheable && state->raw_configs.size() < kMaxRawAliases && !by_raw_.count(raw)) {
      state->raw_configs.push_back(raw);
      by_raw_.emplace(raw, state);
    }
  }
  if (log_enabled(ESP_LOG_DEBUG) || (!hit && log_enabled(ESP_LOG_INFO))) {
    const Client &c = *state->client;
    log_event(hit ? ESP_LOG_DEBUG : ESP_LOG_INFO, hit ? "client_reused" : "client_created",
              {{"client", c.label}, {"id", std::to_string(c.id)}, {"provider", c.config.provider},
               {"base_url", redact_url(c.config.base_url)}});
  }
  return leases_.insert(std::move(state));
}

void Registry::release(uint64_t lease) {
  std::shared_ptr<ClientState> state = leases_.remove(lease);
  if (!state) fail(ESP_EHANDLE, "client handle is not a live lease (released twice, stale or invalid)");
  int64_t now = now_us();
  bool lingering = false;
  Evicted evicted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (--state->leases == 0) {
      state->linger_until_us = now + state->client->config.idle_ttl_ms * 1000;
      lingering = true;
      if (next_sweep_us_ == 0 || state->linger_until_us < next_sweep_us_) next_sweep_us_ = state->linger_until_us;
    }
    sweep_locked(now, evicted);
  }
  if (lingering && log_enabled(ESP_LOG_DEBUG))
    log_event(ESP_LOG_DEBUG, "client_lingering",
              {{"client", state->client->label}, {"idle_ttl_ms", std::to_string(state->client->config.idle_ttl_ms)}});
  collect_retired_engines();
}

std::shared_ptr<Client> Registry::resolve(uint64_t lease) const {
  std::shared_ptr<ClientState> state = leases_.get(lease);
  if (!state) fail(ESP_EHANDLE, "client handle is not a live lease (released, stale or invalid)");
  return state->client;
}

Registry::Evicted::~Evicted() {
  for (auto &s : states)
    log_event(ESP_LOG_DEBUG, "client_freed", {{"client", s->client->label}, {"id", std::to_string(s->client->id)}});
}

void Registry::sweep_locked(int64_t now, Evicted &out) {
  if (next_sweep_us_ == 0 || now < next_sweep_us_) return;
  next_sweep_us_ = 0;
  for (auto &kv : by_canonical_) {
    ClientState &s = *kv.second;
    if (s.leases > 0) continue;
    bool idle = s.client->stats.in_flight.load() == 0;
    if (now >= s.linger_until_us && idle) {
      out.states.push_back(kv.second);
    } else {
      // Busy past its linger time: look again shortly.
      int64_t again = now >= s.linger_until_us ? now + 100000 : s.linger_until_us;
      if (next_sweep_us_ == 0 || again < next_sweep_us_) next_sweep_us_ = again;
    }
  }
  for (auto &s : out.states) {
    for (const std::string &raw : s->raw_configs) by_raw_.erase(raw);
    by_canonical_.erase(s->client->config.canonical);
    ++counts_.evictions;
  }
}

size_t Registry::leases_of(const Client &c) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_canonical_.find(c.config.canonical);
  return it == by_canonical_.end() ? 0 : it->second->leases;
}

RegistryCounts Registry::counts() {
  Evicted evicted;
  std::lock_guard<std::mutex> lock(mu_);
  sweep_locked(now_us(), evicted);
  RegistryCounts c = counts_;
  c.clients_live = by_canonical_.size();
  c.clients_lingering = 0;
  c.leases_live = 0;
  for (auto &kv : by_canonical_) {
    if (kv.second->leases == 0) ++c.clients_lingering;
    c.leases_live += kv.second->leases;
  }
  return c;
}

std::vector<std::shared_ptr<ClientState>> Registry::snapshot() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<ClientState>> out;
  for (auto &kv : by_canonical_) out.push_back(kv.second);
  return out;
}

void Registry::clear() {
  leases_.clear();
  // The clients die after mu_ is released: an isolated client takes its
  // engine with it, and stopping an engine takes the engine's locks, which
  // fork_prepare takes before mu_ (the other order would be a deadlock).
  std::unordered_map<std::string, std::shared_ptr<ClientState>> canonical, raw;
  std::lock_guard<std::mutex> lock(mu_);
  canonical.swap(by_canonical_);
  raw.swap(by_raw_);
  next_sweep_us_ = 0;
}

void Registry::lock_for_fork() {
  mu_.lock();
  leases_.lock();
}

void Registry::unlock_after_fork() {
  leases_.unlock();
  mu_.unlock();
}

void Registry::after_fork_child() {
  // Leases stay valid in the child; what was in flight belongs to the parent.
  std::lock_guard<std::mutex> lock(mu_);
  for (auto &kv : by_canonical_) {
    Counters &s = kv.second->client->stats;
    s.in_flight.store(0);
    s.queued.store(0);
    s.streams_open.store(0);
    s.streams_paused.store(0);
    s.stream_buffered_bytes.store(0);
  }
}

}  // namespace esp
