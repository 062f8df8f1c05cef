// Turning an esp_request_opts into an accepted transfer (where it may go,
// which headers it carries), and the blocking request built on it.
#pragma once

#include <memory>

#include "esp.h"
#include "transfer.h"

namespace esp {

// Builds a validated RequestSpec from the ABI struct: where it goes, its
// header lines, its timeouts; throws Error(ESP_EINVAL).
RequestSpec build_request(const Client &client, const esp_request_opts &req);
// Validates the request, resolves its engine and origin. The transfer is not
// yet submitted (the engine counts it once it accepts it).
std::shared_ptr<Transfer> make_transfer(uint64_t lease, const esp_request_opts &req,
                                        std::unique_ptr<Sink> sink);
// Ends a transfer the engine refused (never counted, never completed).
void unaccept(Transfer &t);
// A transfer whose caller blocks for the result (run_and_wait).
std::shared_ptr<Transfer> make_waiting_transfer(uint64_t lease, const esp_request_opts &req);
// Runs a waiting transfer and blocks until it completes; throws Error.
esp_response *run_and_wait(const std::shared_ptr<Transfer> &t);
// esp_request: throws Error on failure.
esp_response *perform(uint64_t lease, const esp_request_opts &req);
// Throws Error(ESP_EINVAL) on an I/O thread, where blocking would deadlock.
void refuse_on_io_thread(const char *function);

}  // namespace esp
