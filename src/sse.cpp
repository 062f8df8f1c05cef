// The line interpreter of the Server-Sent Events parser (fields, comments,
// BOM); the byte loop is inline in sse.h for the hot path.
#include "sse.h"

#include <cstring>

namespace esp {

bool SseParser::take_line() {
  if (!started_) {
    started_ = true;
    if (line_.compare(0, 3, "\xEF\xBB\xBF") == 0) line_.erase(0, 3);
  }
  if (line_.empty()) return true;
  if (line_[0] == ':') return false;  // comment
  size_t colon = line_.find(':');
  std::string field = line_.substr(0, colon);
  size_t vstart = colon == std::string::npos ? line_.size() : colon + 1;
  if (vstart < line_.size() && line_[vstart] == ' ') ++vstart;
  const char *value = line_.c_str() + vstart;
  size_t vlen = line_.size() - vstart;
  if (field == "data") {
    data_.append(value, vlen);
    data_.push_back('\n');
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value, vlen);
  } else if (field == "id") {
    if (std::char_traits<char>::find(value, vlen, '\0') == nullptr) last_id_.assign(value, vlen);
  } else if (field == "retry") {
    bool digits = vlen > 0 && vlen <= 15;
    for (size_t i = 0; digits && i < vlen; ++i) digits = value[i] >= '0' && value[i] <= '9';
    if (digits) retry_ms_ = std::stoll(std::string(value, vlen));
  }
  return false;
}

}  // namespace esp
