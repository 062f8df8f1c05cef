// Units compiled into the test binary from src/: the SSE parser against the
// WHATWG rules, response-header lookup, and a stream's item queue.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "response.h"
#include "sse.h"
#include "stream_items.h"

namespace {

struct Ev {
  std::string event, data, id;
  int64_t retry;
  bool operator==(const Ev &o) const {
    return event == o.event && data == o.data && id == o.id && retry == o.retry;
  }
};

std::vector<Ev> parse(const std::string &text, size_t chunk = 0) {
  esp::SseParser p;
  std::vector<Ev> out;
  auto emit = [&](const esp_sse_event &e) { out.push_back({e.event, std::string(e.data, e.data_len), e.id, e.retry_ms}); };
  if (chunk == 0) {
    p.feed(text.data(), text.size(), emit);
  } else {
    for (size_t at = 0; at < text.size(); at += chunk) p.feed(text.data() + at, std::min(chunk, text.size() - at), emit);
  }
  return out;
}

}  // namespace

TEST(Sse, LineEndsMultiLineDataCommentsAndFields) {
  const std::string text =
      "\xEF\xBB\xBF: a comment\r\n"
      "data: first\n\n"
      "event: delta\r"
      "data: line one\r\n"
      "data:line two\n"
      "id: 42\n"
      "retry: 1500\n"
      "\n"
      "data: [DONE]\n\n";
  auto evs = parse(text);
  ASSERT_EQ(evs.size(), 3u);
  EXPECT_EQ(evs[0], (Ev{"message", "first", "", -1}));
  EXPECT_EQ(evs[1], (Ev{"delta", "line one\nline two", "42", 1500}));
  EXPECT_EQ(evs[2], (Ev{"message", "[DONE]", "42", -1}));  // the last id sticks
}

TEST(Sse, AnyChunkingGivesTheSameEvents) {
  std::string text;
  for (int i = 0; i < 50; ++i)
    text += "event: e" + std::to_string(i % 3) + "\r\ndata: {\"i\":" + std::to_string(i) + "}\r\n\r\n";
  const auto whole = parse(text);
  ASSERT_EQ(whole.size(), 50u);
  for (size_t chunk : {1u, 2u, 3u, 7u, 64u}) EXPECT_EQ(parse(text, chunk), whole) << chunk;
}

TEST(Sse, EdgeCasesFromTheSpecification) {
  EXPECT_TRUE(parse("data: never ended").empty());  // no blank line: never dispatched
  EXPECT_TRUE(parse("event: x\n\n").empty());       // no data: nothing to dispatch
  EXPECT_EQ(parse("data\n\n")[0].data, "");         // a field name alone
  EXPECT_EQ(parse("data:  two spaces\n\n")[0].data, " two spaces");  // only one space is eaten
  EXPECT_EQ(parse("retry: 12a\ndata: x\n\n")[0].retry, -1);         // not all digits: ignored
  EXPECT_EQ(parse("unknown: y\ndata: x\n\n").size(), 1u);
  EXPECT_EQ(parse("data: a\n\ndata: b\r\rdata: c\r\n\r\n").size(), 3u);
}

TEST(Response, HeadersLookUpCaseInsensitivelyAndJoinRepeats) {
  esp_response r;
  r.add_header("content-type", "application/json");
  r.add_header("set-cookie", "a=1");
  r.add_header("x-one", "1");
  r.add_header("set-cookie", "b=2");
  r.index_headers();
  EXPECT_STREQ(r.header("Content-Type"), "application/json");
  EXPECT_STREQ(r.header("SET-COOKIE"), "a=1, b=2");
  EXPECT_STREQ(r.header("x-one"), "1");
  EXPECT_EQ(r.header("x-none"), nullptr);
  EXPECT_EQ(r.repeated().size(), 1u);
}

// The head is kept as libcurl's raw lines and parsed when first read: what a
// reader sees is what the parsed head used to be, whatever the lines.
TEST(Response, RawHeadLinesReadAsParsedFields) {
  esp_response r;
  for (const char *line : {"Content-Type:  application/json \r\n", "X-Should-Retry: false\r\n", " folded\r\n",
                           "no colon\r\n", ": no name\r\n", "Empty:\r\n", "Set-Cookie: a=1\n", "set-cookie: b=2"})
    r.add_header_line(line, std::strlen(line));
  const char nul_line[] = "X-Nul: a\0b\r\n";
  r.add_header_line(nul_line, sizeof nul_line - 1);
  ASSERT_EQ(r.header_count(), 5u);  // the folded, colonless, nameless and NUL lines are dropped
  EXPECT_STREQ(r.header_name(0), "content-type");
  EXPECT_STREQ(r.header_value(0), "application/json");
  EXPECT_STREQ(r.should_retry_hint(), "false");
  EXPECT_STREQ(r.header("empty"), "");
  EXPECT_STREQ(r.header("Set-Cookie"), "a=1, b=2");
  EXPECT_EQ(r.header("x-nul"), nullptr);
  // A trailer after the head was read joins it.
  r.add_header_line("Set-Cookie: c=3\r\n", 17);
  EXPECT_STREQ(r.header("set-cookie"), "a=1, b=2, c=3");
  EXPECT_EQ(r.header_count(), 6u);
  // A head without x-should-retry is not parsed for it.
  esp_response plain;
  plain.add_header_line("X-Should-Retryx: true\r\n", 23);
  EXPECT_EQ(plain.should_retry_hint(), nullptr);
}

// esp_response_header may run on several threads at once: the first read
// parses the head, the others wait for it and see the same fields.
TEST(Response, HeadReadFromSeveralThreadsAtOnce) {
  for (int round = 0; round < 50; ++round) {
    esp_response r;
    for (int i = 0; i < 12; ++i) {
      const std::string line = "X-Field-" + std::to_string(i) + ": v" + std::to_string(i) + "\r\n";
      r.add_header_line(line.data(), line.size());
    }
    r.add_header_line("x-field-3: again\r\n", 18);
    std::vector<std::thread> readers;
    std::vector<int> ok(4, 0);
    for (int t = 0; t < 4; ++t)
      readers.emplace_back([&r, &ok, t] {
        const char *again = r.header("X-FIELD-3");
        ok[t] = r.header_count() == 13 && again && std::strcmp(again, "v3, again") == 0 &&
                std::strcmp(r.header_value(11), "v11") == 0;
      });
    for (auto &th : readers) th.join();
    for (int t = 0; t < 4; ++t) EXPECT_EQ(ok[t], 1) << "round " << round << " reader " << t;
  }
}

// A stream's reader relies on its items coming out in order, each once, with
// its data, whether they arrive one at a time (the ring wraps) or in bursts
// (the ring grows while wrapped, and shrinks once drained).
TEST(StreamItems, ItemsComeOutInOrderThroughWrapsGrowthAndDrains) {
  esp::StreamItems q;
  uint64_t pushed = 0, popped = 0;
  auto text = [](uint64_t n) { return "event " + std::to_string(n) + std::string(n % 40, 'x'); };
  auto push = [&] {
    esp::StreamItem item;
    item.kind = ESP_ITEM_EVENT;
    item.data = text(pushed);
    item.retry_ms = static_cast<int64_t>(pushed++);
    q.push_back(std::move(item));
  };
  auto pop = [&] {
    ASSERT_FALSE(q.empty());
    esp::StreamItem item = std::move(q.front());
    q.pop_front();
    EXPECT_EQ(item.retry_ms, static_cast<int64_t>(popped));
    EXPECT_EQ(item.data, text(popped));
    ++popped;
  };
  for (int round = 0; round < 50; ++round) {  // paced: one in, one out, a second now and then
    push();
    if (round % 7 == 0) push();
    pop();
  }
  for (size_t burst : {5u, 3u, 100u, 17u, 1000u}) {  // bursts pushed while the ring is part full and wrapped
    for (size_t i = 0; i < burst; ++i) push();
    EXPECT_EQ(q.size(), pushed - popped);
    for (size_t i = 0; i < burst / 2; ++i) pop();
  }
  while (!q.empty()) pop();
  EXPECT_EQ(popped, pushed);
  push();  // usable again after it let its slots go
  pop();
  push();
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
}
