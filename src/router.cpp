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
#include "request.h"
#include "retry.h"
#include "status.h"
#include "transfer.h"

namespace esp {

namespace {

// Deployment clients get ids of their own, far above the registry's, so that
// a pooled easy handle set up for one is never taken as set up for another.
uint64_t next_deployment_client_id() {
  static std::atomic<uint64_t> next{uint64_t{1} << 48};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace


Router::Router(const ClientConfig &cfg, const std::string &parent_label)
    : routing_(cfg.routing),
      cooldown_ms_(cfg.deployment_cooldown_ms),
      retry_after_max_us_(cfg.retry_after_max_ms * 1000) {
  for (const auto &d : cfg.deployments) {
    ClientConfig own = d->config;
    own.name = parent_label + "/" + d->name;
    names_.push_back(d->name);
    clients_.push_back(std::make_shared<Client>(std::move(own), next_deployment_client_id()));
    DeploymentState s;
    s.weight = d->weight;
    state_.deployments.push_back(s);
  }
  picked_.assign(clients_.size(), 0);
  failures_.assign(clients_.size(), 0);
  failovers_.assign(clients_.size(), 0);
}

Router::Choice Router::pick(uint64_t tried, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  Choice c;
  c.index = pick_deployment(state_, routing_, tried, now);
  if (c.index < 0) return c;
  const size_t i = static_cast<size_t>(c.index);
  ++state_.deployments[i].in_flight;
  ++picked_[i];
  c.client = clients_[i];
  return c;
}

void Router::ended(int index, bool failed, int64_t retry_after_us, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t i = static_cast<size_t>(index);
  DeploymentState &d = state_.deployments[i];
  --d.in_flight;
  if (!failed) {
    d.cool_until_us = 0;
    return;
  }
  ++failures_[i];
  const bool was_warm = d.cool_until_us <= now;
  d.cool_until_us = now + cooldown_us(cooldown_ms_, retry_after_us, retry_after_max_us_);
  if (was_warm && log_enabled(ESP_LOG_WARN))
    log_event(ESP_LOG_WARN, "deployment_cooldown",
              {{"client", clients_[i]->label}, {"cooldown_ms", std::to_string((d.cool_until_us - now) / 1000)}});
}

std::vector<Router::Report> Router::report(int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Report> out;
  for (size_t i = 0; i < clients_.size(); ++i) {
    const DeploymentState &d = state_.deployments[i];
    out.push_back({names_[i], clients_[i], d.weight, d.in_flight,
                   d.cool_until_us > now ? (d.cool_until_us - now) / 1000 : 0, picked_[i], failures_[i],
                   failovers_[i]});
  }
  return out;
}

// ---- transfers -----------------------------------------------------------------------

esp_request_opts Routed::request(const std::string &body) const {
  esp_request_opts r = opts;
  r.method = method.empty() ? nullptr : method.c_str();
  r.path = path.c_str();
  r.body = body.data();
  r.body_len = body.size();
  return r;
}

std::unique_ptr<Routed> route_request(std::shared_ptr<Client> &client, const esp_request_opts &req) {
  const std::shared_ptr<Router> &router = client->router;
  const char *path = req.path ? req.path : "";
  if (!router || std::strstr(path, "://")) return nullptr;  // an absolute URL goes where it says
  auto r = std::make_unique<Routed>();
  r->router = router;
  r->parent = client;
  if (req.method) r->method = req.method;
  r->path = path;
  r->opts = req;
  r->opts.headers = nullptr;
  r->opts.header_count = 0;
  r->header_text.reserve(req.header_count);
  for (size_t i = 0; i < req.header_count && req.headers; ++i)
    r->header_text.emplace_back(req.headers[i].name ? req.headers[i].name : "",
                                req.headers[i].value ? req.headers[i].value : "");
  Counters &whole = client->stats;  // the client itself counts the request once, whichever deployments it took
  whole.add(whole.requests);
  whole.in_flight.fetch_add(1, std::memory_order_relaxed);
  Router::Choice first = router->pick(0, now_us());
  r->index = first.index;
  r->tried = uint64_t{1} << first.index;
  client = first.client;
  return r;
}

bool can_fail_over(const Transfer &t, int attempt_status, int64_t now) {
  const Routed *r = t.routed.get();
  if (!r || t.cancel_requested.load() || now >= t.deadline_us) return false;
  const uint64_t all = r->router->size() >= 64 ? ~uint64_t{0} : (uint64_t{1} << r->router->size()) - 1;
  if ((r->tried & all) == all) return false;
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

bool fail_over(Transfer &t, int attempt_status, const std::string &reason, int64_t now) {
  if (!can_fail_over(t, attempt_status, now)) return false;
  Routed &r = *t.routed;
  Router::Choice next = r.router->pick(r.tried, now);
  if (next.index < 0) return false;
  const int64_t hint = attempt_status == ESP_OK && t.resp ? retry_after_us(*t.resp) : -1;
  RequestSpec spec;
  try {
    std::vector<esp_header> headers;
    for (const auto &h : r.header_text) headers.push_back({h.first.c_str(), h.second.c_str()});
    esp_request_opts opts = r.request(t.spec.body);
    opts.headers = headers.empty() ? nullptr : headers.data();
    opts.header_count = headers.size();
    spec = build_request(*next.client, opts);
  } catch (const Error &) {
    r.router->ended(next.index, false, -1, now);
    return false;
  }
  r.router->ended(r.index, true, hint, now);
  r.router->note_failover(r.index);
  if (log_enabled(ESP_LOG_WARN))
    log_event(ESP_LOG_WARN, "failover",
              {{"from", t.client->label}, {"to", next.client->label}, {"reason", reason}});
  // The attempt ends on the old deployment; the request goes on at the next.
  const int outcome = outcome_of(attempt_status, attempt_status == ESP_OK && t.resp ? t.resp->status : 0,
                                 t.timeout_kind);
  for (Counters *c : {&t.client->stats, &t.origin->stats}) {
    c->add(c->outcomes[outcome]);
    c->in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  release_spec_headers(t.spec);
  t.spec = std::move(spec);
  t.client = next.client;
  t.origin = t.engine->origin(t.spec.origin_key, t.spec.origin_label);
  for (Counters *c : {&t.client->stats, &t.origin->stats}) {
    c->add(c->requests);
    c->in_flight.fetch_add(1, std::memory_order_relaxed);
  }
  r.index = next.index;
  r.tried |= uint64_t{1} << next.index;
  ++r.failovers;
  r.attempts_before = t.attempts;
  return true;
}

void route_refused(Routed &r) {
  r.router->ended(r.index, false, -1, now_us());
  r.parent->stats.in_flight.fetch_sub(1, std::memory_order_relaxed);
}

void route_completed(Transfer &t, int status, int outcome, int64_t elapsed_us) {
  Routed &r = *t.routed;
  Counters &whole = r.parent->stats;
  whole.add(whole.outcomes[outcome]);
  whole.in_flight.fetch_sub(1, std::memory_order_relaxed);
  whole.total.record_us(elapsed_us);
  if (r.failovers) whole.add(whole.retries, static_cast<uint64_t>(r.failovers));
  const int http = status == ESP_OK && t.resp ? t.resp->status : 0;
  AttemptEnd end;
  end.status = status;
  end.http_status = http;
  const bool failed = (status == ESP_OK && fails_over(end)) ||
                      (status != ESP_OK && status != ESP_ECANCELLED && status != ESP_ESHUTDOWN &&
                       status != ESP_EPOOLTIMEOUT && status != ESP_ERATELIMITED && fails_over(end));
  r.router->ended(r.index, failed, http ? retry_after_us(*t.resp) : -1, now_us());
}

}  // namespace esp
