// Units compiled into the test binary from src/: the circuit breaker's
// transitions and the retry decision (every Retry-After form, caps, jitter,
// replay safety, deadlines), without a socket (curl's tests/unit habit).
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "breaker.h"
#include "esp.h"
#include "response.h"
#include "retry.h"

using esp::Breaker;
using esp::BreakerAdmit;
using esp::BreakerChange;
using esp::BreakerState;

namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kSec = 1000000;

Breaker &fail_times(Breaker &b, int n, int64_t now) {
  for (int i = 0; i < n; ++i) esp::breaker_record(b, true, 3, 1000, now);
  return b;
}

esp_response answer(int status, std::vector<std::pair<std::string, std::string>> headers) {
  esp_response r;
  r.status = status;
  for (auto &h : headers) r.headers.emplace_back(std::move(h));
  r.index_headers();
  return r;
}

double full_jitter() { return 1.0; }
double low_jitter() { return 0.75; }

// The facts of a sent GET that got `resp`, attempt `attempts`.
esp::RetryFacts answered(const esp_response &resp, int attempts = 1) {
  esp::RetryFacts f;
  f.attempt_status = ESP_OK;
  f.resp = &resp;
  f.attempts = attempts;
  f.sent = true;
  f.replay_safe = true;
  return f;
}

esp::RetryFacts failed(int status, esp::TimeoutKind kind = esp::TimeoutKind::kNone) {
  esp::RetryFacts f;
  f.attempt_status = status;
  f.timeout_kind = kind;
  f.attempts = 1;
  return f;
}

int64_t delay(const esp::RetryFacts &f, int64_t deadline = 1000 * kSec, esp::Jitter j = full_jitter) {
  return esp::decide_retry(f, esp::ClientConfig(), 0, deadline, j).delay_us;
}

}  // namespace

// ---- the circuit breaker ---------------------------------------------------------

TEST(Breaker, OpensOnTheNthConsecutiveFailureOnly) {
  Breaker b;
  EXPECT_EQ(esp::breaker_record(b, true, 3, 1000, 0), BreakerChange::kNone);
  EXPECT_EQ(esp::breaker_record(b, true, 3, 1000, 0), BreakerChange::kNone);
  EXPECT_EQ(b.current(), BreakerState::kClosed);
  EXPECT_EQ(esp::breaker_admit(b, 3, 0), BreakerAdmit::kPass);
  EXPECT_EQ(esp::breaker_record(b, true, 3, 1000, 5 * kSec), BreakerChange::kOpened);
  EXPECT_EQ(b.current(), BreakerState::kOpen);
  EXPECT_EQ(b.open_until_us, 5 * kSec + 1000 * kMs);
}

TEST(Breaker, ASuccessResetsTheCount) {
  Breaker b;
  fail_times(b, 2, 0);
  EXPECT_EQ(esp::breaker_record(b, false, 3, 1000, 0), BreakerChange::kNone);
  EXPECT_EQ(b.consecutive_failures, 0);
  fail_times(b, 2, 0);
  EXPECT_EQ(b.current(), BreakerState::kClosed);
}

TEST(Breaker, OpenRejectsUntilTheCooldownThenAdmitsOneProbe) {
  Breaker b;
  fail_times(b, 3, 0);
  EXPECT_EQ(esp::breaker_admit(b, 3, 999 * kMs), BreakerAdmit::kRejectOpen);
  EXPECT_EQ(esp::breaker_admit(b, 3, 1000 * kMs), BreakerAdmit::kProbe);
  EXPECT_EQ(b.current(), BreakerState::kHalfOpen);
  EXPECT_TRUE(b.probe_in_flight);
  EXPECT_EQ(esp::breaker_admit(b, 3, 1001 * kMs), BreakerAdmit::kRejectProbing);
}

TEST(Breaker, TheProbesSuccessClosesIt) {
  Breaker b;
  fail_times(b, 3, 0);
  ASSERT_EQ(esp::breaker_admit(b, 3, 2 * kSec), BreakerAdmit::kProbe);
  EXPECT_EQ(esp::breaker_record(b, false, 3, 1000, 2 * kSec), BreakerChange::kClosed);
  esp::breaker_probe_done(b);
  EXPECT_EQ(b.current(), BreakerState::kClosed);
  EXPECT_EQ(b.consecutive_failures, 0);
  EXPECT_EQ(esp::breaker_admit(b, 3, 2 * kSec), BreakerAdmit::kPass);
}

TEST(Breaker, TheProbesFailureOpensItForAnotherCooldown) {
  Breaker b;
  fail_times(b, 3, 0);
  ASSERT_EQ(esp::breaker_admit(b, 3, 2 * kSec), BreakerAdmit::kProbe);
  // One failure is enough in half-open, whatever the threshold.
  EXPECT_EQ(esp::breaker_record(b, true, 100, 1000, 2 * kSec), BreakerChange::kOpened);
  esp::breaker_probe_done(b);
  EXPECT_EQ(b.current(), BreakerState::kOpen);
  EXPECT_EQ(b.open_until_us, 3 * kSec);
  EXPECT_EQ(esp::breaker_admit(b, 3, 2500 * kMs), BreakerAdmit::kRejectOpen);
}

TEST(Breaker, AProbeEndedWithoutAResultLetsTheNextOneProbe) {
  Breaker b;
  fail_times(b, 3, 0);
  ASSERT_EQ(esp::breaker_admit(b, 3, 2 * kSec), BreakerAdmit::kProbe);
  esp::breaker_probe_done(b);  // cancelled
  EXPECT_EQ(esp::breaker_admit(b, 3, 2 * kSec), BreakerAdmit::kProbe);
}

// With a fleet (shared_state): Redis's answer decides while it gives one.
TEST(Breaker, TheFleetsProbeMakesThisBreakerHalfOpenWithItsProbeOut) {
  Breaker b;  // closed here: this process saw no failure
  EXPECT_EQ(esp::breaker_admit_in_fleet(b, 3, true, BreakerAdmit::kProbe, 0), BreakerAdmit::kProbe);
  EXPECT_EQ(b.current(), BreakerState::kHalfOpen);
  EXPECT_TRUE(b.probe_in_flight);
  // Its failure opens it here (and is published for the fleet); its success closes it.
  EXPECT_EQ(esp::breaker_record(b, true, 3, 1000, 0), BreakerChange::kOpened);
}

TEST(Breaker, TheFleetsOpenAndProbingAnswersRejectWhateverThisBreakerSays) {
  Breaker b;
  EXPECT_EQ(esp::breaker_admit_in_fleet(b, 3, true, BreakerAdmit::kRejectOpen, 0), BreakerAdmit::kRejectOpen);
  EXPECT_EQ(esp::breaker_admit_in_fleet(b, 3, true, BreakerAdmit::kRejectProbing, 0), BreakerAdmit::kRejectProbing);
  fail_times(b, 3, 0);
  // Past this breaker's own cool-down: still no probe of its own while another process probes.
  EXPECT_EQ(esp::breaker_admit_in_fleet(b, 3, true, BreakerAdmit::kRejectProbing, 5 * kSec), BreakerAdmit::kRejectProbing);
  EXPECT_FALSE(b.probe_in_flight);
  EXPECT_EQ(b.current(), BreakerState::kOpen);
}

TEST(Breaker, TheFleetClosedClosesThisBreakerAndUnknownLeavesItToDecide) {
  Breaker b;
  fail_times(b, 3, 0);
  EXPECT_EQ(esp::breaker_admit_in_fleet(b, 3, false, BreakerAdmit::kPass, 500 * kMs), BreakerAdmit::kRejectOpen);
  EXPECT_EQ(esp::breaker_admit_in_fleet(b, 3, false, BreakerAdmit::kPass, 1000 * kMs), BreakerAdmit::kProbe);
  esp::breaker_probe_done(b);
  // Another process's probe succeeded: the fleet says closed.
  EXPECT_EQ(esp::breaker_admit_in_fleet(b, 3, true, BreakerAdmit::kPass, 1100 * kMs), BreakerAdmit::kPass);
  EXPECT_EQ(b.current(), BreakerState::kClosed);
  EXPECT_EQ(b.consecutive_failures, 0);
  EXPECT_EQ(esp::breaker_admit_in_fleet(b, 0, true, BreakerAdmit::kRejectOpen, 0), BreakerAdmit::kPass);  // disabled
}

TEST(Breaker, FailuresWhileOpenExtendItWithoutReopening) {
  Breaker b;
  fail_times(b, 3, 0);
  EXPECT_EQ(esp::breaker_record(b, true, 3, 1000, 500 * kMs), BreakerChange::kNone);
  EXPECT_EQ(b.current(), BreakerState::kOpen);
  EXPECT_EQ(b.open_until_us, 1500 * kMs);
}

TEST(Breaker, ZeroFailuresDisablesIt) {
  Breaker b;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(esp::breaker_record(b, true, 0, 1000, 0), BreakerChange::kNone);
  EXPECT_EQ(b.current(), BreakerState::kClosed);
  EXPECT_EQ(esp::breaker_admit(b, 0, 0), BreakerAdmit::kPass);
}

TEST(Breaker, WhatCountsAsAFailure) {
  EXPECT_TRUE(esp::counts_as_failure(ESP_OK, 500));
  EXPECT_TRUE(esp::counts_as_failure(ESP_OK, 503));
  EXPECT_FALSE(esp::counts_as_failure(ESP_OK, 429));
  EXPECT_FALSE(esp::counts_as_failure(ESP_OK, 404));
  EXPECT_FALSE(esp::counts_as_failure(ESP_OK, 200));
  for (int s : {ESP_ECONNECT, ESP_ETIMEDOUT, ESP_EIO, ESP_ETLS, ESP_EPROTOCOL})
    EXPECT_TRUE(esp::counts_as_failure(s, 0)) << s;
  for (int s : {ESP_ECANCELLED, ESP_ETOOLARGE, ESP_ESHUTDOWN, ESP_EPOOLTIMEOUT, ESP_ERATELIMITED, ESP_ECIRCUIT})
    EXPECT_FALSE(esp::counts_as_failure(s, 0)) << s;
  EXPECT_STREQ(esp::breaker_state_name(BreakerState::kHalfOpen), "half_open");
}

// ---- Retry-After forms ------------------------------------------------------------

TEST(RetryAfter, EveryForm) {
  const std::time_t now = 1445412480;  // Wed, 21 Oct 2015 07:28:00 GMT
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after-ms", "1500"}}), now), 1500 * kMs);
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after-ms", "0.5"}}), now), 500);
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after", "2"}}), now), 2 * kSec);
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after", "1.5"}}), now), 1500 * kMs);
  EXPECT_EQ(esp::retry_after_us(answer(503, {{"retry-after", "Wed, 21 Oct 2015 07:28:30 GMT"}}), now), 30 * kSec);
  // A date in the past: go now.
  EXPECT_EQ(esp::retry_after_us(answer(503, {{"retry-after", "Wed, 21 Oct 2015 07:27:00 GMT"}}), now), 0);
  // retry-after-ms wins over retry-after.
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after", "9"}, {"retry-after-ms", "20"}}), now), 20 * kMs);
}

TEST(RetryAfter, UnreadableOrAbsentIsMinusOneAndHugeIsCappedAtADay) {
  const std::time_t now = 1445412480;
  EXPECT_EQ(esp::retry_after_us(answer(429, {}), now), -1);
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after", "soon"}}), now), -1);
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after", "-3"}}), now), -1);
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after-ms", "nan"}}), now), -1);
  // An unreadable retry-after-ms falls back to retry-after.
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after-ms", "x"}, {"retry-after", "3"}}), now), 3 * kSec);
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after", "1e300"}}), now), 86400 * kSec);
  EXPECT_EQ(esp::retry_after_us(answer(429, {{"retry-after-ms", "1e300"}}), now), 86400 * kSec);
}

// ---- the retry decision ---------------------------------------------------------------

TEST(Retry, RetryableAnswers) {
  for (int s : {408, 409, 429, 500, 502, 503, 504}) EXPECT_TRUE(esp::status_retryable(s)) << s;
  for (int s : {200, 204, 301, 400, 401, 403, 404, 422}) EXPECT_FALSE(esp::status_retryable(s)) << s;
  esp_response ok = answer(200, {}), bad = answer(400, {}), busy = answer(503, {});
  EXPECT_EQ(delay(answered(ok)), -1);
  EXPECT_EQ(delay(answered(bad)), -1);
  EXPECT_EQ(delay(answered(busy)), 500 * kMs);
}

TEST(Retry, RetryAfterIsHonouredUpToItsCapThenBackoffDecides) {
  esp_response hinted = answer(429, {{"retry-after", "2"}});
  EXPECT_EQ(delay(answered(hinted)), 2 * kSec);
  esp_response too_long = answer(429, {{"retry-after", "61"}});  // retry_after_max_ms: 60000
  EXPECT_EQ(delay(answered(too_long)), 500 * kMs);
  esp::ClientConfig cfg;
  cfg.retry_after_max_ms = 0;  // hints ignored
  EXPECT_EQ(esp::decide_retry(answered(hinted), cfg, 0, 1000 * kSec, full_jitter).delay_us, 500 * kMs);
}

TEST(Retry, XShouldRetryOverridesTheStatus) {
  esp_response no = answer(503, {{"x-should-retry", "false"}});
  esp_response yes = answer(400, {{"x-should-retry", "true"}});
  EXPECT_EQ(delay(answered(no)), -1);
  EXPECT_EQ(delay(answered(yes)), 500 * kMs);
}

TEST(Retry, BackoffDoublesWithJitterAndIsCapped) {
  esp::ClientConfig cfg;  // 500 ms base, 8000 ms cap
  EXPECT_EQ(esp::backoff_us(cfg, 1, 1.0), 500 * kMs);
  EXPECT_EQ(esp::backoff_us(cfg, 2, 1.0), 1000 * kMs);
  EXPECT_EQ(esp::backoff_us(cfg, 3, 0.75), 1500 * kMs);
  EXPECT_EQ(esp::backoff_us(cfg, 10, 1.0), 8000 * kMs);
  esp_response busy = answer(503, {});
  EXPECT_EQ(delay(answered(busy, 2), 1000 * kSec, low_jitter), 750 * kMs);
  for (int i = 0; i < 100; ++i) {
    const double j = esp::random_jitter();
    ASSERT_GE(j, 0.75);
    ASSERT_LT(j, 1.0);
  }
}

TEST(Retry, MaxRetriesAndNoRetryFlag) {
  esp_response busy = answer(503, {});
  EXPECT_EQ(delay(answered(busy, 2)), 1000 * kMs);
  EXPECT_EQ(delay(answered(busy, 3)), -1);  // max_retries 2: three attempts in all
  esp::RetryFacts f = answered(busy);
  f.retry_allowed = false;
  EXPECT_EQ(delay(f), -1);
}

TEST(Retry, ASentRequestThatIsNotReplaySafeIsSentOnce) {
  esp_response busy = answer(503, {});
  esp::RetryFacts post = answered(busy);
  post.replay_safe = false;
  EXPECT_EQ(delay(post), -1);
  esp::RetryFacts unsent = failed(ESP_ECONNECT);  // never went out: safe to try again
  EXPECT_EQ(delay(unsent), 500 * kMs);
  esp::RetryFacts reset = failed(ESP_EIO);
  reset.sent = true;
  EXPECT_EQ(delay(reset), -1);
  reset.replay_safe = true;
  EXPECT_EQ(delay(reset), 500 * kMs);
}

TEST(Retry, WhichFailuresAreTransient) {
  EXPECT_EQ(delay(failed(ESP_ETIMEDOUT, esp::TimeoutKind::kConnect)), 500 * kMs);
  EXPECT_EQ(delay(failed(ESP_ETIMEDOUT, esp::TimeoutKind::kFirstByte)), 500 * kMs);
  EXPECT_EQ(delay(failed(ESP_ETIMEDOUT, esp::TimeoutKind::kTotal)), -1);
  for (int s : {ESP_ETLS, ESP_EPROTOCOL, ESP_ETOOLARGE, ESP_ECANCELLED}) EXPECT_EQ(delay(failed(s)), -1) << s;
  esp::RetryFacts midway = failed(ESP_EIO);
  midway.delivered = true;  // the head reached the user: cannot be taken back
  EXPECT_EQ(delay(midway), -1);
  esp::RetryFacts cancelled = failed(ESP_ECONNECT);
  cancelled.cancelled = true;
  EXPECT_EQ(delay(cancelled), -1);
}

TEST(Retry, NeverPastTheDeadline) {
  esp_response hinted = answer(429, {{"retry-after", "2"}});
  EXPECT_EQ(delay(answered(hinted), 2 * kSec), -1);
  EXPECT_EQ(delay(answered(hinted), 2 * kSec + 1), 2 * kSec);
}

TEST(Retry, ADeadPooledConnectionGetsOneFreshTryEvenWithoutRetries) {
  esp::RetryFacts f = failed(ESP_EIO);
  f.sent = true;
  f.silent_resend = true;
  f.replay_safe = true;
  f.retry_allowed = false;  // max_retries 0
  esp::RetryDecision d = esp::decide_retry(f, esp::ClientConfig(), 0, kSec, full_jitter);
  EXPECT_EQ(d.delay_us, 0);
  EXPECT_TRUE(d.stale_retry);
  f.stale_retried = true;  // only once
  EXPECT_EQ(delay(f), -1);
  f.stale_retried = false;
  f.no_retry_flag = true;  // ESP_REQ_NO_RETRY: one send
  EXPECT_EQ(delay(f), -1);
  f.no_retry_flag = false;
  f.replay_safe = false;
  EXPECT_EQ(delay(f), -1);
  // Within its retries it is retried at once, not after a backoff.
  f.replay_safe = true;
  f.retry_allowed = true;
  d = esp::decide_retry(f, esp::ClientConfig(), 0, kSec, full_jitter);
  EXPECT_EQ(d.delay_us, 0);
  EXPECT_FALSE(d.stale_retry);
}
