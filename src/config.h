// The client configuration: JSON in (cJSON), a validated ClientConfig out,
// with the canonical form that keys the registry. The keys, their types,
// bounds and defaults are config_schema.h's table.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config_schema.h"

namespace esp {

using HeaderList = std::vector<std::pair<std::string, std::string>>;
// Whether the list has a header of this name (case-insensitive).
bool has_header(const HeaderList &list, const char *name);

// The "rate_limit" key (ratelimit.h). Present, even empty, it turns on
// limiting, header learning and usage accounting for the client's credential.
struct RateLimitConfig {
  bool enabled = false;
  int64_t requests_per_minute = ESP_CONFIG_DEFAULT("rate_limit.requests_per_minute", integer);  // 0: none configured (learnt ones still apply)
  int64_t tokens_per_minute = ESP_CONFIG_DEFAULT("rate_limit.tokens_per_minute", integer);
};

// The "shared_state" key (shared_state.h): Redis shared by a fleet.
struct SharedStateConfig {
  bool enabled = false;
  std::string host;
  int port = 6379;
  int db = 0;
  std::string password;  // secret: never printed
  std::string ns = ESP_CONFIG_DEFAULT("shared_state.namespace", text);
  int64_t timeout_ms = ESP_CONFIG_DEFAULT("shared_state.timeout_ms", integer);  // longest wait for Redis before deciding locally
};

// One entry of "socket_options": setsockopt(fd, level, name, &value, sizeof(int))
// on every socket the client opens (httpx's socket_options, integer values).
struct SocketOption {
  int level = 0;
  int name = 0;
  int value = 0;
};

// How a client with "deployments" picks one per request (deployments.h).
enum class Routing { kLeastBusy, kWeighted, kOrdered };

struct DeploymentConfig;

// Each ESP_CONFIG_DEFAULT is the table's default, read at compile time.
struct ClientConfig {
  std::string provider = ESP_CONFIG_DEFAULT("provider", text);
  std::string name;
  std::string base_url;
  std::string api_key;  // secret: never printed
  std::string organization;
  std::string project;
  std::string api_version;
  HeaderList headers;  // extra default headers, sorted by name
  int64_t timeout_ms = ESP_CONFIG_DEFAULT("timeout_ms", integer);
  int64_t connect_timeout_ms = ESP_CONFIG_DEFAULT("connect_timeout_ms", integer);
  int64_t pool_timeout_ms = -1;  // -1: timeout_ms
  int64_t idle_timeout_ms = ESP_CONFIG_DEFAULT("idle_timeout_ms", integer);
  int64_t first_byte_timeout_ms = ESP_CONFIG_DEFAULT("first_byte_timeout_ms", integer);
  int64_t max_connections = ESP_CONFIG_DEFAULT("max_connections", integer);
  bool http2 = ESP_CONFIG_DEFAULT("http2", boolean);
  int64_t max_retries = ESP_CONFIG_DEFAULT("max_retries", integer);
  int64_t retry_base_ms = ESP_CONFIG_DEFAULT("retry_base_ms", integer);
  int64_t retry_max_ms = ESP_CONFIG_DEFAULT("retry_max_ms", integer);
  int64_t retry_after_max_ms = ESP_CONFIG_DEFAULT("retry_after_max_ms", integer);
  std::string idempotency_header = ESP_CONFIG_DEFAULT("idempotency_header", text);
  int64_t breaker_failures = ESP_CONFIG_DEFAULT("breaker_failures", integer);
  int64_t breaker_cooldown_ms = ESP_CONFIG_DEFAULT("breaker_cooldown_ms", integer);
  int64_t idle_ttl_ms = ESP_CONFIG_DEFAULT("idle_ttl_ms", integer);
  int64_t conn_max_idle_ms = ESP_CONFIG_DEFAULT("conn_max_idle_ms", integer);
  bool verify_tls = ESP_CONFIG_DEFAULT("verify_tls", boolean);
  std::string ca_file;
  std::string client_cert;
  std::string client_key;
  std::string proxy;
  bool isolate = ESP_CONFIG_DEFAULT("isolate", boolean);
  int64_t max_response_bytes = ESP_CONFIG_DEFAULT("max_response_bytes", integer);
  int64_t slow_request_ms = ESP_CONFIG_DEFAULT("slow_request_ms", integer);
  // Stream readers: pause the transfer while this many bytes wait unread,
  // resume at stream_resume_bytes or fewer (-1: a quarter of it).
  int64_t stream_buffer_bytes = ESP_CONFIG_DEFAULT("stream_buffer_bytes", integer);
  int64_t stream_resume_bytes = -1;
  std::vector<SocketOption> socket_options;  // in the order given
  // Origins besides base_url's that may receive the client's credentials,
  // as "scheme://host:port", sorted.
  std::vector<std::string> credential_origins;
  RateLimitConfig rate_limit;
  SharedStateConfig shared_state;
  // The "deployments" key: interchangeable endpoints of one API. Each is a
  // whole config of its own (this one's settings with its own base_url,
  // credential and rate_limit), so a credential never leaves its deployment.
  std::vector<std::shared_ptr<const DeploymentConfig>> deployments;
  Routing routing = Routing::kLeastBusy;
  int64_t deployment_cooldown_ms = ESP_CONFIG_DEFAULT("deployment_cooldown_ms", integer);

  // Derived by parse_config.
  HeaderList default_headers;  // auth + provider + user headers, secrets included
  HeaderList public_headers;   // default_headers without the credentials: for other origins
  std::string default_query;   // e.g. "api-version=2024-10-21" for azure
  std::string canonical;       // identity of the client: contains secrets, never printed
  std::string base_origin;     // "https://api.openai.com:443"
  std::string transport_key;   // what decides whether two configs may share TLS connections
  std::string base_origin_key; // origin_key(base_origin), computed once: most requests go there

  // The key of the engine's Origin for requests to `origin` with this
  // config's transport. libcurl reuses a plain-HTTP connection for any
  // config with the same proxy (TLS settings do not apply, and http2 means
  // HTTP/2 over TLS only), so those configs must share one Origin: its
  // connection tokens count what the shards' caches really hold.
  std::string origin_key(const std::string &origin) const {
    return origin + "|" + (origin.compare(0, 8, "https://") == 0 ? transport_key : "plain|" + proxy);
  }

  // May a request to `origin` ("scheme://host:port") carry the credentials?
  bool trusts(const std::string &origin) const;

  int64_t effective_pool_timeout_ms() const {
    return pool_timeout_ms < 0 ? timeout_ms : pool_timeout_ms;
  }
  int64_t effective_stream_resume_bytes() const {
    return stream_resume_bytes < 0 ? stream_buffer_bytes / 4 : stream_resume_bytes;
  }
};

struct DeploymentConfig {
  std::string name;  // its "name", else its base_url's origin
  int64_t weight = ESP_CONFIG_DEFAULT("deployments.weight", integer);
  ClientConfig config;
};

// Throws Error(ESP_ECONFIG) naming the offending key. NULL or "" mean "{}".
ClientConfig parse_config(const char *json);

// "scheme://host:port" of an absolute http(s) URL; throws Error(ESP_EINVAL).
std::string origin_of(const std::string &url);

// The URL with the values of query parameters that carry secrets replaced.
std::string redact_url(const std::string &url);

}  // namespace esp
