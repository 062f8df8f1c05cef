// The router: picking a deployment per request and moving a transfer to the
// next one. Every deployment is a client of its own, so its credential, rate
// limiter and default headers never serve another.
#include "router.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "client.h"
#include "engine.h"
#include "log.h"
#include "ratelimit.h"
#include "retry.h"
#include "status.h"

namespace esp {

namespace {

// Deployment clients get ids of their own, far above the registry's, so that
// a pooled easy handle set up for one is never taken as set up for another.
uint64_t next_deployment_client_id() {
  static std::atomic<uint64_t> next{uint64_t{1} << 48};
  return next.fetch_add(1, std::memory_order_relaxed);
}

constexpr int64_t kFleetRecheckUs = 100000;

}  // namespace

Router::Router(const ClientConfig &cfg, const std::string &parent_label)
    : routing_(cfg.routing),
      cooldown_ms_(cfg.deployment_cooldown_ms),
      retry_after_max_us_(cfg.retry_after_max_ms * 1000),
      shared_(cfg.shared_state.enabled ? shared_state_for(cfg.shared_state) : nullptr) {
  for (const auto &d : cfg.deployments) {
    ClientConfig own = d->config;
    own.name = parent_label + "/" + d->name;
    names_.push_back(d->name);
    // The same endpoint with the same credential is the same deployment in
    // every process of the fleet, whatever its name or other settings.
    fleet_ids_.push_back(own.base_url + "|" + credential_id(own.api_key, own.canonical));
    clients_.push_back(std::make_shared<Client>(std::move(own), next_deployment_client_id()));
    DeploymentState s;
    s.weight = d->weight;
    state_.deployments.push_back(s);
  }
  picked_.assign(clients_.size(), 0);
  failures_.assign(clients_.size(), 0);
  failovers_.assign(clients_.size(), 0);
  rate_limited_.assign(clients_.size(), 0);
}

void Router::bump(std::vector<uint64_t> &counts, int index) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counts[static_cast<size_t>(index)];
}

void Router::refresh_from_fleet(int64_t now) {
  if (!shared_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fleet_refreshing_ || now - fleet_checked_us_ < kFleetRecheckUs) return;
    fleet_refreshing_ = true;
  }
  const std::vector<int64_t> left_ms = shared_->cooldowns_left_ms(fleet_ids_);  // empty: Redis down
  std::lock_guard<std::mutex> lock(mu_);
  fleet_refreshing_ = false;
  fleet_checked_us_ = now;
  for (size_t i = 0; i < left_ms.size() && i < state_.deployments.size(); ++i)
    if (left_ms[i] > 0) state_.deployments[i].cool_until_us = std::max(state_.deployments[i].cool_until_us, now + left_ms[i] * 1000);
}

Router::Choice Router::pick(uint64_t tried, int64_t now) {
  refresh_from_fleet(now);
  std::lock_guard<std::mutex> lock(mu_);
  Choice c;
  c.index = pick_deployment(state_, routing_, tried, now);
  if (c.index < 0) return c;
  const size_t i = static_cast<size_t>(c.index);
  c.cooling = state_.deployments[i].cool_until_us > now;
  ++state_.deployments[i].in_flight;
  ++picked_[i];
  c.client = clients_[i];
  return c;
}

Router::Choice Router::take(int index, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t i = static_cast<size_t>(index);
  Choice c{index, clients_[i], state_.deployments[i].cool_until_us > now};
  ++state_.deployments[i].in_flight;
  ++picked_[i];
  return c;
}

void Router::ended(int index, End how, bool picked_cooling, int64_t retry_after_us, int64_t now) {
  std::unique_lock<std::mutex> lock(mu_);
  const size_t i = static_cast<size_t>(index);
  DeploymentState &d = state_.deployments[i];
  --d.in_flight;
  if (how == End::kNeutral) return;
  if (how == End::kSucceeded) {
    // A success of an attempt that went out while it was warm says nothing
    // of a failure since; one picked while cooling down ends the cool-down.
    if (!picked_cooling || d.cool_until_us == 0) return;
    d.cool_until_us = 0;
    lock.unlock();
    if (shared_) shared_->end_cooldown(fleet_ids_[i]);
    return;
  }
  ++failures_[i];
  const bool was_warm = d.cool_until_us <= now;
  const int64_t cool_us = cooldown_us(cooldown_ms_, retry_after_us, retry_after_max_us_);
  d.cool_until_us = std::max(d.cool_until_us, now + cool_us);
  lock.unlock();
  if (shared_ && cool_us > 0) shared_->cool_down(fleet_ids_[i], (cool_us + 999) / 1000);
  if (was_warm && log_enabled(ESP_LOG_WARN))
    log_event(ESP_LOG_WARN, "deployment_cooldown",
              {{"client", clients_[i]->label}, {"cooldown_ms", std::to_string(cool_us / 1000)}});
}

std::vector<Router::Report> Router::report(int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Report> out;
  for (size_t i = 0; i < clients_.size(); ++i) {
    const DeploymentState &d = state_.deployments[i];
    out.push_back({names_[i], clients_[i], d.weight, d.in_flight,
                   d.cool_until_us > now ? (d.cool_until_us - now) / 1000 : 0, picked_[i], failures_[i],
                   failovers_[i], rate_limited_[i]});
  }
  return out;
}

// ---- transfers -----------------------------------------------------------------------

namespace {

// A request routed over a client's deployments: what the transfer needs to
// be rebuilt for the next deployment, and where it has been.
class Routed final : public Route {
 public:
  Routed(std::shared_ptr<Router> router, std::shared_ptr<Client> parent, BuildRequest build,
         const esp_request_opts &req);

  bool can_fail_over(const Transfer &t, int attempt_status, int64_t now) const override;
  bool fail_over(Transfer &t, int attempt_status, const std::string &reason, int64_t now) override;
  Budget reserve_budget(Transfer &t, int64_t now) override;
  void completed(Transfer &t, int status, int outcome, int64_t elapsed_us) override;
  void refused() override;
  int attempts_before() const override { return attempts_before_; }
  int moves() const override { return retried_moves_; }

  // The first deployment, picked when the request is made.
  void start_on(const Router::Choice &c);

 private:
  uint64_t all() const {
    return router_->size() >= 64 ? ~uint64_t{0} : (uint64_t{1} << router_->size()) - 1;
  }
  // Moves t to `next`: a spec built for its client, its origin, the
  // accounting of both; `left` says how the stay on the current one ended.
  // `attempt_status`: how the stay ended, for the old deployment's outcomes.
  bool move_to(Transfer &t, const Router::Choice &next, Router::End left, int attempt_status,
               int64_t retry_after_us, const std::string &reason, int64_t now);

  const std::shared_ptr<Router> router_;
  const std::shared_ptr<Client> parent_;
  const BuildRequest build_;
  int index_ = -1;              // the deployment of the current attempt
  bool picked_cooling_ = false;  // it was cooling down when picked
  uint64_t tried_ = 0;          // deployments tried so far (bits)
  int attempts_before_ = 0;     // the transfer's attempts before the current deployment
  int retried_moves_ = 0;       // moves away from a deployment after an attempt there
  // Rate limits: when each deployment refused for lack of budget would have
  // budget (0: not refused), and the one chosen to wait on once all refused.
  std::vector<int64_t> budget_at_;
  int wait_on_ = -1;
  // A copy of the caller's request (the ABI struct points into caller memory).
  std::string method_, path_;
  std::vector<std::pair<std::string, std::string>> header_text_;
  esp_request_opts opts_{};
};

Routed::Routed(std::shared_ptr<Router> router, std::shared_ptr<Client> parent, BuildRequest build,
               const esp_request_opts &req)
    : router_(std::move(router)), parent_(std::move(parent)), build_(build), budget_at_(router_->size(), 0) {
  if (req.method) method_ = req.method;
  path_ = req.path ? req.path : "";
  opts_ = req;
  opts_.headers = nullptr;
  opts_.header_count = 0;
  header_text_.reserve(req.header_count);
  for (size_t i = 0; i < req.header_count && req.headers; ++i)
    header_text_.emplace_back(req.headers[i].name ? req.headers[i].name : "",
                              req.headers[i].value ? req.headers[i].value : "");
}

void Routed::start_on(const Router::Choice &c) {
  index_ = c.index;
  picked_cooling_ = c.cooling;
  tried_ = uint64_t{1} << c.index;
}

bool Routed::can_fail_over(const Transfer &t, int attempt_status, int64_t now) const {
  if (t.cancel_requested.load() || now >= t.deadline_us) return false;
  if ((tried_ & all()) == all()) return false;
  AttemptEnd end;
  end.status = attempt_status;
  end.http_status = attempt_status == ESP_OK && t.resp ? t.resp->status : 0;
  end.total_timeout = attempt_status == ESP_ETIMEDOUT && t.timeout_kind == TimeoutKind::kTotal;
  // An answer being decided on (ESP_OK) has not been handed over yet.
  end.delivered = attempt_status != ESP_OK && t.headers_done && !t.will_retry;
  end.sent = t.sends > 0;
  end.replay_safe = t.spec.replay_safe;
  end.no_retry = (t.spec.flags & ESP_REQ_NO_RETRY) != 0;
  return fails_over(end);
}

bool Routed::move_to(Transfer &t, const Router::Choice &next, Router::End left, int attempt_status,
                     int64_t retry_after_us, const std::string &reason, int64_t now) {
  RequestSpec spec;
  try {
    std::vector<esp_header> headers;
    for (const auto &h : header_text_) headers.push_back({h.first.c_str(), h.second.c_str()});
    esp_request_opts opts = opts_;
    opts.method = method_.empty() ? nullptr : method_.c_str();
    opts.path = path_.c_str();
    opts.body = t.spec.body.data();
    opts.body_len = t.spec.body.size();
    opts.headers = headers.empty() ? nullptr : headers.data();
    opts.header_count = headers.size();
    spec = build_(*next.client, opts);
  } catch (const Error &) {
    router_->ended(next.index, Router::End::kNeutral, false, -1, now);
    return false;
  }
  if (t.rate_reserved) {  // budget held on the deployment left behind goes back
    t.client->limiter->cancel(t.rate);
    t.rate_reserved = false;
  }
  t.give_up_probe();  // a probe of the origin left behind
  router_->ended(index_, left, picked_cooling_, retry_after_us, now);
  router_->note_failover(index_);
  if (log_enabled(ESP_LOG_WARN))
    log_event(ESP_LOG_WARN, "failover", {{"from", t.client->label}, {"to", next.client->label}, {"reason", reason}});
  // The stay ends on the old deployment; the request goes on at the next.
  const int http = attempt_status == ESP_OK && t.resp ? t.resp->status : 0;
  const int outcome = outcome_of(attempt_status, http, t.timeout_kind);
  for (Counters *c : {&t.client->stats, &t.origin->stats}) {
    c->add(c->outcomes[outcome]);
    c->in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  release_spec_headers(t.spec);
  t.spec = std::move(spec);
  t.client = next.client;
  t.origin = t.engine->origin(t.spec.origin_key(), t.spec.origin_label());
  for (Counters *c : {&t.client->stats, &t.origin->stats}) {
    c->add(c->requests);
    c->in_flight.fetch_add(1, std::memory_order_relaxed);
  }
  if (t.attempts > attempts_before_) ++retried_moves_;
  index_ = next.index;
  picked_cooling_ = next.cooling;
  tried_ |= uint64_t{1} << next.index;
  attempts_before_ = t.attempts;
  return true;
}

bool Routed::fail_over(Transfer &t, int attempt_status, const std::string &reason, int64_t now) {
  if (!can_fail_over(t, attempt_status, now)) return false;
  Router::Choice next = router_->pick(tried_, now);
  if (next.index < 0) return false;
  const int64_t hint = attempt_status == ESP_OK && t.resp ? retry_after_us(*t.resp) : -1;
  return move_to(t, next, Router::End::kFailed, attempt_status, hint, reason, now);
}

Route::Budget Routed::reserve_budget(Transfer &t, int64_t now) {
  Limiter &limiter = *t.client->limiter;
  const size_t here = static_cast<size_t>(index_);
  if (wait_on_ == index_ || router_->size() == 1) {  // the one to wait on: its whole deadline
    t.rate = limiter.reserve(t.rate_tokens, now, t.deadline_us);
    return t.rate.ok ? Budget::kReserved : Budget::kRefused;
  }
  // Budget now, or else the request tries a deployment that may have some.
  t.rate = limiter.reserve(t.rate_tokens, now, now, /*count_refusal=*/false);
  if (t.rate.ok) return Budget::kReserved;
  budget_at_[here] = std::max(t.rate.available_us, now + 1);
  router_->note_rate_limited(index_);
  const std::string why = "no rate-limit budget on " + router_->name(index_) + " for " +
                          std::to_string((budget_at_[here] - now) / 1000) + " ms";
  if ((tried_ & all()) != all()) {
    Router::Choice next = router_->pick(tried_, now);
    if (next.index >= 0 && move_to(t, next, Router::End::kNeutral, ESP_ERATELIMITED, -1, why, now))
      return Budget::kMoved;
  }
  // No deployment has budget now: wait on the one whose budget comes first.
  int soonest = -1;
  for (size_t i = 0; i < budget_at_.size(); ++i)
    if (budget_at_[i] > 0 && (soonest < 0 || budget_at_[i] < budget_at_[static_cast<size_t>(soonest)]))
      soonest = static_cast<int>(i);
  const int64_t at = budget_at_[static_cast<size_t>(soonest)];
  if (at > t.deadline_us) {
    limiter.rejected.fetch_add(1, std::memory_order_relaxed);
    t.rate.why = "rate limited on every deployment: the soonest budget (" + router_->name(soonest) + ") is in " +
                 std::to_string((at - now + 999) / 1000) + " ms, after this request's timeout (" + t.rate.why + ")";
    return Budget::kRefused;
  }
  wait_on_ = soonest;
  if (soonest != index_) {
    Router::Choice back = router_->take(soonest, now);
    if (move_to(t, back, Router::End::kNeutral, ESP_ERATELIMITED, -1, why, now)) return Budget::kMoved;
    wait_on_ = index_;
  }
  t.rate = limiter.reserve(t.rate_tokens, now, t.deadline_us);
  return t.rate.ok ? Budget::kReserved : Budget::kRefused;
}

void Routed::refused() {
  router_->ended(index_, Router::End::kNeutral, false, -1, now_us());
  parent_->stats.in_flight.fetch_sub(1, std::memory_order_relaxed);
}

void Routed::completed(Transfer &t, int status, int outcome, int64_t elapsed_us) {
  Counters &whole = parent_->stats;
  whole.add(whole.outcomes[outcome]);
  whole.in_flight.fetch_sub(1, std::memory_order_relaxed);
  whole.total.record_us(elapsed_us);
  if (retried_moves_) whole.add(whole.retries, static_cast<uint64_t>(retried_moves_));
  const int http = status == ESP_OK && t.resp ? t.resp->status : 0;
  AttemptEnd end;
  end.status = status;
  end.http_status = http;
  Router::End how = Router::End::kSucceeded;
  if (status == ESP_ECANCELLED || status == ESP_ESHUTDOWN || status == ESP_EPOOLTIMEOUT || status == ESP_ERATELIMITED)
    how = Router::End::kNeutral;  // nothing said about the deployment itself
  else if (fails_over(end))
    how = Router::End::kFailed;
  router_->ended(index_, how, picked_cooling_, http ? retry_after_us(*t.resp) : -1, now_us());
}

}  // namespace

std::unique_ptr<Route> route_request(std::shared_ptr<Client> &client, const esp_request_opts &req,
                                     BuildRequest build) {
  const std::shared_ptr<Router> &router = client->router;
  const char *path = req.path ? req.path : "";
  if (!router || std::strstr(path, "://")) return nullptr;  // an absolute URL goes where it says
  auto r = std::make_unique<Routed>(router, client, build, req);
  Counters &whole = client->stats;  // the client itself counts the request once, whichever deployments it took
  whole.add(whole.requests);
  whole.in_flight.fetch_add(1, std::memory_order_relaxed);
  Router::Choice first = router->pick(0, now_us());
  r->start_on(first);
  client = first.client;
  return r;
}

}  // namespace esp
