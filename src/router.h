// The router of a client with "deployments": a client per deployment (its
// own credential, limiter and stats), their state under the policy of
// deployments.h (cool-downs shared by the fleet with shared_state), and the
// Route of transfer.h that moves a transfer from one deployment to the next.
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
#include "shared_state.h"
#include "transfer.h"

namespace esp {

struct Client;

class Router {
 public:
  // Builds a client per deployment (its own credential, limiter, stats).
  Router(const ClientConfig &cfg, const std::string &parent_label);

  struct Choice {
    int index = -1;
    std::shared_ptr<Client> client;
    bool cooling = false;  // picked while cooling down: every candidate was
  };
  // Picks the next deployment and counts the attempt in flight there.
  Choice pick(uint64_t tried, int64_t now_us);
  // Takes deployment `index` (one with budget soonest), counted likewise.
  Choice take(int index, int64_t now_us);
  // How the stay on a deployment ended: a failure cools it down (for the
  // fleet too); a success of an attempt picked while it cooled down ends
  // its cool-down; neutral (refused before a send, cancelled) changes neither.
  enum class End { kNeutral, kSucceeded, kFailed };
  void ended(int index, End how, bool picked_cooling, int64_t retry_after_us, int64_t now_us);
  void note_failover(int from) { bump(failovers_, from); }
  void note_rate_limited(int from) { bump(rate_limited_, from); }

  struct Report {
    std::string name;
    std::shared_ptr<Client> client;
    int64_t weight, in_flight, cooling_ms;
    uint64_t picked, failures, failovers, rate_limited;
  };
  std::vector<Report> report(int64_t now_us);
  size_t size() const { return clients_.size(); }
  Routing routing() const { return routing_; }
  const std::string &name(int index) const { return names_[static_cast<size_t>(index)]; }

 private:
  void bump(std::vector<uint64_t> &counts, int index);
  // Adopts the cool-downs other processes of the fleet set (shared_state),
  // at most every 100 ms; outside the router's lock (Redis I/O).
  void refresh_from_fleet(int64_t now_us);

  const Routing routing_;
  const int64_t cooldown_ms_;
  const int64_t retry_after_max_us_;
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::shared_ptr<SharedState> shared_;  // null without shared_state
  std::vector<std::string> fleet_ids_;   // per deployment: base URL and credential hash (hashed again in Redis)
  std::mutex mu_;
  PickerState state_;
  std::vector<uint64_t> picked_, failures_, failovers_, rate_limited_;
  int64_t fleet_checked_us_ = 0;
  bool fleet_refreshing_ = false;
};

// Turns the caller's options into a RequestSpec for a deployment's client
// (request.h's build_request, passed in from above).
using BuildRequest = RequestSpec (*)(const Client &client, const esp_request_opts &req);

// Routes a request made on `client` when it has deployments and a relative
// path: picks a deployment and returns its client (in `client`) and the
// route; else returns null and leaves `client` as it is.
std::unique_ptr<Route> route_request(std::shared_ptr<Client> &client, const esp_request_opts &req,
                                     BuildRequest build);

}  // namespace esp
