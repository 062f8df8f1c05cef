#include "response.h"

#include <strings.h>

void esp_response::index_headers() {
  merged.clear();
  for (const auto &h : headers) {
    bool found = false;
    for (auto &m : merged) {
      if (m.first == h.first) {
        m.second += ", " + h.second;
        found = true;
        break;
      }
    }
    if (!found) merged.push_back(h);
  }
}

const char *esp_response::header(const char *name) const {
  for (const auto &m : merged)
    if (strcasecmp(m.first.c_str(), name) == 0) return m.second.c_str();
  return nullptr;
}
