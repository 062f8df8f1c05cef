// Process-wide state: libcurl's global init, the shared engine, engine
// retirement, fork handling and shutdown.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace esp {

class Engine;

void ensure_initialized();
// A new engine whose last reference may be dropped on any thread.
std::shared_ptr<Engine> make_engine();
// The engine every non-isolated client shares (created on first use, and
// again after esp_shutdown or in a forked child).
std::shared_ptr<Engine> shared_engine();
// Bumped in a forked child: engines of an older generation belong to the parent.
uint64_t fork_generation();
// Every engine alive now.
std::vector<std::shared_ptr<Engine>> live_engines();
// Deletes engines whose last reference was dropped on an I/O thread.
void collect_retired_engines();
// esp_shutdown: while it runs, every new request and engine is refused with
// ESP_ESHUTDOWN; everything in flight completes with it.
int shutdown_all(int64_t timeout_ms);
// Throws Error(ESP_ESHUTDOWN) while esp_shutdown runs.
void refuse_during_shutdown();
// Counts the esp_shutdown calls begun so far.
uint64_t shutdown_epoch();

}  // namespace esp
