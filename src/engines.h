// Which engine carries a client, and the lives of engines: libcurl's global
// init, the shared engine, isolated clients' own engines, fork generations,
// engines whose last reference dropped on their own I/O thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace esp {

class Engine;
struct Client;

// curl_global_init, once per process.
void ensure_initialized();
// A new engine whose last reference may be dropped on any thread.
std::shared_ptr<Engine> make_engine();
// The engine every non-isolated client shares (created on first use, and
// again after esp_shutdown or in a forked child).
std::shared_ptr<Engine> shared_engine();
// The engine that carries c's transfers: the shared one, or c's own when its
// config says "isolate" (created lazily, and again in a forked child).
std::shared_ptr<Engine> engine_for(Client &c);
// Every engine alive now.
std::vector<std::shared_ptr<Engine>> live_engines();
// Deletes engines whose last reference was dropped on an I/O thread.
void collect_retired_engines();
// Throws Error(ESP_ESHUTDOWN) while esp_shutdown runs.
void refuse_during_shutdown();
// Counts the esp_shutdown calls begun so far.
uint64_t shutdown_epoch();

// ---- for lifecycle.cpp (fork and esp_shutdown) ---------------------------------

// fork(): take the engines' locks so the child inherits none locked.
void engines_lock_for_fork();
void engines_unlock_after_fork();
// In the child: the parent's engines lose their sockets (closed raw, no TLS
// close_notify) and are kept in `inherited`, never freed; new ones start lazily.
void engines_after_fork_child(std::vector<std::shared_ptr<void>> &inherited);
// esp_shutdown: refuse new engines and requests until end_shutdown; returns
// the shared engine, which the caller drops once every engine has stopped.
std::shared_ptr<Engine> begin_shutdown();
void end_shutdown();

}  // namespace esp
