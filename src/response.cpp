// esp_response's head: libcurl's lines kept raw as they arrive and parsed
// when first read (names lowered, repeated names joined), case-insensitive
// lookup for esp_response_header; the header-line grammar; and each
// thread's spare response.
#include "response.h"

#include <strings.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace esp {

HeaderLine::Kind header_line_kind(const char *p, size_t len) {
  if (len >= 5 && std::memcmp(p, "HTTP/", 5) == 0) return HeaderLine::kStatus;
  while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r')) --len;
  return len == 0 ? HeaderLine::kEnd : HeaderLine::kField;
}

HeaderLine parse_header_line(const char *p, size_t len) {
  HeaderLine out;
  const char *end = p + len;
  while (end > p && (end[-1] == '\n' || end[-1] == '\r')) --end;
  len = static_cast<size_t>(end - p);
  if (len >= 5 && std::memcmp(p, "HTTP/", 5) == 0) {
    out.kind = HeaderLine::kStatus;
    const char *sp = static_cast<const char *>(std::memchr(p, ' ', len));
    int code = 0;
    for (const char *d = sp ? sp + 1 : end; d < end && *d >= '0' && *d <= '9' && code <= 999; ++d)
      code = code * 10 + (*d - '0');
    out.status = code <= 999 ? code : 0;
    return out;
  }
  if (len == 0) {
    out.kind = HeaderLine::kEnd;
    return out;
  }
  const char *colon = static_cast<const char *>(std::memchr(p, ':', len));
  if (!colon || colon == p) return out;  // obsolete folding or junk: skip
  // A NUL would cut the name or value short for every C caller (and hide
  // the values joined after it): such a line is junk too.
  if (std::memchr(p, '\0', len)) return out;
  out.kind = HeaderLine::kField;
  out.name = p;
  out.name_len = static_cast<size_t>(colon - p);
  const char *v = colon + 1;
  while (v < end && (*v == ' ' || *v == '\t')) ++v;
  const char *e = end;
  while (e > v && (e[-1] == ' ' || e[-1] == '\t')) --e;
  out.value = v;
  out.value_len = static_cast<size_t>(e - v);
  return out;
}

}  // namespace esp

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

// Lowers ASCII letters of n bytes in place, eight at a time: per byte,
// bit 7 of (b & 0x7f) + 0x3f says b >= 'A' and of (b & 0x7f) + 0x25 says
// b > 'Z' (no carry crosses a byte); a byte < 0x80 between them gains 0x20.
void lower_in_place(char *s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, s + i, 8);
    const uint64_t low7 = x & 0x7f7f7f7f7f7f7f7fULL;
    const uint64_t from_a = low7 + 0x3f3f3f3f3f3f3f3fULL;
    const uint64_t above_z = low7 + 0x2525252525252525ULL;
    x |= ((from_a ^ above_z) & ~x & 0x8080808080808080ULL) >> 2;
    std::memcpy(s + i, &x, 8);
  }
  for (; i < n; ++i) s[i] = lower(s[i]);
}

constexpr char kShouldRetry[] = "x-should-retry";
constexpr size_t kShouldRetryLen = sizeof kShouldRetry - 1;

// Four allocations a request (the object, the head's buffer and index, the
// body) are saved when a thread frees a response and then makes the next
// request, as a blocking caller or a completion callback does. Larger
// buffers are not kept: a spare must not pin a big body.
constexpr size_t kSpareMaxBytes = size_t{16} * 1024;
struct Spare {
  esp_response *response = nullptr;
  // Set as the thread exits: a response freed later (by another
  // thread-local's destructor) is deleted, not kept.
  bool gone = false;
  ~Spare() {
    delete response;
    response = nullptr;
    gone = true;
  }
};
thread_local Spare spare;

}  // namespace

std::unique_ptr<esp_response> esp_response::make() {
  if (!spare.response) return std::make_unique<esp_response>();
  std::unique_ptr<esp_response> r(spare.response);
  spare.response = nullptr;
  r->reset();
  r->attempts = 1;
  return r;
}

void esp_response::recycle(esp_response *r) {
  if (!spare.gone && r && r->body.capacity() <= kSpareMaxBytes && r->head_capacity_ <= kSpareMaxBytes &&
      r->fields_.capacity() * sizeof(Field) <= kSpareMaxBytes) {
    delete spare.response;
    spare.response = r;
  } else {
    delete r;
  }
}

char *esp_response::grow_head(size_t more) {
  const size_t end = head_size_ + more;
  // A typical head has about ten lines of some 40 bytes: one allocation.
  if (end > head_capacity_) {
    const size_t capacity = std::max<size_t>({512, end, head_capacity_ * 2});
    std::unique_ptr<char[]> grown(new char[capacity]);
    if (head_size_) std::memcpy(grown.get(), head_.get(), head_size_);
    head_ = std::move(grown);
    head_capacity_ = capacity;
  }
  char *at = head_.get() + head_size_;
  head_size_ = end;
  index_state_.store(kRaw, std::memory_order_relaxed);
  return at;
}

void esp_response::add_header_line(const char *line, size_t len) {
  const bool ends_in_lf = len > 0 && line[len - 1] == '\n';
  char *out = grow_head(len + (ends_in_lf ? 0 : 1));
  std::memcpy(out, line, len);
  if (!ends_in_lf) out[len] = '\n';  // every kept line ends in LF
  if (len > kShouldRetryLen && (line[0] | 0x20) == 'x' && line[kShouldRetryLen] == ':' &&
      strncasecmp(line, kShouldRetry, kShouldRetryLen) == 0)
    mentions_should_retry_ = true;
}

void esp_response::add_header(const char *name, size_t name_len, const char *value, size_t value_len) {
  char *out = grow_head(name_len + value_len + 3);
  std::memcpy(out, name, name_len);
  out[name_len] = ':';
  out[name_len + 1] = ' ';
  if (value_len) std::memcpy(out + name_len + 2, value, value_len);
  out[name_len + 2 + value_len] = '\n';
  if (name_len == kShouldRetryLen && strncasecmp(name, kShouldRetry, kShouldRetryLen) == 0)
    mentions_should_retry_ = true;
}

bool esp_response::name_is(const Field &f, const char *lower_name, size_t len) const {
  return f.name_len == len && std::memcmp(head_.get() + f.name_at, lower_name, len) == 0;
}

namespace {

// Indexing writes the head (names lowered and ended in place), so the first
// reader of a response indexes it under this lock. Fork takes it too
// (esp_response::lock_for_fork): a child never inherits a head half indexed
// by a thread it does not have. Readers after the first take no lock.
std::mutex &index_mu() {
  static std::mutex *mu = new std::mutex;  // never destroyed: responses outlive static destructors
  return *mu;
}

}  // namespace

void esp_response::index_headers() const {
  if (index_state_.load(std::memory_order_acquire) == kIndexed) return;
  std::lock_guard<std::mutex> lock(index_mu());
  if (index_state_.load(std::memory_order_relaxed) == kIndexed) return;
  index_new_lines();
  index_state_.store(kIndexed, std::memory_order_release);
}

void esp_response::lock_for_fork() { index_mu().lock(); }
void esp_response::unlock_after_fork() { index_mu().unlock(); }

void esp_response::index_new_lines() const {
  char *head = head_.get();
  size_t at = indexed_upto_;
  while (at < head_size_) {
    char *line = head + at;
    const char *lf = static_cast<const char *>(std::memchr(line, '\n', head_size_ - at));
    const size_t len = static_cast<size_t>(lf - line) + 1;
    at += len;
    const esp::HeaderLine h = esp::parse_header_line(line, len);
    if (h.kind != esp::HeaderLine::kField) continue;
    // In place: the name lowered and ended where its colon was, the value
    // ended at the first blank, CR or LF after it.
    const size_t value_at = static_cast<size_t>(h.value - head);
    lower_in_place(line, h.name_len);
    line[h.name_len] = '\0';
    head[value_at + h.value_len] = '\0';
    const unsigned char last = static_cast<unsigned char>(line[h.name_len - 1]);
    const uint64_t mark = uint64_t{1} << ((h.name_len * 7 + last) & 63);
    maybe_repeated_ = maybe_repeated_ || (name_marks_ & mark) != 0;
    name_marks_ |= mark;
    if (fields_.capacity() == 0) fields_.reserve(16);
    fields_.push_back(Field{static_cast<uint32_t>(line - head), static_cast<uint32_t>(h.name_len),
                            static_cast<uint32_t>(value_at), static_cast<uint32_t>(h.value_len)});
  }
  indexed_upto_ = head_size_;
  repeated_.clear();
  if (!maybe_repeated_) return;
  for (size_t i = 0; i < fields_.size(); ++i) {
    const Field &f = fields_[i];
    const char *name = head + f.name_at;
    bool seen_before = false;
    for (size_t j = 0; j < i && !seen_before; ++j) seen_before = name_is(fields_[j], name, f.name_len);
    if (seen_before) continue;
    std::string joined;
    bool again = false;
    for (size_t j = i + 1; j < fields_.size(); ++j) {
      if (!name_is(fields_[j], name, f.name_len)) continue;
      if (!again) joined.assign(head + f.value_at, f.value_len);
      again = true;
      joined += ", ";
      joined.append(head + fields_[j].value_at, fields_[j].value_len);
    }
    if (again) repeated_.emplace_back(std::string(name, f.name_len), std::move(joined));
  }
}

const char *esp_response::header(const char *name) const {
  index_headers();
  for (const auto &r : repeated_)
    if (strcasecmp(r.first.c_str(), name) == 0) return r.second.c_str();
  const size_t len = std::strlen(name);
  for (const Field &f : fields_)
    if (f.name_len == len && strncasecmp(head_.get() + f.name_at, name, len) == 0) return head_.get() + f.value_at;
  return nullptr;
}

void esp_response::copy_head_from(const esp_response &r) {
  r.index_headers();
  status = r.status;
  http_version = r.http_version;
  attempts = r.attempts;
  head_.reset(r.head_size_ ? new char[r.head_size_] : nullptr);
  if (r.head_size_) std::memcpy(head_.get(), r.head_.get(), r.head_size_);
  head_size_ = head_capacity_ = indexed_upto_ = r.head_size_;
  fields_ = r.fields_;
  repeated_ = r.repeated_;
  name_marks_ = r.name_marks_;
  maybe_repeated_ = r.maybe_repeated_;
  mentions_should_retry_ = r.mentions_should_retry_;
  index_state_.store(kIndexed, std::memory_order_release);
}

bool esp_response::delivers_events(bool events_wanted) const {
  if (!events_wanted) return false;
  const char *type = header("content-type");
  return type && strncasecmp(type, "text/event-stream", 17) == 0;
}
