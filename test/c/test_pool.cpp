// Pooling: leases share clients, clients share connections per origin,
// limits queue instead of opening more, TLS and HTTP/2 multiplexing.
#include <atomic>
#include <thread>

#include "helpers.h"

TEST(Pool, ThousandRequestsFromHundredLeasesUseOneConnection) {
  esp_shutdown(5000);  // a fresh engine: no connections from earlier tests
  long before = mock().stat("connections");
  for (int agent = 0; agent < 100; ++agent) {
    Lease lease(mock().config("\"name\":\"pool-agent\""));
    ASSERT_EQ(lease.rc, ESP_OK);
    for (int i = 0; i < 10; ++i) ASSERT_EQ(post(lease.handle, "chat/completions", kChat).status, 200);
  }
  EXPECT_EQ(mock().stat("connections") - before, 1);
  Lease probe(mock().config("\"name\":\"pool-agent\""));
  std::string s = client_stats(probe.handle);
  EXPECT_EQ(json_number(s, {"client", "requests"}), 1000);
  EXPECT_EQ(json_number(s, {"client", "connections_opened"}), 1);
  EXPECT_EQ(json_number(s, {"client", "connections_reused"}), 999);
  EXPECT_EQ(json_number(process_stats(), {"registry", "misses"}) >= 1, true);
}

TEST(Pool, FiftyKeysToOneOriginShareConnections) {
  esp_shutdown(5000);
  long before = mock().stat("connections");
  std::vector<std::unique_ptr<Lease>> leases;
  for (int k = 0; k < 50; ++k) {
    leases.emplace_back(new Lease("{\"base_url\":\"" + mock().http_base() + "/v1\",\"api_key\":\"sk-key-" +
                                  std::to_string(k) + "\"}"));
    ASSERT_EQ(leases.back()->rc, ESP_OK) << esp_last_error();
  }
  for (int round = 0; round < 4; ++round)
    for (auto &l : leases) ASSERT_EQ(get(l->handle, "models").status, 200);
  EXPECT_EQ(json_number(process_stats(), {"registry", "clients_live"}), 50);
  EXPECT_EQ(mock().stat("connections") - before, 1);
}

TEST(Pool, IsolatedConfigsGetTheirOwnConnections) {
  esp_shutdown(5000);
  long before = mock().stat("connections");
  Lease shared(mock().config());
  Lease isolated(mock().config("\"isolate\":true"));
  ASSERT_EQ(get(shared.handle, "models").status, 200);
  ASSERT_EQ(get(isolated.handle, "models").status, 200);
  ASSERT_EQ(get(shared.handle, "models").status, 200);
  ASSERT_EQ(get(isolated.handle, "models").status, 200);
  EXPECT_EQ(mock().stat("connections") - before, 2);
}

TEST(Pool, ReleasedClientLingersThenIsFreed) {
  esp_shutdown(5000);
  std::string cfg = mock().config("\"idle_ttl_ms\":300,\"name\":\"linger\"");
  const double evictions = stat({"registry", "evictions"});
  {
    Lease a(cfg);
    ASSERT_EQ(get(a.handle, "models").status, 200);
  }
  EXPECT_EQ(stat({"registry", "clients_lingering"}), 1);
  {
    Lease b(cfg);  // within the TTL: the same warm client
    EXPECT_EQ(json_number(client_stats(b.handle), {"client", "requests"}), 1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(stat({"registry", "clients_live"}), 0);
  EXPECT_EQ(stat({"registry", "evictions"}), evictions + 1);
  Lease c(cfg);
  EXPECT_EQ(json_number(client_stats(c.handle), {"client", "requests"}), 0);
}

TEST(Pool, ConcurrencyBeyondMaxConnectionsQueues) {
  esp_shutdown(5000);
  long before = mock().stat("connections");
  Lease lease(mock().config("\"max_connections\":4,\"http2\":false"));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 5; ++j)
        if (get(lease.handle, "models", {{"x-mock-delay-ms", "20"}}).status == 200) ++ok;
    });
  for (auto &t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
  EXPECT_LE(mock().stat("connections") - before, 4);
  std::string s = client_stats(lease.handle);
  EXPECT_GT(json_number(s, {"client", "queued_peak"}), 0);
  EXPECT_EQ(json_number(s, {"client", "queued"}), 0);
}

TEST(Pool, PoolTimeoutNamesTheCause) {
  Lease lease(mock().config("\"max_connections\":1,\"pool_timeout_ms\":100,\"http2\":false,\"max_retries\":0"));
  std::thread holder([&] { get(lease.handle, "models", {{"x-mock-delay-ms", "600"}}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  Result r = get(lease.handle, "models");
  holder.join();
  EXPECT_EQ(r.rc, ESP_EPOOLTIMEOUT);
  EXPECT_NE(r.error.find("pool timeout"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("max_connections 1"), std::string::npos) << r.error;
  EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "outcomes", "timeout_pool"}), 1);
}

TEST(Tls, TestCaWorksAndHttp2Multiplexes) {
  esp_shutdown(5000);
  Lease lease(mock().tls_config());
  ASSERT_EQ(lease.rc, ESP_OK);
  esp_request_opts o = opts("models");
  esp_response *r = nullptr;
  ASSERT_EQ(esp_request(lease.handle, &o, &r), ESP_OK) << esp_last_error();
  EXPECT_EQ(esp_response_status(r), 200);
  EXPECT_EQ(esp_response_http_version(r), 20);
  esp_response_free(r);
  long before = mock().stat("connections");
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 32; ++i)
    threads.emplace_back([&] {
      if (get(lease.handle, "models", {{"x-mock-delay-ms", "100"}}).status == 200) ++ok;
    });
  for (auto &t : threads) t.join();
  EXPECT_EQ(ok.load(), 32);
  EXPECT_LE(mock().stat("connections") - before, 1);  // all streams on the warm connection
}

TEST(Tls, WithoutTheTestCaVerificationFails) {
  Lease lease("{\"base_url\":\"" + mock().https_base() + "/v1\",\"max_retries\":0}");
  Result r = get(lease.handle, "models");
  EXPECT_EQ(r.rc, ESP_ETLS) << r.error;
  EXPECT_NE(r.error.find("TLS"), std::string::npos) << r.error;
  Lease insecure("{\"base_url\":\"" + mock().https_base() + "/v1\",\"verify_tls\":false}");
  EXPECT_EQ(get(insecure.handle, "models").status, 200);
}

TEST(Timeouts, TotalTimeoutFiresOnAHangingServer) {
  Lease lease(mock().config("\"timeout_ms\":300,\"max_retries\":0"));
  Result r = get(lease.handle, "models", {{"x-mock-hang", "1"}});
  EXPECT_EQ(r.rc, ESP_ETIMEDOUT);
  EXPECT_NE(r.error.find("total timeout"), std::string::npos) << r.error;
  esp_request_opts o = opts("models");
  std::vector<esp_header> h = {{"x-mock-hang", "1"}};
  o.headers = h.data();
  o.header_count = 1;
  o.timeout_ms = 100;
  EXPECT_EQ(request(lease.handle, o).rc, ESP_ETIMEDOUT);
}

TEST(Timeouts, ConnectFailuresAreConnectErrors) {
  Lease lease("{\"base_url\":\"http://127.0.0.1:1/v1\",\"max_retries\":0,\"breaker_failures\":0}");
  Result r = get(lease.handle, "models");
  EXPECT_EQ(r.rc, ESP_ECONNECT);
  EXPECT_EQ(json_number(client_stats(lease.handle), {"client", "connections_opened"}), 0);
}

TEST(Pool, ManyThreadsShareOneClientSafely) {
  Lease lease(mock().config());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) {
        Lease own(mock().config());
        if (post(own.handle, "chat/completions", kChat).status == 200) ++ok;
      }
    });
  for (auto &t : threads) t.join();
  EXPECT_EQ(ok.load(), 400);
  EXPECT_LE(stat({"sockets_open"}), 8);
}

TEST(Pool, PlainHttpRequestsDoNotQueueBehindABusyConnection) {
  Lease lease(mock().config("\"max_retries\":0"));  // http2 on (the default), plain-HTTP origin
  ASSERT_EQ(get(lease.handle, "models").status, 200);
  std::thread slow([&] { get(lease.handle, "models", {{"x-mock-delay-ms", "1500"}}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(get(lease.handle, "models").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
  slow.join();
}
