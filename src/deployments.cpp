// Deployments' policy: picking one per attempt, cooling failing ones down,
// and which endings move a request on. Pure: no clients, no clock, no I/O.
#include "deployments.h"

#include <algorithm>

namespace esp {

int pick_deployment(PickerState &s, Routing routing, uint64_t tried, int64_t now) {
  const size_t n = s.deployments.size();
  auto untried = [&](size_t i) { return !(tried >> i & 1); };
  auto warm = [&](size_t i) { return untried(i) && s.deployments[i].cool_until_us <= now; };
  int coolest = -1;
  bool any_warm = false;
  for (size_t i = 0; i < n; ++i) {
    if (warm(i)) any_warm = true;
    if (untried(i) && (coolest < 0 || s.deployments[i].cool_until_us <
                                          s.deployments[static_cast<size_t>(coolest)].cool_until_us))
      coolest = static_cast<int>(i);
  }
  if (!any_warm) return coolest;
  switch (routing) {
    case Routing::kOrdered:
      for (size_t i = 0; i < n; ++i)
        if (warm(i)) return static_cast<int>(i);
      break;
    case Routing::kLeastBusy: {
      int best = -1;
      for (size_t k = 0; k < n; ++k) {
        size_t i = (s.cursor + k) % n;
        if (warm(i) && (best < 0 || s.deployments[i].in_flight < s.deployments[static_cast<size_t>(best)].in_flight))
          best = static_cast<int>(i);
      }
      s.cursor = (static_cast<size_t>(best) + 1) % n;
      return best;
    }
    case Routing::kWeighted: {
      int64_t total = 0;
      int best = -1;
      for (size_t i = 0; i < n; ++i) {
        if (!warm(i)) continue;
        DeploymentState &d = s.deployments[i];
        d.current += d.weight;
        total += d.weight;
        if (best < 0 || d.current > s.deployments[static_cast<size_t>(best)].current) best = static_cast<int>(i);
      }
      s.deployments[static_cast<size_t>(best)].current -= total;
      return best;
    }
  }
  return coolest;
}

int64_t cooldown_us(int64_t cooldown_ms, int64_t retry_after_us, int64_t retry_after_max_us) {
  const int64_t configured = cooldown_ms * 1000;
  if (retry_after_us <= configured) return configured;
  return std::max(configured, std::min(retry_after_us, retry_after_max_us));
}

bool fails_over(const AttemptEnd &end) {
  if (end.delivered || end.total_timeout) return false;
  // Sent once already and not safe to send again: at most one send.
  if (end.sent && (!end.replay_safe || end.no_retry)) return false;
  switch (end.status) {
    case ESP_OK: return end.http_status == 429 || end.http_status >= 500;
    case ESP_ECONNECT:
    case ESP_EIO:
    case ESP_ETLS:
    case ESP_ETIMEDOUT:
    case ESP_ECIRCUIT: return true;
    default: return false;
  }
}

const char *routing_name(Routing r) {
  switch (r) {
    case Routing::kWeighted: return "weighted";
    case Routing::kOrdered: return "ordered";
    default: return "least_busy";
  }
}

}  // namespace esp
