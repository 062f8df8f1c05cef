// The response object behind the opaque esp_response of the ABI.
#pragma once

#include <cstdint>
#include <string>

#include "config.h"

struct esp_response {
  int status = 0;
  int http_version = 0;
  int attempts = 1;
  std::string body;
  esp::HeaderList headers;  // names in lower case, arrival order
  esp::HeaderList repeated;  // names that came more than once, values joined with ", "

  void reset() {
    status = 0;
    http_version = 0;
    body.clear();
    clear_headers();
  }
  void clear_headers() {
    headers.clear();
    repeated.clear();
    name_marks_ = 0;
    marked_ = 0;
    maybe_repeated_ = false;
  }
  // A field of the head (name in lower case), in arrival order.
  void add_header(std::string name, std::string value);
  // Builds `repeated`; call once the header block is complete. Most
  // responses repeat no header, and then this costs nothing.
  void index_headers();
  const char *header(const char *name) const;
  // The one SSE-or-raw rule: a body reaches a reader that wants events as
  // parsed Server-Sent Events when it is text/event-stream, and as raw
  // chunks otherwise.
  bool delivers_events(bool events_wanted) const;

 private:
  // One bit per name (a cheap hash of it): a name whose bit is set already
  // may be a repeat; only then does index_headers compare names (or when
  // headers were filled without add_header: marked_ differs from their number).
  uint64_t name_marks_ = 0;
  size_t marked_ = 0;
  bool maybe_repeated_ = false;
};
