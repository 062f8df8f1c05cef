// Incremental Server-Sent Events parser (WHATWG HTML, "event stream
// interpretation"): bytes in any chunking, CR / LF / CRLF line ends,
// multi-line data, comments, id and retry fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "esp.h"

namespace esp {

class SseParser {
 public:
  // Feeds bytes; calls emit(const esp_sse_event &) for each dispatched event.
  // The event's pointers are valid only during the call.
  template <class Emit>
  void feed(const char *p, size_t n, Emit &&emit) {
    for (size_t i = 0; i < n; ++i) {
      char c = p[i];
      if (after_cr_) {
        after_cr_ = false;
        if (c == '\n') continue;
      }
      if (c == '\r' || c == '\n') {
        after_cr_ = c == '\r';
        if (take_line()) dispatch(emit);
        line_.clear();
      } else {
        line_.push_back(c);
      }
    }
  }

  // At the end of the body: an event without its terminating blank line is
  // discarded, as the specification says.
  void reset_block() {
    line_.clear();
    data_.clear();
    event_.clear();
    has_data_ = false;
    retry_ms_ = -1;
  }

 private:
  // Interprets the completed line; true when it was blank (dispatch time).
  bool take_line();

  template <class Emit>
  void dispatch(Emit &&emit) {
    if (has_data_) {
      if (!data_.empty() && data_.back() == '\n') data_.pop_back();
      esp_sse_event ev;
      ev.event = event_.empty() ? "message" : event_.c_str();
      ev.data = data_.c_str();
      ev.data_len = data_.size();
      ev.id = last_id_.c_str();
      ev.retry_ms = retry_ms_;
      emit(ev);
    }
    data_.clear();
    event_.clear();
    has_data_ = false;
    retry_ms_ = -1;
  }

  std::string line_;
  std::string data_;
  std::string event_;
  std::string last_id_;
  int64_t retry_ms_ = -1;
  bool has_data_ = false;
  bool after_cr_ = false;
  bool started_ = false;  // the UTF-8 BOM is only stripped at the very start
};

}  // namespace esp
