// fork() and esp_shutdown over every table (see lifecycle.h): the one module
// allowed to lock or clear the leases, calls, streams and engines together.
#include "lifecycle.h"

#include <pthread.h>

#include <memory>
#include <mutex>
#include <vector>

#include "calls.h"
#include "engine.h"
#include "engines.h"
#include "esp.h"
#include "log.h"
#include "registry.h"
#include "response.h"
#include "streams.h"

namespace esp {

namespace {

// fork(): hold every lock the child will need, so none is inherited locked;
// in the child, abandon the parent's engines without touching their
// connections beyond a raw close().
void fork_prepare() {
  engines_lock_for_fork();
  registry().lock_for_fork();
  calls().lock();
  streams().lock();
  esp_response::lock_for_fork();
}

void fork_parent() {
  esp_response::unlock_after_fork();
  streams().unlock();
  calls().unlock();
  registry().unlock_after_fork();
  engines_unlock_after_fork();
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
  esp_response::unlock_after_fork();
  // Calls and streams in flight belong to the parent: their handles are stale here.
  streams().unlock();
  calls().unlock();
  for (auto &t : calls().clear()) inherited().push_back(std::move(t));
  for (auto &st : streams().clear()) inherited().push_back(std::move(st));
  registry().unlock_after_fork();
  registry().after_fork_child();
  engines_after_fork_child(inherited());
}

}  // namespace

void ensure_started() {
  static std::once_flag once;
  std::call_once(once, [] {
    ensure_initialized();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
  });
}

int shutdown_all(int64_t timeout_ms) {
  std::shared_ptr<Engine> shared = begin_shutdown();
  struct Reopen {
    ~Reopen() { end_shutdown(); }
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
