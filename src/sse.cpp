// The line interpreter of the Server-Sent Events parser (fields, comments,
// BOM); the byte loop is inline in sse.h for the hot path. Lines are read
// where they lie: only data and a line cut by a chunk boundary are copied.
#include "sse.h"

#include <cstring>

namespace esp {

namespace {

template <size_t N>
bool named(const char *name, size_t len, const char (&field)[N]) {
  return len == N - 1 && std::memcmp(name, field, N - 1) == 0;
}

}  // namespace

const char *SseParser::line_end(const char *p, const char *end) {
  const size_t n = static_cast<size_t>(end - p);
  const void *lf = std::memchr(p, '\n', n);
  const size_t before_lf = lf ? static_cast<size_t>(static_cast<const char *>(lf) - p) : n;
  const void *cr = std::memchr(p, '\r', before_lf);
  if (cr) return static_cast<const char *>(cr);
  return lf ? static_cast<const char *>(lf) : end;
}

bool SseParser::take_line(const char *line, size_t len) {
  if (!started_) {
    started_ = true;
    if (len >= 3 && std::memcmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3, len -= 3;
  }
  if (len == 0) return true;
  if (line[0] == ':') return false;  // comment
  const void *colon = std::memchr(line, ':', len);
  const size_t name_len = colon ? static_cast<size_t>(static_cast<const char *>(colon) - line) : len;
  size_t vstart = colon ? name_len + 1 : len;
  if (vstart < len && line[vstart] == ' ') ++vstart;
  const char *value = line + vstart;
  const size_t vlen = len - vstart;
  if (named(line, name_len, "data")) {
    data_.append(value, vlen);
    data_.push_back('\n');
    has_data_ = true;
  } else if (named(line, name_len, "event")) {
    event_.assign(value, vlen);
  } else if (named(line, name_len, "id")) {
    if (std::memchr(value, '\0', vlen) == nullptr) last_id_.assign(value, vlen);
  } else if (named(line, name_len, "retry")) {
    bool digits = vlen > 0 && vlen <= 15;
    int64_t ms = 0;
    for (size_t i = 0; digits && i < vlen; ++i) {
      digits = value[i] >= '0' && value[i] <= '9';
      ms = ms * 10 + (value[i] - '0');
    }
    if (digits) retry_ms_ = ms;
  }
  return false;
}

}  // namespace esp
