// Asynchronous calls: user callbacks as a transfer's sink, and the esp_call
// handle table.
#pragma once

#include <memory>

#include "esp.h"
#include "handles.h"
#include "transfer.h"

namespace esp {

HandleTable<Transfer> &calls();

uint64_t start_call(uint64_t lease, const esp_request_opts &req, const esp_callbacks &cb, void *user);
void cancel_call(uint64_t call);
void pause_call(uint64_t call, bool paused);
// esp_call_prepare / esp_call_run: a blocking request with a call handle
// that other threads can cancel.
uint64_t prepare_call(uint64_t lease, const esp_request_opts &req);
esp_response *run_call(uint64_t call);

}  // namespace esp
