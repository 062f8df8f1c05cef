// libFuzzer target: response-header handling without a network. The input
// is a header block as libcurl delivers it, one line per callback (split at
// LF, the LF kept): each line is sorted as Transfer::on_header does
// (esp::header_line_kind), other lines than status and end kept raw in an
// esp_response and parsed when read (esp::parse_header_line), a blank line
// ends the block with index_headers(), and the retry hints are read with
// esp::retry_after_us (retry.h). Invariants: names are lower case
// and non-empty, values carry no surrounding blanks, every field can be
// looked up by name in any case (the C API sees whole names and values: no
// NUL inside), repeated names are joined with ", ".
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "response.h"
#include "retry.h"
#include "transfer.h"

namespace {

void check_block(esp_response &r) {
  r.index_headers();
  for (size_t i = 0; i < r.header_count(); ++i) {
    const std::string name = r.header_name(i), value = r.header_value(i);
    if (name.empty()) std::abort();
    for (char c : name)
      if (std::tolower(static_cast<unsigned char>(c)) != static_cast<unsigned char>(c) || c == ':') std::abort();
    if (!value.empty() && (value.front() == ' ' || value.front() == '\t' || value.back() == ' ' || value.back() == '\t'))
      std::abort();
    const char *v = r.header(name.c_str());
    if (!v || std::strstr(v, value.c_str()) == nullptr) std::abort();
    std::string upper = name;
    for (char &c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (r.header(upper.c_str()) != v) std::abort();
  }
  // A repeated name answers with every value, joined.
  for (const auto &m : r.repeated())
    if (r.header(m.first.c_str()) != m.second.c_str()) std::abort();
  int64_t hint = esp::retry_after_us(r);
  if (hint < -1 || hint > int64_t{86400} * 1000000) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = reinterpret_cast<const char *>(data);
  esp_response r;
  size_t at = 0;
  while (at < size) {
    const void *lf = std::memchr(p + at, '\n', size - at);
    size_t end = lf ? static_cast<size_t>(static_cast<const char *>(lf) - p) + 1 : size;
    const esp::HeaderLine h = esp::parse_header_line(p + at, end - at);
    const esp::HeaderLine::Kind kind = esp::header_line_kind(p + at, end - at);
    // The quick sort agrees with the full parse on status and end lines.
    if ((kind == esp::HeaderLine::kStatus) != (h.kind == esp::HeaderLine::kStatus) ||
        (kind == esp::HeaderLine::kEnd) != (h.kind == esp::HeaderLine::kEnd))
      std::abort();
    switch (kind) {
      case esp::HeaderLine::kStatus:
        if (h.status < 0 || h.status > 999) std::abort();
        r.clear_headers();
        r.status = h.status;
        break;
      case esp::HeaderLine::kEnd:
        check_block(r);
        break;
      case esp::HeaderLine::kField:
        // A NUL would cut names and values short for C callers: never kept.
        if (h.kind == esp::HeaderLine::kField &&
            (h.name_len == 0 || std::memchr(h.name, '\0', h.name_len) || std::memchr(h.value, '\0', h.value_len)))
          std::abort();
        r.add_header_line(p + at, end - at);
        break;
      case esp::HeaderLine::kSkip:
        break;
    }
    at = end;
  }
  check_block(r);
  return 0;
}
