// The process's engines (see engines.h): created on demand, shared or per
// isolated client, retired off their own I/O thread, abandoned in a forked
// child. Fork handlers and esp_shutdown, which see every table, are in lifecycle.cpp.
#include "engines.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#include "client.h"
#include "engine.h"
#include "esp.h"
#include "status.h"

namespace esp {

namespace {

struct Runtime {
  std::mutex mu;
  std::shared_ptr<Engine> shared;
  std::vector<std::weak_ptr<Engine>> engines;
  std::vector<Engine *> retired;  // last reference dropped on an I/O thread
  // Held from fork_prepare to the end of the fork, so that no engine whose
  // locks are taken for it can lose its last owner (and stop) meanwhile.
  std::vector<std::shared_ptr<Engine>> forking;
  uint64_t fork_gen = 1;
  std::atomic<int> shutting_down{0};  // esp_shutdown calls running now (changed under mu)
  std::atomic<uint64_t> shutdown_epoch{0};  // esp_shutdown calls begun
};

Runtime &rt() {
  static Runtime *r = new Runtime;  // never destroyed: used until the process ends
  return *r;
}

void retire_or_delete(Engine *e) {
  if (Engine::on_io_thread()) {
    std::lock_guard<std::mutex> lock(rt().mu);
    rt().retired.push_back(e);
  } else {
    delete e;
  }
}

uint64_t fork_generation() {
  std::lock_guard<std::mutex> lock(rt().mu);
  return rt().fork_gen;
}

}  // namespace

void ensure_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fail(ESP_EINTERNAL, "curl_global_init failed");
  });
}

uint64_t shutdown_epoch() { return rt().shutdown_epoch.load(); }

void refuse_during_shutdown() {
  if (rt().shutting_down.load()) fail(ESP_ESHUTDOWN, "esp_shutdown is running: no new requests until it returns");
}

std::shared_ptr<Engine> make_engine() {
  ensure_initialized();
  refuse_during_shutdown();
  std::shared_ptr<Engine> e(new Engine, retire_or_delete);
  std::lock_guard<std::mutex> lock(rt().mu);
  if (rt().shutting_down) fail(ESP_ESHUTDOWN, "esp_shutdown is running: no new requests until it returns");
  auto &list = rt().engines;
  list.erase(std::remove_if(list.begin(), list.end(), [](const std::weak_ptr<Engine> &w) { return w.expired(); }),
             list.end());
  list.push_back(e);
  return e;
}

std::shared_ptr<Engine> shared_engine() {
  {
    std::lock_guard<std::mutex> lock(rt().mu);
    if (rt().shared) return rt().shared;
  }
  std::shared_ptr<Engine> fresh = make_engine();
  std::lock_guard<std::mutex> lock(rt().mu);
  if (!rt().shared) rt().shared = fresh;
  return rt().shared;
}

std::shared_ptr<Engine> engine_for(Client &c) {
  if (!c.config.isolate) return shared_engine();
  Client::OwnEngine &own = c.own_engine;
  std::lock_guard<std::mutex> lock(own.mu);
  uint64_t gen = fork_generation();
  if (!own.engine || own.fork_gen != gen) {
    own.engine = make_engine();
    own.fork_gen = gen;
  }
  return own.engine;
}

std::vector<std::shared_ptr<Engine>> live_engines() {
  std::lock_guard<std::mutex> lock(rt().mu);
  std::vector<std::shared_ptr<Engine>> out;
  for (auto &w : rt().engines)
    if (auto e = w.lock()) out.push_back(std::move(e));
  return out;
}

void collect_retired_engines() {
  std::vector<Engine *> dead;
  {
    std::lock_guard<std::mutex> lock(rt().mu);
    if (rt().retired.empty()) return;
    dead.swap(rt().retired);
  }
  for (Engine *e : dead) delete e;
}

void engines_lock_for_fork() {
  Runtime &r = rt();
  r.mu.lock();
  for (auto &w : r.engines) {
    if (auto e = w.lock()) {
      e->lock_for_fork();
      r.forking.push_back(std::move(e));
    }
  }
}

void engines_unlock_after_fork() {
  std::vector<std::shared_ptr<Engine>> held;
  held.swap(rt().forking);
  for (auto &e : held) e->unlock_after_fork();
  rt().mu.unlock();
}  // an engine whose last other owner let go meanwhile stops here, outside every lock

void engines_after_fork_child(std::vector<std::shared_ptr<void>> &inherited) {
  Runtime &r = rt();
  for (auto &e : r.forking) {
    e->close_inherited_sockets();
    e->unlock_after_fork();
    // The parent's engine: its thread did not survive the fork and its
    // TLS state belongs to the parent. Never freed, deliberately.
    inherited.push_back(std::move(e));
  }
  r.forking.clear();
  r.engines.clear();
  if (r.shared) inherited.push_back(std::move(r.shared));
  for (Engine *e : r.retired) inherited.emplace_back(static_cast<void *>(e), [](void *) {});
  r.retired.clear();
  ++r.fork_gen;
  r.mu.unlock();
}

std::shared_ptr<Engine> begin_shutdown() {
  std::lock_guard<std::mutex> lock(rt().mu);
  ++rt().shutting_down;
  ++rt().shutdown_epoch;
  return std::move(rt().shared);
}

void end_shutdown() {
  std::lock_guard<std::mutex> lock(rt().mu);
  --rt().shutting_down;
}

}  // namespace esp
