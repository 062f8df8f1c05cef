// The blocking pull reader (esp_stream_*): a transfer whose sink buffers
// items for a reader thread, pausing the transfer when the reader is behind.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "esp.h"
#include "handles.h"
#include "sse.h"
#include "transfer.h"

namespace esp {

struct StreamItem {
  int kind = ESP_ITEM_CHUNK;
  std::string event;
  std::string data;  // event data, or the chunk
  std::string id;
  int64_t retry_ms = -1;
};

struct StreamState {
  static constexpr size_t kBufferLimit = 1 << 20;  // pause the transfer past this

  std::mutex mu;
  std::condition_variable cv;
  std::unique_ptr<esp_response> head;  // status and headers, once in
  std::deque<StreamItem> items;
  size_t buffered = 0;
  bool paused = false;
  bool done = false;
  bool closed = false;
  bool raw = false;  // ESP_REQ_STREAM_RAW
  bool sse = false;  // decided when the headers arrive
  int status = ESP_OK;
  std::string error;
  bool sent = false;  // the request may have reached the server before the failure
  StreamItem current;  // the item handed out last
  esp_sse_event current_event{};  // item.ev of it: points into current
  std::shared_ptr<Transfer> transfer;  // until it completes
  std::shared_ptr<Client> client;      // for its accounting
  SseParser parser;  // driver thread only
};

HandleTable<StreamState> &streams();

uint64_t open_stream(uint64_t lease, const esp_request_opts &req, esp_response **head);
int next_item(uint64_t stream, int64_t timeout_ms, esp_stream_item *item);
void close_stream(uint64_t stream);
// Ends a reader's wait and cancels its transfer (close and shutdown).
void close_stream_state(StreamState &st);

}  // namespace esp
