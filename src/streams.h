// Streamed responses read by pulling (esp_stream_*): the one place that
// buffers a body for its reader, pauses the transfer while the reader is
// behind, decides between SSE events and raw chunks, and tells a
// non-blocking reader (esp_stream_start's ready callback) that it has news.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "esp.h"
#include "handles.h"
#include "round.h"
#include "sse.h"
#include "stream_items.h"
#include "transfer.h"

namespace esp {

struct StreamState final : RoundTask, std::enable_shared_from_this<StreamState> {
  std::mutex mu;
  std::condition_variable cv;
  std::unique_ptr<esp_response> head;  // status and headers, once in
  StreamItems items;
  size_t buffered = 0;      // bytes of items not yet read
  size_t high_water = 0;    // pause the transfer at this many (stream_buffer_bytes)
  size_t low_water = 0;     // resume it at this many or fewer (stream_resume_bytes)
  bool paused = false;
  bool done = false;
  bool closed = false;
  bool raw = false;  // ESP_REQ_STREAM_RAW
  bool sse = false;  // decided when the headers arrive
  int status = ESP_OK;
  std::string error;
  bool sent = false;  // the request may have reached the server before the failure
  StreamItem current;  // the item handed out last
  // The data buffer of the item handed out before it, for the next item the
  // driver queues: a stream of small events allocates no buffer per event.
  std::string spare;
  esp_sse_event current_event{};  // item.ev of it: points into current
  std::shared_ptr<Transfer> transfer;  // until it completes
  std::shared_ptr<Client> client;      // for its accounting
  SseParser parser;  // driver thread only

  // esp_stream_start's reader: its callback, owed once `armed`.
  esp_stream_ready_fn ready = nullptr;
  void *user = nullptr;
  bool armed = false;
  bool deferred = false;     // ready is owed at the end of the I/O thread's round
  bool firing = false;       // ready runs now, on firing_thread
  std::thread::id firing_thread;

  void at_round_end() override;
};

HandleTable<StreamState> &streams();

uint64_t open_stream(uint64_t lease, const esp_request_opts &req, esp_response **head);
uint64_t start_stream(uint64_t lease, const esp_request_opts &req, esp_stream_ready_fn ready, void *user);
// Returns ESP_OK with *head set, or ESP_EAGAIN.
int stream_head(uint64_t stream, esp_response **head);
int next_item(uint64_t stream, int64_t timeout_ms, esp_stream_item *item);
void close_stream(uint64_t stream);
// esp_shutdown: ends every stream, after the engines have completed their
// transfers; started ones then read ESP_ESHUTDOWN until closed.
void end_streams_for_shutdown();

}  // namespace esp
