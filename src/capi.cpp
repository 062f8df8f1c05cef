// The extern "C" layer: argument checks, exception -> status mapping. The
// decisions live in the modules it calls.
#include <curl/curl.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "calls.h"
#include "config_schema.h"
#include "esp.h"
#include "log.h"
#include "registry.h"
#include "request.h"
#include "lifecycle.h"
#include "stats.h"
#include "status.h"
#include "streams.h"

using esp::Error;
using esp::fail;

namespace {

template <class Fn>
int guarded(Fn fn) noexcept {
  try {
    fn();
    return ESP_OK;
  } catch (const Error &e) {
    esp::set_last_error(e.what(), e.sent());
    return e.code();
  } catch (const std::bad_alloc &) {
    esp::set_last_error("out of memory");
    return ESP_ENOMEM;
  } catch (const std::exception &e) {
    esp::set_last_error((std::string("internal error: ") + e.what()).c_str());
    return ESP_EINTERNAL;
  } catch (...) {
    esp::set_last_error("internal error");
    return ESP_EINTERNAL;
  }
}

// Structs grow by appending fields: accept any size from the end of the
// first release's last field up to ours (a larger one comes from a newer
// header than this library); fields beyond the caller's size keep defaults.
void check_size(uint32_t size, size_t first_release, size_t ours, const char *what) {
  if (size < first_release || size > ours)
    fail(ESP_EINVAL, std::string(what) + ".struct_size is " + std::to_string(size) + ", expected " +
                         std::to_string(first_release) + " to " + std::to_string(ours) + " (set it to sizeof(" +
                         what + "))");
}

// Where each struct's 0.1.0 fields end: the smallest struct_size accepted.
constexpr size_t kOptsFirst = offsetof(esp_request_opts, flags) + sizeof(esp_request_opts::flags);
constexpr size_t kCallbacksFirst = offsetof(esp_callbacks, on_complete) + sizeof(esp_callbacks::on_complete);
constexpr size_t kItemFirst = offsetof(esp_stream_item, chunk_len) + sizeof(esp_stream_item::chunk_len);

void need(const void *p, const char *name) {
  if (!p) fail(ESP_EINVAL, std::string(name) + " must not be NULL");
}

esp_request_opts copy_opts(const esp_request_opts *req) {
  need(req, "req");
  check_size(req->struct_size, kOptsFirst, sizeof(esp_request_opts), "esp_request_opts");
  esp_request_opts o;
  std::memset(&o, 0, sizeof o);
  std::memcpy(&o, req, req->struct_size);
  return o;
}

char *dup_string(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (!p) throw std::bad_alloc();
  std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

}  // namespace

extern "C" {

uint32_t esp_version(void) { return ESP_VERSION_NUMBER; }

const char *esp_version_string(void) {
  static const std::string *v = new std::string(std::string(ESP_VERSION_STRING " (") + curl_version() + ")");
  return v->c_str();
}

const char *esp_strerror(int status) { return esp::status_text(status); }

const char *esp_config_schema(void) { return esp::config_schema_json(); }

const char *esp_last_error(void) { return esp::last_error(); }

int esp_last_error_sent(void) { return esp::last_error_sent() ? 1 : 0; }

int esp_client_get(const char *config_json, esp_client *out) {
  return guarded([&] {
    need(out, "out");
    *out = 0;
    esp::ensure_started();
    *out = esp::registry().acquire(config_json);
  });
}

int esp_client_release(esp_client client) {
  return guarded([&] { esp::registry().release(client); });
}

int esp_request(esp_client client, const esp_request_opts *req, esp_response **out) {
  return guarded([&] {
    need(out, "out");
    *out = nullptr;
    esp_request_opts opts = copy_opts(req);
    *out = esp::perform(client, opts);
  });
}

int esp_response_status(const esp_response *r) { return r ? r->status : 0; }

const void *esp_response_body(const esp_response *r, size_t *len) {
  if (len) *len = r ? r->body.size() : 0;
  return r ? r->body.data() : nullptr;
}

const char *esp_response_header(const esp_response *r, const char *name) {
  return r && name ? r->header(name) : nullptr;
}

size_t esp_response_header_count(const esp_response *r) { return r ? r->header_count() : 0; }

int esp_response_header_at(const esp_response *r, size_t i, const char **name, const char **value) {
  return guarded([&] {
    need(r, "r");
    if (i >= r->header_count()) fail(ESP_EINVAL, "header index out of range");
    if (name) *name = r->header_name(i);
    if (value) *value = r->header_value(i);
  });
}

int esp_response_http_version(const esp_response *r) { return r ? r->http_version : 0; }

int esp_response_attempts(const esp_response *r) { return r ? r->attempts : 0; }

void esp_response_free(esp_response *r) { esp_response::recycle(r); }

int esp_request_async(esp_client client, const esp_request_opts *req, const esp_callbacks *cb, void *user,
                      esp_call *out) {
  return guarded([&] {
    if (out) *out = 0;
    esp_request_opts opts = copy_opts(req);
    need(cb, "cb");
    check_size(cb->struct_size, kCallbacksFirst, sizeof(esp_callbacks), "esp_callbacks");
    esp_callbacks callbacks;
    std::memset(&callbacks, 0, sizeof callbacks);
    std::memcpy(&callbacks, cb, cb->struct_size);
    need(reinterpret_cast<const void *>(callbacks.on_complete), "cb->on_complete");
    uint64_t call = esp::start_call(client, opts, callbacks, user);
    if (out) *out = call;
  });
}

int esp_call_cancel(esp_call call) {
  return guarded([&] { esp::cancel_call(call); });
}

int esp_call_prepare(esp_client client, const esp_request_opts *req, esp_call *out) {
  return guarded([&] {
    need(out, "out");
    *out = 0;
    esp_request_opts opts = copy_opts(req);
    *out = esp::prepare_call(client, opts);
  });
}

int esp_call_run(esp_call call, esp_response **out) {
  return guarded([&] {
    need(out, "out");
    *out = nullptr;
    *out = esp::run_call(call);
  });
}

int esp_call_pause(esp_call call, int paused) {
  return guarded([&] { esp::pause_call(call, paused != 0); });
}

int esp_stream_open(esp_client client, const esp_request_opts *req, esp_stream *out, esp_response **head) {
  return guarded([&] {
    need(out, "out");
    *out = 0;
    if (head) *head = nullptr;
    esp_request_opts opts = copy_opts(req);
    *out = esp::open_stream(client, opts, head);
  });
}

int esp_stream_next(esp_stream stream, int64_t timeout_ms, esp_stream_item *item) {
  int result = 0;
  int rc = guarded([&] {
    need(item, "item");
    check_size(item->struct_size, kItemFirst, sizeof(esp_stream_item), "esp_stream_item");
    result = esp::next_item(stream, timeout_ms, item);
  });
  return rc == ESP_OK ? result : rc;
}

int esp_stream_close(esp_stream stream) {
  return guarded([&] { esp::close_stream(stream); });
}

int esp_stream_start(esp_client client, const esp_request_opts *req, esp_stream_ready_fn ready, void *user,
                     esp_stream *out) {
  return guarded([&] {
    need(out, "out");
    *out = 0;
    esp_request_opts opts = copy_opts(req);
    *out = esp::start_stream(client, opts, ready, user);
  });
}

int esp_stream_head(esp_stream stream, esp_response **head) {
  int result = ESP_OK;
  int rc = guarded([&] {
    need(head, "head");
    *head = nullptr;
    result = esp::stream_head(stream, head);
  });
  return rc == ESP_OK ? result : rc;
}

int esp_client_stats(esp_client client, char **json) {
  return guarded([&] {
    need(json, "json");
    *json = nullptr;
    *json = dup_string(esp::client_stats_json(client));
  });
}

int esp_stats(char **json) {
  return guarded([&] {
    need(json, "json");
    *json = nullptr;
    *json = dup_string(esp::process_stats_json());
  });
}

int esp_metrics_prometheus(char **text) {
  return guarded([&] {
    need(text, "text");
    *text = nullptr;
    *text = dup_string(esp::prometheus_text());
  });
}

int esp_set_logger(esp_log_fn fn, void *user, int min_level) {
  return guarded([&] { esp::set_logger(fn, user, min_level); });
}

void esp_free(void *p) { std::free(p); }

int esp_shutdown(int64_t timeout_ms) {
  return guarded([&] {
    esp::refuse_on_io_thread("esp_shutdown");
    int rc = esp::shutdown_all(timeout_ms);
    if (rc != ESP_OK) fail(rc, "esp_shutdown: a callback did not return within timeout_ms");
  });
}

}  // extern "C"
