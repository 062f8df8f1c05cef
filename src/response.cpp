// esp_response's head: fields appended to one buffer as they arrive, repeated
// names joined once the head is complete, case-insensitive lookup for
// esp_response_header; and each thread's spare response.
#include "response.h"

#include <strings.h>

#include <algorithm>
#include <cstring>

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

// Copies n bytes with ASCII letters in lower case, eight at a time: per byte,
// bit 7 of (b & 0x7f) + 0x3f says b >= 'A' and of (b & 0x7f) + 0x25 says
// b > 'Z' (no carry crosses a byte); a byte < 0x80 between them gains 0x20.
void copy_lower(char *out, const char *in, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, in + i, 8);
    const uint64_t low7 = x & 0x7f7f7f7f7f7f7f7fULL;
    const uint64_t from_a = low7 + 0x3f3f3f3f3f3f3f3fULL;
    const uint64_t above_z = low7 + 0x2525252525252525ULL;
    x |= ((from_a ^ above_z) & ~x & 0x8080808080808080ULL) >> 2;
    std::memcpy(out + i, &x, 8);
  }
  for (; i < n; ++i) out[i] = lower(in[i]);
}

// Four allocations a request (the object, the head's buffer and index, the
// body) are saved when a thread frees a response and then makes the next
// request, as a blocking caller or a completion callback does. Larger
// buffers are not kept: a spare must not pin a big body.
constexpr size_t kSpareMaxBytes = 16 * 1024;
thread_local std::unique_ptr<esp_response> spare;

}  // namespace

std::unique_ptr<esp_response> esp_response::make() {
  if (!spare) return std::make_unique<esp_response>();
  std::unique_ptr<esp_response> r = std::move(spare);
  r->reset();
  r->attempts = 1;
  return r;
}

void esp_response::recycle(esp_response *r) {
  if (r && r->body.capacity() <= kSpareMaxBytes && r->head_capacity_ <= kSpareMaxBytes &&
      r->fields_.capacity() * sizeof(Field) <= kSpareMaxBytes)
    spare.reset(r);
  else
    delete r;
}

void esp_response::add_header(const char *name, size_t name_len, const char *value, size_t value_len) {
  const size_t name_at = head_size_;
  const size_t value_at = name_at + name_len + 1;
  const size_t end = value_at + value_len + 1;
  // A typical head has about ten fields of some 40 bytes: one allocation each
  // for the buffer and the index instead of one per long name or value.
  if (end > head_capacity_) {
    const size_t capacity = std::max<size_t>({512, end, head_capacity_ * 2});
    std::unique_ptr<char[]> grown(new char[capacity]);
    if (head_size_) std::memcpy(grown.get(), head_.get(), head_size_);
    head_ = std::move(grown);
    head_capacity_ = capacity;
  }
  if (fields_.capacity() == 0) fields_.reserve(16);
  char *out = head_.get();
  copy_lower(out + name_at, name, name_len);
  out[value_at - 1] = '\0';
  if (value_len) std::memcpy(out + value_at, value, value_len);
  out[end - 1] = '\0';
  head_size_ = end;
  const unsigned char last = name_len ? static_cast<unsigned char>(out[value_at - 2]) : 0;
  const uint64_t mark = uint64_t{1} << ((name_len * 7 + last) & 63);
  maybe_repeated_ = maybe_repeated_ || (name_marks_ & mark) != 0;
  name_marks_ |= mark;
  fields_.push_back(Field{static_cast<uint32_t>(name_at), static_cast<uint32_t>(name_len),
                          static_cast<uint32_t>(value_at), static_cast<uint32_t>(value_len)});
}

bool esp_response::name_is(const Field &f, const char *lower_name, size_t len) const {
  return f.name_len == len && std::memcmp(head_.get() + f.name_at, lower_name, len) == 0;
}

void esp_response::index_headers() {
  repeated.clear();
  if (!maybe_repeated_) return;
  for (size_t i = 0; i < fields_.size(); ++i) {
    const Field &f = fields_[i];
    const char *name = header_name(i);
    bool seen_before = false;
    for (size_t j = 0; j < i && !seen_before; ++j) seen_before = name_is(fields_[j], name, f.name_len);
    if (seen_before) continue;
    std::string joined;
    bool again = false;
    for (size_t j = i + 1; j < fields_.size(); ++j) {
      if (!name_is(fields_[j], name, f.name_len)) continue;
      if (!again) joined.assign(header_value(i), f.value_len);
      again = true;
      joined += ", ";
      joined.append(header_value(j), fields_[j].value_len);
    }
    if (again) repeated.emplace_back(std::string(name, f.name_len), std::move(joined));
  }
}

const char *esp_response::header(const char *name) const {
  for (const auto &r : repeated)
    if (strcasecmp(r.first.c_str(), name) == 0) return r.second.c_str();
  const size_t len = std::strlen(name);
  for (const Field &f : fields_)
    if (f.name_len == len && strncasecmp(head_.get() + f.name_at, name, len) == 0) return head_.get() + f.value_at;
  return nullptr;
}

void esp_response::copy_head_from(const esp_response &r) {
  status = r.status;
  http_version = r.http_version;
  attempts = r.attempts;
  head_.reset(r.head_size_ ? new char[r.head_size_] : nullptr);
  if (r.head_size_) std::memcpy(head_.get(), r.head_.get(), r.head_size_);
  head_size_ = head_capacity_ = r.head_size_;
  fields_ = r.fields_;
  repeated = r.repeated;
  name_marks_ = r.name_marks_;
  maybe_repeated_ = r.maybe_repeated_;
}

bool esp_response::delivers_events(bool events_wanted) const {
  if (!events_wanted) return false;
  const char *type = header("content-type");
  return type && strncasecmp(type, "text/event-stream", 17) == 0;
}
