// Status codes as C++ exceptions inside the library, the per-thread detail
// message that esp_last_error() returns at the ABI, and the mapping of
// libcurl results and finished requests onto status codes and outcomes.
#pragma once

#include <curl/curl.h>

#include <exception>
#include <string>

namespace esp {

// Which limit ended an attempt that timed out (the detail of ESP_ETIMEDOUT,
// and ESP_EPOOLTIMEOUT's kPool).
enum class TimeoutKind { kNone, kTotal, kConnect, kFirstByte, kIdle, kRead, kWrite, kPool };

class Error : public std::exception {
 public:
  Error(int code, std::string message, bool sent = false)
      : code_(code), message_(std::move(message)), sent_(sent) {}
  int code() const noexcept { return code_; }
  // The request may have reached the server before this failure.
  bool sent() const noexcept { return sent_; }
  const char *what() const noexcept override { return message_.c_str(); }

 private:
  int code_;
  std::string message_;
  bool sent_;
};

[[noreturn]] void fail(int code, std::string message);

const char *status_text(int code) noexcept;
// The calling thread's last failure: its detail and whether the request may
// have reached the server first (esp_last_error / esp_last_error_sent).
void set_last_error(const char *message, bool sent = false) noexcept;
const char *last_error() noexcept;
bool last_error_sent() noexcept;
// Appended to the detail of a failure that came after the request may have
// reached the server.
extern const char *const kMaySentSuffix;

// The ESP status of a libcurl result (before libesp's own refinements:
// connection drops during the handshake, silent resends, timeouts named).
int map_curl_code(CURLcode code);
// The stats bucket (metrics.h Outcome) of a finished request.
int outcome_of(int status, int http_status, TimeoutKind kind);

}  // namespace esp
