// Client configs: JSON parsed with cJSON into a validated ClientConfig, the
// provider presets, and the canonical form that keys the registry (see config.h).
#include "config.h"

#include <cjson/cJSON.h>
#include <strings.h>
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>

#include "config_schema.h"
#include "esp.h"
#include "status.h"

namespace esp {

namespace {

enum class Auth { kBearer, kAzureKey, kAnthropicKey, kGoogleKey };

struct Preset {
  const char *name;
  const char *base_url;  // nullptr: base_url is required
  Auth auth;
  const char *api_version;  // nullptr: none
};

const Preset kPresets[] = {
    {"openai", "https://api.openai.com/v1", Auth::kBearer, nullptr},
    {"azure", nullptr, Auth::kAzureKey, "2024-10-21"},
    {"anthropic", "https://api.anthropic.com/v1", Auth::kAnthropicKey, "2023-06-01"},
    {"gemini", "https://generativelanguage.googleapis.com/v1beta", Auth::kGoogleKey, nullptr},
    {"groq", "https://api.groq.com/openai/v1", Auth::kBearer, nullptr},
    {"cerebras", "https://api.cerebras.ai/v1", Auth::kBearer, nullptr},
    {"mistral", "https://api.mistral.ai/v1", Auth::kBearer, nullptr},
    {"together", "https://api.together.xyz/v1", Auth::kBearer, nullptr},
    {"openrouter", "https://openrouter.ai/api/v1", Auth::kBearer, nullptr},
    {"jina", "https://api.jina.ai/v1", Auth::kBearer, nullptr},
    {"ollama", "http://localhost:11434/v1", Auth::kBearer, nullptr},
    {"generic", nullptr, Auth::kBearer, nullptr},
};

const Preset *find_preset(const std::string &name) {
  for (const Preset &p : kPresets)
    if (name == p.name) return &p;
  return nullptr;
}

struct JsonDeleter {
  void operator()(cJSON *j) const { cJSON_Delete(j); }
};
using JsonPtr = std::unique_ptr<cJSON, JsonDeleter>;

[[noreturn]] void config_error(const std::string &msg) { fail(ESP_ECONFIG, "config: " + msg); }

bool has_crlf(const std::string &s) { return s.find_first_of("\r\n") != std::string::npos; }

std::string quoted(const std::string &path) { return "'" + path + "'"; }

void check_object(const ConfigKey *keys, size_t count, const cJSON *object, const std::string &where);

// The value of `item` (named `path` in messages) checked against its key in
// the table: type, bounds, emptiness, CR/LF, allowed values, nested keys. One
// case per type: long, but each case stands alone.
void check_value(const ConfigKey &k, const cJSON *item, const std::string &path) {
  const std::string at = quoted(path);
  switch (k.type) {
    case KeyType::kInteger: {
      const double v = item->valuedouble;
      if (!cJSON_IsNumber(item) || !std::isfinite(v) || std::floor(v) != v) config_error(at + " must be an integer");
      if (v < static_cast<double>(k.min) || v > static_cast<double>(k.max))
        config_error(at + " must be between " + std::to_string(k.min) + " and " + std::to_string(k.max));
      return;
    }
    case KeyType::kNumber:
      if (!cJSON_IsNumber(item) || !std::isfinite(item->valuedouble)) config_error(at + " must be a number");
      return;
    case KeyType::kBoolean:
      if (!cJSON_IsBool(item)) config_error(at + " must be true or false");
      return;
    case KeyType::kString: {
      if (!cJSON_IsString(item)) config_error(at + " must be a string");
      const std::string v = item->valuestring;
      if (k.has(kNonEmpty) && v.empty()) config_error(at + " must not be empty");
      if (has_crlf(v)) config_error(at + " must not contain CR or LF");
      if (!k.one_of) return;
      std::string allowed;
      for (const char *const *name = k.one_of; *name; ++name) {
        if (v == *name) return;
        allowed.append(allowed.empty() ? "" : ", ").append(*name);
      }
      config_error(at + " has unknown value '" + v + "' (one of " + allowed + ")");
    }
    case KeyType::kObject:
      if (!cJSON_IsObject(item)) config_error(at + (k.key_count ? " must be an object" : " must be an object of strings"));
      if (k.key_count) return check_object(k.keys, k.key_count, item, path);
      for (const cJSON *v = item->child; v; v = v->next) {
        if (!cJSON_IsString(v)) config_error(at + " value of '" + v->string + "' must be a string");
        if (has_crlf(v->valuestring)) config_error(at + " value of '" + v->string + "' must not contain CR or LF");
      }
      return;
    case KeyType::kArray:
      if (!cJSON_IsArray(item)) config_error(at + " must be an array");
      return;
    case KeyType::kStringArray:
      if (!cJSON_IsArray(item)) config_error(at + " must be an array of strings");
      for (const cJSON *v = item->child; v; v = v->next)
        if (!cJSON_IsString(v)) config_error(at + " entries must be strings");
      return;
    case KeyType::kObjectArray: {
      const int n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : -1;
      if (n < k.min || n > k.max)
        config_error(at + " must be an array of " + std::to_string(k.min) + " to " + std::to_string(k.max) + " objects");
      int index = 0;
      for (const cJSON *entry = item->child; entry; entry = entry->next, ++index) {
        const std::string where = path + "[" + std::to_string(index) + "]";
        if (!cJSON_IsObject(entry)) config_error(quoted(where) + " must be an object");
        check_object(k.keys, k.key_count, entry, where);
      }
      return;
    }
  }
}

// The key of `keys` that `item` names; an unknown one is refused, with the
// near miss it may be a typo of.
const ConfigKey &key_of(const ConfigKey *keys, size_t count, const cJSON *item, const std::string &where) {
  const std::string name = item->string;
  const ConfigKey *k = find_key(keys, count, name);
  if (k) return *k;
  std::string hint = suggest_key(keys, count, name);
  if (hint.empty() && !where.empty()) {  // a nested object has few keys: name them
    for (size_t i = 0; i < count; ++i) hint.append(i ? ", " : " (keys: ").append(keys[i].name);
    hint += ")";
  }
  config_error((where.empty() ? "unknown key '" : quoted(where) + " has unknown key '") + name + "'" + hint);
}

// Every key of a nested object (`where`: its path) known, once, valid; the
// required ones present.
void check_object(const ConfigKey *keys, size_t count, const cJSON *object, const std::string &where) {
  for (const cJSON *item = object->child; item; item = item->next) {
    if (cJSON_GetObjectItemCaseSensitive(object, item->string) != item)
      config_error(quoted(where) + " has a duplicate key '" + item->string + "'");
    check_value(key_of(keys, count, item, where), item, where + "." + item->string);
  }
  for (size_t i = 0; i < count; ++i)
    if (keys[i].has(kRequired) && !cJSON_GetObjectItemCaseSensitive(object, keys[i].name))
      config_error(quoted(where) + " needs '" + keys[i].name + "'");
}

int64_t integer_of(const cJSON *item) { return static_cast<int64_t>(item->valuedouble); }

// Headers whose value is a secret: they go to trusted origins only.
bool carries_credentials(const std::string &name) {
  std::string n;
  for (char ch : name) n += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (n == "authorization" || n == "proxy-authorization" || n == "cookie") return true;
  for (const char *word : {"key", "token", "secret", "auth", "password", "session", "signature", "credential"})
    if (n.find(word) != std::string::npos) return true;
  return false;
}

bool valid_header_name(const std::string &n) {
  if (n.empty()) return false;
  for (unsigned char c : n)
    if (c <= 32 || c >= 127 || c == ':') return false;
  return true;
}

// "redis://[[user]:password@]host[:port][/db]"
void parse_redis_url(const std::string &url, SharedStateConfig &s) {
  const std::string scheme = "redis://";
  auto bad = [] { config_error("'shared_state.redis' must look like redis://host:port/db"); };
  if (url.compare(0, scheme.size(), scheme) != 0) bad();
  std::string rest = url.substr(scheme.size());
  size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    std::string auth = rest.substr(0, at);
    size_t colon = auth.find(':');
    s.password = colon == std::string::npos ? auth : auth.substr(colon + 1);
    rest = rest.substr(at + 1);
  }
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos && slash + 1 < rest.size()) {
    const std::string db = rest.substr(slash + 1);
    if (db.find_first_not_of("0123456789") != std::string::npos || db.size() > 5) bad();
    s.db = std::stoi(db);
  }
  const size_t bracket = hostport.find(']');  // [::1]:6379
  const size_t colon = hostport.rfind(':');
  const bool has_port = colon != std::string::npos &&
                        (bracket == std::string::npos ? hostport.find(':') == colon : colon > bracket);
  if (has_port) {
    const std::string port = hostport.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) bad();
    s.port = std::stoi(port);
    if (s.port < 1 || s.port > 65535) bad();
    hostport.resize(colon);
  }
  if (hostport.size() > 2 && hostport.front() == '[' && hostport.back() == ']') hostport = hostport.substr(1, hostport.size() - 2);
  if (hostport.empty()) bad();
  s.host = hostport;
}

// Checked by check_value against kSharedStateKeys; the URL and the
// namespace's characters are this key's own rules.
SharedStateConfig get_shared_state(const cJSON *item) {
  SharedStateConfig s;
  s.enabled = true;
  for (const cJSON *k = item->child; k; k = k->next) {
    const std::string name = k->string;
    if (name == "redis") {
      parse_redis_url(k->valuestring, s);
    } else if (name == "namespace") {
      s.ns = k->valuestring;
      for (char ch : s.ns)
        if (static_cast<unsigned char>(ch) <= 32 || ch == '{' || ch == '}' || ch == 127)
          config_error("'shared_state.namespace' must not contain blanks, control characters or braces");
    } else if (name == "timeout_ms") {
      s.timeout_ms = integer_of(k);
    }
  }
  return s;
}

RateLimitConfig get_rate_limit(const cJSON *item) {
  RateLimitConfig r;
  r.enabled = true;
  for (const cJSON *k = item->child; k; k = k->next) {
    const std::string name = k->string;
    if (name == "requests_per_minute") r.requests_per_minute = integer_of(k);
    else if (name == "tokens_per_minute") r.tokens_per_minute = integer_of(k);
  }
  return r;
}

// [[level, name, value], ...]: integers, as setsockopt takes them.
std::vector<SocketOption> get_socket_options(const cJSON *item) {
  const char *shape = "'socket_options' must be an array of [level, option, value] integer triples";
  if (cJSON_GetArraySize(item) > 32) config_error(std::string(shape) + " (at most 32)");  // an array: checked by the table
  std::vector<SocketOption> out;
  for (const cJSON *entry = item->child; entry; entry = entry->next) {
    if (!cJSON_IsArray(entry) || cJSON_GetArraySize(entry) != 3) config_error(shape);
    int fields[3];
    int i = 0;
    for (const cJSON *n = entry->child; n; n = n->next, ++i) {
      const double v = n->valuedouble;
      if (!cJSON_IsNumber(n) || std::floor(v) != v || v < (i < 2 ? 0.0 : -2147483648.0) || v > 2147483647.0)
        config_error(std::string(shape) + " (level and option >= 0; value a 32-bit integer)");
      fields[i] = static_cast<int>(v);
    }
    out.push_back({fields[0], fields[1], fields[2]});
  }
  return out;
}

// Keys whose value parse_config reads after the others.
struct Deferred {
  std::string api_key_env;
  const cJSON *deployments = nullptr;
};

Routing get_routing(const cJSON *item) {
  const std::string v = item->valuestring;
  if (v == "weighted") return Routing::kWeighted;
  if (v == "ordered") return Routing::kOrdered;
  return Routing::kLeastBusy;  // kRoutingNames admits no other value
}

void get_headers(ClientConfig &c, const cJSON *item) {
  for (const cJSON *h = item->child; h; h = h->next) {
    if (!valid_header_name(h->string))
      config_error("'headers' has an invalid header name '" + std::string(h->string) + "'");
    c.headers.emplace_back(h->string, h->valuestring);
  }
}

void get_credential_origins(ClientConfig &c, const cJSON *item) {
  for (const cJSON *o = item->child; o; o = o->next) {
    try {
      c.credential_origins.push_back(origin_of(o->valuestring));
    } catch (const Error &) {
      config_error("'credential_origins' entry '" + std::string(o->valuestring) +
                   "' is not an http:// or https:// origin");
    }
  }
  std::sort(c.credential_origins.begin(), c.credential_origins.end());
}

// The table (config_schema.h) decides which keys exist and checks each value;
// this stores it. Long, but each line stands alone.
void apply_key(ClientConfig &c, const cJSON *item, Deferred &deferred) {
  const ConfigKey &spec = key_of(kClientKeys, std::size(kClientKeys), item, "");
  check_value(spec, item, spec.name);
  const std::string key = spec.name;
  const std::string text = cJSON_IsString(item) ? item->valuestring : "";
  if (key == "provider") c.provider = text;
  else if (key == "name") c.name = text;
  else if (key == "base_url") c.base_url = text;
  else if (key == "api_key") c.api_key = text;
  else if (key == "api_key_env") deferred.api_key_env = text;
  else if (key == "organization") c.organization = text;
  else if (key == "project") c.project = text;
  else if (key == "api_version") c.api_version = text;
  else if (key == "headers") get_headers(c, item);
  else if (key == "credential_origins") get_credential_origins(c, item);
  else if (key == "timeout_ms") c.timeout_ms = integer_of(item);
  else if (key == "connect_timeout_ms") c.connect_timeout_ms = integer_of(item);
  else if (key == "first_byte_timeout_ms") c.first_byte_timeout_ms = integer_of(item);
  else if (key == "idle_timeout_ms") c.idle_timeout_ms = integer_of(item);
  else if (key == "pool_timeout_ms") c.pool_timeout_ms = integer_of(item);
  else if (key == "max_connections") c.max_connections = integer_of(item);
  else if (key == "http2") c.http2 = cJSON_IsTrue(item);
  else if (key == "max_retries") c.max_retries = integer_of(item);
  else if (key == "retry_base_ms") c.retry_base_ms = integer_of(item);
  else if (key == "retry_max_ms") c.retry_max_ms = integer_of(item);
  else if (key == "retry_after_max_ms") c.retry_after_max_ms = integer_of(item);
  else if (key == "idempotency_header") {
    c.idempotency_header = text;
    if (!text.empty() && !valid_header_name(text)) config_error("'idempotency_header' is not a valid header name");
  } else if (key == "breaker_failures") c.breaker_failures = integer_of(item);
  else if (key == "breaker_cooldown_ms") c.breaker_cooldown_ms = integer_of(item);
  else if (key == "idle_ttl_ms") c.idle_ttl_ms = integer_of(item);
  else if (key == "conn_max_idle_ms") c.conn_max_idle_ms = integer_of(item);
  else if (key == "verify_tls") c.verify_tls = cJSON_IsTrue(item);
  else if (key == "ca_file") c.ca_file = text;
  else if (key == "client_cert") c.client_cert = text;
  else if (key == "client_key") c.client_key = text;
  else if (key == "proxy") c.proxy = text;
  else if (key == "isolate") c.isolate = cJSON_IsTrue(item);
  else if (key == "max_response_bytes") c.max_response_bytes = integer_of(item);
  else if (key == "slow_request_ms") c.slow_request_ms = integer_of(item);
  else if (key == "stream_buffer_bytes") c.stream_buffer_bytes = integer_of(item);
  else if (key == "stream_resume_bytes") c.stream_resume_bytes = integer_of(item);
  else if (key == "socket_options") c.socket_options = get_socket_options(item);
  else if (key == "rate_limit") c.rate_limit = get_rate_limit(item);
  else if (key == "shared_state") c.shared_state = get_shared_state(item);
  else if (key == "deployments") deferred.deployments = item;
  else if (key == "routing") c.routing = get_routing(item);
  else if (key == "deployment_cooldown_ms") c.deployment_cooldown_ms = integer_of(item);
  else fail(ESP_EINTERNAL, "config: key '" + key + "' is in the table but not applied");
}

void derive(ClientConfig &c) {
  const Preset *preset = find_preset(c.provider);
  if (!preset) fail(ESP_EINTERNAL, "config: provider '" + c.provider + "' is in the table but has no preset");
  if (c.base_url.empty()) {
    if (!preset->base_url) config_error("'base_url' is required for provider '" + c.provider + "'");
    c.base_url = preset->base_url;
  }
  while (!c.base_url.empty() && c.base_url.back() == '/') c.base_url.pop_back();
  try {
    c.base_origin = origin_of(c.base_url);
  } catch (const Error &) {
    config_error("'base_url' must be an absolute http:// or https:// URL");
  }
  if (c.api_version.empty() && preset->api_version) c.api_version = preset->api_version;
  if (c.retry_max_ms < c.retry_base_ms) config_error("'retry_max_ms' must be >= 'retry_base_ms'");
  if (c.stream_resume_bytes >= c.stream_buffer_bytes)
    config_error("'stream_resume_bytes' must be < 'stream_buffer_bytes'");
  if (!c.client_key.empty() && c.client_cert.empty())
    config_error("'client_key' needs 'client_cert'");
  // libcurl reuses any pooled connection to the origin, whoever opened it:
  // sockets with options of their own need connections of their own.
  if (!c.socket_options.empty()) c.isolate = true;

  HeaderList &h = c.default_headers;
  if (!c.api_key.empty()) {
    switch (preset->auth) {
      case Auth::kBearer: h.emplace_back("Authorization", "Bearer " + c.api_key); break;
      case Auth::kAzureKey: h.emplace_back("api-key", c.api_key); break;
      case Auth::kAnthropicKey: h.emplace_back("x-api-key", c.api_key); break;
      case Auth::kGoogleKey: h.emplace_back("x-goog-api-key", c.api_key); break;
    }
  }
  if (preset->auth == Auth::kAnthropicKey && !c.api_version.empty())
    h.emplace_back("anthropic-version", c.api_version);
  if (preset->auth == Auth::kAzureKey && !c.api_version.empty())
    c.default_query = "api-version=" + c.api_version;
  if (!c.organization.empty()) h.emplace_back("OpenAI-Organization", c.organization);
  if (!c.project.empty()) h.emplace_back("OpenAI-Project", c.project);
  std::sort(c.headers.begin(), c.headers.end());
  for (const auto &kv : c.headers) h.push_back(kv);
  for (const auto &kv : h)
    if (!carries_credentials(kv.first)) c.public_headers.push_back(kv);
}

void add_str(cJSON *o, const char *k, const std::string &v) { cJSON_AddStringToObject(o, k, v.c_str()); }
void add_int(cJSON *o, const char *k, int64_t v) { cJSON_AddNumberToObject(o, k, static_cast<double>(v)); }

// Every key in a fixed order, one line each: long, but flat.
std::string canonical_form(const ClientConfig &c) {
  JsonPtr o(cJSON_CreateObject());
  if (!o) fail(ESP_ENOMEM, "out of memory");
  cJSON *j = o.get();
  add_str(j, "provider", c.provider);
  add_str(j, "name", c.name);
  add_str(j, "base_url", c.base_url);
  add_str(j, "api_key", c.api_key);
  add_str(j, "organization", c.organization);
  add_str(j, "project", c.project);
  add_str(j, "api_version", c.api_version);
  cJSON *hdrs = cJSON_AddObjectToObject(j, "headers");
  for (const auto &kv : c.headers) add_str(hdrs, kv.first.c_str(), kv.second);
  add_int(j, "timeout_ms", c.timeout_ms);
  add_int(j, "connect_timeout_ms", c.connect_timeout_ms);
  add_int(j, "pool_timeout_ms", c.effective_pool_timeout_ms());
  add_int(j, "idle_timeout_ms", c.idle_timeout_ms);
  add_int(j, "first_byte_timeout_ms", c.first_byte_timeout_ms);
  add_int(j, "max_connections", c.max_connections);
  cJSON_AddBoolToObject(j, "http2", c.http2);
  add_int(j, "max_retries", c.max_retries);
  add_int(j, "retry_base_ms", c.retry_base_ms);
  add_int(j, "retry_max_ms", c.retry_max_ms);
  add_int(j, "retry_after_max_ms", c.retry_after_max_ms);
  add_str(j, "idempotency_header", c.idempotency_header);
  add_int(j, "breaker_failures", c.breaker_failures);
  add_int(j, "breaker_cooldown_ms", c.breaker_cooldown_ms);
  add_int(j, "idle_ttl_ms", c.idle_ttl_ms);
  add_int(j, "conn_max_idle_ms", c.conn_max_idle_ms);
  cJSON_AddBoolToObject(j, "verify_tls", c.verify_tls);
  add_str(j, "ca_file", c.ca_file);
  add_str(j, "client_cert", c.client_cert);
  add_str(j, "client_key", c.client_key);
  add_str(j, "proxy", c.proxy);
  cJSON_AddBoolToObject(j, "isolate", c.isolate);
  add_int(j, "max_response_bytes", c.max_response_bytes);
  add_int(j, "slow_request_ms", c.slow_request_ms);
  add_int(j, "stream_buffer_bytes", c.stream_buffer_bytes);
  add_int(j, "stream_resume_bytes", c.effective_stream_resume_bytes());
  if (!c.socket_options.empty()) {
    cJSON *options = cJSON_AddArrayToObject(j, "socket_options");
    for (const SocketOption &option : c.socket_options) {
      const int triple[3] = {option.level, option.name, option.value};
      cJSON_AddItemToArray(options, cJSON_CreateIntArray(triple, 3));
    }
  }
  cJSON *trusted = cJSON_AddArrayToObject(j, "credential_origins");
  for (const auto &origin : c.credential_origins) cJSON_AddItemToArray(trusted, cJSON_CreateString(origin.c_str()));
  if (c.shared_state.enabled) {
    cJSON *ss = cJSON_AddObjectToObject(j, "shared_state");
    add_str(ss, "host", c.shared_state.host);
    add_int(ss, "port", c.shared_state.port);
    add_int(ss, "db", c.shared_state.db);
    add_str(ss, "password", c.shared_state.password);
    add_str(ss, "namespace", c.shared_state.ns);
    add_int(ss, "timeout_ms", c.shared_state.timeout_ms);
  }
  if (c.rate_limit.enabled) {
    cJSON *rl = cJSON_AddObjectToObject(j, "rate_limit");
    add_int(rl, "requests_per_minute", c.rate_limit.requests_per_minute);
    add_int(rl, "tokens_per_minute", c.rate_limit.tokens_per_minute);
  }
  if (!c.deployments.empty()) {
    add_int(j, "routing", static_cast<int64_t>(c.routing));
    add_int(j, "deployment_cooldown_ms", c.deployment_cooldown_ms);
    cJSON *list = cJSON_AddArrayToObject(j, "deployments");
    for (const auto &d : c.deployments) {
      cJSON *entry = cJSON_CreateObject();
      cJSON_AddItemToArray(list, entry);
      add_str(entry, "name", d->name);
      add_int(entry, "weight", d->weight);
      add_str(entry, "config", d->config.canonical);
    }
  }
  char *text = cJSON_PrintUnformatted(j);
  if (!text) fail(ESP_ENOMEM, "out of memory");
  std::string out(text);
  cJSON_free(text);
  return out;
}

// The config of deployment `index`: the client's own JSON without its
// endpoint, credential and routing keys, plus the entry's. Parsed whole, so
// every rule of a client config holds for a deployment too.
std::shared_ptr<const DeploymentConfig> parse_deployment(const cJSON *root, const cJSON *entry, int index) {
  const std::string where = "'deployments[" + std::to_string(index) + "]'";
  JsonPtr own(cJSON_Duplicate(root, 1));
  if (!own) fail(ESP_ENOMEM, "out of memory");
  for (const char *k : {"deployments", "routing", "deployment_cooldown_ms", "base_url", "api_key", "api_key_env", "name"})
    cJSON_DeleteItemFromObjectCaseSensitive(own.get(), k);
  auto d = std::make_shared<DeploymentConfig>();
  for (const cJSON *k = entry->child; k; k = k->next) {  // checked against kDeploymentKeys
    const std::string key = k->string;
    if (key == "name") {
      d->name = k->valuestring;
    } else if (key == "weight") {
      d->weight = integer_of(k);
    } else {  // base_url, api_key, api_key_env, rate_limit: the entry's, in place of the client's
      cJSON_DeleteItemFromObjectCaseSensitive(own.get(), k->string);
      cJSON_AddItemToObject(own.get(), k->string, cJSON_Duplicate(k, 1));
    }
  }
  char *text = cJSON_PrintUnformatted(own.get());
  if (!text) fail(ESP_ENOMEM, "out of memory");
  std::string json(text);
  cJSON_free(text);
  try {
    d->config = parse_config(json.c_str());
  } catch (const Error &e) {
    fail(ESP_ECONFIG, std::string(e.what()) + " (in " + where + ")");
  }
  if (d->name.empty()) d->name = d->config.base_origin;
  return d;
}

}  // namespace

ClientConfig parse_config(const char *json) {
  ClientConfig c;
  Deferred deferred;
  std::string &api_key_env = deferred.api_key_env;
  JsonPtr root;
  if (json && *json) {
    const char *end = nullptr;
    size_t len = std::strlen(json);
    root.reset(cJSON_ParseWithLengthOpts(json, len, &end, 0));
    if (!root) {
      size_t at = end ? static_cast<size_t>(end - json) : 0;
      config_error("malformed JSON near byte " + std::to_string(at));
    }
    for (const char *p = end; p && *p; ++p)
      if (!std::strchr(" \t\r\n", *p))
        config_error("unexpected text after the JSON object at byte " + std::to_string(p - json));
    if (!cJSON_IsObject(root.get())) config_error("must be a JSON object");
    for (const cJSON *item = root->child; item; item = item->next) {
      for (const cJSON *prev = root->child; prev != item; prev = prev->next)
        if (std::strcmp(prev->string, item->string) == 0)
          config_error("duplicate key '" + std::string(item->string) + "'");
      apply_key(c, item, deferred);
    }
  }
  if (deferred.deployments) {
    int index = 0;
    for (const cJSON *entry = deferred.deployments->child; entry; entry = entry->next)
      c.deployments.push_back(parse_deployment(root.get(), entry, index++));
    // Calls with an absolute URL still go through the client itself.
    if (c.base_url.empty()) c.base_url = c.deployments.front()->config.base_url;
  }
  if (!api_key_env.empty()) {
    if (!c.api_key.empty()) config_error("'api_key' and 'api_key_env' are exclusive");
    const char *v = std::getenv(api_key_env.c_str());
    if (!v || !*v) config_error("'api_key_env': environment variable " + api_key_env + " is not set");
    c.api_key = v;
    if (has_crlf(c.api_key)) config_error("'api_key_env': the key must not contain CR or LF");
  }
  derive(c);
  c.canonical = canonical_form(c);
  c.transport_key = (c.verify_tls ? "v1|" : "v0|") + c.ca_file + "|" + c.client_cert + "|" +
                    c.client_key + "|" + c.proxy + "|" + (c.http2 ? "h2" : "h1");
  c.base_origin_key = c.origin_key(c.base_origin);
  return c;
}

bool has_header(const HeaderList &list, const char *name) {
  for (const auto &h : list)
    if (strcasecmp(h.first.c_str(), name) == 0) return true;
  return false;
}

bool ClientConfig::trusts(const std::string &origin) const {
  return origin == base_origin ||
         std::binary_search(credential_origins.begin(), credential_origins.end(), origin);
}

std::string origin_of(const std::string &url) {
  struct UrlDeleter {
    void operator()(CURLU *u) const { curl_url_cleanup(u); }
  };
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u) fail(ESP_ENOMEM, "out of memory");
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
    fail(ESP_EINVAL, "not a valid absolute URL");
  char *scheme = nullptr, *host = nullptr, *port = nullptr;
  curl_url_get(u.get(), CURLUPART_SCHEME, &scheme, 0);
  curl_url_get(u.get(), CURLUPART_HOST, &host, 0);
  curl_url_get(u.get(), CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  std::string out;
  bool ok = scheme && host && port &&
            (std::strcmp(scheme, "http") == 0 || std::strcmp(scheme, "https") == 0);
  if (ok) out = std::string(scheme) + "://" + host + ":" + port;
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  if (!ok) fail(ESP_EINVAL, "URL must be absolute http:// or https://");
  return out;
}

std::string redact_url(const std::string &url) {
  size_t q = url.find('?');
  if (q == std::string::npos) return url;
  std::string out = url.substr(0, q + 1);
  size_t pos = q + 1;
  while (pos <= url.size()) {
    size_t amp = url.find('&', pos);
    if (amp == std::string::npos) amp = url.size();
    std::string param = url.substr(pos, amp - pos);
    size_t eq = param.find('=');
    std::string name = param.substr(0, eq);
    std::string lower = name;
    for (char &ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    bool secret = lower == "key" || lower == "api_key" || lower == "api-key" ||
                  lower == "apikey" || lower == "token" || lower == "access_token";
    out += secret && eq != std::string::npos ? name + "=REDACTED" : param;
    if (amp < url.size()) out += '&';
    pos = amp + 1;
  }
  return out;
}

}  // namespace esp
