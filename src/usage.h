// Token accounting for rate limits: the estimate a request reserves before it
// is sent, and the usage the provider reports in the response (JSON bodies and
// the final events of streams), which corrects that estimate.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace esp {

// The documented estimate: request body bytes / 4, plus max_tokens,
// max_completion_tokens or max_output_tokens (the first present, top level
// of a JSON body) for the reply. At least 1.
int64_t estimate_tokens(const std::string &body);

// Usage as reported; -1 for what the response did not say.
struct Usage {
  int64_t input = -1;   // prompt_tokens | input_tokens | promptTokenCount
  int64_t output = -1;  // completion_tokens | output_tokens | candidatesTokenCount
  int64_t total = -1;   // total_tokens | totalTokenCount, else input + output
  bool known() const { return total >= 0; }
};

// Watches a response body as it passes (any chunking) and finds the usage
// objects in it: OpenAI's "usage" (also the final chunk of a stream with
// include_usage), Anthropic's "usage" of message_start and message_delta,
// Gemini's "usageMetadata". Keeps only the first and last 16 KiB, where
// providers put them.
class UsageScanner {
 public:
  void reset() {
    head_.clear();
    tail_.clear();
  }
  void feed(const char *p, size_t n);
  Usage result() const;

 private:
  static constexpr size_t kKeep = size_t{16} * 1024;
  std::string head_;
  std::string tail_;
};

// Usage found in a text (e.g. a whole JSON body); the largest value of each
// field across the usage objects found.
Usage find_usage(const std::string &text);

// Running totals, per client and per credential.
struct UsageTotals {
  std::atomic<uint64_t> input_tokens{0};
  std::atomic<uint64_t> output_tokens{0};
  std::atomic<uint64_t> total_tokens{0};
  std::atomic<uint64_t> responses_with_usage{0};
  std::atomic<uint64_t> responses_without_usage{0};  // the estimate stood
  void add(const Usage &u);
};

}  // namespace esp
