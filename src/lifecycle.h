// The process's lifecycle across every table: fork handlers (no lock
// inherited held, nothing of the parent's freed in the child) and esp_shutdown.
// Above calls, streams, the registry and the engines, because it sees them all.
#pragma once

#include <cstdint>

namespace esp {

// libcurl's global init and the fork handlers, once per process; before the
// first client exists.
void ensure_started();
// esp_shutdown: while it runs, every new request and engine is refused with
// ESP_ESHUTDOWN; everything in flight completes with it.
int shutdown_all(int64_t timeout_ms);

}  // namespace esp
