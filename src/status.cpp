// Status code texts (esp_strerror) and the per-thread last error behind
// esp_last_error / esp_last_error_sent.
#include "status.h"

#include "esp.h"
#include "metrics.h"

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

int map_curl_code(CURLcode code) {
  switch (code) {
    case CURLE_OK: return ESP_OK;
    case CURLE_OPERATION_TIMEDOUT: return ESP_ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: return ESP_ECONNECT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_USE_SSL_FAILED: return ESP_ETLS;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP3: return ESP_EPROTOCOL;
    case CURLE_FILESIZE_EXCEEDED: return ESP_ETOOLARGE;
    case CURLE_OUT_OF_MEMORY: return ESP_ENOMEM;
    case CURLE_URL_MALFORMAT: return ESP_EINVAL;
    default: return ESP_EIO;  // send/recv errors, resets, GOT_NOTHING, PARTIAL_FILE, HTTP2_STREAM
  }
}

int outcome_of(int status, int http_status, TimeoutKind kind) {
  switch (status) {
    case ESP_OK:
      return http_status >= 500 ? kHttp5xx : http_status >= 400 ? kHttp4xx : kOk;
    case ESP_ETIMEDOUT:
      switch (kind) {
        case TimeoutKind::kConnect: return kTimeoutConnect;
        case TimeoutKind::kFirstByte: return kTimeoutFirstByte;
        case TimeoutKind::kIdle:
        case TimeoutKind::kRead:
        case TimeoutKind::kWrite: return kTimeoutIdle;
        default: return kTimeoutTotal;
      }
    case ESP_EPOOLTIMEOUT: return kTimeoutPool;
    case ESP_ECONNECT: return kConnectError;
    case ESP_ETLS: return kTlsError;
    case ESP_EIO: return kIoError;
    case ESP_EPROTOCOL: return kProtocolError;
    case ESP_ECANCELLED: return kCancelled;
    case ESP_ECIRCUIT: return kCircuitOpen;
    case ESP_ETOOLARGE: return kTooLarge;
    case ESP_ESHUTDOWN: return kShutdown;
    case ESP_ERATELIMITED: return kRateLimited;
    default: return kOtherError;
  }
}

}  // namespace esp
