// Status code texts (esp_strerror) and the per-thread last error behind
// esp_last_error / esp_last_error_sent.
#include "status.h"

#include "esp.h"

namespace esp {

namespace {
thread_local std::string t_last_error;
thread_local bool t_last_error_sent = false;
}

const char *const kMaySentSuffix = "; the request may have reached the server";

void fail(int code, std::string message) { throw Error(code, std::move(message)); }

const char *status_text(int code) noexcept {
  switch (code) {
    case ESP_OK: return "success";
    case ESP_EINVAL: return "invalid argument";
    case ESP_ECONFIG: return "invalid client configuration";
    case ESP_EHANDLE: return "invalid, released or stale handle";
    case ESP_ENOMEM: return "out of memory";
    case ESP_ETIMEDOUT: return "timed out";
    case ESP_EPOOLTIMEOUT: return "timed out waiting for a connection slot";
    case ESP_ECONNECT: return "could not connect";
    case ESP_ETLS: return "TLS handshake or certificate verification failed";
    case ESP_EIO: return "connection failed while sending or receiving";
    case ESP_EPROTOCOL: return "the server did not speak HTTP";
    case ESP_ECANCELLED: return "cancelled";
    case ESP_ECIRCUIT: return "circuit breaker open for this origin";
    case ESP_ETOOLARGE: return "response larger than max_response_bytes";
    case ESP_ESHUTDOWN: return "library shut down";
    case ESP_EINTERNAL: return "internal error in libesp";
    case ESP_EAGAIN: return "nothing arrived within the wait";
    case ESP_ERATELIMITED: return "rate limit: no budget before the request's timeout";
    default: return "unknown status";
  }
}

void set_last_error(const char *message, bool sent) noexcept {
  t_last_error_sent = sent;
  try {
    t_last_error.assign(message ? message : "");
  } catch (...) {
    t_last_error.clear();
  }
}

const char *last_error() noexcept { return t_last_error.c_str(); }

bool last_error_sent() noexcept { return t_last_error_sent; }

}  // namespace esp
