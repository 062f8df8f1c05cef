// Counters and latency histograms shared by stats JSON and Prometheus text:
// recording is lock-free, rendering reads a consistent-enough snapshot.
#include "metrics.h"

#include <cmath>
#include <cstdio>

namespace esp {

void Histogram::record_us(int64_t us) {
  if (us < 0) us = 0;
  // floor(4 * log2(us)) without log2 (six of these per request): the octave
  // from the highest bit, then the quarter-octave steps 2^(1/4), 2^(2/4), 2^(3/4).
  int i = 0;
  if (us >= 1) {
    const int octave = 63 - __builtin_clzll(static_cast<uint64_t>(us));
    const double within = static_cast<double>(us) / static_cast<double>(uint64_t{1} << octave);
    i = 4 * octave + (within >= 1.189207115002721) + (within >= 1.4142135623730951) + (within >= 1.681792830507429);
  }
  if (i >= kBuckets) i = kBuckets - 1;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(us), std::memory_order_relaxed);
}

double Histogram::bucket_upper_ms(int i) { return std::pow(2.0, (i + 1) / 4.0) / 1000.0; }

double Histogram::quantile_ms(double q) const {
  uint64_t n = count();
  if (n == 0) return 0.0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += bucket(i);
    if (seen >= rank) return bucket_upper_ms(i);
  }
  return bucket_upper_ms(kBuckets - 1);
}

const char *outcome_name(int outcome) {
  static const char *const names[kOutcomeCount] = {
      "ok", "http_4xx", "http_5xx", "timeout_total", "timeout_connect", "timeout_first_byte",
      "timeout_idle", "timeout_pool", "connect_error", "tls_error", "io_error", "protocol_error",
      "cancelled", "circuit_open", "too_large", "shutdown", "other_error", "rate_limited"};
  return outcome >= 0 && outcome < kOutcomeCount ? names[outcome] : "other_error";
}

void Counters::note_queued(int64_t delta) {
  int64_t now = queued.fetch_add(delta, std::memory_order_relaxed) + delta;
  int64_t peak = queued_peak.load(std::memory_order_relaxed);
  while (now > peak && !queued_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

uint64_t Counters::failures() const {
  uint64_t n = 0;
  for (int i = kTimeoutTotal; i < kOutcomeCount; ++i) n += outcomes[i].load(std::memory_order_relaxed);
  return n;
}

namespace {

uint64_t load(const std::atomic<uint64_t> &a) { return a.load(std::memory_order_relaxed); }
int64_t load(const std::atomic<int64_t> &a) { return a.load(std::memory_order_relaxed); }

template <class Number>
void kv(std::string &out, const char *key, Number v) {
  out += '"';
  out += key;
  out += "\":";
  out += std::to_string(v);
  out += ',';
}

std::string fmt_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", ms);
  return buf;
}

void histogram_json(std::string &out, const char *key, const Histogram &h) {
  out += '"';
  out += key;
  out += "\":{\"count\":" + std::to_string(h.count()) + ",\"sum_ms\":" + fmt_ms(h.sum_ms()) +
         ",\"p50_ms\":" + fmt_ms(h.quantile_ms(0.5)) + ",\"p90_ms\":" + fmt_ms(h.quantile_ms(0.9)) +
         ",\"p99_ms\":" + fmt_ms(h.quantile_ms(0.99)) + "},";
}

}  // namespace

void counters_json(const Counters &c, std::string &out) {
  kv(out, "requests", load(c.requests));
  kv(out, "failures", c.failures());
  out += "\"outcomes\":{";
  for (int i = 0; i < kOutcomeCount; ++i) {
    if (i) out += ',';
    out += '"';
    out += outcome_name(i);
    out += "\":" + std::to_string(load(c.outcomes[i]));
  }
  out += "},";
  kv(out, "attempts", load(c.attempts));
  kv(out, "retries", load(c.retries));
  kv(out, "in_flight", load(c.in_flight));
  kv(out, "queued", load(c.queued));
  kv(out, "queued_peak", load(c.queued_peak));
  kv(out, "streams_open", load(c.streams_open));
  kv(out, "streams_paused", load(c.streams_paused));
  kv(out, "stream_buffered_bytes", load(c.stream_buffered_bytes));
  kv(out, "connections_opened", load(c.conns_opened));
  kv(out, "connections_reused", load(c.conns_reused));
  kv(out, "bytes_sent", load(c.bytes_sent));
  kv(out, "bytes_received", load(c.bytes_received));
  kv(out, "silent_resends", load(c.silent_resends));
  histogram_json(out, "queue_wait", c.queue_wait);
  histogram_json(out, "time_to_first_byte", c.first_byte);
  histogram_json(out, "total_time", c.total);
  out.pop_back();
}

namespace {

struct Family {
  const char *name;
  const char *type;
  const char *help;
};

// Text format 0.0.4: a counter's family is named as its samples, "_total" included.
void family_header(std::string &out, const std::string &prefix, const Family &f) {
  const std::string name = prefix + f.name + (std::string(f.type) == "counter" ? "_total" : "");
  out += "# HELP " + name + " " + f.help + "\n";
  out += "# TYPE " + name + " " + f.type + "\n";
}

template <class Get>
void simple_family(std::string &out, const std::string &prefix, const Family &f,
                   const std::vector<LabelledCounters> &ents, Get get) {
  family_header(out, prefix, f);
  bool counter = std::string(f.type) == "counter";
  for (const auto &e : ents)
    out += prefix + f.name + (counter ? "_total" : "") + "{" + e.labels + "} " +
           std::to_string(get(*e.counters)) + "\n";
}

void histogram_family(std::string &out, const std::string &prefix, const Family &f,
                      const std::vector<LabelledCounters> &ents,
                      const Histogram &(*pick)(const Counters &)) {
  family_header(out, prefix, f);
  const std::string base = prefix + f.name;
  for (const auto &e : ents) {
    const Histogram &h = pick(*e.counters);
    uint64_t cumulative = 0;
    // Coarser exposition buckets: every fourth internal bucket (powers of two).
    for (int i = 3; i < Histogram::kBuckets; i += 4) {
      for (int j = i - 3; j <= i; ++j) cumulative += h.bucket(j);
      double le_s = Histogram::bucket_upper_ms(i) / 1000.0;
      if (le_s > 600.0) break;
      char le[32];
      std::snprintf(le, sizeof le, "%.6g", le_s);
      out += base + "_bucket{" + e.labels + ",le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
    }
    out += base + "_bucket{" + e.labels + ",le=\"+Inf\"} " + std::to_string(h.count()) + "\n";
    char sum[48];
    std::snprintf(sum, sizeof sum, "%.6f", h.sum_ms() / 1000.0);
    out += base + "_sum{" + e.labels + "} " + sum + "\n";
    out += base + "_count{" + e.labels + "} " + std::to_string(h.count()) + "\n";
  }
}

}  // namespace

void counters_prometheus(const std::string &prefix, const std::vector<LabelledCounters> &ents,
                         std::string &out) {
  family_header(out, prefix, {"requests", "counter", "Completed requests by outcome."});
  for (const auto &e : ents)
    for (int i = 0; i < kOutcomeCount; ++i)
      out += prefix + "requests_total{" + e.labels + ",outcome=\"" + outcome_name(i) + "\"} " +
             std::to_string(load(e.counters->outcomes[i])) + "\n";
  simple_family(out, prefix, {"attempts", "counter", "HTTP attempts, retries included."}, ents,
                [](const Counters &c) { return load(c.attempts); });
  simple_family(out, prefix, {"retries", "counter", "Retried attempts."}, ents,
                [](const Counters &c) { return load(c.retries); });
  simple_family(out, prefix, {"in_flight", "gauge", "Requests accepted and not completed."}, ents,
                [](const Counters &c) { return load(c.in_flight); });
  simple_family(out, prefix, {"queued", "gauge", "Requests waiting for a connection slot."}, ents,
                [](const Counters &c) { return load(c.queued); });
  simple_family(out, prefix, {"queued_peak", "gauge", "Most requests ever waiting for a slot."}, ents,
                [](const Counters &c) { return load(c.queued_peak); });
  simple_family(out, prefix, {"streams_open", "gauge", "Streaming responses being read."}, ents,
                [](const Counters &c) { return load(c.streams_open); });
  simple_family(out, prefix, {"streams_paused", "gauge", "Streams paused because their reader is behind."}, ents,
                [](const Counters &c) { return load(c.streams_paused); });
  simple_family(out, prefix, {"stream_buffered_bytes", "gauge", "Stream bytes received and not yet read."}, ents,
                [](const Counters &c) { return load(c.stream_buffered_bytes); });
  simple_family(out, prefix, {"connections_opened", "counter", "Attempts that opened a connection."},
                ents, [](const Counters &c) { return load(c.conns_opened); });
  simple_family(out, prefix, {"connections_reused", "counter", "Attempts that reused a connection."},
                ents, [](const Counters &c) { return load(c.conns_reused); });
  simple_family(out, prefix, {"sent_bytes", "counter", "Request body bytes sent."}, ents,
                [](const Counters &c) { return load(c.bytes_sent); });
  simple_family(out, prefix, {"received_bytes", "counter", "Response body bytes received."}, ents,
                [](const Counters &c) { return load(c.bytes_received); });
  simple_family(out, prefix,
                {"silent_resends", "counter", "Requests libcurl resent on a dead reused connection."},
                ents, [](const Counters &c) { return load(c.silent_resends); });
  histogram_family(out, prefix, {"queue_wait_seconds", "histogram", "Wait for a connection slot."},
                   ents, [](const Counters &c) -> const Histogram & { return c.queue_wait; });
  histogram_family(out, prefix, {"time_to_first_byte_seconds", "histogram", "Time to first byte."},
                   ents, [](const Counters &c) -> const Histogram & { return c.first_byte; });
  histogram_family(out, prefix, {"request_duration_seconds", "histogram", "Whole request time."},
                   ents, [](const Counters &c) -> const Histogram & { return c.total; });
}

std::string json_escape(const std::string &s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string prom_escape(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace esp
