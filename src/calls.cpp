// Asynchronous calls: the user's esp_callbacks as a transfer's sink and the
// esp_call handle table, so that cancel and pause find a live call or fail cleanly.
#include "calls.h"

#include <cstring>

#include "engine.h"
#include "request.h"
#include "sse.h"
#include "status.h"

namespace esp {

namespace {

class CallbackSink : public Sink {
 public:
  CallbackSink(const esp_callbacks &cb, void *user) : cb_(cb), user_(user) {}

  void head(Transfer &t) override {
    sse_ = t.resp->delivers_events(cb_.on_event != nullptr);
    streaming_ = sse_ || cb_.on_data;
    if (cb_.on_headers) cb_.on_headers(user_, t.resp.get());
  }

  size_t body(Transfer &t, const char *p, size_t n) override {
    if (t.pause_requested.load(std::memory_order_relaxed)) return CURL_WRITEFUNC_PAUSE;
    if (!streaming_) return Sink::body(t, p, n);
    if (cb_.on_data) cb_.on_data(user_, p, n);
    if (sse_) parser_.feed(p, n, [&](const esp_sse_event &ev) { cb_.on_event(user_, &ev); });
    return n;
  }

  bool streams_body() const override { return cb_.on_data || cb_.on_event; }

  void complete(Transfer &t, int status, std::unique_ptr<esp_response> resp, const std::string &error) override {
    calls().remove(t.call_handle);  // cancel from now on: ESP_EHANDLE
    // on_complete may read esp_last_error() and esp_last_error_sent()
    if (status != ESP_OK) set_last_error(error.c_str(), t.ever_sent);
    cb_.on_complete(user_, status, resp.release());
  }

 private:
  esp_callbacks cb_;
  void *user_;
  SseParser parser_;
  bool sse_ = false;
  bool streaming_ = false;
};

}  // namespace

HandleTable<Transfer> &calls() {
  static HandleTable<Transfer> *table = new HandleTable<Transfer>(2);
  return *table;
}

uint64_t start_call(uint64_t lease, const esp_request_opts &req, const esp_callbacks &cb, void *user) {
  std::shared_ptr<Transfer> t = make_transfer(lease, req, std::make_unique<CallbackSink>(cb, user));
  uint64_t handle = calls().insert(t);
  t->call_handle = handle;
  try {
    t->engine->submit(t);
  } catch (const Error &) {
    calls().remove(handle);
    unaccept(*t);
    throw;
  }
  return handle;
}

void cancel_call(uint64_t call) {
  std::shared_ptr<Transfer> t = calls().get(call);
  if (!t) fail(ESP_EHANDLE, "call handle is not live (completed, stale or invalid)");
  t->engine->cancel(t);
}

void pause_call(uint64_t call, bool paused) {
  std::shared_ptr<Transfer> t = calls().get(call);
  if (!t) fail(ESP_EHANDLE, "call handle is not live (completed, stale or invalid)");
  t->engine->set_paused(t, paused);
}

uint64_t prepare_call(uint64_t lease, const esp_request_opts &req) {
  std::shared_ptr<Transfer> t = make_waiting_transfer(lease, req);
  t->prepared = true;
  t->call_handle = calls().insert(t);
  return t->call_handle;
}

esp_response *run_call(uint64_t call) {
  refuse_on_io_thread("esp_call_run");
  std::shared_ptr<Transfer> t = calls().get(call);
  if (!t) fail(ESP_EHANDLE, "call handle is not live (already run, stale or invalid)");
  if (!t->prepared) fail(ESP_EINVAL, "esp_call_run needs a call from esp_call_prepare");
  if (t->run_started.exchange(true)) fail(ESP_EINVAL, "esp_call_run: this call is already running");
  struct Unregister {
    uint64_t handle;
    ~Unregister() { calls().remove(handle); }
  } unregister{call};
  return run_and_wait(t);
}

}  // namespace esp
