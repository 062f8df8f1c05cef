// esp_response's header index: repeated names joined once the head is
// complete, case-insensitive lookup for esp_response_header.
#include "response.h"

#include <strings.h>

void esp_response::add_header(std::string name, std::string value) {
  // A typical head has about ten fields: one allocation instead of five growths.
  if (headers.capacity() == 0) headers.reserve(16);
  const uint64_t mark = name.empty() ? 1 : uint64_t{1} << ((name.size() * 7 + static_cast<unsigned char>(name.back())) & 63);
  maybe_repeated_ = maybe_repeated_ || (name_marks_ & mark) != 0;
  name_marks_ |= mark;
  ++marked_;
  headers.emplace_back(std::move(name), std::move(value));
}

void esp_response::index_headers() {
  repeated.clear();
  if (!maybe_repeated_ && marked_ == headers.size()) return;
  for (size_t i = 0; i < headers.size(); ++i) {
    const std::string &name = headers[i].first;
    bool seen_before = false;
    for (size_t j = 0; j < i && !seen_before; ++j) seen_before = headers[j].first == name;
    if (seen_before) continue;
    std::string joined;
    bool again = false;
    for (size_t j = i + 1; j < headers.size(); ++j) {
      if (headers[j].first != name) continue;
      if (!again) joined = headers[i].second;
      again = true;
      joined += ", " + headers[j].second;
    }
    if (again) repeated.emplace_back(name, std::move(joined));
  }
}

const char *esp_response::header(const char *name) const {
  for (const auto &r : repeated)
    if (strcasecmp(r.first.c_str(), name) == 0) return r.second.c_str();
  for (const auto &h : headers)
    if (strcasecmp(h.first.c_str(), name) == 0) return h.second.c_str();
  return nullptr;
}

bool esp_response::delivers_events(bool events_wanted) const {
  const char *type = header("content-type");
  return events_wanted && type && strncasecmp(type, "text/event-stream", 17) == 0;
}
