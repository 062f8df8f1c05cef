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
    const char *end = p + n;
    while (p < end) {
      if (after_cr_) {
        after_cr_ = false;
        if (*p == '\n' && ++p == end) break;
      }
      const char *eol = line_end(p, end);
      if (eol == end) {  // the line goes on in the next chunk
        line_.append(p, static_cast<size_t>(end - p));
        break;
      }
      after_cr_ = *eol == '\r';
      bool blank;
      if (line_.empty()) {  // the whole line is in this chunk: read it in place
        blank = take_line(p, static_cast<size_t>(eol - p));
      } else {
        line_.append(p, static_cast<size_t>(eol - p));
        blank = take_line(line_.data(), line_.size());
        line_.clear();
      }
      if (blank) dispatch(emit);
      p = eol + 1;
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
  // The first CR or LF in [p, end), or end.
  static const char *line_end(const char *p, const char *end);
  // Interprets a completed line (without its end); true when it was blank
  // (dispatch time).
  bool take_line(const char *line, size_t len);

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

  std::string line_;  // a line cut by a chunk boundary, until its end arrives
  std::string data_;
  std::string event_;
  std::string last_id_;
  int64_t retry_ms_ = -1;
  bool has_data_ = false;
  bool after_cr_ = false;
  bool started_ = false;  // the UTF-8 BOM is only stripped at the very start
};

}  // namespace esp
