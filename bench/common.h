// Shared helpers of the libesp benchmarks: clocks, /proc readings, the one
// result line each program prints for bench/run.py, raw libcurl setup, and
// the esp client and request an asynchronous benchmark starts from.
//
// Every benchmark program prints exactly one line "RESULT {json}" on stdout
// (plus free text on stderr); bench/run.py runs it several times, takes
// medians and writes the tables.
#pragma once

#include <curl/curl.h>
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "esp.h"

namespace bench {

inline double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

inline void die(const char *what, const char *detail = "") {
  std::fprintf(stderr, "bench: %s %s\n", what, detail);
  std::exit(2);
}

inline void check(int rc, const char *what) {
  if (rc != ESP_OK) {
    std::fprintf(stderr, "bench: %s: %s (%s)\n", what, esp_strerror(rc), esp_last_error());
    std::exit(2);
  }
}

// kB from /proc/self/status ("VmRSS", "VmHWM").
inline long proc_status_kb(const char *key) {
  FILE *f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t kl = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (!std::strncmp(line, key, kl) && line[kl] == ':') {
      v = std::atol(line + kl + 1);
      break;
    }
  std::fclose(f);
  return v;
}
// CPU time (user + system) of the whole process, every thread, in seconds.
inline double cpu_s() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

inline long rss_kb() { return proc_status_kb("VmRSS"); }
inline long hwm_kb() { return proc_status_kb("VmHWM"); }

// Open sockets of this process, counted in /proc/self/fd.
inline int socket_fds() {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  char path[300], target[64];
  while (dirent *e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink(path, target, sizeof target - 1);
    if (len > 7 && !std::strncmp(target, "socket:", 7)) ++n;
  }
  closedir(d);
  return n;
}

// An integer field of esp_stats() (the first occurrence: the process-wide one).
inline long long esp_stat(const char *key) {
  char *json = nullptr;
  if (esp_stats(&json) != ESP_OK) return -1;
  std::string pat = std::string("\"") + key + "\":";
  const char *p = std::strstr(json, pat.c_str());
  long long v = p ? std::atoll(p + pat.size()) : -1;
  esp_free(json);
  return v;
}

// The single machine-readable result line.
class Result {
 public:
  Result &str(const char *k, const std::string &v) {
    add(k, "\"" + v + "\"");
    return *this;
  }
  Result &num(const char *k, double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.6g", v);
    add(k, b);
    return *this;
  }
  Result &raw(const char *k, const std::string &json) {
    add(k, json);
    return *this;
  }
  void print() {
    std::printf("RESULT {%s}\n", body_.c_str());
    std::fflush(stdout);
  }

 private:
  void add(const char *k, const std::string &v) {
    if (!body_.empty()) body_ += ",";
    body_ += std::string("\"") + k + "\":" + v;
  }
  std::string body_;
};

// ---- raw libcurl baselines ---------------------------------------------------

inline size_t sink_write(char *, size_t size, size_t n, void *user) {
  if (user) *static_cast<size_t *>(user) += size * n;
  return size * n;
}

// Counts sockets libcurl opens (= connections, TCP).
inline std::atomic<long> &curl_sockets_opened() {
  static std::atomic<long> n{0};
  return n;
}
inline curl_socket_t count_open(void *, curlsocktype, struct curl_sockaddr *a) {
  curl_sockets_opened().fetch_add(1);
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

// The options any careful raw libcurl client sets (as libesp does).
// The header lines libesp sends beyond libcurl's own (Host, Accept), so that
// a raw libcurl side sends the same request and the ratio compares clients,
// not requests: libcurl 7.88 formats each line a byte at a time, and the
// User-Agent alone is ~3,000 instructions a request (session 8, c23).
inline struct curl_slist *esp_wire_lines(bool body) {
  static struct curl_slist *const without = curl_slist_append(nullptr, "User-Agent: libesp/" ESP_VERSION_STRING);
  static struct curl_slist *const with = [] {
    struct curl_slist *l = curl_slist_append(nullptr, "Content-Type: application/json");
    l = curl_slist_append(l, "Expect:");
    return curl_slist_append(l, "User-Agent: libesp/" ESP_VERSION_STRING);
  }();
  return body ? with : without;
}

inline void curl_common(CURL *e, const char *url, const char *ca, bool h2, size_t *bytes) {
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, esp_wire_lines(false));
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, bytes);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, h2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_CAPATH, nullptr);  // Debian's CApath disables the CA cache
  if (ca && *ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, count_open);
}

inline const char *arg(int argc, char **argv, int i, const char *def = "") {
  return i < argc ? argv[i] : def;
}

// {"base_url": ..., "ca_file": ..., extra} as one JSON object.
inline std::string esp_config(const std::string &origin, const char *ca, const std::string &extra = "") {
  std::string c = "{\"provider\":\"generic\",\"base_url\":\"" + origin + "\"";
  if (ca && *ca) c += ",\"ca_file\":\"" + std::string(ca) + "\"";
  if (!extra.empty()) c += "," + extra;
  return c + "}";
}

// "https://127.0.0.1:8443/small" -> "https://127.0.0.1:8443"
inline std::string origin_of(const std::string &url) {
  size_t p = url.find("://");
  size_t slash = url.find('/', p == std::string::npos ? 0 : p + 3);
  return slash == std::string::npos ? url : url.substr(0, slash);
}
inline std::string path_of(const std::string &url) {
  size_t p = url.find("://");
  size_t slash = url.find('/', p == std::string::npos ? 0 : p + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

// A lease on the client for url's origin (esp_config(origin, ca, extra)) and a
// GET of url's path, with the callbacks an asynchronous benchmark fills in
// before start(). Not copyable: opts points into path.
struct EspTarget {
  esp_client client = 0;
  std::string path;
  esp_request_opts opts{};
  esp_callbacks cb{};

  EspTarget(const std::string &url, const char *ca, const std::string &extra) : path(path_of(url)) {
    check(esp_client_get(esp_config(origin_of(url), ca, extra).c_str(), &client), "client_get");
    opts.struct_size = sizeof opts;
    opts.path = path.c_str();
    cb.struct_size = sizeof cb;
  }
  ~EspTarget() { esp_client_release(client); }
  EspTarget(const EspTarget &) = delete;
  EspTarget &operator=(const EspTarget &) = delete;

  // n requests at once, each with cb and user.
  void start(long n, void *user) {
    for (long i = 0; i < n; ++i) check(esp_request_async(client, &opts, &cb, user, nullptr), "async");
  }
};

}  // namespace bench
