// The driver of one shard's curl multi: commands from callers and sibling
// shards, the epoll loop over curl_multi_socket_action, slot admission per
// origin across the shards, timers, the idle-easy pool and socket accounting.
// Policy decisions (retry, breaker) are free functions it calls (see engine.h).
#include "shard.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>

#include "clock.h"
#include "esp.h"
#include "log.h"
#include "round.h"
#include "status.h"
#include "transfer.h"

namespace esp {

namespace {

thread_local const Shard *t_io_engine = nullptr;  // the engine whose I/O thread this is

int64_t min_deadline(int64_t a, int64_t b) { return a == 0 ? b : b == 0 ? a : std::min(a, b); }

// Ready sockets taken from the kernel per epoll_wait; more wait for the next round.
constexpr int kEventsPerWait = 256;

// How long the fleet waits for a half-open probe taken by t before another
// process may probe: t's time left, at most ten minutes.
int64_t probe_lease_ms(const Transfer &t, int64_t now) {
  constexpr int64_t kMaxMs = 600000;
  return t.deadline_us == kNever ? kMaxMs : std::min(kMaxMs, std::max<int64_t>(0, t.deadline_us - now) / 1000 + 1000);
}

// The clock after a step that may have asked the fleet's Redis (a shared
// client's breaker or limiter): read afresh then, else the step's reading.
int64_t clock_after_fleet_step(const Transfer &t, int64_t now) { return t.client->shared ? now_us() : now; }

}  // namespace

bool Shard::on_io_thread() { return t_io_engine != nullptr; }

const Shard *Shard::current() { return t_io_engine; }

Shard::Shard(int index) : index_(index) {}

// On first use, not with the engine: an idle process holds one shard's
// thread and four descriptors (epoll set, eventfd, libcurl's wake-up pair),
// not every shard's. Under start_mu_, which stop() and fork also take.
bool Shard::ensure_started() {
  if (started_.load(std::memory_order_acquire)) return true;
  std::lock_guard<std::mutex> starting(start_mu_);
  if (started_.load(std::memory_order_relaxed)) return true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
  }
  multi_ = curl_multi_init();
  share_ = curl_share_init();
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event wake_ev {};
  wake_ev.events = EPOLLIN;
  wake_ev.data.fd = wake_fd_;
  if (!multi_ || !share_ || epoll_fd_ < 0 || wake_fd_ < 0 ||
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake_ev) != 0) {
    curl_multi_cleanup(multi_);
    curl_share_cleanup(share_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    multi_ = nullptr;
    share_ = nullptr;
    epoll_fd_ = wake_fd_ = -1;
    fail(ESP_ENOMEM, "could not create I/O thread " + std::to_string(index_) +
                         "'s curl multi handle and epoll set (out of memory or descriptors)");
  }
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Shard::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Shard::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  // Only the driving thread uses the share, so it needs no lock callbacks.
  curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  // libcurl 7.88 sizes the idle cache at 4x the handles added, which closes
  // pooled connections when transfers are removed as they finish.
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, 1024L);
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
  curl_multi_setopt(multi_, CURLMOPT_MAX_CONCURRENT_STREAMS, static_cast<long>(kStreamsPerConnection));
  io_ = std::thread(&Shard::io_loop, this);
  started_.store(true, std::memory_order_release);
  return true;
}

Shard::~Shard() { stop(); }

bool Shard::stop(int64_t timeout_ms) {
  {
    std::lock_guard<std::mutex> starting(start_mu_);
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      if (started_.load(std::memory_order_relaxed)) wake();
      io_cv_.notify_all();
    }
    if (!started_.load(std::memory_order_relaxed)) return true;  // never used: nothing to end
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    bool done = io_exited_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms < 0 ? INT64_MAX / 2000000 : timeout_ms),
                                       [&] { return io_exited_; });
    if (!done) return false;
  }
  std::lock_guard<std::mutex> joining(join_mu_);  // two esp_shutdown calls may race here
  if (io_.joinable()) io_.join();
  // Every transfer is complete and nothing drives the multi any more: close
  // the connections now, not when the last caller drops its transfer, so
  // that esp_shutdown returns with no socket open.
  if (multi_) {
    std::lock_guard<std::mutex> drive(drive_mu_);
    for (EasySlot *i : idle_easies_) curl_easy_cleanup(i->easy);
    idle_easies_.clear();
    slots_.clear();
    curl_multi_cleanup(multi_);  // closes the sockets, which leave the epoll set
    curl_share_cleanup(share_);
    ::close(epoll_fd_);
    ::close(wake_fd_);
    multi_ = nullptr;
    share_ = nullptr;
    epoll_fd_ = wake_fd_ = -1;
    // A socket libcurl closed without the callback is still listed: the
    // multi is gone, and so is every connection it had.
    sockets_.forget_all();
    conn_use_.clear();
    unused_conns_ = 0;
    conn_by_port_.clear();
    watched_.clear();
  }
  return true;
}

// ---- entry points from caller threads ---------------------------------------

void Shard::run_sync(const std::shared_ptr<Transfer> &t) {
  const bool started = ensure_started();
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_ || !started) fail(ESP_ESHUTDOWN, "the library is shutting down");
  // Counted under mu_ with stopping_ false: a stop() that follows completes
  // it before it returns, so nothing is left counted in flight after it.
  t->count_accepted();
  load_.store(++live_, std::memory_order_relaxed);
  if (!io_driving_ && !leader_driving_ && live_ == 1 && commands_.empty() && drive_mu_.try_lock()) {
    leader_driving_ = true;
    lock.unlock();
    start(t);
    for (;;) {
      // Handed to another shard (the one with an idle connection), or done.
      // The shard first: once t is another's, its driver writes `finished`.
      if (t->shard.load() != this || t->finished) break;
      drive_once(t.get());
      std::lock_guard<std::mutex> check(mu_);
      if (!commands_.empty() || stopping_) break;  // hand the multi to the I/O thread
    }
    lock.lock();
    leader_driving_ = false;
    drive_mu_.unlock();
    const bool notify = live_ > 0 || !commands_.empty() || stopping_;
    lock.unlock();
    notify_idle_driver(notify);
  } else {
    commands_.push_back({Command::kSubmit, t});
    const bool notify = wake_driver_locked();
    lock.unlock();
    notify_idle_driver(notify);
  }
}

void Shard::submit(const std::shared_ptr<Transfer> &t) {
  const bool started = ensure_started();
  bool notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !started) fail(ESP_ESHUTDOWN, "the library is shutting down");
    t->count_accepted();
    load_.store(++live_, std::memory_order_relaxed);
    commands_.push_back({Command::kSubmit, t});
    notify = wake_driver_locked();
  }
  notify_idle_driver(notify);
}

// Engine::cancel and Engine::set_paused set the transfer's flag first: a
// transfer not placed yet reads it when it starts.
void Shard::cancel(const std::shared_ptr<Transfer> &t) { post({Command::kCancel, t}); }

void Shard::set_paused(const std::shared_ptr<Transfer> &t, bool paused) {
  post({paused ? Command::kPause : Command::kResume, t});
}

void Shard::slot_granted(const std::shared_ptr<Transfer> &t) { post({Command::kGranted, t}); }

bool Shard::post(Command cmd) {
  // A hand-over may start a shard from an I/O thread: no exception there.
  try {
    if (!ensure_started()) return false;
  } catch (const Error &e) {
    log_event(ESP_LOG_ERROR, "io_thread_start_failed", {{"error", e.what()}});
    return false;
  }
  bool notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;  // everything completes with ESP_ESHUTDOWN anyway
    if (cmd.kind == Command::kAdopt || cmd.kind == Command::kAdoptStart) load_.store(++live_, std::memory_order_relaxed);
    commands_.push_back(std::move(cmd));
    notify = wake_driver_locked();
  }
  notify_idle_driver(notify);
  return true;
}

bool Shard::wake_driver_locked() {
  // From a callback on this engine's own I/O thread the driver is awake
  // already and takes the command on its next round: no wake-up syscall.
  if (t_io_engine == this && io_driving_) return false;
  if (io_driving_ || leader_driving_) {
    // Under mu_, with stopping_ false: stop() closes the eventfd only after
    // it has set stopping_, so this never writes to a reused descriptor.
    if (!wake_pending_) {
      wake_pending_ = true;
      wake();
    }
    return false;
  }
  return true;
}

void Shard::notify_idle_driver(bool needed) {
  // After mu_ is released: a thread woken while the poster still held it
  // would only block on it and be woken a second time.
  if (needed) io_cv_.notify_one();
}

void Shard::wake() {
  const uint64_t one = 1;
  // Cannot fail short of a bad descriptor; a full counter is a pending wake-up already.
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;
}

// ---- the I/O thread ------------------------------------------------------------

void Shard::io_loop() {
  t_io_engine = this;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    io_cv_.wait(lock, [&] { return stopping_ || (!leader_driving_ && (live_ > 0 || !commands_.empty())); });
    if (stopping_) break;
    io_driving_ = true;
    lock.unlock();
    {
      std::lock_guard<std::mutex> drive(drive_mu_);
      for (;;) {
        drive_once(nullptr);
        std::lock_guard<std::mutex> check(mu_);
        if (stopping_) break;
        if (live_ == 0 && commands_.empty()) {
          io_driving_ = false;
          break;
        }
      }
    }
    lock.lock();
  }
  lock.unlock();
  {
    // Shutdown: everything still here completes with ESP_ESHUTDOWN.
    std::lock_guard<std::mutex> drive(drive_mu_);
    std::deque<Command> cmds;
    {
      std::lock_guard<std::mutex> l(mu_);
      cmds.swap(commands_);
    }
    for (auto &c : cmds)
      if (c.kind == Command::kSubmit || c.kind == Command::kAdopt || c.kind == Command::kAdoptStart) own(c.transfer);
    std::vector<Transfer *> all;
    for (Transfer *t = owned_; t; t = t->held_next) all.push_back(t);
    for (Transfer *t : all) finish(t, ESP_ESHUTDOWN, "esp_shutdown: the library was shut down");
  }
  lock.lock();
  io_exited_ = true;
  io_exited_cv_.notify_all();
}

void Shard::drive_once(Transfer *leader) {
  Round round;  // the streams' ready callbacks wait for its end (round.h)
  if (!leader) {
    std::deque<Command> cmds;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cmds.swap(commands_);
      wake_pending_ = false;
    }
    handle_commands(cmds);
  }
  // libcurl starts the handles just added from its timer, due at once: run
  // it before the wait, so that their requests go out and the wait is for
  // the answers. An attempt that ended meanwhile (its completion queued, and
  // a command its callback posted may be too): this round waits for nothing.
  if (curl_timer_due()) run_curl_timer();
  const bool ended = collect_done();
  if (!(leader && (leader->shard.load() != this || leader->finished))) {
    struct epoll_event ready[kEventsPerWait];
    const int n = ::epoll_wait(epoll_fd_, ready, kEventsPerWait, ended ? 0 : static_cast<int>(poll_timeout_ms()));
    for (int i = 0; i < n; ++i) {
      if (ready[i].data.fd == wake_fd_) {
        uint64_t count = 0;
        ssize_t got = ::read(wake_fd_, &count, sizeof count);
        (void)got;
        continue;
      }
      socket_ready(ready[i].data.fd, ready[i].events);
    }
    if (curl_timer_due()) run_curl_timer();
    collect_done();
  }
  if (!to_pump_.empty()) {
    std::vector<Origin *> origins;
    origins.swap(to_pump_);
    for (Origin *o : origins) pump(*o);
  }
  check_timers();
}

void Shard::run_curl_timer() {
  curl_timer_us_ = 0;  // libcurl sets the next one from inside the call
  int running = 0;
  curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
}

bool Shard::collect_done() {
  bool any = false;
  int left = 0;
  while (CURLMsg *m = curl_multi_info_read(multi_, &left)) {
    if (m->msg != CURLMSG_DONE) continue;
    EasySlot *slot = nullptr;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char **>(&slot));
    Transfer *t = slot ? slot->transfer : nullptr;
    if (!t) continue;
    any = true;
    attempt_done(t, m->data.result, TimeoutKind::kNone, std::string());
  }
  return any;
}

void Shard::handle_commands(std::deque<Command> &cmds) {
  for (Command &c : cmds) {
    Transfer *t = c.transfer.get();
    switch (c.kind) {
      case Command::kSubmit:
        start(c.transfer);
        break;
      case Command::kCancel:
        if (t->shard.load() == this && !t->finished && t->held)
          finish(t, ESP_ECANCELLED, "cancelled by esp_call_cancel");
        break;
      case Command::kGranted: {
        if (t->shard.load() != this || t->finished || !t->held) break;  // finish gave the slot back
        Origin &o = *t->origin;
        {
          std::lock_guard<std::mutex> lock(o.mu);
          if (!t->slot_granted) break;
          t->slot_granted = false;
        }
        run_admitted(c.transfer, now_us());
        break;
      }
      case Command::kAdopt:
      case Command::kAdoptStart:
        adopt(c.transfer, c.kind);
        break;
      case Command::kPause:
      case Command::kResume:
        if (t->shard.load() != this || t->finished) break;  // the adopting shard reads pause_requested
        t->user_paused = c.kind == Command::kPause;
        if (t->easy) {
          if (!t->user_paused) t->reader_paused = false;
          curl_easy_pause(t->easy, t->user_paused ? CURLPAUSE_RECV : CURLPAUSE_CONT);
        }
        break;
    }
  }
}

bool Shard::curl_timer_due() const {
  return curl_timer_us_ == kCurlTimerNow || (curl_timer_us_ && now_us() >= curl_timer_us_);
}

long Shard::poll_timeout_ms() {
  long ms = 1000;
  const int64_t due = min_deadline(curl_timer_us_, next_timer_us_);
  if (due == kCurlTimerNow) return 0;
  if (due) {
    int64_t until = (due - now_us() + 999) / 1000;
    ms = std::min<long>(ms, static_cast<long>(std::max<int64_t>(0, until)));
  }
  return ms;
}

// ---- a transfer's life on the driver ----------------------------------------------

void Shard::own(const std::shared_ptr<Transfer> &t) {
  if (t->held) return;
  t->held = t;
  t->held_prev = nullptr;
  t->held_next = owned_;
  if (owned_) owned_->held_prev = t.get();
  owned_ = t.get();
}

void Shard::start(const std::shared_ptr<Transfer> &t) {
  own(t);
  if (t->cancel_requested.load()) {
    finish(t.get(), ESP_ECANCELLED, "cancelled by esp_call_cancel");
    return;
  }
  Origin &o = *t->origin;
  // Shared (HTTP/2) connections live on the origin's home shard only, so
  // that their count and openers are one shard's (a fail-over may have
  // moved the transfer to such an origin).
  if (o.home_shard != index_ && shares_connections(o, t->spec.multiplexable))
    return hand_over(t.get(), sibling(o.home_shard), Command::kAdoptStart);
  const ClientConfig &cfg = t->client->config;
  const int64_t now = now_us();
  SharedState::FleetBreaker fleet;  // with shared_state the fleet's breaker decides, while Redis answers
  if (cfg.breaker_failures > 0 && t->client->shared) fleet = t->client->shared->breaker_admit(o.label, probe_lease_ms(*t, now));
  BreakerAdmit verdict;
  int64_t open_left_ms;
  int failures;
  {
    std::lock_guard<std::mutex> lock(o.mu);
    verdict = breaker_admit_in_fleet(o.breaker, cfg.breaker_failures, fleet.known, fleet.admit, now);
    open_left_ms = (o.breaker.open_until_us - now) / 1000;
    failures = o.breaker.consecutive_failures;
  }
  switch (verdict) {
    case BreakerAdmit::kPass:
      break;
    case BreakerAdmit::kProbe:
      t->is_probe = true;
      t->fleet_probe = fleet.known;
      log_event(ESP_LOG_INFO, "breaker_half_open", {{"origin", o.label}, {"fleet", fleet.known ? "true" : "false"}});
      break;
    case BreakerAdmit::kRejectOpen:
      if (t->routed && t->routed->fail_over(*t, ESP_ECIRCUIT, "circuit breaker open for " + o.label, now)) return start(t);
      return finish(t.get(), ESP_ECIRCUIT,
                    "circuit breaker open for " + o.label + " for another " +
                        (fleet.known ? std::to_string(fleet.left_ms) + " ms, opened by a process of the fleet (shared_state)"
                                     : std::to_string(open_left_ms) + " ms after " + std::to_string(failures) +
                                           " consecutive failures"));
    case BreakerAdmit::kRejectProbing:
      if (t->routed && t->routed->fail_over(*t, ESP_ECIRCUIT, "circuit breaker half-open for " + o.label, now))
        return start(t);
      return finish(t.get(), ESP_ECIRCUIT,
                    "circuit breaker half-open for " + o.label + ": probe in flight" +
                        (fleet.known ? " (one for the whole fleet, shared_state)" : ""));
  }
  admit(t, clock_after_fleet_step(*t, now));
}

// Rate limits (fleet17): every attempt reserves its place with the
// credential's limiter and waits for its turn before it takes a slot.
void Shard::admit(const std::shared_ptr<Transfer> &t, int64_t now) {
  Limiter *limiter = t->client->limiter.get();
  if (!limiter) return try_slot(t, now);
  if (!t->rate_reserved) {
    if (!t->rate_tokens) t->rate_tokens = estimate_tokens(t->spec.body);
    if (!t->routed) {
      t->rate = limiter->reserve(t->rate_tokens, now, t->deadline_us);
    } else {  // a deployment without budget passes the request to one with some
      switch (t->routed->reserve_budget(*t, now)) {
        case Route::Budget::kReserved: break;
        case Route::Budget::kMoved: return start(t);
        case Route::Budget::kRefused: return finish(t.get(), ESP_ERATELIMITED, t->rate.why);
      }
    }
    if (!t->rate.ok) return finish(t.get(), ESP_ERATELIMITED, t->rate.why);
    t->rate_reserved = true;
  } else if (int64_t paused = limiter->paused_until(now); paused > t->rate.at_us) {
    // A pause (a 429 somewhere) came in while this one waited.
    if (paused > t->deadline_us)
      return finish(t.get(), ESP_ERATELIMITED,
                    "rate limited: the provider paused this credential for another " +
                        std::to_string((paused - now) / 1000) + " ms, past this request's timeout");
    t->rate.at_us = paused;
  }
  if (t->rate.at_us > now) {
    t->rate_wait_until_us = t->rate.at_us;
    next_timer_us_ = min_deadline(next_timer_us_, t->rate_wait_until_us);
    return;
  }
  t->rate_wait_until_us = 0;
  t->rate_reserved = false;  // used by this attempt
  try_slot(t, clock_after_fleet_step(*t, now));
}

void Shard::try_slot(const std::shared_ptr<Transfer> &t, int64_t now) {
  Origin &o = *t->origin;
  const ClientConfig &cfg = t->client->config;
  bool admit;
  int64_t opener_due = 0;
  {
    std::lock_guard<std::mutex> lock(o.mu);
    const SlotGrant grant = take_slot(o, t->spec.multiplexable, cfg.max_connections, now, index_, &t->slot_token);
    admit = grant != SlotGrant::kWait;
    t->opening = grant == SlotGrant::kOpener;
    t->holds_slot = admit;
    if (!admit) {
      t->in_waiting = true;
      // A first attempt behind those submitted before it (they may have
      // reached their shards later); a retry at the back.
      auto at = o.waiting.end();
      if (t->attempts == 0)
        while (at != o.waiting.begin() && (*(at - 1))->ticket > t->ticket) --at;
      o.waiting.insert(at, t);
      if (o.openers > 0) opener_due = o.last_opener_us + opener_grace_us(o);
    }
  }
  if (admit) return run_admitted(t, now);
  if (!t->queued_since_us) {
    t->queued_since_us = now;
    const int64_t pool_ms = t->spec.pool_timeout_ms;
    t->pool_deadline_us = std::min(pool_ms > 0 ? now + pool_ms * 1000 : kNever, t->deadline_us);
    t->client->stats.note_queued(1);
    o.stats.note_queued(1);
    next_timer_us_ = min_deadline(next_timer_us_, t->pool_deadline_us);
  }
  if (opener_due) next_timer_us_ = min_deadline(next_timer_us_, opener_due);
}

void Shard::run_admitted(const std::shared_ptr<Transfer> &t, int64_t now) {
  if (t->attempts == 0 || t->queued_since_us) {
    int64_t waited = t->queued_since_us ? now - t->queued_since_us : 0;
    t->client->stats.queue_wait.record_us(waited);
    t->origin->stats.queue_wait.record_us(waited);
  }
  leave_queue(t.get());
  // Set by whoever granted the slot, before this shard heard of it.
  const int token = t->slot_token;
  if (token >= 0 && token != index_) return hand_over(t.get(), sibling(token), Command::kAdopt);
  launch_attempt(t, now);
}

void Shard::leave_queue(Transfer *t) {
  if (!t->queued_since_us) return;
  t->queued_since_us = 0;
  t->client->stats.note_queued(-1);
  t->origin->stats.note_queued(-1);
}

namespace {

// Grants slots to the origin's waiters in order while it has room; each
// granted one is marked for its own shard to take up. Under o.mu.
void grant_waiting_locked(Origin &o, int64_t now, std::vector<std::shared_ptr<Transfer>> &granted) {
  while (!o.waiting.empty()) {
    Transfer &w = *o.waiting.front();
    if (!w.in_waiting) {  // finished, or admitted otherwise, since it queued
      o.waiting.pop_front();
      continue;
    }
    const SlotGrant grant = take_slot(o, w.spec.multiplexable, w.client->config.max_connections, now,
                                      w.shard.load()->index(), &w.slot_token);
    if (grant == SlotGrant::kWait) break;
    w.opening = grant == SlotGrant::kOpener;
    w.holds_slot = true;
    w.slot_granted = true;
    w.in_waiting = false;
    granted.push_back(std::move(o.waiting.front()));
    o.waiting.pop_front();
  }
}

}  // namespace

void Shard::pump(Origin &o) {
  std::vector<std::shared_ptr<Transfer>> granted;
  {
    std::lock_guard<std::mutex> lock(o.mu);
    grant_waiting_locked(o, now_us(), granted);
  }
  dispatch_granted(granted);
}

void Shard::dispatch_granted(std::vector<std::shared_ptr<Transfer>> &granted) {
  for (auto &w : granted) {
    Shard *own_shard = w->shard.load();
    if (own_shard != this) {
      own_shard->slot_granted(w);  // its finish gives the slot back if it ends first
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(w->origin->mu);
      w->slot_granted = false;
    }
    run_admitted(w, now_us());
  }
}

Shard &Shard::sibling(int index) const { return *siblings[static_cast<size_t>(index)]; }

std::shared_ptr<Transfer> Shard::disown(Transfer *t) {
  std::shared_ptr<Transfer> keep = std::move(t->held);
  (t->held_prev ? t->held_prev->held_next : owned_) = t->held_next;
  if (t->held_next) t->held_next->held_prev = t->held_prev;
  t->held_prev = t->held_next = nullptr;
  return keep;
}

void Shard::hand_over(Transfer *t, Shard &to, Command::Kind kind) {
  std::shared_ptr<Transfer> keep = disown(t);
  t->shard.store(&to);
  if (to.post({kind, keep})) {
    std::lock_guard<std::mutex> lock(mu_);
    load_.store(--live_, std::memory_order_relaxed);
    return;
  }
  t->shard.store(this);  // `to` is stopping: so is the library
  own(keep);
  finish(t, ESP_ESHUTDOWN, "esp_shutdown: the library was shut down");
}

void Shard::adopt(const std::shared_ptr<Transfer> &t, Command::Kind kind) {
  t->watcher = this;
  t->user_paused = t->pause_requested.load();  // pause commands went to the shard it left
  if (kind == Command::kAdoptStart) return start(t);
  own(t);
  if (t->cancel_requested.load()) return finish(t.get(), ESP_ECANCELLED, "cancelled by esp_call_cancel");
  launch_attempt(t, now_us());
}

void Shard::connection_ready(Transfer &t) {
  {
    std::lock_guard<std::mutex> lock(t.origin->mu);
    if (!t.opening) return;
    t.opening = false;
    opener_connected(*t.origin, now_us() - t.attempt_start_us);
  }
  to_pump_.push_back(t.origin);
}

void Shard::launch_attempt(const std::shared_ptr<Transfer> &t, int64_t now) {
  EasySlot *slot = take_easy(t->client->id);
  if (!slot) {
    finish(t.get(), ESP_ENOMEM, "could not create a curl easy handle");
    return;
  }
  retire_idle_connections(now);
  t->prepare_attempt(*slot, share_, now);
  CURL *e = slot->easy;
  SocketOwner *owner = socket_owner(t->origin);
  if (slot->socket_data != owner) {
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Shard::open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, owner);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &Shard::close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, owner);
    slot->socket_data = owner;
  }
  if (t->user_paused) curl_easy_pause(e, CURLPAUSE_RECV);
  CURLMcode rc = curl_multi_add_handle(multi_, e);
  if (rc != CURLM_OK) {
    t->easy = nullptr;
    t->slot = nullptr;
    return_easy(slot, true);
    finish(t.get(), ESP_EINTERNAL, std::string("curl_multi_add_handle: ") + curl_multi_strerror(rc));
    return;
  }
  const RequestSpec &spec = t->spec;
  for (int64_t ms : {spec.first_byte_timeout_ms, spec.idle_timeout_ms, spec.read_timeout_ms, spec.write_timeout_ms})
    if (ms > 0) next_timer_us_ = min_deadline(next_timer_us_, now + ms * 1000);
  if (t->deadline_us != kNever) next_timer_us_ = min_deadline(next_timer_us_, t->deadline_us);
}

void Shard::detach_easy(Transfer *t, bool completed_ok) {
  if (!t->easy) return;
  connection_released(t);
  aborting_ = !completed_ok;  // a transfer removed unfinished closes its connection
  curl_multi_remove_handle(multi_, t->easy);
  aborting_ = false;
  forget_unused_closed_connections();
  // A handle stopped midway, paused, or by a failure starts afresh next time.
  return_easy(t->slot, !completed_ok || t->user_paused || t->reader_paused);
  t->slot = nullptr;
  t->easy = nullptr;
}

EasySlot *Shard::take_easy(uint64_t client_id) {
  // The most recently used handles are at the back: look at a few.
  const size_t n = idle_easies_.size();
  for (size_t i = n; i > 0 && i + 8 > n; --i) {
    EasySlot *slot = idle_easies_[i - 1];
    if (slot->client_id != client_id) continue;
    idle_easies_.erase(idle_easies_.begin() + static_cast<std::ptrdiff_t>(i - 1));
    return slot;
  }
  if (n == 0) {
    CURL *e = curl_easy_init();
    if (!e) return nullptr;
    slots_.push_back(std::make_unique<EasySlot>(e));
    return slots_.back().get();
  }
  EasySlot *last = idle_easies_.back();
  idle_easies_.pop_back();
  if (last->client_id != 0) {
    curl_easy_reset(last->easy);
    last->forget();
  }
  return last;
}

void Shard::return_easy(EasySlot *slot, bool reset) {
  slot->transfer = nullptr;
  if (reset) {
    curl_easy_reset(slot->easy);
    slot->forget();
  }
  idle_easies_.push_back(slot);
}

void Shard::release_slot(Transfer *t, int64_t now) {
  Origin &o = *t->origin;
  std::vector<std::shared_ptr<Transfer>> granted;
  {
    // The waiters get the slot in the same step, so that no newcomer
    // on another shard takes it in between.
    std::lock_guard<std::mutex> lock(o.mu);
    const bool held = t->holds_slot;
    const int token = held ? token_of_connection(o, t->spec.multiplexable, t->sent_us != 0, t->slot_token, index_)
                           : t->slot_token;
    give_back_slot(o, held, t->opening, token);
    t->opening = t->holds_slot = t->slot_granted = t->in_waiting = false;
    t->slot_token = -1;
    if (held) grant_waiting_locked(o, now, granted);
  }
  dispatch_granted(granted);
}

void Shard::attempt_done(Transfer *t, CURLcode code, TimeoutKind kind, const std::string &why) {
  int64_t now = now_us();
  int status = t->finish_attempt(code, now);
  if (kind != TimeoutKind::kNone) {
    t->timeout_kind = kind;
    t->last_error = why;
  }
  detach_easy(t, status == ESP_OK && kind == TimeoutKind::kNone);
  release_slot(t, now);
  bool failure = counts_as_failure(status, t->resp ? t->resp->status : 0);
  int64_t delay = t->retry_delay_us(status, now);
  breaker_record(t, failure, now);
  if (delay >= 0) {
    const std::string reason = status == ESP_OK ? "http_" + std::to_string(t->resp->status) : t->last_error;
    if (t->routed && t->routed->fail_over(*t, status, reason, now)) {
      const std::shared_ptr<Transfer> self = t->held;
      return start(self);  // the next deployment
    }
    if (log_enabled(ESP_LOG_INFO))
      log_event(ESP_LOG_INFO, "retry",
                {{"client", t->client->label}, {"origin", t->origin->label}, {"attempt", std::to_string(t->attempts)},
                 {"reason", reason}, {"delay_ms", std::to_string(delay / 1000)}});
    t->retry_at_us = now + delay;
    next_timer_us_ = min_deadline(next_timer_us_, t->retry_at_us);
    return;
  }
  if (t->will_retry && status == ESP_OK) {
    // The withheld attempt is the answer after all: deliver it.
    t->will_retry = false;
    t->sink->head(*t);
    if (!t->retry_body.empty()) t->sink->replay(*t, t->retry_body);
  }
  finish(t, status, t->last_error, true);
}

void Shard::breaker_record(Transfer *t, bool failure, int64_t now) {
  Origin &o = *t->origin;
  const ClientConfig &cfg = t->client->config;
  BreakerChange change;
  int failures;
  {
    std::lock_guard<std::mutex> lock(o.mu);
    change = esp::breaker_record(o.breaker, failure, cfg.breaker_failures, cfg.breaker_cooldown_ms, now);
    failures = o.breaker.consecutive_failures;
  }
  switch (change) {
    case BreakerChange::kNone:
      break;
    case BreakerChange::kClosed:
      log_event(ESP_LOG_WARN, "breaker_closed", {{"origin", o.label}});
      if (t->client->shared) t->client->shared->breaker_closed(o.label);
      break;
    case BreakerChange::kOpened:
      log_event(ESP_LOG_WARN, "breaker_open",
                {{"origin", o.label}, {"failures", std::to_string(failures)},
                 {"cooldown_ms", std::to_string(cfg.breaker_cooldown_ms)}});
      if (t->client->shared) t->client->shared->breaker_opened(o.label, cfg.breaker_cooldown_ms);
      break;
  }
  if (t->fleet_probe) {  // the fleet's probe has its outcome (published above), or none to give
    if (change == BreakerChange::kNone) t->client->shared->breaker_probe_released(o.label);
    t->fleet_probe = false;
  }
}

void Shard::finish(Transfer *t, int status, const std::string &error, bool slot_released) {
  if (!t->held) return;
  std::shared_ptr<Transfer> keep = disown(t);
  detach_easy(t, false);
  if (!slot_released) release_slot(t, now_us());
  leave_queue(t);
  if (t->rate_reserved) {  // never sent: the budget goes back
    t->client->limiter->cancel(t->rate);
    t->rate_reserved = false;
  }
  t->give_up_probe();
  t->complete(status, error);
  std::lock_guard<std::mutex> lock(mu_);
  load_.store(--live_, std::memory_order_relaxed);
}

void Shard::check_timers() {
  if (!next_timer_us_) return;
  int64_t now = now_us();
  if (now < next_timer_us_) return;
  struct Due {
    Transfer *t;
    Timer what;
  };
  std::vector<Due> due;
  int64_t next = 0;
  auto at = [&](Transfer *t, int64_t deadline, Timer what) {
    if (now >= deadline) {
      due.push_back({t, what});
      return true;
    }
    next = min_deadline(next, deadline);
    return false;
  };
  for (Transfer *t = owned_; t; t = t->held_next) {
    const RequestSpec &spec = t->spec;
    const int64_t first_byte_ms = spec.first_byte_timeout_ms;
    if (t->retry_at_us) {
      at(t, t->retry_at_us, Timer::kRetry);
      continue;
    }
    if (t->rate_wait_until_us) {
      at(t, t->rate_wait_until_us, Timer::kRateTurn);
      continue;
    }
    if (t->queued_since_us) {
      if (at(t, t->pool_deadline_us, Timer::kPool)) continue;
      Origin &o = *t->origin;
      int64_t opener_due = 0;
      {
        std::lock_guard<std::mutex> lock(o.mu);
        if (o.openers > 0) opener_due = o.last_opener_us + opener_grace_us(o);
      }
      if (opener_due) at(t, opener_due, Timer::kOpenerLate);
      continue;
    }
    if (!t->easy) continue;
    // libesp's own total deadline: libcurl's may overrun (HTTP/2 waits).
    if (t->deadline_us != kNever && at(t, t->deadline_us, Timer::kTotal)) continue;
    const bool paused = t->user_paused || t->reader_paused;
    if (spec.write_timeout_ms > 0 && t->sent_us && !t->upload_done_us &&
        at(t, std::max(t->sent_us, t->upload_progress_us) + spec.write_timeout_ms * 1000, Timer::kWrite))
      continue;
    if (spec.read_timeout_ms > 0 && !paused) {
      // From the end of the body on (or the send, without a body watcher).
      int64_t since = t->last_byte_us ? t->last_byte_us : t->upload_done_us ? t->upload_done_us : 0;
      if (since && at(t, since + spec.read_timeout_ms * 1000, Timer::kRead)) continue;
      if (!since) next = min_deadline(next, now + spec.read_timeout_ms * 1000);
    }
    if (!t->first_byte_us && first_byte_ms > 0) {
      at(t, t->attempt_start_us + first_byte_ms * 1000, Timer::kFirstByte);
    } else if (t->first_byte_us && spec.idle_timeout_ms > 0 && !paused) {
      at(t, t->last_byte_us + spec.idle_timeout_ms * 1000, Timer::kIdle);
    } else if (spec.idle_timeout_ms > 0) {
      next = min_deadline(next, now + spec.idle_timeout_ms * 1000);
    }
  }
  next_timer_us_ = next;
  for (const Due &d : due)
    if (!d.t->finished) fire_timer(d.t, d.what);
}

void Shard::fire_timer(Transfer *t, Timer what) {
  const RequestSpec &spec = t->spec;
  switch (what) {
    case Timer::kRetry:
    case Timer::kRateTurn: {
      (what == Timer::kRetry ? t->retry_at_us : t->rate_wait_until_us) = 0;
      const std::shared_ptr<Transfer> self = t->held;
      admit(self, now_us());
      break;
    }
    case Timer::kOpenerLate:
      pump(*t->origin);  // the first waiter may open a connection of its own
      break;
    case Timer::kPool:
      t->timeout_kind = TimeoutKind::kPool;
      finish(t, ESP_EPOOLTIMEOUT, pool_timeout_message(*t));
      break;
    case Timer::kTotal:
      attempt_done(t, CURLE_OPERATION_TIMEDOUT, TimeoutKind::kTotal,
                   "total timeout: the request took longer than " + std::to_string(spec.timeout_ms) + " ms");
      break;
    case Timer::kFirstByte:
      attempt_done(t, CURLE_OPERATION_TIMEDOUT, TimeoutKind::kFirstByte,
                   "first-byte timeout: no response within first_byte_timeout_ms (" +
                       std::to_string(spec.first_byte_timeout_ms) + " ms)");
      break;
    case Timer::kIdle:
      attempt_done(t, CURLE_OPERATION_TIMEDOUT, TimeoutKind::kIdle,
                   "idle timeout: no data for idle_timeout_ms (" + std::to_string(spec.idle_timeout_ms) +
                       " ms) inside the response");
      break;
    case Timer::kRead:
      attempt_done(t, CURLE_OPERATION_TIMEDOUT, TimeoutKind::kRead,
                   "read timeout: no response data for " + std::to_string(spec.read_timeout_ms) + " ms");
      break;
    case Timer::kWrite:
      attempt_done(t, CURLE_OPERATION_TIMEDOUT, TimeoutKind::kWrite,
                   "write timeout: the request body stalled for " + std::to_string(spec.write_timeout_ms) + " ms");
      break;
  }
}

std::string Shard::pool_timeout_message(const Transfer &t) const {
  Origin &o = *t.origin;
  std::lock_guard<std::mutex> lock(o.mu);
  const int64_t waited_ms = (t.pool_deadline_us - t.queued_since_us) / 1000;
  if (o.openers > 0 && o.active < t.client->config.max_connections * kStreamsPerConnection)
    return "pool timeout: waited " + std::to_string(waited_ms) + " ms for a new HTTP/2 connection to " + o.label +
           " that is still being opened (" + std::to_string(o.sockets_open.load()) + " open, max_connections " +
           std::to_string(t.client->config.max_connections) + ")";
  return "pool timeout: no connection slot to " + o.label + " within " + std::to_string(waited_ms) + " ms (" +
         std::to_string(o.active) + " requests in flight, max_connections " +
         std::to_string(t.client->config.max_connections) + ")";
}

// ---- connection idle age ---------------------------------------------------------------

void Shard::connection_in_use(Transfer &t, int local_port) {
  auto known = conn_by_port_.find(local_port);
  if (known == conn_by_port_.end()) {
    // A connection new since the last lookup: learn the ports not known yet.
    for (auto &kv : conn_use_) {
      ConnUse &c = kv.second;
      if (c.local_port) continue;
      struct sockaddr_storage ss;
      socklen_t len = sizeof ss;
      if (::getsockname(kv.first, reinterpret_cast<struct sockaddr *>(&ss), &len) != 0) continue;
      c.local_port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<struct sockaddr_in6 *>(&ss)->sin6_port)
                                              : ntohs(reinterpret_cast<struct sockaddr_in *>(&ss)->sin_port);
      conn_by_port_[c.local_port] = kv.first;
    }
    known = conn_by_port_.find(local_port);
    if (known == conn_by_port_.end()) return;
  }
  auto it = conn_use_.find(known->second);
  if (it == conn_use_.end() || it->second.local_port != local_port) {
    conn_by_port_.erase(known);  // that socket is gone; its number may be a newer connection's
    return connection_in_use(t, local_port);
  }
  ConnUse &c = it->second;
  if (!c.used) --unused_conns_;
  c.used = true;
  ++c.users;
  c.idle_since_us = 0;
  t.conn_fd = it->first;
  t.conn_serial = c.serial;
}

void Shard::connection_released(Transfer *t) {
  if (t->conn_fd < 0) return;
  auto it = conn_use_.find(t->conn_fd);
  t->conn_fd = -1;
  // Closed already (its number may be a newer connection's by now).
  if (it == conn_use_.end() || it->second.serial != t->conn_serial) return;
  if (--it->second.users > 0) return;
  it->second.idle_since_us = now_us();
  it->second.max_idle_us = t->client->config.conn_max_idle_ms * 1000;
  next_idle_expiry_us_ = min_deadline(next_idle_expiry_us_, it->second.idle_since_us + it->second.max_idle_us);
}

void Shard::retire_idle_connections(int64_t now) {
  if (!next_idle_expiry_us_ || now <= next_idle_expiry_us_) return;
  int64_t next = 0;
  for (auto &kv : conn_use_) {
    ConnUse &c = kv.second;
    if (c.users > 0 || !c.idle_since_us) continue;
    int64_t expiry = c.idle_since_us + c.max_idle_us;
    if (now > expiry) {
      // libcurl finds the connection dead when it next looks at it and
      // closes it instead of sending on it.
      ::shutdown(kv.first, SHUT_RDWR);
      c.idle_since_us = 0;
    } else {
      next = min_deadline(next, expiry);
    }
  }
  next_idle_expiry_us_ = next;
}

void Shard::forget_unused_closed_connections() {
  if (!unused_conns_) return;  // the usual case: no walk over every connection per request
  for (auto it = conn_use_.begin(); it != conn_use_.end();) {
    if (!it->second.used && !sockets_.still_open(it->first)) {
      --unused_conns_;
      it = conn_use_.erase(it);
    } else {
      ++it;
    }
  }
}

// ---- readiness: what libcurl wants watched ---------------------------------------------

int Shard::on_socket(CURL *, curl_socket_t fd, int what, void *engine, void *) {
  Shard &e = *static_cast<Shard *>(engine);
  auto it = e.watched_.find(fd);
  if (what == CURL_POLL_REMOVE) {
    if (it == e.watched_.end()) return 0;
    // Kept for the next transfer on this connection (see Watch); never a
    // socket that is writable all the time, nor one closed behind our back.
    auto use = e.conn_use_.find(fd);
    if ((it->second.events & EPOLLOUT) || use == e.conn_use_.end() || !use->second.used)
      e.unwatch(fd);
    else
      it->second.wanted = false;
    return 0;
  }
  const uint32_t events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  // Only a socket kept since libcurl's REMOVE is known to be registered:
  // one still wanted and announced again was closed unseen and its number
  // reused (libcurl closes some connects without a word), so it is set anew.
  if (it != e.watched_.end() && !it->second.wanted && it->second.events == events) {
    it->second.wanted = true;
    return 0;
  }
  struct epoll_event ev {};
  ev.events = events;
  ev.data.fd = fd;
  int op = it == e.watched_.end() ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  int rc = ::epoll_ctl(e.epoll_fd_, op, fd, &ev);
  if (rc != 0 && (errno == EEXIST || errno == ENOENT))
    rc = ::epoll_ctl(e.epoll_fd_, errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
  if (rc != 0) {
    // The transfer on it then ends by its timeouts; libcurl gives up the
    // whole multi on a callback error, so none is returned.
    log_event(ESP_LOG_WARN, "epoll_ctl_failed", {{"errno", std::to_string(errno)}});
    if (it != e.watched_.end()) e.watched_.erase(it);
    return 0;
  }
  e.watched_[fd] = Watch{events, true};
  return 0;
}

int Shard::on_timer(CURLM *, long timeout_ms, void *engine) {
  static_cast<Shard *>(engine)->curl_timer_us_ =
      timeout_ms < 0 ? 0 : timeout_ms == 0 ? kCurlTimerNow : now_us() + timeout_ms * 1000;
  return 0;
}

void Shard::socket_ready(curl_socket_t fd, uint32_t events) {
  auto it = watched_.find(fd);
  if (it == watched_.end()) return;  // taken out by an earlier event of this round
  if (!it->second.wanted) {
    unwatch(fd);  // an idle connection closed or spoke: libcurl looks at it on reuse
    return;
  }
  int mask = 0;
  if (events & (EPOLLIN | EPOLLHUP)) mask |= CURL_CSELECT_IN;
  if (events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
  if (events & EPOLLERR) mask |= CURL_CSELECT_ERR;
  int running = 0;
  curl_multi_socket_action(multi_, fd, mask, &running);
}

void Shard::unwatch(curl_socket_t fd) {
  if (watched_.erase(fd)) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

// ---- sockets ------------------------------------------------------------------------

Shard::SocketOwner *Shard::socket_owner(Origin *o) {
  std::unique_ptr<SocketOwner> &owner = socket_owners_[o];
  if (!owner) owner.reset(new SocketOwner{this, o});
  return owner.get();
}

curl_socket_t Shard::open_socket(void *clientp, curlsocktype, struct curl_sockaddr *addr) {
  auto *owner = static_cast<SocketOwner *>(clientp);
  Origin *o = owner->origin;
  curl_socket_t fd = ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
  if (fd == CURL_SOCKET_BAD) return fd;
  Shard *e = owner->shard;
  e->sockets_.opened(fd, *o);
  ConnUse &use = e->conn_use_[fd];  // an entry of this number left by a close unseen is replaced
  if (use.serial == 0 || use.used) ++e->unused_conns_;
  use = ConnUse{++e->conn_serial_};
  e->watched_.erase(fd);  // a socket of this number closed unseen: not this one's registration
  // Never log inside the ledger's lock: fork() takes it, and a logger may
  // need a lock of the forking thread (Python's GIL).
  if (log_enabled(ESP_LOG_DEBUG)) log_event(ESP_LOG_DEBUG, "connection_opened", {{"origin", o->label}});
  return fd;
}

int Shard::close_socket(void *clientp, curl_socket_t fd) {
  auto *owner = static_cast<SocketOwner *>(clientp);
  Origin *o = owner->origin;
  Shard *e = owner->shard;
  e->unwatch(fd);  // before the number can be reused (a forked child may still hold it open)
  auto use = e->conn_use_.find(fd);
  if (use != e->conn_use_.end()) {
    auto port = e->conn_by_port_.find(use->second.local_port);
    if (port != e->conn_by_port_.end() && port->second == fd) e->conn_by_port_.erase(port);
    if (!use->second.used) --e->unused_conns_;
    e->conn_use_.erase(use);
  }
  e->sockets_.closed(fd, e->aborting_);
  if (log_enabled(ESP_LOG_DEBUG)) log_event(ESP_LOG_DEBUG, "connection_closed", {{"origin", o->label}});
  return ::close(fd);
}

void Shard::close_inherited_sockets() {
  sockets_.close_inherited_locked();
  // The epoll set is the parent's too: closing the child's descriptor leaves it alone.
  for (int *fd : {&epoll_fd_, &wake_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

}  // namespace esp
