// Always-on accounting: lock-free counters and log-bucket latency histograms,
// kept per client and per origin, rendered as JSON and Prometheus text.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace esp {

// Latency histogram over microseconds: bucket i holds values below
// 2^((i+1)/4) us (19 % resolution), up to about 70 minutes.
class Histogram {
 public:
  static constexpr int kBuckets = 128;
  void record_us(int64_t us);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum_ms() const { return static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1000.0; }
  // Upper bound of the bucket holding quantile q (0..1), in milliseconds.
  double quantile_ms(double q) const;
  static double bucket_upper_ms(int i);
  uint64_t bucket(int i) const { return buckets_[i].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

// One counter per outcome a request can end in.
enum Outcome : int {
  kOk, kHttp4xx, kHttp5xx, kTimeoutTotal, kTimeoutConnect, kTimeoutFirstByte, kTimeoutIdle,
  kTimeoutPool, kConnectError, kTlsError, kIoError, kProtocolError, kCancelled, kCircuitOpen,
  kTooLarge, kShutdown, kOtherError, kRateLimited, kOutcomeCount
};
const char *outcome_name(int outcome);

struct Counters {
  std::array<std::atomic<uint64_t>, kOutcomeCount> outcomes{};
  std::atomic<uint64_t> requests{0};       // accepted calls
  std::atomic<uint64_t> attempts{0};       // HTTP attempts, retries included
  std::atomic<uint64_t> retries{0};
  std::atomic<int64_t> in_flight{0};       // accepted, not yet completed
  std::atomic<int64_t> queued{0};          // waiting for a connection slot
  std::atomic<int64_t> queued_peak{0};
  std::atomic<int64_t> streams_open{0};
  std::atomic<int64_t> streams_paused{0};         // held by a reader behind by stream_buffer_bytes
  std::atomic<int64_t> stream_buffered_bytes{0};  // received, not yet read by stream readers
  std::atomic<uint64_t> conns_opened{0};   // attempts that opened a new connection
  std::atomic<uint64_t> conns_reused{0};   // attempts that reused one
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> silent_resends{0}; // libcurl resent on a dead reused connection
  Histogram queue_wait;
  Histogram first_byte;
  Histogram total;

  void add(std::atomic<uint64_t> &c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
  void note_queued(int64_t delta);
  uint64_t failures() const;
};

// Appends the counters as the members of a JSON object (no braces).
void counters_json(const Counters &c, std::string &out);

// Appends the Prometheus families (HELP, TYPE, one sample per entity) of the
// counters of several entities, each with its label set ("origin=\"x\"").
struct LabelledCounters {
  std::string labels;
  const Counters *counters;
};
void counters_prometheus(const std::string &prefix, const std::vector<LabelledCounters> &entities,
                         std::string &out);

// JSON / Prometheus string escaping.
std::string json_escape(const std::string &s);
std::string prom_escape(const std::string &s);

}  // namespace esp
