// The ABI's promises: versions, status strings, argument checks, handles
// that survive misuse, config validation, the registry's sharing rules.
#include <cstdlib>

#include "helpers.h"

TEST(Api, VersionComesFromTheHeader) {
  EXPECT_EQ(esp_version(), static_cast<uint32_t>(ESP_VERSION_NUMBER));
  EXPECT_EQ(std::string(esp_version_string()).rfind(ESP_VERSION_STRING, 0), 0u);
  EXPECT_NE(std::string(esp_version_string()).find("libcurl"), std::string::npos);
}

TEST(Api, EveryStatusHasAText) {
  for (int code = ESP_OK; code >= ESP_ERATELIMITED; --code)
    EXPECT_STRNE(esp_strerror(code), "unknown status") << code;
  EXPECT_STREQ(esp_strerror(-999), "unknown status");
  EXPECT_NE(esp_last_error(), nullptr);
}

TEST(Api, NullArgumentsAreInvalidNotCrashes) {
  esp_client c = 0;
  EXPECT_EQ(esp_client_get("{}", nullptr), ESP_EINVAL);
  Lease lease(mock().config());
  ASSERT_EQ(lease.rc, ESP_OK);
  esp_response *r = nullptr;
  EXPECT_EQ(esp_request(lease.handle, nullptr, &r), ESP_EINVAL);
  esp_request_opts o = opts("models");
  EXPECT_EQ(esp_request(lease.handle, &o, nullptr), ESP_EINVAL);
  EXPECT_EQ(esp_stats(nullptr), ESP_EINVAL);
  EXPECT_EQ(esp_client_stats(lease.handle, nullptr), ESP_EINVAL);
  EXPECT_EQ(esp_metrics_prometheus(nullptr), ESP_EINVAL);
  EXPECT_EQ(esp_request_async(lease.handle, &o, nullptr, nullptr, nullptr), ESP_EINVAL);
  esp_callbacks cb;
  std::memset(&cb, 0, sizeof cb);
  cb.struct_size = sizeof cb;
  EXPECT_EQ(esp_request_async(lease.handle, &o, &cb, nullptr, nullptr), ESP_EINVAL);
  EXPECT_NE(std::string(esp_last_error()).find("on_complete"), std::string::npos);
  EXPECT_EQ(esp_stream_open(lease.handle, &o, nullptr, nullptr), ESP_EINVAL);
  EXPECT_EQ(esp_stream_next(0, 0, nullptr), ESP_EINVAL);
  // Accessors and frees are NULL-safe.
  EXPECT_EQ(esp_response_status(nullptr), 0);
  EXPECT_EQ(esp_response_body(nullptr, nullptr), nullptr);
  EXPECT_EQ(esp_response_header(nullptr, "x"), nullptr);
  EXPECT_EQ(esp_response_header_count(nullptr), 0u);
  esp_response_free(nullptr);
  esp_free(nullptr);
  (void)c;
}

TEST(Api, StructSizeIsChecked) {
  Lease lease(mock().config());
  esp_request_opts o = opts("models");
  o.struct_size = 8;
  esp_response *r = nullptr;
  EXPECT_EQ(esp_request(lease.handle, &o, &r), ESP_EINVAL);
  EXPECT_NE(std::string(esp_last_error()).find("struct_size"), std::string::npos);
  o.struct_size = sizeof o + 64;
  EXPECT_EQ(esp_request(lease.handle, &o, &r), ESP_EINVAL);
  EXPECT_EQ(r, nullptr);
}

TEST(Api, HandlesSurviveMisuse) {
  esp_client c = 0;
  ASSERT_EQ(esp_client_get(mock().config().c_str(), &c), ESP_OK);
  EXPECT_NE(c, 0u);
  EXPECT_EQ(esp_client_release(c), ESP_OK);
  EXPECT_EQ(esp_client_release(c), ESP_EHANDLE);
  EXPECT_NE(std::string(esp_last_error()).find("released"), std::string::npos);
  Result r = get(c, "models");
  EXPECT_EQ(r.rc, ESP_EHANDLE);
  for (esp_client forged : std::vector<esp_client>{0, 1, ~0ull, c + 1, c ^ (1ull << 40)}) {
    EXPECT_EQ(esp_client_release(forged), ESP_EHANDLE) << forged;
    EXPECT_EQ(get(forged, "models").rc, ESP_EHANDLE) << forged;
  }
  // A call or stream handle is not a client handle, and vice versa.
  EXPECT_EQ(esp_call_cancel(c), ESP_EHANDLE);
  EXPECT_EQ(esp_stream_close(c), ESP_EHANDLE);
}

TEST(Api, ReusedSlotDoesNotReviveOldHandle) {
  esp_client a = 0, b = 0;
  ASSERT_EQ(esp_client_get(mock().config().c_str(), &a), ESP_OK);
  ASSERT_EQ(esp_client_release(a), ESP_OK);
  ASSERT_EQ(esp_client_get(mock().config().c_str(), &b), ESP_OK);  // likely the same slot
  EXPECT_NE(a, b);
  EXPECT_EQ(esp_client_release(a), ESP_EHANDLE);
  EXPECT_EQ(esp_client_release(b), ESP_OK);
}

TEST(Api, HandlesAreStaleAfterShutdownAndTheLibraryWorksAgain) {
  esp_client c = 0;
  ASSERT_EQ(esp_client_get(mock().config().c_str(), &c), ESP_OK);
  ASSERT_EQ(get(c, "models").status, 200);
  ASSERT_EQ(esp_shutdown(5000), ESP_OK);
  EXPECT_EQ(get(c, "models").rc, ESP_EHANDLE);
  EXPECT_EQ(esp_client_release(c), ESP_EHANDLE);
  Lease again(mock().config());
  ASSERT_EQ(again.rc, ESP_OK);
  EXPECT_EQ(get(again.handle, "models").status, 200);
}

struct BadConfig {
  const char *json;
  const char *must_mention;
};

TEST(Config, MalformedConfigsNameTheProblem) {
  const BadConfig cases[] = {
      {"{", "malformed JSON"},
      {"[]", "JSON object"},
      {"42", "JSON object"},
      {"\"openai\"", "JSON object"},
      {"{} trailing", "after the JSON"},
      {"{\"nope\":1}", "unknown key 'nope'"},
      {"{\"provider\":\"skynet\"}", "'provider'"},
      {"{\"provider\":3}", "'provider' must be a string"},
      {"{\"provider\":\"\"}", "'provider'"},
      {"{\"base_url\":\"ftp://x\"}", "'base_url'"},
      {"{\"base_url\":\"not a url\"}", "'base_url'"},
      {"{\"base_url\":42}", "'base_url' must be a string"},
      {"{\"provider\":\"azure\"}", "'base_url' is required"},
      {"{\"provider\":\"generic\"}", "'base_url' is required"},
      {"{\"api_key\":7}", "'api_key' must be a string"},
      {"{\"api_key\":\"a\\r\\nb\"}", "'api_key' must not contain CR or LF"},
      {"{\"timeout_ms\":\"45\"}", "'timeout_ms' must be an integer"},
      {"{\"timeout_ms\":1.5}", "'timeout_ms' must be an integer"},
      {"{\"timeout_ms\":0}", "'timeout_ms' must be between"},
      {"{\"timeout_ms\":-5}", "'timeout_ms' must be between"},
      {"{\"timeout_ms\":1e300}", "'timeout_ms' must be between"},
      {"{\"connect_timeout_ms\":null}", "'connect_timeout_ms' must be an integer"},
      {"{\"max_connections\":0}", "'max_connections' must be between"},
      {"{\"max_connections\":100000}", "'max_connections' must be between"},
      {"{\"http2\":\"yes\"}", "'http2' must be true or false"},
      {"{\"http2\":1}", "'http2' must be true or false"},
      {"{\"max_retries\":-1}", "'max_retries' must be between"},
      {"{\"retry_base_ms\":1000,\"retry_max_ms\":10}", "'retry_max_ms'"},
      {"{\"headers\":[]}", "'headers' must be an object"},
      {"{\"headers\":{\"X-A\":1}}", "'headers' value of 'X-A' must be a string"},
      {"{\"headers\":{\"X-A\":\"a\\nb\"}}", "must not contain CR or LF"},
      {"{\"headers\":{\"bad name\":\"v\"}}", "invalid header name"},
      {"{\"verify_tls\":\"false\"}", "'verify_tls' must be true or false"},
      {"{\"isolate\":0}", "'isolate' must be true or false"},
      {"{\"conn_max_idle_ms\":10}", "'conn_max_idle_ms' must be between"},
      {"{\"api_key\":\"k\",\"api_key_env\":\"HOME\"}", "exclusive"},
      {"{\"api_key_env\":\"ESP_TEST_SURELY_UNSET_VAR\"}", "ESP_TEST_SURELY_UNSET_VAR is not set"},
      {"{\"client_key\":\"/k.pem\"}", "'client_key' needs 'client_cert'"},
      {"{\"timeout_ms\":1,\"timeout_ms\":2}", "duplicate key 'timeout_ms'"},
      {"{\"idempotency_header\":\"Bad Header\"}", "'idempotency_header'"},
      {"{\"max_response_bytes\":0}", "'max_response_bytes' must be between"},
  };
  for (const BadConfig &bc : cases) {
    esp_client c = 12345;
    EXPECT_EQ(esp_client_get(bc.json, &c), ESP_ECONFIG) << bc.json;
    EXPECT_EQ(c, 0u) << bc.json;
    EXPECT_NE(std::string(esp_last_error()).find(bc.must_mention), std::string::npos)
        << bc.json << " -> " << esp_last_error();
  }
  EXPECT_GE(sizeof cases / sizeof cases[0], 30u);
}

TEST(Config, SecretsNeverAppearInErrors) {
  esp_client c = 0;
  EXPECT_EQ(esp_client_get("{\"api_key\":\"sk-SECRET-123\",\"timeout_ms\":\"x\"}", &c), ESP_ECONFIG);
  EXPECT_EQ(std::string(esp_last_error()).find("sk-SECRET"), std::string::npos);
  EXPECT_EQ(esp_client_get("{\"api_key\":\"sk-SECRET-123\",\"bogus\":true}", &c), ESP_ECONFIG);
  EXPECT_EQ(std::string(esp_last_error()).find("sk-SECRET"), std::string::npos);
}

TEST(Config, EmptyAndNullMeanDefaults) {
  Lease a("{}"), b(""), c(nullptr == nullptr ? "{ }" : "");
  ASSERT_EQ(a.rc, ESP_OK);
  ASSERT_EQ(b.rc, ESP_OK);
  ASSERT_EQ(c.rc, ESP_OK);
  esp_client n = 0;
  ASSERT_EQ(esp_client_get(nullptr, &n), ESP_OK);
  std::string s = client_stats(n);
  EXPECT_NE(s.find("https://api.openai.com/v1"), std::string::npos);
  EXPECT_EQ(json_number(client_stats(a.handle), {"client", "id"}), json_number(s, {"client", "id"}));
  esp_client_release(n);
}

TEST(Config, KeyOrderAndDefaultsDoNotMatter) {
  std::string base = mock().http_base() + "/v1";
  Lease a("{\"base_url\":\"" + base + "\",\"api_key\":\"k1\",\"timeout_ms\":45000}");
  Lease b("{\"timeout_ms\":45000,\"api_key\":\"k1\",\"base_url\":\"" + base + "/\"}");
  Lease c("{\"api_key\":\"k1\",\"base_url\":\"" + base + "\",\"provider\":\"openai\",\"max_connections\":64}");
  Lease d("{\"api_key\":\"k2\",\"base_url\":\"" + base + "\"}");
  ASSERT_EQ(a.rc, ESP_OK);
  double id = json_number(client_stats(a.handle), {"client", "id"});
  EXPECT_EQ(json_number(client_stats(b.handle), {"client", "id"}), id);
  EXPECT_EQ(json_number(client_stats(c.handle), {"client", "id"}), id);
  EXPECT_NE(json_number(client_stats(d.handle), {"client", "id"}), id);
  EXPECT_EQ(json_number(client_stats(a.handle), {"client", "leases"}), 3);
  EXPECT_NE(a.handle, b.handle);  // each get is its own lease
}

TEST(Config, ApiKeyFromTheEnvironment) {
  setenv("ESP_TEST_KEY", "sk-from-env-XYZ", 1);
  Lease lease("{\"base_url\":\"" + mock().http_base() + "/v1\",\"api_key_env\":\"ESP_TEST_KEY\"}");
  ASSERT_EQ(lease.rc, ESP_OK) << esp_last_error();
  Result r = get(lease.handle, (mock().http_base() + "/echo").c_str());
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("Bearer sk-from-env-XYZ"), std::string::npos);
  EXPECT_EQ(client_stats(lease.handle).find("sk-from-env"), std::string::npos);
  EXPECT_EQ(process_stats().find("sk-from-env"), std::string::npos);
}

struct PresetCase {
  const char *provider;
  const char *header;
  const char *value;
};

TEST(Config, ProviderPresetsSetTheirAuthHeaders) {
  const PresetCase cases[] = {
      {"openai", "authorization", "Bearer k-1"},     {"azure", "api-key", "k-1"},
      {"anthropic", "x-api-key", "k-1"},             {"gemini", "x-goog-api-key", "k-1"},
      {"groq", "authorization", "Bearer k-1"},       {"cerebras", "authorization", "Bearer k-1"},
      {"mistral", "authorization", "Bearer k-1"},    {"together", "authorization", "Bearer k-1"},
      {"openrouter", "authorization", "Bearer k-1"}, {"jina", "authorization", "Bearer k-1"},
      {"ollama", "authorization", "Bearer k-1"},     {"generic", "authorization", "Bearer k-1"},
  };
  for (const PresetCase &pc : cases) {
    Lease lease("{\"provider\":\"" + std::string(pc.provider) + "\",\"base_url\":\"" + mock().http_base() +
                "\",\"api_key\":\"k-1\"}");
    ASSERT_EQ(lease.rc, ESP_OK) << pc.provider << ": " << esp_last_error();
    Result r = get(lease.handle, "echo");
    ASSERT_EQ(r.status, 200) << pc.provider;
    cJSON *j = cJSON_Parse(r.body.c_str());
    const cJSON *h = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "headers"), pc.header);
    EXPECT_TRUE(h && std::string(h->valuestring) == pc.value) << pc.provider << " " << r.body;
    if (std::string(pc.provider) == "anthropic") {
      EXPECT_NE(r.body.find("anthropic-version"), std::string::npos);
    }
    if (std::string(pc.provider) == "azure") {
      const cJSON *q = cJSON_GetObjectItem(j, "query");
      char *query = cJSON_PrintUnformatted(q);
      EXPECT_NE(std::string(query ? query : "").find("api-version"), std::string::npos) << r.body;
      cJSON_free(query);
    }
    cJSON_Delete(j);
  }
}

TEST(Requests, HeadersWithCrLfAreRejectedBeforeAnythingIsSent) {
  Lease lease(mock().config());
  long before = mock().stat("requests");
  for (auto h : std::vector<esp_header>{{"X-Evil", "a\r\nInjected: 1"}, {"X-Evil\r\n", "v"}, {"X Space", "v"},
                                        {"", "v"}, {"X-Null", nullptr}, {nullptr, "v"}}) {
    Result r = get(lease.handle, "echo", {h});
    EXPECT_EQ(r.rc, ESP_EINVAL);
  }
  esp_request_opts o = opts("echo\r\nX: y");
  EXPECT_EQ(request(lease.handle, o).rc, ESP_EINVAL);
  o = opts("echo");
  o.method = "GE T";
  EXPECT_EQ(request(lease.handle, o).rc, ESP_EINVAL);
  o.method = nullptr;
  o.body_len = 10;
  EXPECT_EQ(request(lease.handle, o).rc, ESP_EINVAL);
  EXPECT_EQ(mock().stat("requests"), before);
}

TEST(Requests, MethodPathHeadersAndBodyArriveAsSent) {
  Lease lease("{\"base_url\":\"" + mock().http_base() + "\",\"headers\":{\"X-Default\":\"d\",\"X-Over\":\"client\"}}");
  std::string body = "{\"hello\":\"world\"}";
  std::vector<esp_header> hs = {{"X-Extra", "e"}, {"x-over", "request"}};
  esp_request_opts o = opts("echo/sub?q=1", &body, &hs);
  o.method = "PUT";
  Result r = request(lease.handle, o);
  ASSERT_EQ(r.rc, ESP_OK) << r.error;
  cJSON *j = cJSON_Parse(r.body.c_str());
  EXPECT_STREQ(cJSON_GetObjectItem(j, "method")->valuestring, "PUT");
  ASSERT_NE(j, nullptr) << r.body;
  EXPECT_STREQ(cJSON_GetObjectItem(j, "path")->valuestring, "/echo/sub");
  EXPECT_STREQ(cJSON_GetObjectItem(j, "body")->valuestring, body.c_str());
  const cJSON *h = cJSON_GetObjectItem(j, "headers");
  EXPECT_STREQ(cJSON_GetObjectItem(h, "x-default")->valuestring, "d");
  EXPECT_STREQ(cJSON_GetObjectItem(h, "x-over")->valuestring, "request");
  EXPECT_STREQ(cJSON_GetObjectItem(h, "x-extra")->valuestring, "e");
  EXPECT_STREQ(cJSON_GetObjectItem(h, "content-type")->valuestring, "application/json");
  EXPECT_EQ(cJSON_GetObjectItem(h, "expect"), nullptr);
  cJSON_Delete(j);
}

namespace {

// The header lines the mock server received, in order, as "name: value"
// (names lower-cased by the server; pseudo-headers left out).
std::vector<std::string> received_header_lines(const Result &r) {
  std::vector<std::string> lines;
  cJSON *j = cJSON_Parse(r.body.c_str());
  const cJSON *pair = nullptr;
  cJSON_ArrayForEach(pair, cJSON_GetObjectItem(j, "raw_headers"))
    lines.push_back(std::string(cJSON_GetArrayItem(pair, 0)->valuestring) + ": " +
                    cJSON_GetArrayItem(pair, 1)->valuestring);
  cJSON_Delete(j);
  return lines;
}

std::vector<std::string> user_agents(const Result &r) {
  std::vector<std::string> found;
  for (const std::string &line : received_header_lines(r))
    if (line.rfind("user-agent: ", 0) == 0) found.push_back(line.substr(12));
  return found;
}

}  // namespace

// What goes out for the User-Agent is part of the wire format a provider sees
// (and of what libesp costs per request: libcurl formats every header line a
// byte at a time), so it is pinned: the default GET carries exactly these
// lines, one User-Agent, and a caller's own User-Agent (any case, per request
// or in the config) replaces libesp's instead of joining it.
TEST(Requests, OneUserAgentGoesOutAndTheCallersOwnReplacesIt) {
  const std::string root = "{\"base_url\":\"" + mock().http_base() + "\"";
  Lease plain(root + "}");
  ASSERT_EQ(plain.rc, ESP_OK) << esp_last_error();
  Result r = get(plain.handle, "echo");
  ASSERT_EQ(r.status, 200) << r.error;
  const std::vector<std::string> expected = {"host: 127.0.0.1:" + std::to_string(mock().http_port), "accept: */*",
                                             "user-agent: libesp/" ESP_VERSION_STRING};
  EXPECT_EQ(received_header_lines(r), expected) << r.body;

  std::string body = "{}";
  std::vector<esp_header> none;
  Result p = request(plain.handle, opts("echo", &body, &none));
  ASSERT_EQ(p.status, 200) << p.error;
  EXPECT_EQ(user_agents(p), std::vector<std::string>{"libesp/" ESP_VERSION_STRING}) << p.body;

  for (const char *name : {"User-Agent", "user-agent"}) {
    Result own = get(plain.handle, "echo", {{name, "mine/1"}});
    ASSERT_EQ(own.status, 200) << own.error;
    EXPECT_EQ(user_agents(own), std::vector<std::string>{"mine/1"}) << name << " " << own.body;
  }

  Lease configured(root + ",\"headers\":{\"user-agent\":\"cfg/2\"}}");
  ASSERT_EQ(configured.rc, ESP_OK) << esp_last_error();
  EXPECT_EQ(user_agents(get(configured.handle, "echo")), std::vector<std::string>{"cfg/2"});
  EXPECT_EQ(user_agents(get(configured.handle, "echo", {{"User-Agent", "mine/3"}})),
            std::vector<std::string>{"mine/3"});

  // Over HTTP/2 libcurl turns the same lines into a HEADERS frame.
  Lease h2("{\"base_url\":\"" + mock().https_base() + "\",\"ca_file\":\"" + mock().ca_file + "\",\"http2\":true}");
  ASSERT_EQ(h2.rc, ESP_OK) << esp_last_error();
  Result over_h2 = get(h2.handle, "echo");
  ASSERT_EQ(over_h2.status, 200) << over_h2.error;
  EXPECT_NE(over_h2.body.find("\"http_version\":\"2.0\""), std::string::npos) << over_h2.body;
  EXPECT_EQ(user_agents(over_h2), std::vector<std::string>{"libesp/" ESP_VERSION_STRING}) << over_h2.body;
}

TEST(Requests, AbsoluteUrlsAndHttpErrorsAreResponses) {
  Lease lease("{\"base_url\":\"http://127.0.0.1:1/unused\",\"max_retries\":0}");
  std::string url = mock().http_base() + "/v1/models";
  Result ok = get(lease.handle, url.c_str());
  EXPECT_EQ(ok.status, 200) << ok.error;
  Result e404 = get(lease.handle, (mock().http_base() + "/v1/echo").c_str(), {{"x-mock-status", "404"}});
  EXPECT_EQ(e404.rc, ESP_OK);
  EXPECT_EQ(e404.status, 404);
  EXPECT_NE(e404.body.find("error"), std::string::npos);
}

TEST(Requests, ResponseHeadersByNameAreCaseInsensitive) {
  Lease lease(mock().config());
  esp_request_opts o = opts("models");
  esp_response *r = nullptr;
  ASSERT_EQ(esp_request(lease.handle, &o, &r), ESP_OK);
  ASSERT_NE(esp_response_header(r, "Content-Type"), nullptr);
  EXPECT_STREQ(esp_response_header(r, "content-type"), esp_response_header(r, "CONTENT-TYPE"));
  EXPECT_EQ(esp_response_header(r, "x-not-there"), nullptr);
  EXPECT_GT(esp_response_header_count(r), 1u);
  const char *name = nullptr, *value = nullptr;
  EXPECT_EQ(esp_response_header_at(r, 0, &name, &value), ESP_OK);
  EXPECT_EQ(esp_response_header_at(r, 1000, &name, &value), ESP_EINVAL);
  EXPECT_EQ(esp_response_http_version(r), 11);
  EXPECT_EQ(esp_response_attempts(r), 1);
  esp_response_free(r);
}
