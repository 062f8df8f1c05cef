// Deployments' policy, as pure functions over plain state: which deployment
// an attempt goes to, how long a failing one cools down, and which endings
// move a request on to the next (router.h applies it to transfers).
#pragma once

#include <cstdint>
#include <vector>

#include "config.h"
#include "esp.h"

namespace esp {

struct DeploymentState {
  int64_t weight = 1;
  int64_t in_flight = 0;
  int64_t cool_until_us = 0;  // failing: not picked before then while another can be
  int64_t current = 0;        // smooth weighted round-robin credit
};

struct PickerState {
  std::vector<DeploymentState> deployments;
  size_t cursor = 0;  // least_busy: where the search for a tie starts next
};

// The deployment for the next attempt among those not in `tried` (bit i:
// deployment i), or -1 when all were tried. Warm deployments first, by the
// strategy: least_busy takes the fewest in flight (ties in turn), weighted
// follows the weights (smooth weighted round-robin: exact over every sum of
// the weights, never two turns of one in a row when others weigh as much),
// ordered the first in the list. With every candidate cooling down, the one
// that cools down first: an attempt on it beats failing unasked.
int pick_deployment(PickerState &s, Routing routing, uint64_t tried, int64_t now_us);

// How long a deployment that failed stays cooled down: the configured
// cool-down, or the server's retry-after when it asked for longer (up to
// retry_after_max_us).
int64_t cooldown_us(int64_t cooldown_ms, int64_t retry_after_us, int64_t retry_after_max_us);

// May an attempt that ended so move on to another deployment? Connection
// failures, connect and read timeouts, 429 and 5xx answers and an open
// breaker, when nothing of the answer reached the caller, the request may
// be sent again, and the request's time is not up. `http_status` is 0 when
// no answer came.
struct AttemptEnd {
  int status = ESP_OK;      // ESP status of the attempt
  int http_status = 0;
  bool total_timeout = false;
  bool delivered = false;   // headers or body bytes went to the caller
  bool sent = false;        // the request may have reached the server
  bool replay_safe = false;
  bool no_retry = false;    // ESP_REQ_NO_RETRY
};
bool fails_over(const AttemptEnd &end);

const char *routing_name(Routing r);

}  // namespace esp
