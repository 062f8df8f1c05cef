// Streamed responses read by pulling: a transfer whose sink buffers items
// for a reader (blocking, or woken by a ready callback), pausing the
// transfer past the client's stream_buffer_bytes. Every binding's streams
// sit on this, so the buffering and backpressure rules exist once.
#include "streams.h"

#include <chrono>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "engine.h"
#include "request.h"
#include "status.h"

namespace esp {

namespace {

// The largest buffer a stream keeps for reuse (a big raw chunk's is freed).
constexpr size_t kSpareBytes = 4096;

// libcurl's receive buffer for a stream that may carry events: 16 KiB by
// default, allocated per transfer and held while the stream lives (half the
// heap of an idle stream). Paced events are read one at a time (~100-500
// bytes each), so a small buffer costs a read only when a backlog or a large
// event arrives. A raw stream (ESP_REQ_STREAM_RAW: bulk bytes) keeps the
// default.
constexpr long kEventReadBytes = 2048;

// libcurl's upload buffer for a stream's request: a body over 64 KiB (a long
// prompt) makes 7.88 allocate one of 64 KiB by default, held on the handle
// for as long as the stream lives. 16 KiB is the least it takes; a prompt
// then goes out in 16 KiB writes, once per stream.
constexpr long kStreamUploadBytes = 16384;

esp_response *copy_head(const esp_response &r) {
  auto *out = new esp_response;
  out->copy_head_from(r);
  return out;
}

// Keeps the client's gauges in step with what the stream holds.
void hold(StreamState &st, int64_t bytes) {
  st.buffered = static_cast<size_t>(static_cast<int64_t>(st.buffered) + bytes);
  st.client->stats.stream_buffered_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void mark_paused(StreamState &st, bool paused) {
  if (st.paused == paused) return;
  st.paused = paused;
  st.client->stats.streams_paused.fetch_add(paused ? 1 : -1, std::memory_order_relaxed);
}

// Calls `ready`; with the lock held, which it releases meanwhile so that the
// callback may read the stream.
void fire(StreamState &st, std::unique_lock<std::mutex> &lock) {
  st.firing = true;
  st.firing_thread = std::this_thread::get_id();
  lock.unlock();
  st.ready(st.user);
  lock.lock();
  st.firing = false;
  st.cv.notify_all();
}

// Wakes blocking readers, and a non-blocking one when it is owed a call and
// there is news: at the end of the I/O thread's round (round.h), so that the
// news of one round wakes the reader's thread once, else at once. Called with
// the lock held.
void wake(StreamState &st, std::unique_lock<std::mutex> &lock, bool news) {
  st.cv.notify_all();
  if (!news || !st.armed || !st.ready || st.closed) return;
  st.armed = false;
  if (st.deferred) return;
  if (defer_to_round_end(st.shared_from_this())) {
    st.deferred = true;
    return;
  }
  fire(st, lock);
}

}  // namespace

// What the round put off. A reader that re-armed since is served by this call
// too; a stream closed meanwhile is owed nothing (close_stream_state).
void StreamState::at_round_end() {
  std::unique_lock<std::mutex> lock(mu);
  deferred = false;
  if (closed) return;
  armed = false;
  fire(*this, lock);
}

namespace {

class StreamSink : public Sink {
 public:
  explicit StreamSink(std::shared_ptr<StreamState> st) : st_(std::move(st)) {}

  void head(Transfer &t) override {
    std::unique_lock<std::mutex> lock(st_->mu);
    st_->sse = t.resp->delivers_events(!st_->raw);
    st_->head.reset(copy_head(*t.resp));
    wake(*st_, lock, true);
  }

  size_t body(Transfer &, const char *p, size_t n) override {
    std::unique_lock<std::mutex> lock(st_->mu);
    if (st_->closed) return n;
    if (st_->buffered >= st_->high_water) {
      mark_paused(*st_, true);
      return CURL_WRITEFUNC_PAUSE;  // libcurl hands us the same bytes on resume
    }
    append(lock, p, n);
    return n;
  }

  long read_buffer_bytes() const override { return st_->raw ? CURL_MAX_WRITE_SIZE : kEventReadBytes; }
  long upload_buffer_bytes() const override { return kStreamUploadBytes; }
  bool streams_body() const override { return true; }

  void replay(Transfer &, const std::string &b) override {
    std::unique_lock<std::mutex> lock(st_->mu);
    append(lock, b.data(), b.size());
  }

  void complete(Transfer &t, int status, std::unique_ptr<esp_response> resp, const std::string &error) override {
    std::unique_lock<std::mutex> lock(st_->mu);
    st_->sent = t.ever_sent;
    if (!st_->head && resp) st_->head.reset(copy_head(*resp));
    if (resp && !resp->body.empty()) append(lock, resp->body.data(), resp->body.size());
    if (st_->done) return;  // esp_shutdown ended it already
    st_->done = true;
    st_->status = status;
    st_->error = error;
    st_->transfer.reset();
    mark_paused(*st_, false);
    wake(*st_, lock, true);
  }

 private:
  void append(std::unique_lock<std::mutex> &lock, const char *p, size_t n) {
    StreamState &st = *st_;
    if (st.closed || st.done) return;
    const size_t before = st.items.size();
    if (st.sse) {
      st.parser.feed(p, n, [&](const esp_sse_event &ev) {
        StreamItem item;
        item.kind = ESP_ITEM_EVENT;
        item.event = ev.event;
        item.data.swap(st.spare);
        item.data.assign(ev.data, ev.data_len);
        item.id = ev.id;
        item.retry_ms = ev.retry_ms;
        hold(st, static_cast<int64_t>(item.data.size()));
        st.items.push_back(std::move(item));
      });
    } else if (n > 0) {
      StreamItem item;
      item.data.swap(st.spare);
      item.data.assign(p, n);
      hold(st, static_cast<int64_t>(n));
      st.items.push_back(std::move(item));
    }
    wake(st, lock, st.items.size() != before);
  }

  std::shared_ptr<StreamState> st_;
};

// Handles of streams esp_shutdown ended, until their esp_stream_close: they
// read ESP_ESHUTDOWN rather than look forged.
struct EndedStreams {
  std::mutex mu;
  std::unordered_set<uint64_t> handles;
};

EndedStreams &ended() {
  static EndedStreams *e = new EndedStreams;
  return *e;
}

std::shared_ptr<StreamState> live_stream(uint64_t handle) {
  std::shared_ptr<StreamState> st = streams().get(handle);
  if (st) return st;
  {
    std::lock_guard<std::mutex> lock(ended().mu);
    if (ended().handles.count(handle)) fail(ESP_ESHUTDOWN, "esp_shutdown ended the stream");
  }
  fail(ESP_EHANDLE, "stream handle is not live (closed, stale or invalid)");
}

std::shared_ptr<StreamState> new_state(const esp_request_opts &req) {
  auto st = std::make_shared<StreamState>();
  st->raw = (req.flags & ESP_REQ_STREAM_RAW) != 0;
  return st;
}

// Creates the transfer of a stream and hands it to its engine.
std::shared_ptr<Transfer> launch(uint64_t lease, const esp_request_opts &req, const std::shared_ptr<StreamState> &st) {
  std::shared_ptr<Transfer> t = make_transfer(lease, req, std::make_unique<StreamSink>(st));
  st->transfer = t;
  st->client = t->client;
  st->high_water = static_cast<size_t>(t->client->config.stream_buffer_bytes);
  st->low_water = static_cast<size_t>(t->client->config.effective_stream_resume_bytes());
  return t;
}

void submit(const std::shared_ptr<Transfer> &t) {
  try {
    t->engine->submit(t);
  } catch (const Error &) {
    unaccept(*t);
    throw;
  }
}

[[noreturn]] void fail_ended(const StreamState &st) {
  throw Error(st.status == ESP_OK ? ESP_EPROTOCOL : st.status, st.error, st.sent);
}

// Ends a reader's wait and cancels the transfer. Once it returns, no ready
// call runs (except the one calling it) and none will.
void close_stream_state(StreamState &st) {
  std::shared_ptr<Transfer> t;
  {
    std::unique_lock<std::mutex> lock(st.mu);
    const auto self = std::this_thread::get_id();
    st.cv.wait(lock, [&] { return !st.firing || st.firing_thread == self; });
    if (st.closed) return;
    st.closed = true;
    t = std::move(st.transfer);
    hold(st, -static_cast<int64_t>(st.buffered));
    mark_paused(st, false);
    st.items.clear();
    st.cv.notify_all();
  }
  st.client->stats.streams_open.fetch_sub(1);
  if (t) t->engine->cancel(t);
}

}  // namespace

HandleTable<StreamState> &streams() {
  static HandleTable<StreamState> *table = new HandleTable<StreamState>(3);
  return *table;
}

uint64_t open_stream(uint64_t lease, const esp_request_opts &req, esp_response **head) {
  refuse_on_io_thread("esp_stream_open");
  std::shared_ptr<StreamState> st = new_state(req);
  std::shared_ptr<Transfer> t = launch(lease, req, st);
  submit(t);
  std::unique_lock<std::mutex> lock(st->mu);
  st->cv.wait(lock, [&] { return st->head || st->done; });
  if (!st->head) fail_ended(*st);
  if (head) *head = copy_head(*st->head);
  lock.unlock();
  t->client->stats.streams_open.fetch_add(1);
  return streams().insert(st);
}

uint64_t start_stream(uint64_t lease, const esp_request_opts &req, esp_stream_ready_fn ready, void *user) {
  std::shared_ptr<StreamState> st = new_state(req);
  st->ready = ready;
  st->user = user;
  st->armed = true;
  std::shared_ptr<Transfer> t = launch(lease, req, st);
  t->client->stats.streams_open.fetch_add(1);
  uint64_t handle = streams().insert(st);
  try {
    submit(t);
  } catch (const Error &) {
    streams().remove(handle);
    t->client->stats.streams_open.fetch_sub(1);
    throw;
  }
  return handle;
}

int stream_head(uint64_t stream, esp_response **head) {
  std::shared_ptr<StreamState> st = live_stream(stream);
  std::unique_lock<std::mutex> lock(st->mu);
  if (st->closed) fail(ESP_ECANCELLED, "the stream was closed");
  if (st->head) {
    *head = copy_head(*st->head);
    return ESP_OK;
  }
  if (st->done) fail_ended(*st);
  st->armed = true;
  return ESP_EAGAIN;
}

int next_item(uint64_t stream, int64_t timeout_ms, esp_stream_item *item) {
  if (timeout_ms != 0) refuse_on_io_thread("esp_stream_next");
  std::shared_ptr<StreamState> st = live_stream(stream);
  std::unique_lock<std::mutex> lock(st->mu);
  auto ready = [&] { return !st->items.empty() || st->done || st->closed; };
  bool has_news;
  if (timeout_ms == 0) {
    // A look without a wait (every non-blocking reader, per item) leaves the
    // condition variable alone: a zero wait_for still enters the kernel and
    // registers a waiter, which the driver's next notify then pays for.
    has_news = ready();
  } else if (timeout_ms < 0) {
    st->cv.wait(lock, ready);
    has_news = true;
  } else {
    has_news = st->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready);
  }
  if (!has_news) {
    st->armed = true;
    return ESP_EAGAIN;
  }
  if (st->closed) {
    if (st->status == ESP_ESHUTDOWN) fail_ended(*st);
    fail(ESP_ECANCELLED, "the stream was closed");
  }
  if (st->items.empty()) {
    if (st->status != ESP_OK) fail_ended(*st);
    return 0;
  }
  if (st->current.data.capacity() <= kSpareBytes) st->spare.swap(st->current.data);
  st->current = std::move(st->items.front());
  st->items.pop_front();
  hold(*st, -static_cast<int64_t>(st->current.data.size()));
  if (st->paused && st->buffered <= st->low_water && st->transfer) {
    mark_paused(*st, false);
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

void close_stream(uint64_t stream) {
  std::shared_ptr<StreamState> st = streams().remove(stream);
  if (!st) {
    std::lock_guard<std::mutex> lock(ended().mu);
    if (ended().handles.erase(stream)) return;
    fail(ESP_EHANDLE, "stream handle is not live (closed, stale or invalid)");
  }
  close_stream_state(*st);
}

void end_streams_for_shutdown() {
  std::vector<uint64_t> handles;
  std::vector<std::shared_ptr<StreamState>> states = streams().clear(&handles);
  {
    std::lock_guard<std::mutex> lock(ended().mu);
    ended().handles.insert(handles.begin(), handles.end());
  }
  for (auto &st : states) {
    std::unique_lock<std::mutex> lock(st->mu);
    if (!st->done) {  // its engine did not get to complete it
      st->done = true;
      st->status = ESP_ESHUTDOWN;
      st->error = "esp_shutdown ended the stream";
    }
    wake(*st, lock, true);
    lock.unlock();
    close_stream_state(*st);
  }
}

}  // namespace esp
