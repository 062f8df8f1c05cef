// The response object behind the opaque esp_response of the ABI.
#pragma once

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
    headers.clear();
    repeated.clear();
  }
  // Builds `repeated`; call once the header block is complete. Most
  // responses repeat no header, and then this allocates nothing.
  void index_headers();
  const char *header(const char *name) const;
  // The one SSE-or-raw rule: a body reaches a reader that wants events as
  // parsed Server-Sent Events when it is text/event-stream, and as raw
  // chunks otherwise.
  bool delivers_events(bool events_wanted) const;
};
