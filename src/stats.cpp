// Renders the registry, clients, origins and engines as esp_stats JSON and
// Prometheus text: read-only views, never a secret.
#include "stats.h"

#include "calls.h"
#include "router.h"
#include "engine.h"
#include "esp.h"
#include "registry.h"
#include "engines.h"
#include "streams.h"

namespace esp {

namespace {

std::string quoted(const std::string &s) { return "\"" + json_escape(s) + "\""; }

std::string usage_json(const UsageTotals &u) {
  return "{\"input_tokens\":" + std::to_string(u.input_tokens.load()) +
         ",\"output_tokens\":" + std::to_string(u.output_tokens.load()) +
         ",\"total_tokens\":" + std::to_string(u.total_tokens.load()) +
         ",\"responses_with_usage\":" + std::to_string(u.responses_with_usage.load()) +
         ",\"responses_without_usage\":" + std::to_string(u.responses_without_usage.load()) + "}";
}

// A credential's limits in force, where they come from, and its accounting.
void limiter_json(const Limiter &l, std::string &out) {
  const Limiter::Snapshot s = l.snapshot(now_us());
  out += "{\"credential\":" + quoted(l.id) + ",\"requests_per_minute\":" + std::to_string(s.requests_per_minute) +
         ",\"tokens_per_minute\":" + std::to_string(s.tokens_per_minute) +
         ",\"configured\":{\"requests_per_minute\":" + std::to_string(s.configured_rpm) +
         ",\"tokens_per_minute\":" + std::to_string(s.configured_tpm) +
         "},\"learned\":{\"requests_per_minute\":" + std::to_string(s.learned_rpm) +
         ",\"tokens_per_minute\":" + std::to_string(s.learned_tpm) + "},\"paused_ms\":" + std::to_string(s.paused_ms) +
         ",\"admitted\":" + std::to_string(l.admitted.load()) + ",\"delayed\":" + std::to_string(l.delayed.load()) +
         ",\"wait_ms_total\":" + std::to_string(l.wait_us_total.load() / 1000) +
         ",\"rejected\":" + std::to_string(l.rejected.load()) + ",\"pauses\":" + std::to_string(l.pauses.load()) +
         ",\"server_429\":" + std::to_string(l.server_429.load()) + ",\"usage\":" + usage_json(l.usage) + "}";
}

// Deployments: how each is picked, cooled down and doing (its own
// counters: the requests that went out as it).
void deployments_json(Router &router, std::string &out) {
  out += "\"routing\":" + quoted(routing_name(router.routing())) + ",\"deployments\":[";
  bool first = true;
  for (const Router::Report &d : router.report(now_us())) {
    if (!first) out += ",";
    first = false;
    const Client &c = *d.client;
    out += "{\"name\":" + quoted(d.name) + ",\"client\":" + quoted(c.label) +
           ",\"base_url\":" + quoted(redact_url(c.config.base_url)) + ",\"origin\":" + quoted(c.config.base_origin) +
           ",\"weight\":" + std::to_string(d.weight) + ",\"picked\":" + std::to_string(d.picked) +
           ",\"failures\":" + std::to_string(d.failures) + ",\"failovers\":" + std::to_string(d.failovers) +
           ",\"rate_limited\":" + std::to_string(d.rate_limited) +
           ",\"cooling_down_ms\":" + std::to_string(d.cooling_ms) + ",";
    if (c.limiter) {
      out += "\"rate_limit\":";
      limiter_json(*c.limiter, out);
      out += ",\"usage\":" + usage_json(c.usage) + ",";
    }
    counters_json(c.stats, out);
    out += "}";
  }
  out += "],";
}

void client_json(const ClientState &s, std::string &out) {
  const Client &c = *s.client;
  out += "{\"id\":" + std::to_string(c.id) + ",\"name\":" + quoted(c.label) +
         ",\"provider\":" + quoted(c.config.provider) + ",\"base_url\":" + quoted(redact_url(c.config.base_url)) +
         ",\"origin\":" + quoted(c.config.base_origin) + ",\"isolated\":" + (c.config.isolate ? "true" : "false") +
         ",\"leases\":" + std::to_string(s.leases) + ",\"lingering\":" + (s.leases == 0 ? "true" : "false") + ",";
  if (c.limiter) {  // fleet17: rate limits
    out += "\"rate_limit\":";
    limiter_json(*c.limiter, out);
    out += ",\"usage\":" + usage_json(c.usage) + ",";
  }
  if (c.router) deployments_json(*c.router, out);
  counters_json(c.stats, out);
  out += "}";
}

void origin_json(const Origin &o, std::string &out) {
  const uint64_t aborted = o.sockets_closed_aborted.load();  // first: it never exceeds the total
  const uint64_t closed = o.sockets_closed.load();
  out += "{\"origin\":" + quoted(o.label) + ",\"sockets_open\":" + std::to_string(o.sockets_open.load()) +
         ",\"connections_closed\":" + std::to_string(closed) +
         ",\"connections_closed_by_reason\":{\"aborted\":" + std::to_string(aborted) +
         ",\"by_libcurl\":" + std::to_string(closed - aborted) +
         "},\"breaker\":" +
         quoted(breaker_state_name(o.breaker.current())) + ",";
  counters_json(o.stats, out);
  out += "}";
}

// Rate limits (fleet17): token usage per client and per credential, and
// each credential's limits and admissions: metric families one after
// another (HELP, TYPE, samples), long but flat.
void rate_limit_prometheus(const std::vector<std::shared_ptr<ClientState>> &states, std::string &out) {
  auto limiters = live_limiters();
  auto family = [&](const std::string &name, const char *type, const char *help) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto usage_samples = [&](const std::string &name, const std::string &labels, const UsageTotals &u) {
    out += name + "{" + labels + ",kind=\"input\"} " + std::to_string(u.input_tokens.load()) + "\n";
    out += name + "{" + labels + ",kind=\"output\"} " + std::to_string(u.output_tokens.load()) + "\n";
    out += name + "{" + labels + ",kind=\"total\"} " + std::to_string(u.total_tokens.load()) + "\n";
  };
  family("esp_client_usage_tokens_total", "counter", "Tokens the provider reported using, by kind.");
  for (auto &s : states)
    if (s->client->limiter) usage_samples("esp_client_usage_tokens_total", "client=\"" + prom_escape(s->client->label) + "\"", s->client->usage);
  family("esp_credential_usage_tokens_total", "counter", "Tokens the provider reported using per credential, by kind.");
  for (auto &l : limiters) usage_samples("esp_credential_usage_tokens_total", "credential=\"" + l->id + "\"", l->usage);
  struct Metric {
    const char *name, *type, *help;
    uint64_t (*get)(const Limiter &, const Limiter::Snapshot &);
  };
  const Metric metrics[] = {
      {"esp_credential_requests_per_minute", "gauge", "Requests-per-minute limit in force (0: none).",
       [](const Limiter &, const Limiter::Snapshot &s) { return static_cast<uint64_t>(s.requests_per_minute); }},
      {"esp_credential_tokens_per_minute", "gauge", "Tokens-per-minute limit in force (0: none).",
       [](const Limiter &, const Limiter::Snapshot &s) { return static_cast<uint64_t>(s.tokens_per_minute); }},
      {"esp_credential_admitted_total", "counter", "Attempts admitted by the rate limiter.",
       [](const Limiter &l, const Limiter::Snapshot &) { return l.admitted.load(); }},
      {"esp_credential_delayed_total", "counter", "Admitted attempts that waited for budget.",
       [](const Limiter &l, const Limiter::Snapshot &) { return l.delayed.load(); }},
      {"esp_credential_rejected_total", "counter", "Requests failed with ESP_ERATELIMITED.",
       [](const Limiter &l, const Limiter::Snapshot &) { return l.rejected.load(); }},
      {"esp_credential_pauses_total", "counter", "Pauses imposed by 429s or exhausted limits.",
       [](const Limiter &l, const Limiter::Snapshot &) { return l.pauses.load(); }},
      {"esp_credential_server_429_total", "counter", "429 responses received.",
       [](const Limiter &l, const Limiter::Snapshot &) { return l.server_429.load(); }},
  };
  auto shared = live_shared_states();
  const struct {
    const char *name, *type, *help;
    uint64_t (*get)(const SharedState &);
  } shared_metrics[] = {
      {"esp_shared_state_up", "gauge", "1 while the fleet's Redis answers.",
       [](const SharedState &s) { return static_cast<uint64_t>(s.up.load()); }},
      {"esp_shared_state_calls_total", "counter", "Commands sent to the fleet's Redis.",
       [](const SharedState &s) { return s.calls.load(); }},
      {"esp_shared_state_errors_total", "counter", "Commands that failed or timed out.",
       [](const SharedState &s) { return s.errors.load(); }},
      {"esp_shared_state_fallbacks_total", "counter", "Decisions taken locally because Redis was down.",
       [](const SharedState &s) { return s.fallbacks.load(); }},
      {"esp_shared_state_outages_total", "counter", "Transitions of the fleet's Redis to down.",
       [](const SharedState &s) { return s.outages.load(); }},
  };
  for (const auto &m : shared_metrics) {
    family(m.name, m.type, m.help);
    for (auto &s : shared)
      out += std::string(m.name) + "{redis=\"" + prom_escape(s->label) + "\",namespace=\"" + prom_escape(s->ns) +
             "\"} " + std::to_string(m.get(*s)) + "\n";
  }
  const int64_t now = now_us();
  std::vector<Limiter::Snapshot> snaps;
  snaps.reserve(limiters.size());
  for (auto &l : limiters) snaps.push_back(l->snapshot(now));
  for (const Metric &m : metrics) {
    family(m.name, m.type, m.help);
    for (size_t i = 0; i < limiters.size(); ++i)
      out += std::string(m.name) + "{credential=\"" + limiters[i]->id + "\"} " +
             std::to_string(m.get(*limiters[i], snaps[i])) + "\n";
  }
}

}  // namespace

std::string process_stats_json() {
  RegistryCounts rc = registry().counts();
  auto states = registry().snapshot();
  auto engines = live_engines();
  int64_t sockets = 0;
  uint64_t requests = 0, failures = 0, opened = 0, reused = 0, silent = 0;
  int64_t in_flight = 0;
  std::string origins;
  for (auto &e : engines) {
    sockets += e->sockets_open();
    e->for_each_origin([&](const Origin &o) {
      requests += o.stats.requests.load();
      failures += o.stats.failures();
      opened += o.stats.conns_opened.load();
      reused += o.stats.conns_reused.load();
      silent += o.stats.silent_resends.load();
      in_flight += o.stats.in_flight.load();
      if (!origins.empty()) origins += ',';
      origin_json(o, origins);
    });
  }
  std::string out = "{\"schema\":" + std::to_string(kStatsSchema) + ",\"version\":\"" ESP_VERSION_STRING "\"";
  out += ",\"registry\":{\"clients_live\":" + std::to_string(rc.clients_live) +
         ",\"clients_lingering\":" + std::to_string(rc.clients_lingering) +
         ",\"leases_live\":" + std::to_string(rc.leases_live) + ",\"hits\":" + std::to_string(rc.hits) +
         ",\"misses\":" + std::to_string(rc.misses) + ",\"evictions\":" + std::to_string(rc.evictions) + "}";
  out += ",\"requests\":" + std::to_string(requests) + ",\"failures\":" + std::to_string(failures) +
         ",\"in_flight\":" + std::to_string(in_flight) + ",\"calls_live\":" + std::to_string(calls().live()) +
         ",\"streams_open\":" + std::to_string(streams().live()) +
         ",\"connections_opened\":" + std::to_string(opened) + ",\"connections_reused\":" + std::to_string(reused) +
         ",\"silent_resends\":" + std::to_string(silent) + ",\"sockets_open\":" + std::to_string(sockets) +
         ",\"engines\":" + std::to_string(engines.size());
  out += ",\"clients\":[";
  bool first = true;
  for (auto &s : states) {
    if (!first) out += ',';
    first = false;
    client_json(*s, out);
  }
  out += "],\"origins\":[" + origins + "]";
  out += ",\"credentials\":[";  // fleet17: rate limits per credential
  first = true;
  for (auto &l : live_limiters()) {
    if (!first) out += ',';
    first = false;
    limiter_json(*l, out);
  }
  out += "],\"shared_state\":[";  // fleet17: the fleet's Redis
  first = true;
  for (auto &s : live_shared_states()) {
    if (!first) out += ',';
    first = false;
    out += "{\"redis\":" + quoted(s->label) + ",\"namespace\":" + quoted(s->ns) +
           ",\"up\":" + (s->up.load() ? "true" : "false") + ",\"calls\":" + std::to_string(s->calls.load()) +
           ",\"errors\":" + std::to_string(s->errors.load()) + ",\"fallbacks\":" + std::to_string(s->fallbacks.load()) +
           ",\"outages\":" + std::to_string(s->outages.load()) + "}";
  }
  out += "]}";
  return out;
}

std::string client_stats_json(uint64_t lease) {
  std::shared_ptr<Client> c = registry().resolve(lease);
  ClientState s;
  s.client = c;
  s.leases = registry().leases_of(*c);
  std::string out = "{\"schema\":" + std::to_string(kStatsSchema) + ",\"client\":";
  client_json(s, out);
  out += ",\"origin_stats\":";
  bool found = false;
  engine_for(*c)->for_each_origin([&](const Origin &o) {
    if (!found && o.label == c->config.base_origin) {
      origin_json(o, out);
      found = true;
    }
  });
  if (!found) out += "null";
  out += "}";
  return out;
}

std::string prometheus_text() {
  RegistryCounts rc = registry().counts();
  std::string out;
  auto gauge = [&](const char *name, const char *help, uint64_t v, bool counter = false) {
    const std::string full = std::string("esp_") + name + (counter ? "_total" : "");
    out += "# HELP " + full + " " + help + "\n# TYPE " + full + (counter ? " counter\n" : " gauge\n");
    out += full + " " + std::to_string(v) + "\n";
  };
  gauge("clients_live", "Clients in the registry, lingering ones included.", rc.clients_live);
  gauge("clients_lingering", "Clients with no lease, kept warm for idle_ttl_ms.", rc.clients_lingering);
  gauge("leases_live", "Client leases not yet released.", rc.leases_live);
  gauge("registry_hits", "esp_client_get calls that found an existing client.", rc.hits, true);
  gauge("registry_misses", "esp_client_get calls that created a client.", rc.misses, true);
  gauge("registry_evictions", "Clients freed after lingering.", rc.evictions, true);

  auto states = registry().snapshot();
  std::vector<LabelledCounters> clients;
  for (auto &s : states) {
    const Client &c = *s->client;
    clients.push_back({"client=\"" + prom_escape(c.label) + "\",provider=\"" + prom_escape(c.config.provider) +
                           "\",origin=\"" + prom_escape(c.config.base_origin) + "\"",
                       &c.stats});
  }
  counters_prometheus("esp_client_", clients, out);

  // Deployments: each one's counters, and whether it is cooling down.
  std::vector<LabelledCounters> deployments;
  std::vector<std::pair<std::string, Router::Report>> routing;
  for (auto &s : states) {
    if (!s->client->router) continue;
    for (const Router::Report &d : s->client->router->report(now_us())) {
      std::string labels = "client=\"" + prom_escape(s->client->label) + "\",deployment=\"" + prom_escape(d.name) +
                           "\",origin=\"" + prom_escape(d.client->config.base_origin) + "\"";
      deployments.push_back({labels, &d.client->stats});
      routing.emplace_back(labels, d);
    }
  }
  if (!deployments.empty()) {
    counters_prometheus("esp_deployment_", deployments, out);
    // The router's own view of each deployment, as the stats JSON has it.
    struct Family {
      const char *name, *type, *help;
      int64_t (*value)(const Router::Report &);
    };
    static const Family kRoutingFamilies[] = {
        {"esp_deployment_picked_total", "counter", "Times the router chose the deployment for a request (first choice or failover).",
         [](const Router::Report &d) { return static_cast<int64_t>(d.picked); }},
        {"esp_deployment_failures_total", "counter", "Failures that cooled the deployment down.",
         [](const Router::Report &d) { return static_cast<int64_t>(d.failures); }},
        {"esp_deployment_failovers_total", "counter", "Requests passed on from the deployment to another.",
         [](const Router::Report &d) { return static_cast<int64_t>(d.failovers); }},
        {"esp_deployment_rate_limited_total", "counter",
         "Times the deployment had no rate-limit budget when a request asked.",
         [](const Router::Report &d) { return static_cast<int64_t>(d.rate_limited); }},
        {"esp_deployment_cooling_down_ms", "gauge", "How much longer the deployment is cooled down after failing.",
         [](const Router::Report &d) { return d.cooling_ms; }},
    };
    for (const Family &f : kRoutingFamilies) {
      out += std::string("# HELP ") + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.type + "\n";
      for (auto &r : routing) out += std::string(f.name) + "{" + r.first + "} " + std::to_string(f.value(r.second)) + "\n";
    }
  }

  auto engines = live_engines();
  std::vector<LabelledCounters> origins;
  std::vector<std::pair<std::string, int64_t>> sockets;
  std::vector<std::pair<std::string, int>> breakers;
  struct Closed {
    std::string labels;
    uint64_t total, aborted;
  };
  std::vector<Closed> closed;
  for (auto &e : engines)
    e->for_each_origin([&](const Origin &o) {
      std::string labels = "origin=\"" + prom_escape(o.label) + "\"";
      origins.push_back({labels, &o.stats});
      sockets.emplace_back(labels, o.sockets_open.load());
      breakers.emplace_back(labels, o.breaker.state.load());
      const uint64_t aborted = o.sockets_closed_aborted.load();  // first: it never exceeds the total
      closed.push_back({labels, o.sockets_closed.load(), aborted});
    });
  counters_prometheus("esp_origin_", origins, out);
  out += "# HELP esp_origin_sockets_open Connections open now.\n# TYPE esp_origin_sockets_open gauge\n";
  for (auto &s : sockets) out += "esp_origin_sockets_open{" + s.first + "} " + std::to_string(s.second) + "\n";
  out += "# HELP esp_origin_connections_closed_total Connections closed, by reason.\n"
         "# TYPE esp_origin_connections_closed_total counter\n";
  for (auto &c : closed) {
    out += "esp_origin_connections_closed_total{" + c.labels + ",reason=\"aborted\"} " + std::to_string(c.aborted) + "\n";
    out += "esp_origin_connections_closed_total{" + c.labels + ",reason=\"by_libcurl\"} " +
           std::to_string(c.total - c.aborted) + "\n";
  }
  out += "# HELP esp_origin_breaker_state Circuit breaker: 0 closed, 1 open, 2 half-open.\n"
         "# TYPE esp_origin_breaker_state gauge\n";
  for (auto &b : breakers) out += "esp_origin_breaker_state{" + b.first + "} " + std::to_string(b.second) + "\n";
  rate_limit_prometheus(states, out);
  return out;
}

}  // namespace esp
