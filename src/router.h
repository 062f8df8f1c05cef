// The router of a client with "deployments": a client per deployment (its
// own credential, limiter and stats), their state under the policy of
// deployments.h, and the hooks that move a transfer from one to the next.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "deployments.h"
#include "esp.h"

namespace esp {

struct Client;
class Transfer;

class Router {
 public:
  // Builds a client per deployment (its own credential, limiter, stats).
  Router(const ClientConfig &cfg, const std::string &parent_label);

  struct Choice {
    int index = -1;
    std::shared_ptr<Client> client;
  };
  // Picks the next deployment and counts the attempt in flight there.
  Choice pick(uint64_t tried, int64_t now_us);
  // The attempt on deployment `index` ended (for good, or before moving on).
  void ended(int index, bool failed, int64_t retry_after_us, int64_t now_us);
  void note_failover(int from) { failovers_[static_cast<size_t>(from)]++; }

  struct Report {
    std::string name;
    std::shared_ptr<Client> client;
    int64_t weight, in_flight, cooling_ms;
    uint64_t picked, failures, failovers;
  };
  std::vector<Report> report(int64_t now_us);
  size_t size() const { return clients_.size(); }
  Routing routing() const { return routing_; }

 private:
  const Routing routing_;
  const int64_t cooldown_ms_;
  const int64_t retry_after_max_us_;
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::mutex mu_;
  PickerState state_;
  std::vector<uint64_t> picked_, failures_, failovers_;
};

// A request routed over a client's deployments: what the transfer needs to
// be rebuilt for the next deployment.
struct Routed {
  std::shared_ptr<Router> router;
  std::shared_ptr<Client> parent;
  int index = -1;      // the deployment of the current attempt
  uint64_t tried = 0;  // deployments tried so far (bits)
  int failovers = 0;
  int attempts_before = 0;  // the transfer's attempts before the current deployment
  // A copy of the caller's request (the ABI struct points into caller memory).
  std::string method, path;
  std::vector<std::pair<std::string, std::string>> header_text;
  esp_request_opts opts{};

  // The esp_request_opts over the copy (body from the transfer's own spec).
  esp_request_opts request(const std::string &body) const;
};

// Routes a request made on `client` when it has deployments and a relative
// path: picks a deployment and returns its client and the routing record;
// else returns null and leaves `client` as it is.
std::unique_ptr<Routed> route_request(std::shared_ptr<Client> &client, const esp_request_opts &req);

// Transfer hooks (driver thread).
// Whether the attempt that just ended may move to another deployment.
bool can_fail_over(const Transfer &t, int attempt_status, int64_t now_us);
// Moves t to the next deployment untried: its spec, client and origin; the
// last one's failure is counted and cools it down. False when none is left.
bool fail_over(Transfer &t, int attempt_status, const std::string &reason, int64_t now_us);
// The transfer completed (outcome: metrics.h): its deployment's and its
// client's accounting.
void route_completed(Transfer &t, int status, int outcome, int64_t elapsed_us);
// The request never started (refused by the engine, or its spec failed).
void route_refused(Routed &r);


}  // namespace esp
