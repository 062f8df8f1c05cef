// The response object behind the opaque esp_response of the ABI. The head's
// lines are kept raw in one buffer as libcurl delivers them and parsed when
// first read (often on the caller's thread, not the I/O thread); a thread
// reuses the response it freed last for its next request.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.h"

namespace esp {

// One line as libcurl hands it to CURLOPT_HEADERFUNCTION (CR LF included):
// a status line, the blank end of a header block, a field (name as sent,
// value without surrounding blanks, both pointing into the line) or
// something to skip. A free function so that the fuzzer reaches it without
// a network.
struct HeaderLine {
  enum Kind { kSkip, kStatus, kEnd, kField } kind = kSkip;
  int status = 0;  // kStatus: 0..999, 0 when unreadable
  const char *name = nullptr;
  size_t name_len = 0;
  const char *value = nullptr;
  size_t value_len = 0;
};
HeaderLine parse_header_line(const char *p, size_t len);
// The kind of a line from its start alone: kStatus, kEnd, or kField for
// any other line (esp_response::add_header_line sorts out the rest later).
HeaderLine::Kind header_line_kind(const char *p, size_t len);

}  // namespace esp

struct esp_response {
  int status = 0;
  int http_version = 0;
  int attempts = 1;
  std::string body;

  esp_response() = default;
  esp_response(const esp_response &r) : body(r.body) { copy_head_from(r); }
  esp_response &operator=(const esp_response &r) {
    if (this != &r) {
      body = r.body;
      copy_head_from(r);
    }
    return *this;
  }

  void reset() {
    status = 0;
    http_version = 0;
    body.clear();
    clear_headers();
  }
  void clear_headers() {
    head_size_ = 0;
    indexed_upto_ = 0;
    fields_.clear();
    repeated_.clear();
    name_marks_ = 0;
    maybe_repeated_ = false;
    mentions_should_retry_ = false;
    index_state_.store(kIndexed, std::memory_order_relaxed);
  }
  // A field line of the head as libcurl delivers it ("Name: value", CR LF
  // included or not), kept raw until the head is read. Lines that are not
  // fields (no name, a NUL inside, obsolete folding) are dropped then.
  void add_header_line(const char *line, size_t len);
  // A field from its parts (tests, and the fuzzer after parse_header_line).
  void add_header(const char *name, size_t name_len, const char *value, size_t value_len);
  void add_header(const std::string &name, const std::string &value) {
    add_header(name.data(), name.size(), value.data(), value.size());
  }
  // Parses the lines added since the last call. Every reader below calls it;
  // safe from several threads at once, as the C API's readers are.
  void index_headers() const;
  // The value of a header (case-insensitive name), repeated ones joined with
  // ", "; NULL if absent.
  const char *header(const char *name) const;
  // x-should-retry, the one header the engine reads on every response: the
  // head is parsed for it only when a line may carry it.
  const char *should_retry_hint() const { return mentions_should_retry_ ? header("x-should-retry") : nullptr; }
  // The fields in arrival order, names in lower case (NUL-terminated, valid
  // while the head is).
  size_t header_count() const {
    index_headers();
    return fields_.size();
  }
  const char *header_name(size_t i) const {
    index_headers();
    return head_.get() + fields_[i].name_at;
  }
  const char *header_value(size_t i) const {
    index_headers();
    return head_.get() + fields_[i].value_at;
  }
  // Names that came more than once, with their values joined by ", ".
  const esp::HeaderList &repeated() const {
    index_headers();
    return repeated_;
  }
  // Copies status, version, attempts and the head (not the body).
  void copy_head_from(const esp_response &r);
  // The one SSE-or-raw rule: a body reaches a reader that wants events as
  // parsed Server-Sent Events when it is text/event-stream, and as raw
  // chunks otherwise.
  bool delivers_events(bool events_wanted) const;

  // A response for a new request: the calling thread's spare (the last one
  // it freed, emptied) or a new one.
  static std::unique_ptr<esp_response> make();
  // esp_response_free: keeps r as the thread's spare, with the capacity of
  // its head and body, unless these are large.
  static void recycle(esp_response *r);
  // fork(): no head is being indexed while the process forks (lifecycle.cpp).
  static void lock_for_fork();
  static void unlock_after_fork();

 private:
  struct Field {
    uint32_t name_at, name_len, value_at, value_len;
  };
  char *grow_head(size_t more);
  void index_new_lines() const;
  bool name_is(const Field &f, const char *lower, size_t len) const;
  // The raw lines, each ending in LF; indexing lowers the names in place and
  // ends names and values with NUL.
  std::unique_ptr<char[]> head_;
  size_t head_size_ = 0;
  size_t head_capacity_ = 0;
  bool mentions_should_retry_ = false;
  // Raw lines wait to be indexed; the first reader indexes them under a
  // process-wide lock while others wait on it. The members below change only then.
  enum IndexState : uint8_t { kRaw, kIndexed };
  mutable std::atomic<uint8_t> index_state_{kIndexed};
  mutable size_t indexed_upto_ = 0;
  mutable std::vector<Field> fields_;
  mutable esp::HeaderList repeated_;
  // One bit per name (a cheap hash of it): a name whose bit is set already
  // may be a repeat; only then are names compared.
  mutable uint64_t name_marks_ = 0;
  mutable bool maybe_repeated_ = false;
};
