// The "socket_options" config key (httpx's socket_options): each option is
// set on every socket the client opens, read back here with getsockopt on
// the process's own sockets; a refused option is a config error naming it.
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>

#include "helpers.h"

namespace {

// TCP options of one of this process's sockets connected to the mock's plain port.
struct Seen {
  int keepidle = -1;
  int nodelay = -1;
};

std::vector<Seen> sockets_to_mock() {
  std::vector<Seen> out;
  DIR *dir = opendir("/proc/self/fd");
  if (!dir) return out;
  while (dirent *e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    struct stat st {};
    if (fd <= 2 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len) != 0 || peer.sin_family != AF_INET ||
        ntohs(peer.sin_port) != mock().http_port)
      continue;
    Seen s;
    socklen_t n = sizeof s.keepidle;
    getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &s.keepidle, &n);
    n = sizeof s.nodelay;
    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &s.nodelay, &n);
    out.push_back(s);
  }
  closedir(dir);
  return out;
}

size_t count_with_keepidle(int seconds) {
  size_t n = 0;
  for (const Seen &s : sockets_to_mock()) n += s.keepidle == seconds;
  return n;
}

std::string options_config(const std::string &options) {
  return mock().config("\"max_retries\":0,\"http2\":false,\"socket_options\":" + options);
}

}  // namespace

TEST(SocketOptions, AreSetOnEverySocketTheClientOpensAndOverLibcurlsOwn) {
  // libesp's own keepalive idle is 30 s and libcurl sets TCP_NODELAY: 17 and 0 can only be the config's.
  const std::string options = "[[" + std::to_string(SOL_SOCKET) + "," + std::to_string(SO_KEEPALIVE) + ",1],[" +
                              std::to_string(IPPROTO_TCP) + "," + std::to_string(TCP_KEEPIDLE) + ",17],[" +
                              std::to_string(IPPROTO_TCP) + "," + std::to_string(TCP_NODELAY) + ",0]]";
  Lease tuned(options_config(options));
  ASSERT_EQ(tuned.rc, ESP_OK) << esp_last_error();
  ASSERT_EQ(count_with_keepidle(17), 0u);
  ASSERT_EQ(get(tuned.handle, "models").status, 200);
  size_t tuned_sockets = 0;
  for (const Seen &s : sockets_to_mock()) {
    if (s.keepidle != 17) continue;
    ++tuned_sockets;
    EXPECT_EQ(s.nodelay, 0);
  }
  EXPECT_EQ(tuned_sockets, 1u);

  // Its connections are its own (libcurl would hand a pooled one to any
  // client): the client is isolated, and others keep libesp's defaults.
  EXPECT_NE(client_stats(tuned.handle).find("\"isolated\":true"), std::string::npos);
  Lease plain(mock().config("\"max_retries\":0,\"http2\":false"));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(get(plain.handle, "models").status, 200);
  EXPECT_EQ(count_with_keepidle(17), 1u);
  EXPECT_GE(count_with_keepidle(30), 1u);
  ASSERT_EQ(get(tuned.handle, "models").status, 200);
  EXPECT_EQ(json_number(client_stats(tuned.handle), {"client", "connections_opened"}), 1);
  EXPECT_EQ(json_number(client_stats(tuned.handle), {"client", "connections_reused"}), 1);
}

// A refused option is the config's fault, not the origin's: ESP_ECONFIG
// naming it, never retried (however many retries the client allows) and
// never counted against the origin's circuit breaker.
TEST(SocketOptions, ARefusedOptionIsAConfigErrorNamingItNeverRetriedNorABreakerFailure) {
  static std::atomic<int> n{0};
  const std::string key = "sockopt-" + std::to_string(getpid()) + "-" + std::to_string(n++);
  Lease bad(mock().config("\"max_retries\":3,\"retry_base_ms\":1,\"breaker_failures\":1,\"http2\":false,"
                          "\"socket_options\":[[" +
                          std::to_string(IPPROTO_TCP) + ",54321,1]]"));
  ASSERT_EQ(bad.rc, ESP_OK) << esp_last_error();
  for (int i = 0; i < 2; ++i) {  // the second would meet an open breaker had the first counted
    Result r = get(bad.handle, "models", {{"x-mock-key", key.c_str()}});
    EXPECT_EQ(r.rc, ESP_ECONFIG) << r.error;
    EXPECT_NE(r.error.find("'socket_options'"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("socket option [" + std::to_string(IPPROTO_TCP) + ", 54321, 1] refused"), std::string::npos)
        << r.error;
    EXPECT_EQ(esp_last_error_sent(), 0) << r.error;
  }
  EXPECT_EQ(json_number(client_stats(bad.handle), {"client", "retries"}), 0);
  cJSON *received = cJSON_Parse(mock().control("/_mock/requests?key=" + key).c_str());
  EXPECT_EQ(cJSON_GetArraySize(received), 0);
  cJSON_Delete(received);
}

TEST(SocketOptions, MalformedOnesAreConfigErrorsNamingTheKey) {
  for (const char *options : {"5", "[[1,2]]", "[[1,2,\"x\"]]", "[[-1,2,3]]", "[[1,2,1.5]]", "[[1,2,4294967296]]", "[1]"}) {
    Lease l(options_config(options));
    EXPECT_EQ(l.rc, ESP_ECONFIG) << options;
    EXPECT_NE(std::string(esp_last_error()).find("'socket_options'"), std::string::npos) << esp_last_error();
  }
}
