// The response object behind the opaque esp_response of the ABI. The head's
// fields live in one buffer (two allocations per head, whatever its size), and
// a thread reuses the response it freed last for its next request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.h"

struct esp_response {
  int status = 0;
  int http_version = 0;
  int attempts = 1;
  std::string body;
  esp::HeaderList repeated;  // names that came more than once, values joined with ", "

  void reset() {
    status = 0;
    http_version = 0;
    body.clear();
    clear_headers();
  }
  void clear_headers() {
    head_size_ = 0;
    fields_.clear();
    repeated.clear();
    name_marks_ = 0;
    maybe_repeated_ = false;
  }
  // A field of the head, in arrival order; the name is stored in lower case.
  void add_header(const char *name, size_t name_len, const char *value, size_t value_len);
  void add_header(const std::string &name, const std::string &value) {
    add_header(name.data(), name.size(), value.data(), value.size());
  }
  // Builds `repeated`; call once the header block is complete. Most
  // responses repeat no header, and then this costs nothing.
  void index_headers();
  const char *header(const char *name) const;
  // The fields in arrival order (NUL-terminated, valid while the head is).
  size_t header_count() const { return fields_.size(); }
  const char *header_name(size_t i) const { return head_.get() + fields_[i].name_at; }
  const char *header_value(size_t i) const { return head_.get() + fields_[i].value_at; }
  // Copies status, version, attempts and the head (not the body).
  void copy_head_from(const esp_response &r);
  // A response for a new request: the calling thread's spare (the last one
  // it freed, emptied) or a new one.
  static std::unique_ptr<esp_response> make();
  // esp_response_free: keeps r as the thread's spare, with the capacity of
  // its head and body, unless these are large.
  static void recycle(esp_response *r);
  // The one SSE-or-raw rule: a body reaches a reader that wants events as
  // parsed Server-Sent Events when it is text/event-stream, and as raw
  // chunks otherwise.
  bool delivers_events(bool events_wanted) const;

 private:
  struct Field {
    uint32_t name_at, name_len, value_at, value_len;
  };
  bool name_is(const Field &f, const char *lower, size_t len) const;
  std::unique_ptr<char[]> head_;  // "name\0value\0" per field
  size_t head_size_ = 0;
  size_t head_capacity_ = 0;
  std::vector<Field> fields_;
  // One bit per name (a cheap hash of it): a name whose bit is set already
  // may be a repeat; only then does index_headers compare names.
  uint64_t name_marks_ = 0;
  bool maybe_repeated_ = false;
};
