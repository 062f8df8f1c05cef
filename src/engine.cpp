// The engine as a group of shards (see engine.h): how many, where a
// transfer starts, and the origins they share.
#include "engine.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>

#include "log.h"
#include "transfer.h"

namespace esp {

namespace {

// One I/O thread per core is what lifts the many-in-flight rows; past four
// the shared origin locks cost more than the threads bring.
int configured_shards() {
  if (const char *env = std::getenv("ESP_IO_THREADS")) {
    char *end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= kMaxShards) return static_cast<int>(n);
    log_event(ESP_LOG_WARN, "bad_io_threads", {{"ESP_IO_THREADS", env}, {"expected", "1.." + std::to_string(kMaxShards)}});
  }
  const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<int>(std::min<long>(std::max<long>(cores, 1), 4));
}

}  // namespace

Engine::Engine() {
  const int n = configured_shards();
  for (int i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>(i));
  std::vector<Shard *> all;
  for (auto &s : shards_) all.push_back(s.get());
  for (auto &s : shards_) s->siblings = all;
}

Engine::~Engine() { stop(); }

bool Engine::stop(int64_t timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  bool all = true;
  for (auto &s : shards_) {
    int64_t left = -1;
    if (timeout_ms >= 0)
      left = std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      until - std::chrono::steady_clock::now()).count());
    all = s->stop(left) && all;
  }
  return all;
}

Origin *Engine::origin(const std::string &key, const std::string &label) {
  std::lock_guard<std::mutex> lock(origins_mu_);
  auto it = origins_.find(key);
  if (it != origins_.end()) return it->second.get();
  auto o = std::make_unique<Origin>(key, label);
  o->home_shard = static_cast<int>(std::hash<std::string>{}(key) % shards_.size());
  Origin *raw = o.get();
  origins_.emplace(key, std::move(o));
  return raw;
}

Shard &Engine::place(Transfer &t, bool sync) {
  Origin &o = *t.origin;
  if (shards_.size() == 1) return *shards_[0];
  // A rate-limited client's requests take their turns in the order they
  // were made: one shard reserves them all. Streams share one too
  // (Sink::streams_body), which leaves the other shards to requests.
  if (shares_connections(o, t.spec.multiplexable) || t.client->limiter || t.sink->streams_body())
    return *shards_[static_cast<size_t>(o.home_shard)];
  std::lock_guard<std::mutex> lock(o.mu);
  const Shard *caller = Shard::current();  // a callback starting the next request
  Shard *best = shards_[0].get();
  int best_rank = -1;
  for (size_t i = 0; i < shards_.size(); ++i) {
    Shard &s = *shards_[i];
    // An idle connection here: no new one and no hand-over to the shard
    // that has one; nothing to do here: the caller drives it itself; the
    // calling I/O thread's own shard: no wake-up of another thread.
    const int rank = (o.tokens_idle[i] > 0 ? 2 : 0) + (sync && s.idle() ? 1 : 0) + (&s == caller ? 1 : 0);
    if (rank > best_rank || (rank == best_rank && s.load() < best->load())) {
      best = &s;
      best_rank = rank;
    }
  }
  return *best;
}

void Engine::run_sync(const std::shared_ptr<Transfer> &t) {
  Shard &s = place(*t, true);
  t->ticket = tickets_.fetch_add(1, std::memory_order_relaxed);
  t->watcher = &s;
  t->shard.store(&s);
  s.run_sync(t);
}

void Engine::submit(const std::shared_ptr<Transfer> &t) {
  Shard &s = place(*t, false);
  t->ticket = tickets_.fetch_add(1, std::memory_order_relaxed);
  t->watcher = &s;
  t->shard.store(&s);
  s.submit(t);
}

// Not submitted yet (a prepared call): the flag stops it when it is.
void Engine::cancel(const std::shared_ptr<Transfer> &t) {
  t->cancel_requested.store(true);
  if (Shard *s = t->shard.load()) s->cancel(t);
}

void Engine::set_paused(const std::shared_ptr<Transfer> &t, bool paused) {
  t->pause_requested.store(paused);
  if (Shard *s = t->shard.load()) s->set_paused(t, paused);
}

int64_t Engine::sockets_open() const {
  int64_t n = 0;
  for (auto &s : shards_) n += s->sockets_open();
  return n;
}

void Engine::close_inherited_sockets() {
  for (auto &s : shards_) s->close_inherited_sockets();
}

void Engine::lock_for_fork() {
  for (auto &s : shards_) s->lock_for_fork();
}

void Engine::unlock_after_fork() {
  for (auto &s : shards_) s->unlock_after_fork();
}

}  // namespace esp
