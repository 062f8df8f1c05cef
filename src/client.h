// A shared client: one validated config and its accounting. Leases
// (registry.h) and in-flight transfers hold it; it owns no connections.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

struct curl_slist;

#include "config.h"
#include "metrics.h"
#include "ratelimit.h"
#include "shared_state.h"

namespace esp {

class Engine;
class Router;

// The name a client goes by in stats and logs: its config's name, else
// "client-<id>".
std::string client_label(const ClientConfig &cfg, uint64_t client_id);

struct Client {
  // `router`: the router of the config's deployments, built by the registry
  // (null without deployments).
  Client(ClientConfig cfg, uint64_t client_id, std::shared_ptr<Router> router = nullptr);
  ~Client();

  // The client's default header lines (auth, provider, user defaults,
  // User-Agent; and no Expect for a request with a body), built once;
  // requests end their lists in it.
  struct curl_slist *default_header_list(bool with_body) const;

  const ClientConfig config;
  const uint64_t id;
  const std::string label;  // config name, or "client-<id>"
  Counters stats;
  // The fleet's Redis when the config has "shared_state" (else null).
  const std::shared_ptr<SharedState> shared;
  // The credential's rate limits when the config has "rate_limit" (else null).
  const std::shared_ptr<Limiter> limiter;
  UsageTotals usage;  // tokens the provider reported, with a limiter
  // The clients of its deployments when the config has "deployments" (else
  // null): requests to a relative path go out as one of them (router.h).
  const std::shared_ptr<Router> router;

  // The engine of an isolated client, created by engine_for (engines.h).
  struct OwnEngine {
    std::mutex mu;
    std::shared_ptr<Engine> engine;
    uint64_t fork_gen = 0;  // engines of an older generation belong to a parent process
  } own_engine;

 private:
  mutable std::once_flag default_headers_once_;
  mutable struct curl_slist *default_headers_ = nullptr;
};

}  // namespace esp
