// The one table of client config keys: name, type, default, bounds, unit and
// a line of doc for each. config.cpp checks every key against it, config.h
// takes its defaults from it, and esp_config_schema() prints it as JSON, from
// which the README table and each binding's typed config are checked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace esp {

enum class KeyType { kInteger, kNumber, kBoolean, kString, kObject, kArray, kStringArray, kObjectArray };

enum KeyFlag : unsigned {
  kNonEmpty = 1,  // a string that may not be ""
  kSecret = 2,    // a credential: never in a log line, stats document or error
  kRequired = 4,  // an object without it is refused
};

struct ConfigKey {
  const char *name;
  KeyType type;
  const char *doc;
  const char *unit = nullptr;  // "ms" or "bytes" for integers
  int64_t integer = 0;         // the default of an integer key
  bool boolean = false;        // the default of a boolean key
  const char *text = nullptr;  // the default of a string key, or an object's or array's as JSON
  const char *default_doc = nullptr;  // the default in words when it is no constant (text is then nullptr)
  int64_t min = 0, max = 0;           // an integer's bounds; an object array's length
  unsigned flags = 0;
  const char *const *one_of = nullptr;  // the values a string may take, nullptr-terminated
  const ConfigKey *keys = nullptr;      // an object's keys (of each entry, for an object array)
  size_t key_count = 0;                 // 0 for an object: a map of names to strings

  constexpr ConfigKey with(unsigned more) const { ConfigKey k = *this; k.flags |= more; return k; }
  constexpr ConfigKey values(const char *const *allowed) const { ConfigKey k = *this; k.one_of = allowed; return k; }
  constexpr ConfigKey derived(const char *words) const { ConfigKey k = *this; k.default_doc = words; return k; }
  constexpr ConfigKey length(int64_t least, int64_t most) const { ConfigKey k = *this; k.min = least; k.max = most; return k; }
  template <size_t N>
  constexpr ConfigKey of(const ConfigKey (&nested)[N]) const { ConfigKey k = *this; k.keys = nested; k.key_count = N; return k; }
  constexpr bool has(KeyFlag f) const { return (flags & f) != 0; }
  // A default that esp_client_get("{key: default}") takes as it takes "{}".
  constexpr bool has_default() const { return default_doc == nullptr; }
};

constexpr int64_t kDay = 86400000;  // ms: the bound of every timeout

constexpr ConfigKey integer(const char *name, int64_t def, int64_t min, int64_t max, const char *unit, const char *doc) {
  ConfigKey k{name, KeyType::kInteger, doc};
  k.unit = unit;
  k.integer = def;
  k.min = min;
  k.max = max;
  return k;
}
constexpr ConfigKey boolean(const char *name, bool def, const char *doc) {
  ConfigKey k{name, KeyType::kBoolean, doc};
  k.boolean = def;
  return k;
}
// `def` nullptr: unset by default; say what that means with .derived().
constexpr ConfigKey text(const char *name, const char *def, const char *doc) {
  ConfigKey k{name, KeyType::kString, doc};
  k.text = def;
  return k;
}
// An object, string array or object array; `def` is its default as JSON.
constexpr ConfigKey compound(const char *name, KeyType type, const char *def, const char *doc) {
  ConfigKey k{name, type, doc};
  k.text = def;
  return k;
}

inline constexpr const char *kProviderNames[] = {"openai", "azure", "anthropic", "gemini", "groq",
                                                 "cerebras", "mistral", "together", "openrouter", "jina",
                                                 "ollama", "generic", nullptr};
inline constexpr const char *kRoutingNames[] = {"least_busy", "weighted", "ordered", nullptr};

inline constexpr ConfigKey kRateLimitKeys[] = {
    integer("requests_per_minute", 0, 0, int64_t{1} << 40, nullptr, "requests per minute of the credential (0: none configured; learnt limits still apply)"),
    integer("tokens_per_minute", 0, 0, int64_t{1} << 40, nullptr, "tokens per minute of the credential (0: none configured)"),
};

inline constexpr ConfigKey kSharedStateKeys[] = {
    text("redis", nullptr, "`redis://[:password@]host:port/db`").with(kRequired | kSecret | kNonEmpty).derived("none"),
    text("namespace", "esp", "prefix of the Redis keys (no blanks, control characters or braces)").with(kNonEmpty),
    integer("timeout_ms", 50, 1, 10000, "ms", "longest wait for Redis before deciding locally"),
};

inline constexpr ConfigKey kDeploymentKeys[] = {
    text("base_url", nullptr, "the deployment's base URL").with(kRequired | kNonEmpty).derived("none"),
    text("api_key", nullptr, "its key: it goes to no other deployment").with(kSecret).derived("none"),
    text("api_key_env", nullptr, "the environment variable holding its key").with(kNonEmpty).derived("none"),
    integer("weight", 1, 1, 1000000, nullptr, "its share with `routing: \"weighted\"`"),
    compound("rate_limit", KeyType::kObject, nullptr, "its credential's limits (else the client's `rate_limit`)").of(kRateLimitKeys).derived("the client's"),
    text("name", nullptr, "a label in stats, metrics and logs").with(kNonEmpty).derived("its origin"),
};

// Every key, in the order of the README table and of the canonical form.
inline constexpr ConfigKey kClientKeys[] = {
    text("provider", "openai", "preset: base URL and auth header. `azure`: `api-key` + `?api-version=`; `anthropic`: `x-api-key` + `anthropic-version`; `gemini`: `x-goog-api-key`; the others: `Authorization: Bearer`. `azure` and `generic` need `base_url`").with(kNonEmpty).values(kProviderNames),
    text("name", nullptr, "a label in stats, metrics and logs").derived("`client-<id>`"),
    text("base_url", nullptr, "the API root, e.g. `https://api.openai.com/v1`").with(kNonEmpty).derived("the preset's"),
    text("api_key", nullptr, "the key").with(kSecret).derived("none"),
    text("api_key_env", nullptr, "the environment variable holding the key (read at `esp_client_get`); excludes `api_key`").with(kNonEmpty).derived("none"),
    text("organization", nullptr, "`OpenAI-Organization` header").derived("none"),
    text("project", nullptr, "`OpenAI-Project` header").derived("none"),
    text("api_version", nullptr, "Azure `api-version`, `anthropic-version`").with(kNonEmpty).derived("the preset's"),
    compound("headers", KeyType::kObject, "{}", "extra default headers (a request's own override them). Those that carry credentials (`authorization`, `cookie`, names containing `key`, `token`, `secret`, `auth`, `password`, `session`, `signature`, `credential`) go only to trusted origins, like the auth header"),
    compound("credential_origins", KeyType::kStringArray, "[]", "origins besides `base_url`'s (e.g. `[\"https://files.example.com\"]`) that may receive the client's credentials in requests to absolute URLs; every other origin gets none of them"),
    integer("timeout_ms", 45000, 1, kDay, "ms", "whole request, retries and pool wait included"),
    integer("connect_timeout_ms", 10000, 1, kDay, "ms", "DNS + TCP + TLS"),
    integer("first_byte_timeout_ms", 0, 0, kDay, "ms", "longest wait for the response to start (0: off)"),
    integer("idle_timeout_ms", 0, 0, kDay, "ms", "longest silence inside a response, e.g. a stream (0: off)"),
    integer("pool_timeout_ms", 0, 0, kDay, "ms", "longest wait for a connection slot").derived("`timeout_ms`"),
    integer("max_connections", 64, 1, 10000, nullptr, "per origin (HTTP/2: connections, 100 streams each)"),
    boolean("http2", true, "HTTP/2 over TLS, multiplexed"),
    integer("max_retries", 2, 0, 100, nullptr, "retries on 408/409/429/5xx and connection errors"),
    integer("retry_base_ms", 500, 0, kDay, "ms", "exponential backoff base, 75-100 % jitter"),
    integer("retry_max_ms", 8000, 0, kDay, "ms", "backoff cap (at least `retry_base_ms`)"),
    integer("retry_after_max_ms", 60000, 0, kDay, "ms", "longest `retry-after(-ms)` honoured; longer ones fall back to backoff"),
    text("idempotency_header", "Idempotency-Key", "sent on retriable POSTs, the same on every attempt; `\"\"` disables"),
    integer("breaker_failures", 5, 0, 1000000, nullptr, "consecutive failures that open the per-origin circuit breaker (0 disables)"),
    integer("breaker_cooldown_ms", 30000, 0, kDay, "ms", "how long an open breaker stays open"),
    integer("idle_ttl_ms", 30000, 0, kDay, "ms", "linger after the last lease is released"),
    integer("conn_max_idle_ms", 60000, 1000, kDay, "ms", "a connection idle longer than this is closed, never reused (to the millisecond)"),
    boolean("verify_tls", true, "verify the server's certificate"),
    text("ca_file", nullptr, "CA bundle (PEM)").with(kNonEmpty).derived("`SSL_CERT_FILE`, libcurl's or the system's"),
    text("client_cert", nullptr, "client certificate (PEM)").with(kNonEmpty).derived("none"),
    text("client_key", nullptr, "client key (PEM); needs `client_cert`").with(kNonEmpty).derived("none"),
    text("proxy", nullptr, "proxy URL").with(kNonEmpty).derived("none"),
    boolean("isolate", false, "own connections (and I/O threads), shared with no other config"),
    compound("socket_options", KeyType::kArray, "[]", "`[[level, option, value], ...]` (integers, at most 32): `setsockopt` on every socket the client opens, after libcurl's own (so `[6, 1, 0]` turns TCP_NODELAY off); implies `isolate`, since a pooled connection goes to any client of its engine. An option the kernel refuses ends the request with `ESP_ECONFIG` naming it: nothing sent, no retry, no circuit-breaker failure (it is the config's fault, not the origin's)"),
    integer("max_response_bytes", int64_t{64} << 20, 1, int64_t{1} << 40, "bytes", "`ESP_ETOOLARGE` past it"),
    integer("slow_request_ms", 10000, 0, kDay, "ms", "requests slower than this are logged (`slow_request`)"),
    integer("stream_buffer_bytes", int64_t{1} << 20, 1, int64_t{1} << 32, "bytes", "a stream reader (every binding's streams, `esp_stream_*`) may fall this far behind before the transfer pauses"),
    integer("stream_resume_bytes", 0, 0, int64_t{1} << 32, "bytes", "a paused stream resumes once its reader is back to this many unread bytes (less than `stream_buffer_bytes`)").derived("`stream_buffer_bytes` / 4"),
    compound("rate_limit", KeyType::kObject, nullptr, "client-side limits of the client's credential; `{}` only learns them from the provider's headers (README: Rate limits)").of(kRateLimitKeys).derived("off"),
    compound("shared_state", KeyType::kObject, nullptr, "rate limits and breakers shared by every process pointing at that Redis (README: Running a fleet)").of(kSharedStateKeys).derived("off"),
    compound("deployments", KeyType::kObjectArray, nullptr, "1 to 64 interchangeable endpoints of one API; each request to a relative path goes to one of them, with its own key and rate limit and the client's other settings (README: Deployments)").of(kDeploymentKeys).derived("none").length(1, 64),
    text("routing", "least_busy", "with `deployments`: `least_busy` (fewest requests in flight), `weighted` (in proportion to `weight`), `ordered` (the first not cooling down; the rest are fallbacks)").with(kNonEmpty).values(kRoutingNames),
    integer("deployment_cooldown_ms", 5000, 0, kDay, "ms", "with `deployments`: how long a failed deployment is skipped while another can take the request (longer when a 429 says `retry-after`, up to `retry_after_max_ms`)"),
};

// The key named `name` among `keys`, or nullptr.
inline const ConfigKey *find_key(const ConfigKey *keys, size_t count, std::string_view name) {
  for (size_t i = 0; i < count; ++i)
    if (name == keys[i].name) return &keys[i];
  return nullptr;
}

// "shared_state.timeout_ms" -> the nested key; a missing one is a compile
// error where this is constant-evaluated (ESP_CONFIG_DEFAULT).
constexpr const ConfigKey &config_key(std::string_view path) {
  const ConfigKey *keys = kClientKeys;
  size_t count = sizeof kClientKeys / sizeof kClientKeys[0];
  for (;;) {
    const size_t dot = path.find('.');
    const std::string_view head = path.substr(0, dot);
    const ConfigKey *found = nullptr;
    for (size_t i = 0; i < count && !found; ++i)
      if (head == keys[i].name) found = &keys[i];
    if (!found) throw "no such config key";
    if (dot == std::string_view::npos) return *found;
    keys = found->keys;
    count = found->key_count;
    path = path.substr(dot + 1);
  }
}

// A key's default from the table, evaluated at compile time.
#define ESP_CONFIG_DEFAULT(path, field) ([] { constexpr auto value = ::esp::config_key(path).field; return value; }())

// " (did you mean 'timeout_ms'?)" for a near miss of one of `keys`, else "".
std::string suggest_key(const ConfigKey *keys, size_t count, const std::string &name);

// The table as the JSON text of esp_config_schema(); built once, never freed.
const char *config_schema_json();

}  // namespace esp
