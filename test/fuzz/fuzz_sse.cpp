// libFuzzer target: the incremental SSE parser (src/sse.h). The input is a
// body; the first two bytes seed how it is cut into chunks. Invariants:
// feeding the body whole, byte by byte, and in random chunks yields the very
// same events (event, data, id, retry); every event is well formed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "sse.h"

namespace {

struct Ev {
  std::string event, data, id;
  int64_t retry_ms;
  bool operator==(const Ev &o) const {
    return event == o.event && data == o.data && id == o.id && retry_ms == o.retry_ms;
  }
};

void check(const esp_sse_event &ev) {
  if (!ev.event || !ev.data || !ev.id) std::abort();
  if (ev.data[ev.data_len] != '\0') std::abort();  // NUL-terminated, data_len excludes it
  if (ev.retry_ms < -1) std::abort();
}

// Feeds `body` cut at `cuts` (sorted offsets), then ends the body.
std::vector<Ev> run(const std::string &body, const std::vector<size_t> &cuts) {
  std::vector<Ev> out;
  esp::SseParser parser;
  auto emit = [&](const esp_sse_event &ev) {
    check(ev);
    out.push_back({ev.event, std::string(ev.data, ev.data_len), ev.id, ev.retry_ms});
  };
  size_t at = 0;
  for (size_t cut : cuts) {
    parser.feed(body.data() + at, cut - at, emit);
    at = cut;
  }
  parser.feed(body.data() + at, body.size() - at, emit);
  parser.reset_block();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const uint32_t seed = data[0] | (data[1] << 8);
  const std::string body(reinterpret_cast<const char *>(data) + 2, size - 2);

  const std::vector<Ev> whole = run(body, {});

  std::vector<size_t> bytes;
  for (size_t i = 1; i < body.size(); ++i) bytes.push_back(i);
  if (!(run(body, bytes) == whole)) std::abort();

  std::mt19937 rng(seed);
  std::vector<size_t> cuts;
  for (size_t at = 0; body.size() > 1;) {
    at += 1 + rng() % 16;
    if (at >= body.size()) break;
    cuts.push_back(at);
  }
  if (!(run(body, cuts) == whole)) std::abort();

  // A CR LF pair split across two chunks is still one line end.
  for (size_t i = 0; i + 1 < body.size(); ++i)
    if (body[i] == '\r' && body[i + 1] == '\n') {
      if (!(run(body, {i + 1}) == whole)) std::abort();
      break;
    }
  return 0;
}
