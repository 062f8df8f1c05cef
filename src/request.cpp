#include "request.h"

#include <condition_variable>
#include <mutex>

#include "calls.h"
#include "engine.h"
#include "registry.h"
#include "status.h"

namespace esp {

namespace {

class WaitSink : public Sink {
 public:
  void complete(Transfer &, int status, std::unique_ptr<esp_response> resp, const std::string &error) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    resp_ = std::move(resp);
    error_ = error;
    done_ = true;
    cv_.notify_one();
  }
  esp_response *wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    if (status_ != ESP_OK) fail(status_, error_);
    return resp_.release();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  int status_ = ESP_OK;
  std::unique_ptr<esp_response> resp_;
  std::string error_;
};

}  // namespace

void refuse_on_io_thread(const char *function) {
  if (Engine::on_io_thread())
    fail(ESP_EINVAL, std::string(function) + " blocks and must not be called from a libesp callback");
}

std::shared_ptr<Transfer> make_transfer(uint64_t lease, const esp_request_opts &req, std::unique_ptr<Sink> sink) {
  std::shared_ptr<Client> client = registry().resolve(lease);
  RequestSpec spec = build_request(*client, req);
  std::shared_ptr<Engine> engine = client->engine();
  Origin *origin = engine->origin(spec.origin_key, spec.origin_label);
  auto t = std::make_shared<Transfer>(std::move(client), std::move(spec), std::move(sink));
  t->engine = engine.get();
  t->engine_ref = std::move(engine);
  t->origin = origin;
  Counters &cs = t->client->stats;
  cs.add(cs.requests);
  cs.in_flight.fetch_add(1, std::memory_order_relaxed);
  origin->stats.add(origin->stats.requests);
  origin->stats.in_flight.fetch_add(1, std::memory_order_relaxed);
  return t;
}

void unaccept(Transfer &t) {
  t.finished = true;
  t.client->stats.in_flight.fetch_sub(1, std::memory_order_relaxed);
  t.origin->stats.in_flight.fetch_sub(1, std::memory_order_relaxed);
}

namespace {

esp_response *run_and_wait(const std::shared_ptr<Transfer> &t) {
  auto &waiter = static_cast<WaitSink &>(*t->sink);
  try {
    t->engine->run_sync(t);
  } catch (const Error &) {
    unaccept(*t);
    throw;
  }
  return waiter.wait();
}

}  // namespace

esp_response *perform(uint64_t lease, const esp_request_opts &req) {
  refuse_on_io_thread("esp_request");
  return run_and_wait(make_transfer(lease, req, std::make_unique<WaitSink>()));
}

uint64_t prepare_call(uint64_t lease, const esp_request_opts &req) {
  std::shared_ptr<Transfer> t = make_transfer(lease, req, std::make_unique<WaitSink>());
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
