// esp_config_schema(): the config table as JSON, held to the parser it
// describes. Every key it lists is accepted, its default changes nothing and
// any other value makes another client; an unknown key is refused with a hint.
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "helpers.h"

namespace {

using Json = std::unique_ptr<cJSON, void (*)(cJSON *)>;

Json parse(const std::string &text) { return Json(cJSON_Parse(text.c_str()), cJSON_Delete); }

Json schema() {
  const char *text = esp_config_schema();
  EXPECT_NE(text, nullptr);
  return parse(text ? text : "");
}

std::string print(const cJSON *j) {
  char *s = cJSON_PrintUnformatted(j);
  std::string out(s);
  cJSON_free(s);
  return out;
}

std::string str(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : "";
}

// The client id esp_client_get gives `config`, or -1 with the error.
double client_id(const std::string &config, std::string *error = nullptr) {
  esp_client c = 0;
  if (esp_client_get(config.c_str(), &c) != ESP_OK) {
    if (error) *error = esp_last_error();
    return -1;
  }
  const double id = json_number(client_stats(c), {"client", "id"});
  esp_client_release(c);
  return id;
}

// `base` (a config object's JSON) with `key` set to `value` (JSON).
std::string with(const std::string &base, const std::string &key, const std::string &value) {
  Json o = parse(base);
  cJSON_DeleteItemFromObjectCaseSensitive(o.get(), key.c_str());
  cJSON_AddItemToObject(o.get(), key.c_str(), cJSON_Parse(value.c_str()));
  return print(o.get());
}

// What each key takes in the tests below: a value other than its default,
// and the config it is tried in (routing only matters with deployments).
struct Sample {
  std::string value;
  std::string base;
};

std::map<std::string, Sample> samples() {
  setenv("ESP_SCHEMA_TEST_KEY", "sk-env-SECRET", 1);
  const std::string base = mock().config();
  const std::string deployed = with(base, "deployments", "[{\"base_url\":\"" + mock().http_base() + "/v1\"}]");
  const std::string keyless = "{\"base_url\":\"" + mock().http_base() + "/v1\"}";
  return {
      {"provider", {"\"groq\"", base}},
      {"name", {"\"schema-test\"", base}},
      {"base_url", {"\"" + mock().http_base() + "/v2\"", base}},
      {"api_key", {"\"sk-other-SECRET\"", base}},
      {"api_key_env", {"\"ESP_SCHEMA_TEST_KEY\"", keyless}},
      {"organization", {"\"org\"", base}},
      {"project", {"\"proj\"", base}},
      {"api_version", {"\"2024-01-01\"", base}},
      {"headers", {"{\"X-A\":\"1\"}", base}},
      {"credential_origins", {"[\"https://files.example.com\"]", base}},
      {"idempotency_header", {"\"X-Idem\"", base}},
      {"ca_file", {"\"" + mock().ca_file + "\"", base}},
      {"client_cert", {"\"/nonexistent/cert.pem\"", base}},
      {"client_key", {"\"/nonexistent/key.pem\"", with(base, "client_cert", "\"/nonexistent/cert.pem\"")}},
      {"proxy", {"\"http://127.0.0.1:9\"", base}},
      {"socket_options", {"[[1,2,1]]", base}},
      {"pool_timeout_ms", {"1234", base}},
      {"stream_resume_bytes", {"1000", base}},
      {"rate_limit", {"{\"requests_per_minute\":600}", base}},
      {"shared_state", {"{\"redis\":\"redis://127.0.0.1:1/0\",\"namespace\":\"schema-test\"}", base}},
      {"deployments", {"[{\"base_url\":\"" + mock().http_base() + "/v1\"}]", base}},
      {"routing", {"\"ordered\"", deployed}},
      {"deployment_cooldown_ms", {"7", deployed}},
  };
}

// A value of `key` other than its default, from its type and bounds.
std::string other_value(const cJSON *key) {
  const std::string type = str(key, "type");
  const cJSON *def = cJSON_GetObjectItemCaseSensitive(key, "default");
  if (type == "boolean") return cJSON_IsTrue(def) ? "false" : "true";
  if (type == "integer" && cJSON_IsNumber(def)) {
    const double max = cJSON_GetObjectItemCaseSensitive(key, "max")->valuedouble;
    return std::to_string(static_cast<long long>(def->valuedouble < max ? def->valuedouble + 1 : def->valuedouble - 1));
  }
  return "";
}

}  // namespace

TEST(ConfigSchema, IsJsonOwnedByTheLibraryAndWellFormed) {
  EXPECT_EQ(esp_config_schema(), esp_config_schema());  // static: never freed, never rebuilt
  Json s = schema();
  ASSERT_TRUE(s);
  EXPECT_EQ(str(s.get(), "version"), ESP_VERSION_STRING);
  const cJSON *keys = cJSON_GetObjectItemCaseSensitive(s.get(), "keys");
  ASSERT_TRUE(cJSON_IsArray(keys));
  EXPECT_GE(cJSON_GetArraySize(keys), 40);
  const std::set<std::string> types = {"integer", "number", "boolean", "string", "object", "array", "string_array", "object_array"};
  std::function<void(const cJSON *, const std::string &)> check = [&](const cJSON *list, const std::string &where) {
    std::set<std::string> seen;
    for (const cJSON *k = list->child; k; k = k->next) {
      const std::string name = where + str(k, "key");
      EXPECT_TRUE(seen.insert(name).second) << "twice: " << name;
      EXPECT_TRUE(types.count(str(k, "type"))) << name;
      EXPECT_FALSE(str(k, "doc").empty()) << name;
      const cJSON *def = cJSON_GetObjectItemCaseSensitive(k, "default");
      ASSERT_NE(def, nullptr) << name;
      EXPECT_EQ(cJSON_IsNull(def), !str(k, "default_doc").empty()) << name << ": a default, or words for it";
      if (str(k, "type") == "integer") {
        const double lo = cJSON_GetObjectItemCaseSensitive(k, "min")->valuedouble;
        const double hi = cJSON_GetObjectItemCaseSensitive(k, "max")->valuedouble;
        EXPECT_LE(lo, hi) << name;
        if (cJSON_IsNumber(def)) {
          EXPECT_TRUE(def->valuedouble >= lo && def->valuedouble <= hi) << name;
        }
      }
      if (const cJSON *nested = cJSON_GetObjectItemCaseSensitive(k, "keys")) check(nested, name + ".");
    }
  };
  check(keys, "");
  EXPECT_NE(std::string(esp_config_schema()).find("\"key\":\"requests_per_minute\""), std::string::npos);
}

// The defaults in the table are the parser's: a config that spells one out is
// the same client as the config that leaves it out.
TEST(ConfigSchema, EveryDefaultIsTheParsersDefault) {
  Json s = schema();
  const std::string base = mock().config();
  const double id = client_id(base);
  ASSERT_GT(id, 0);
  int tried = 0;
  for (const cJSON *k = cJSON_GetObjectItemCaseSensitive(s.get(), "keys")->child; k; k = k->next) {
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(k, "default");
    if (cJSON_IsNull(def)) continue;
    std::string error;
    EXPECT_EQ(client_id(with(base, str(k, "key"), print(def)), &error), id) << str(k, "key") << " " << error;
    ++tried;
  }
  EXPECT_GE(tried, 25);
  // Nested defaults, beside the keys their object needs.
  for (const auto &[key, object] : std::map<std::string, std::string>{
           {"rate_limit", "{}"}, {"shared_state", "{\"redis\":\"redis://127.0.0.1:1/0\"}"},
           {"deployments", "{\"base_url\":\"" + mock().http_base() + "/v1\"}"}}) {
    const cJSON *spec = nullptr;
    for (const cJSON *k = cJSON_GetObjectItemCaseSensitive(s.get(), "keys")->child; k; k = k->next)
      if (str(k, "key") == key) spec = k;
    ASSERT_NE(spec, nullptr) << key;
    const std::string wrap_open = key == "deployments" ? "[" : "", wrap_close = key == "deployments" ? "]" : "";
    const double plain = client_id(with(base, key, wrap_open + object + wrap_close));
    ASSERT_GT(plain, 0) << key;
    for (const cJSON *n = cJSON_GetObjectItemCaseSensitive(spec, "keys")->child; n; n = n->next) {
      const cJSON *def = cJSON_GetObjectItemCaseSensitive(n, "default");
      if (cJSON_IsNull(def)) continue;
      const std::string spelled = with(object, str(n, "key"), print(def));
      std::string error;
      EXPECT_EQ(client_id(with(base, key, wrap_open + spelled + wrap_close), &error), plain) << key << "." << str(n, "key") << " " << error;
    }
  }
}

// Every key in the schema is one the parser takes, and one that makes a client
// of its own: the canonical form (the registry's key) leaves none out.
TEST(ConfigSchema, EveryKeyIsAcceptedAndPartOfTheClientsIdentity) {
  Json s = schema();
  const std::map<std::string, Sample> given = samples();
  int tried = 0;
  for (const cJSON *k = cJSON_GetObjectItemCaseSensitive(s.get(), "keys")->child; k; k = k->next) {
    const std::string key = str(k, "key");
    Sample sample{other_value(k), mock().config()};
    if (given.count(key)) sample = given.at(key);
    ASSERT_FALSE(sample.value.empty()) << "no sample value for '" << key << "': add one to samples()";
    std::string error;
    const double plain = client_id(sample.base, &error);
    ASSERT_GT(plain, 0) << key << " " << error;
    const double changed = client_id(with(sample.base, key, sample.value), &error);
    EXPECT_GT(changed, 0) << key << "=" << sample.value << ": " << error;
    EXPECT_NE(changed, plain) << key << " is not part of the canonical form";
    ++tried;
  }
  EXPECT_EQ(tried, cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s.get(), "keys")));
}

TEST(ConfigSchema, EveryEnumValueIsAccepted) {
  Json s = schema();
  const std::string base = mock().config("\"deployments\":[{\"base_url\":\"" + mock().http_base() + "/v1\"}]");
  int values = 0;
  for (const cJSON *k = cJSON_GetObjectItemCaseSensitive(s.get(), "keys")->child; k; k = k->next)
    for (const cJSON *v = cJSON_GetObjectItemCaseSensitive(k, "enum") ? cJSON_GetObjectItemCaseSensitive(k, "enum")->child : nullptr; v; v = v->next) {
      std::string error;
      EXPECT_GT(client_id(with(base, str(k, "key"), print(v)), &error), 0) << str(k, "key") << "=" << v->valuestring << " " << error;
      ++values;
    }
  EXPECT_GE(values, 15);  // 12 providers, 3 routings
  esp_client c = 0;
  EXPECT_EQ(esp_client_get(with(base, "routing", "\"random\"").c_str(), &c), ESP_ECONFIG);
  EXPECT_NE(std::string(esp_last_error()).find("'routing' has unknown value 'random' (one of least_busy, weighted, ordered)"),
            std::string::npos)
      << esp_last_error();
}

TEST(ConfigSchema, UnknownKeysAreRefusedWithTheNearestKnownOne) {
  const std::map<std::string, std::string> cases = {
      {"{\"timeout\":5}", "unknown key 'timeout' (did you mean 'timeout_ms'?)"},
      {"{\"maxRetries\":1}", "unknown key 'maxRetries' (did you mean 'max_retries'?)"},
      {"{\"verfy_tls\":false}", "unknown key 'verfy_tls' (did you mean 'verify_tls'?)"},
      {"{\"quux\":1}", "unknown key 'quux'"},
      {"{\"rate_limit\":{\"requests_per_min\":1}}", "'rate_limit' has unknown key 'requests_per_min' (did you mean 'requests_per_minute'?)"},
      {"{\"rate_limit\":{\"rpm\":1}}", "'rate_limit' has unknown key 'rpm' (keys: requests_per_minute, tokens_per_minute)"},
  };
  for (const auto &[config, message] : cases) {
    esp_client c = 0;
    EXPECT_EQ(esp_client_get(config.c_str(), &c), ESP_ECONFIG) << config;
    EXPECT_NE(std::string(esp_last_error()).find(message), std::string::npos) << config << " -> " << esp_last_error();
  }
  esp_client c = 0;
  EXPECT_EQ(esp_client_get("{\"quux\":1}", &c), ESP_ECONFIG);
  EXPECT_EQ(std::string(esp_last_error()).find("did you mean"), std::string::npos) << "no near miss, no guess";
}
