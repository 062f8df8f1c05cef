// The blocking pull reader (esp_stream_open/next/close): a sink that buffers
// items for a reader thread and pauses the transfer while it is behind.
#include "streams.h"

#include <strings.h>

#include <chrono>
#include <cstring>

#include "engine.h"
#include "request.h"
#include "status.h"

namespace esp {

namespace {

esp_response *copy_head(const esp_response &r) {
  auto *out = new esp_response;
  out->status = r.status;
  out->http_version = r.http_version;
  out->attempts = r.attempts;
  out->headers = r.headers;
  out->repeated = r.repeated;
  return out;
}

class StreamSink : public Sink {
 public:
  explicit StreamSink(std::shared_ptr<StreamState> st) : st_(std::move(st)) {}

  void head(Transfer &t) override {
    std::lock_guard<std::mutex> lock(st_->mu);
    const char *ct = t.resp->header("content-type");
    st_->sse = !st_->raw && ct && strncasecmp(ct, "text/event-stream", 17) == 0;
    st_->head.reset(copy_head(*t.resp));
    st_->cv.notify_all();
  }

  size_t body(Transfer &, const char *p, size_t n) override {
    std::lock_guard<std::mutex> lock(st_->mu);
    if (st_->closed) return n;
    if (st_->buffered >= StreamState::kBufferLimit) {
      st_->paused = true;
      return CURL_WRITEFUNC_PAUSE;  // libcurl hands us the same bytes on resume
    }
    append(p, n);
    return n;
  }

  void replay(Transfer &, const std::string &b) override {
    std::lock_guard<std::mutex> lock(st_->mu);
    append(b.data(), b.size());
  }

  void complete(Transfer &t, int status, std::unique_ptr<esp_response> resp, const std::string &error) override {
    std::lock_guard<std::mutex> lock(st_->mu);
    st_->sent = t.ever_sent;
    if (!st_->head && resp) st_->head.reset(copy_head(*resp));
    if (resp && !resp->body.empty()) append(resp->body.data(), resp->body.size());
    st_->done = true;
    st_->status = status;
    st_->error = error;
    st_->transfer.reset();
    st_->cv.notify_all();
  }

 private:
  void append(const char *p, size_t n) {
    StreamState &st = *st_;
    if (st.sse) {
      st.parser.feed(p, n, [&](const esp_sse_event &ev) {
        StreamItem item;
        item.kind = ESP_ITEM_EVENT;
        item.event = ev.event;
        item.data.assign(ev.data, ev.data_len);
        item.id = ev.id;
        item.retry_ms = ev.retry_ms;
        st.buffered += item.data.size();
        st.items.push_back(std::move(item));
      });
    } else if (n > 0) {
      StreamItem item;
      item.data.assign(p, n);
      st.buffered += n;
      st.items.push_back(std::move(item));
    }
    st.cv.notify_all();
  }

  std::shared_ptr<StreamState> st_;
};

}  // namespace

HandleTable<StreamState> &streams() {
  static HandleTable<StreamState> *table = new HandleTable<StreamState>(3);
  return *table;
}

uint64_t open_stream(uint64_t lease, const esp_request_opts &req, esp_response **head) {
  refuse_on_io_thread("esp_stream_open");
  auto st = std::make_shared<StreamState>();
  st->raw = (req.flags & ESP_REQ_STREAM_RAW) != 0;
  std::shared_ptr<Transfer> t = make_transfer(lease, req, std::make_unique<StreamSink>(st));
  st->transfer = t;
  st->client = t->client;
  try {
    t->engine->submit(t);
  } catch (const Error &) {
    unaccept(*t);
    throw;
  }
  std::unique_lock<std::mutex> lock(st->mu);
  st->cv.wait(lock, [&] { return st->head || st->done; });
  if (!st->head) {
    int status = st->status;
    std::string error = st->error;
    throw Error(status == ESP_OK ? ESP_EPROTOCOL : status, error, st->sent);
  }
  if (head) *head = copy_head(*st->head);
  lock.unlock();
  t->client->stats.streams_open.fetch_add(1);
  return streams().insert(st);
}

int next_item(uint64_t stream, int64_t timeout_ms, esp_stream_item *item) {
  refuse_on_io_thread("esp_stream_next");
  std::shared_ptr<StreamState> st = streams().get(stream);
  if (!st) fail(ESP_EHANDLE, "stream handle is not live (closed, stale or invalid)");
  std::unique_lock<std::mutex> lock(st->mu);
  auto ready = [&] { return !st->items.empty() || st->done || st->closed; };
  if (timeout_ms < 0)
    st->cv.wait(lock, ready);
  else if (!st->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready))
    return ESP_EAGAIN;
  if (st->closed) fail(ESP_ECANCELLED, "the stream was closed");
  if (st->items.empty()) {
    if (st->status != ESP_OK) throw Error(st->status, st->error, st->sent);
    return 0;
  }
  st->current = std::move(st->items.front());
  st->items.pop_front();
  st->buffered -= st->current.data.size();
  if (st->paused && st->buffered < StreamState::kBufferLimit / 2 && st->transfer) {
    st->paused = false;
    st->transfer->engine->set_paused(st->transfer, false);
  }
  const StreamItem &cur = st->current;
  esp_stream_item out;
  std::memset(&out, 0, sizeof out);
  out.struct_size = item->struct_size;
  out.kind = cur.kind;
  if (cur.kind == ESP_ITEM_EVENT) {
    out.event.event = cur.event.c_str();
    out.event.data = cur.data.c_str();
    out.event.data_len = cur.data.size();
    out.event.id = cur.id.c_str();
    out.event.retry_ms = cur.retry_ms;
    st->current_event = out.event;
    out.ev = &st->current_event;
  } else {
    out.chunk = cur.data.data();
    out.chunk_len = cur.data.size();
  }
  std::memcpy(item, &out, std::min<size_t>(item->struct_size, sizeof out));
  return 1;
}

void close_stream_state(StreamState &st) {
  std::shared_ptr<Transfer> t;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.closed) return;
    st.closed = true;
    t = std::move(st.transfer);
    st.cv.notify_all();
  }
  st.client->stats.streams_open.fetch_sub(1);
  if (t) t->engine->cancel(t);
}

void close_stream(uint64_t stream) {
  std::shared_ptr<StreamState> st = streams().remove(stream);
  if (!st) fail(ESP_EHANDLE, "stream handle is not live (closed, stale or invalid)");
  close_stream_state(*st);
}

}  // namespace esp
