// From esp_request_opts to an accepted transfer: validation, URL and header
// building, credentials only to trusted origins; and the blocking request.
#include "request.h"

#include <strings.h>

#include <cctype>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>

#include "router.h"
#include "engine.h"
#include "registry.h"
#include "engines.h"
#include "status.h"

namespace esp {

namespace {

std::string idempotency_key() {
  static const char hex[] = "0123456789abcdef";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string key = "esp-";
  for (int word = 0; word < 2; ++word) {
    uint64_t v = rng();
    for (int i = 0; i < 16; ++i, v >>= 4) key += hex[v & 15];
  }
  return key;
}

bool valid_token(const char *s) {
  if (!s || !*s) return false;
  for (const char *p = s; *p; ++p) {
    unsigned char c = static_cast<unsigned char>(*p);
    if (c <= 32 || c >= 127 || c == ':' || c == '(' || c == ')' || c == ',' || c == ';' ||
        c == '"' || c == '/' || c == '[' || c == ']' || c == '{' || c == '}')
      return false;
  }
  return true;
}

bool valid_value(const char *s) { return s && std::strpbrk(s, "\r\n") == nullptr; }

struct SlistBuilder {
  struct curl_slist *list = nullptr;
  ~SlistBuilder() { curl_slist_free_all(list); }
  void add(const std::string &line) {
    struct curl_slist *next = curl_slist_append(list, line.c_str());
    if (!next) fail(ESP_ENOMEM, "out of memory");
    list = next;
  }
  struct curl_slist *release() {
    struct curl_slist *l = list;
    list = nullptr;
    return l;
  }
};

// The scheme of a URL reference (RFC 3986: ALPHA *(ALPHA / DIGIT / "+" /
// "-" / ".") ":"), "" for a relative path. "localhost:8080/x" has scheme
// "localhost": a relative path never has a colon in its first segment.
std::string scheme_of(const char *path) {
  if (!std::isalpha(static_cast<unsigned char>(*path))) return "";
  const char *p = path;
  while (std::isalnum(static_cast<unsigned char>(*p)) || *p == '+' || *p == '-' || *p == '.') ++p;
  return *p == ':' ? std::string(path, p) : "";
}

// Requests go where the caller pointed and nowhere else: an absolute
// http(s) URL or a path relative to base_url; anything else is refused
// before a byte is sent (it would go to base_url with the client's key).
bool is_absolute(const char *path) {
  std::string scheme = scheme_of(path);
  if (scheme.empty()) return false;
  std::string lower;
  for (char ch : scheme) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower != "http" && lower != "https") {
    if (scheme.size() > 32) {
      scheme.resize(32);
      scheme += "...";
    }
    fail(ESP_EINVAL, "unsupported URL scheme '" + scheme + "' (only http and https)");
  }
  if (std::strncmp(path + scheme.size(), "://", 3) != 0)
    fail(ESP_EINVAL, "an absolute URL must start with http:// or https://");
  return true;
}

bool is_idempotent(const std::string &method) {
  if (method == "GET") return true;  // nearly every request: one compare, not six
  for (const char *m : {"HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
    if (method == m) return true;
  return false;
}

// A per-request timeout: 0 takes the fallback, ESP_NO_TIMEOUT is none (0).
int64_t timeout_field(int64_t value, int64_t fallback, const char *name) {
  if (value < ESP_NO_TIMEOUT) fail(ESP_EINVAL, std::string(name) + " must be >= 0 or ESP_NO_TIMEOUT");
  return value == ESP_NO_TIMEOUT ? 0 : value > 0 ? value : fallback;
}

}  // namespace

// Longer than most functions on purpose: one pass in a fixed order (method,
// target, headers and credentials, replay safety, timeouts), each step reading
// what the earlier ones decided; split, the pieces would pass the half-built
// spec and header list between them.
RequestSpec build_request(const Client &client, const esp_request_opts &req) {
  const ClientConfig &cfg = client.config;
  RequestSpec spec;
  const bool has_body = req.body_len > 0;
  if (req.body_len > 0 && !req.body) fail(ESP_EINVAL, "body is NULL but body_len is not 0");
  if (req.header_count > 0 && !req.headers) fail(ESP_EINVAL, "headers is NULL but header_count is not 0");
  if (req.method) {
    if (!valid_token(req.method)) fail(ESP_EINVAL, "method is not a valid HTTP method token");
    spec.method = req.method;
  } else {
    spec.method = has_body ? "POST" : "GET";
  }

  const char *path = req.path ? req.path : "";
  const char *path_end = path;
  for (; *path_end; ++path_end)
    if (static_cast<unsigned char>(*path_end) <= 32 || *path_end == 127)
      fail(ESP_EINVAL, "path contains white space or control characters");
  const bool absolute = is_absolute(path);
  if (absolute) {
    spec.url = path;
    spec.own_origin_label = origin_of(spec.url);
    spec.own_origin_key = cfg.origin_key(spec.own_origin_label);
  } else {
    // One allocation for the whole URL, the default query included.
    spec.url.reserve(cfg.base_url.size() + 2 + static_cast<size_t>(path_end - path) + cfg.default_query.size());
    spec.url = cfg.base_url;
    if (*path && *path != '/' && *path != '?') spec.url += '/';
    spec.url.append(path, path_end);
    spec.config_origin_label = &cfg.base_origin;
    spec.config_origin_key = &cfg.base_origin_key;
  }
  if (!cfg.default_query.empty() && spec.url.find(cfg.default_query.substr(0, cfg.default_query.find('=') + 1)) == std::string::npos)
    spec.url += (spec.url.find('?') == std::string::npos ? '?' : '&') + cfg.default_query;

  HeaderList user;
  for (size_t i = 0; i < req.header_count; ++i) {
    const esp_header &h = req.headers[i];
    if (!valid_token(h.name)) fail(ESP_EINVAL, "header " + std::to_string(i) + " has an invalid name");
    if (!valid_value(h.value))
      fail(ESP_EINVAL, std::string("header '") + h.name + "' value is NULL or contains CR or LF");
    user.emplace_back(h.name, h.value);
  }

  spec.retry_allowed = !(req.flags & ESP_REQ_NO_RETRY) && cfg.max_retries > 0;
  // The client's credentials go to its own origin (and the ones its config
  // trusts): another origin gets the default headers without them.
  const bool trusted = !absolute || cfg.trusts(spec.origin_label());
  const HeaderList &defaults = trusted ? cfg.default_headers : cfg.public_headers;
  // The request's own lines first; then the client's shared default lines,
  // unless the request overrides one of them (then its own full copy).
  bool overrides = !trusted;
  for (const auto &h : user)
    overrides = overrides || has_header(defaults, h.first.c_str()) ||
                strcasecmp(h.first.c_str(), "User-Agent") == 0 || strcasecmp(h.first.c_str(), "Expect") == 0;
  SlistBuilder list;
  if (overrides)
    for (const auto &h : defaults)
      if (!has_header(user, h.first.c_str())) list.add(h.first + ": " + h.second);
  for (const auto &h : user) list.add(h.second.empty() ? h.first + ";" : h.first + ": " + h.second);
  if (has_body && !has_header(user, "Content-Type") && !has_header(defaults, "Content-Type"))
    list.add("Content-Type: application/json");
  if (overrides && !has_header(user, "User-Agent") && !has_header(defaults, "User-Agent"))
    list.add("User-Agent: libesp/" ESP_VERSION_STRING);
  const bool idempotent = is_idempotent(spec.method);
  bool keyed = !cfg.idempotency_header.empty() && (has_header(user, cfg.idempotency_header.c_str()) ||
                                                   has_header(defaults, cfg.idempotency_header.c_str()));
  if (spec.retry_allowed && !idempotent && !keyed && !cfg.idempotency_header.empty()) {
    list.add(cfg.idempotency_header + ": " + idempotency_key());
    keyed = true;
  }
  spec.replay_safe = idempotent || keyed;
  if (overrides && !has_header(user, "Expect")) list.add("Expect:");  // no 100-continue round trip
  if (!overrides) {
    spec.shared_tail = client.default_header_list(has_body);
    if (!list.list) {
      spec.headers = spec.shared_tail;
    } else {
      struct curl_slist *last = list.list;
      while (last->next) last = last->next;
      last->next = spec.shared_tail;
    }
  }

  if (has_body) spec.body.assign(static_cast<const char *>(req.body), req.body_len);
  spec.timeout_ms = timeout_field(req.timeout_ms, cfg.timeout_ms, "timeout_ms");
  spec.connect_timeout_ms = timeout_field(req.connect_timeout_ms, cfg.connect_timeout_ms, "connect_timeout_ms");
  spec.read_timeout_ms = timeout_field(req.read_timeout_ms, 0, "read_timeout_ms");
  // A per-request read timeout stands in for the client's idle one.
  spec.idle_timeout_ms =
      timeout_field(req.idle_timeout_ms, req.read_timeout_ms == 0 ? cfg.idle_timeout_ms : 0, "idle_timeout_ms");
  spec.first_byte_timeout_ms =
      timeout_field(req.first_byte_timeout_ms, cfg.first_byte_timeout_ms, "first_byte_timeout_ms");
  spec.write_timeout_ms = timeout_field(req.write_timeout_ms, 0, "write_timeout_ms");
  spec.pool_timeout_ms =
      timeout_field(req.pool_timeout_ms, cfg.effective_pool_timeout_ms(), "pool_timeout_ms");
  spec.flags = req.flags;
  spec.multiplexable = cfg.http2 && spec.origin_label().compare(0, 8, "https://") == 0;
  if (list.list) spec.headers = list.release();
  return spec;
}

namespace {

class WaitSink : public Sink {
 public:
  void complete(Transfer &t, int status, std::unique_ptr<esp_response> resp, const std::string &error) override {
    std::lock_guard<std::mutex> lock(mu_);
    sent_ = t.ever_sent;
    status_ = status;
    resp_ = std::move(resp);
    error_ = error;
    done_ = true;
    cv_.notify_one();
  }
  esp_response *wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    if (status_ != ESP_OK) throw Error(status_, error_, sent_);
    return resp_.release();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  int status_ = ESP_OK;
  bool sent_ = false;
  std::unique_ptr<esp_response> resp_;
  std::string error_;
};

}  // namespace

void refuse_on_io_thread(const char *function) {
  if (Engine::on_io_thread())
    fail(ESP_EINVAL, std::string(function) + " blocks and must not be called from a libesp callback");
}

std::shared_ptr<Transfer> make_transfer(uint64_t lease, const esp_request_opts &req, std::unique_ptr<Sink> sink) {
  const uint64_t epoch = shutdown_epoch();
  refuse_during_shutdown();
  std::shared_ptr<Client> client = registry().resolve(lease);
  RequestSpec spec = build_request(*client, req);
  std::shared_ptr<Engine> engine = engine_for(*client);
  // An esp_shutdown that began meanwhile may have missed this engine (a
  // fresh one, taken after it stopped the others): the request is over.
  if (shutdown_epoch() != epoch) fail(ESP_ESHUTDOWN, "esp_shutdown ran while the request was being set up");
  std::unique_ptr<Route> routed = route_request(client, req, &build_request);  // may make client a deployment's
  if (routed) {
    release_spec_headers(spec);
    try {
      spec = build_request(*client, req);
    } catch (...) {
      routed->refused();
      throw;
    }
  }
  Origin *origin = engine->origin(spec.origin_key(), spec.origin_label());
  auto t = std::make_shared<Transfer>(std::move(client), std::move(spec), std::move(sink));
  t->routed = std::move(routed);
  t->engine = std::move(engine);
  t->origin = origin;
  return t;
}

void unaccept(Transfer &t) {
  t.finished = true;
  if (t.routed) t.routed->refused();
}

esp_response *run_and_wait(const std::shared_ptr<Transfer> &t) {
  auto &waiter = static_cast<WaitSink &>(*t->sink);
  try {
    t->engine->run_sync(t);
  } catch (const Error &) {
    unaccept(*t);
    throw;
  }
  return waiter.wait();
}

std::shared_ptr<Transfer> make_waiting_transfer(uint64_t lease, const esp_request_opts &req) {
  return make_transfer(lease, req, std::make_unique<WaitSink>());
}

esp_response *perform(uint64_t lease, const esp_request_opts &req) {
  refuse_on_io_thread("esp_request");
  return run_and_wait(make_waiting_transfer(lease, req));
}

}  // namespace esp
