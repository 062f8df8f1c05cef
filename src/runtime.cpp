#include "runtime.h"

#include <curl/curl.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#include "engine.h"
#include "esp.h"
#include "log.h"
#include "registry.h"
#include "status.h"
#include "streams.h"
#include "calls.h"

namespace esp {

namespace {

struct Runtime {
  std::mutex mu;
  std::shared_ptr<Engine> shared;
  std::vector<std::weak_ptr<Engine>> engines;
  std::vector<Engine *> retired;  // last reference dropped on an I/O thread
  uint64_t fork_gen = 1;
  std::atomic<int> shutting_down{0};  // esp_shutdown calls running now (changed under mu)
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

// fork(): hold every lock the child will need, so none is inherited locked;
// in the child, abandon the parent's engines without touching their
// connections beyond a raw close().
void fork_prepare() {
  rt().mu.lock();
  registry().lock_for_fork();
  calls().lock();
  streams().lock();
  for (auto &w : rt().engines)
    if (auto e = w.lock()) e->lock_for_fork();
}

void fork_parent() {
  for (auto &w : rt().engines)
    if (auto e = w.lock()) e->unlock_after_fork();
  streams().unlock();
  calls().unlock();
  registry().unlock_after_fork();
  rt().mu.unlock();
}

// What a forked child inherits and must never free: the parent's engines,
// calls and streams (their threads are gone, their TLS state is the
// parent's). Kept reachable for the life of the process rather than leaked,
// so valgrind and LeakSanitizer see them as intended, not as lost.
std::vector<std::shared_ptr<void>> &inherited() {
  static auto *kept = new std::vector<std::shared_ptr<void>>;
  return *kept;
}

void fork_child() {
  reset_logger_lock_after_fork();
  Runtime &r = rt();
  for (auto &w : r.engines) {
    if (auto e = w.lock()) {
      e->close_inherited_sockets();
      e->unlock_after_fork();
      // The parent's engine: its thread did not survive the fork and its
      // TLS state belongs to the parent. Never freed, deliberately.
      inherited().push_back(std::move(e));
    }
  }
  r.engines.clear();
  if (r.shared) inherited().push_back(std::move(r.shared));
  for (Engine *e : r.retired) inherited().emplace_back(static_cast<void *>(e), [](void *) {});
  r.retired.clear();
  ++r.fork_gen;
  // Calls and streams in flight belong to the parent: their handles are stale here.
  streams().unlock();
  calls().unlock();
  for (auto &t : calls().clear()) inherited().push_back(std::move(t));
  for (auto &st : streams().clear()) inherited().push_back(std::move(st));
  registry().unlock_after_fork();
  registry().after_fork_child();
  r.mu.unlock();
}

}  // namespace

void ensure_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fail(ESP_EINTERNAL, "curl_global_init failed");
    pthread_atfork(fork_prepare, fork_parent, fork_child);
  });
}

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

uint64_t fork_generation() {
  std::lock_guard<std::mutex> lock(rt().mu);
  return rt().fork_gen;
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

int shutdown_all(int64_t timeout_ms) {
  std::shared_ptr<Engine> shared;
  {
    std::lock_guard<std::mutex> lock(rt().mu);
    ++rt().shutting_down;
    shared = std::move(rt().shared);
  }
  struct Reopen {
    ~Reopen() {
      std::lock_guard<std::mutex> lock(rt().mu);
      --rt().shutting_down;
    }
  } reopen;
  int rc = ESP_OK;
  for (auto &e : live_engines()) {
    if (!e->stop(timeout_ms)) {
      log_event(ESP_LOG_ERROR, "shutdown_timeout", {{"timeout_ms", std::to_string(timeout_ms)}});
      new std::shared_ptr<Engine>(e);  // a callback is still running: never free under it
      rc = ESP_ETIMEDOUT;
    }
  }
  shared.reset();
  end_streams_for_shutdown();
  calls().clear();
  registry().clear();
  collect_retired_engines();
  return rc;
}

}  // namespace esp
