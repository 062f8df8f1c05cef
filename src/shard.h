// One shard of an engine (engine.h): one curl multi handle driven by
// readiness (epoll and curl_multi_socket_action, so a wake-up costs the
// sockets that are ready, not every transfer), timers, and the thread that
// drives it all. Its transfers take slots from origins shared with the
// engine's other shards (origin.h).
//
// Exactly one thread drives the multi at a time (drive_mu_). Normally that
// is the shard's I/O thread. A synchronous request made while the engine
// has nothing else to do is driven by its calling thread instead (no thread
// hop, which costs about 40 % of sequential throughput); as soon as anything
// else arrives, the caller hands the multi back to the I/O thread. User
// callbacks therefore only ever run on the I/O thread.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "metrics.h"
#include "origin.h"
#include "sockets.h"
#include "transfer.h"

namespace esp {

class Shard final : public ConnectionWatcher {
 public:
  explicit Shard(int index);
  ~Shard();  // stop()
  Shard(const Shard &) = delete;
  Shard &operator=(const Shard &) = delete;

  // Completes everything in flight with ESP_ESHUTDOWN, ends the I/O thread
  // and closes every connection. False when the thread did not end within
  // timeout_ms (< 0: no limit): then the engine must be leaked, not destroyed.
  bool stop(int64_t timeout_ms = -1);

  // Blocks until t completes (its sink has been called).
  void run_sync(const std::shared_ptr<Transfer> &t);
  // Returns at once; t's sink is called later on the I/O thread.
  void submit(const std::shared_ptr<Transfer> &t);
  void cancel(const std::shared_ptr<Transfer> &t);
  void set_paused(const std::shared_ptr<Transfer> &t, bool paused);
  // Another shard's driver granted t (waiting here) a slot it freed.
  void slot_granted(const std::shared_ptr<Transfer> &t);

  int index() const { return index_; }
  // Transfers submitted here and not completed (a hint for placement).
  size_t load() const { return load_.load(std::memory_order_relaxed); }
  // Nothing in flight and nobody driving: a sync request may drive it itself.
  bool idle() const { return load() == 0; }
  int64_t sockets_open() const { return sockets_.open(); }

  // In a forked child: close the inherited sockets without a word on them
  // (no TLS close_notify on the parent's connections).
  void close_inherited_sockets();
  // A child never inherits a shard half started.
  void lock_for_fork() {
    start_mu_.lock();
    sockets_.lock();
  }
  void unlock_after_fork() {
    sockets_.unlock();
    start_mu_.unlock();
  }

  // An opener's connection is up: its origin may admit more (driver only).
  void connection_ready(Transfer &t) override;
  // t's request is about to go out on the connection with this local
  // address: it is busy, not idle (driver only, from the pre-request callback).
  void connection_in_use(Transfer &t, int local_port) override;

  // True on any engine's I/O thread: blocking calls are refused there.
  static bool on_io_thread();
  // The shard whose I/O thread this is (nullptr on any other thread).
  static const Shard *current();

 private:
  struct Command {
    // kGranted: a slot another shard freed; kAdopt: a transfer another
    // shard hands over with its slot, to run here; kAdoptStart: one handed
    // over to start here (an HTTP/2 origin's home shard).
    enum Kind { kSubmit, kCancel, kPause, kResume, kGranted, kAdopt, kAdoptStart } kind;
    std::shared_ptr<Transfer> transfer;
  };

  // Creates the multi, its epoll set and eventfd, and the I/O thread, on
  // the shard's first use. False once stopping; throws when out of
  // resources.
  bool ensure_started();
  void io_loop();
  // False (and nothing queued) once the shard is stopping, or it could not start.
  bool post(Command cmd);
  // Hands t (owned here) over to shard `to`: kAdopt or kAdoptStart there.
  // Completes it with ESP_ESHUTDOWN when `to` is stopping.
  void hand_over(Transfer *t, Shard &to, Command::Kind kind);
  void adopt(const std::shared_ptr<Transfer> &t, Command::Kind kind);
  // t holds its slot: runs the attempt here, or on the shard of its token.
  // `now`: the caller's clock reading of this same step (one read, not one per call).
  void run_admitted(const std::shared_ptr<Transfer> &t, int64_t now);
  // A command was queued (under mu_): wakes a driver in epoll_wait now;
  // true when an idle I/O thread must be notified, which the caller does
  // with notify_idle_driver once it has released mu_.
  bool wake_driver_locked();
  void notify_idle_driver(bool needed);
  // Interrupts the driver's epoll_wait (any thread).
  void wake();
  // One round of driving: commands, wait for ready sockets or a timer, hand
  // them to libcurl, completions, timers. `leader` is the transfer of a
  // calling thread driving for itself.
  void drive_once(Transfer *leader);
  // libcurl says which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
  // to call it next without a socket event (CURLMOPT_TIMERFUNCTION).
  static int on_socket(CURL *, curl_socket_t fd, int what, void *engine, void *);
  static int on_timer(CURLM *, long timeout_ms, void *engine);
  void socket_ready(curl_socket_t fd, uint32_t events);
  // Runs libcurl's timer if it is due.
  void run_curl_timer();
  // Ends the attempts libcurl reports done; true when there was one.
  bool collect_done();
  void unwatch(curl_socket_t fd);
  void handle_commands(std::deque<Command> &cmds);
  // The engine drives t from now until finish (idempotent).
  void own(const std::shared_ptr<Transfer> &t);
  void start(const std::shared_ptr<Transfer> &t);
  // Passes t through its credential's rate limit (ratelimit.h), then try_slot.
  void admit(const std::shared_ptr<Transfer> &t, int64_t now);
  void try_slot(const std::shared_ptr<Transfer> &t, int64_t now);
  void launch_attempt(const std::shared_ptr<Transfer> &t, int64_t now);
  void attempt_done(Transfer *t, CURLcode code, TimeoutKind kind, const std::string &why);
  void release_slot(Transfer *t, int64_t now);
  // Ends t's wait for a slot in the accounting (admitted or finished).
  void leave_queue(Transfer *t);
  // Admits waiting transfers (on every shard) while the origin has room.
  void pump(Origin &o);
  // Runs the transfers granted here, tells their shards about the others.
  void dispatch_granted(std::vector<std::shared_ptr<Transfer>> &granted);
  // Takes t out of the transfers it drives, returning its reference.
  std::shared_ptr<Transfer> disown(Transfer *t);
  // The shard of this engine with this index.
  Shard &sibling(int index) const;
  // Takes t's handle out of the multi, back to the pool.
  void detach_easy(Transfer *t, bool completed_ok);
  // slot_released: the caller gave t's slot back already (an attempt's end), so no second
  // pass under the origin's lock; no other shard writes t's slot fields once it is not waiting.
  void finish(Transfer *t, int status, const std::string &error, bool slot_released = false);
  void breaker_record(Transfer *t, bool failure, int64_t now);
  // Finds the transfers whose timer is due, then fires each (fire_timer):
  // firing may finish transfers, so it never runs inside the scan.
  void check_timers();
  enum class Timer { kRetry, kRateTurn, kPool, kOpenerLate, kTotal, kFirstByte, kIdle, kRead, kWrite };
  void fire_timer(Transfer *t, Timer what);
  std::string pool_timeout_message(const Transfer &t) const;
  long poll_timeout_ms();
  // libcurl's timer has come (CURL_SOCKET_TIMEOUT is to run now).
  bool curl_timer_due() const;
  // A pooled easy handle, preferably one last set up for this client.
  EasySlot *take_easy(uint64_t client_id);
  // Back to the pool; `reset`: with every option cleared.
  void return_easy(EasySlot *slot, bool reset);

  // The connection t ran on is idle from now (t's attempt ended).
  void connection_released(Transfer *t);
  // Closes the connections idle for longer than their client's
  // conn_max_idle_ms before libcurl can pick one for a new transfer.
  void retire_idle_connections(int64_t now);
  // Forgets the connections libcurl closed before they were ever used
  // without telling (see sockets.h): a connect abandoned midway.
  void forget_unused_closed_connections();

  // What libcurl's socket callbacks get: this shard and the origin.
  struct SocketOwner {
    Shard *shard;
    Origin *origin;
  };
  SocketOwner *socket_owner(Origin *o);
  static curl_socket_t open_socket(void *owner, curlsocktype purpose, struct curl_sockaddr *addr);
  static int close_socket(void *owner, curl_socket_t fd);

 public:
  // The engine's shards, indexed (set once by the engine, before any transfer).
  std::vector<Shard *> siblings;

 private:
  const int index_;
  std::mutex start_mu_;  // taken before mu_; held by ensure_started, stop and fork
  std::atomic<bool> started_{false};
  std::atomic<size_t> load_{0};  // live_, readable without mu_
  std::unordered_map<Origin *, std::unique_ptr<SocketOwner>> socket_owners_;  // driver only

  CURLM *multi_ = nullptr;
  CURLSH *share_ = nullptr;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd in the epoll set: commands and stop()
  // Sockets in the epoll set (driver only). A connection libcurl stops
  // watching between two transfers stays registered for reading, unwanted,
  // so that keep-alive reuse costs no epoll_ctl; an event on it while
  // unwanted takes it out. Only connections that carried a request
  // (ConnUse::used) stay: libcurl closes those through close_socket, while it
  // may close a connect that ran out of time, or its resolver's sockets, unseen.
  struct Watch {
    uint32_t events;
    bool wanted;
  };
  std::unordered_map<curl_socket_t, Watch> watched_;
  int64_t curl_timer_us_ = 0;  // when libcurl wants CURL_SOCKET_TIMEOUT (driver only), 0: never
  // libcurl's most frequent wish, "at once" (a handle just added, a stream with data to
  // read): due without reading the clock, which costs ~25 ns a read on a VM.
  static constexpr int64_t kCurlTimerNow = 1;
  std::vector<std::unique_ptr<EasySlot>> slots_;  // every easy handle made (driver only)
  std::vector<EasySlot *> idle_easies_;           // those not running an attempt

  std::mutex mu_;  // guards the fields up to drive_mu_
  std::condition_variable io_cv_;
  std::deque<Command> commands_;
  size_t live_ = 0;  // transfers submitted and not yet completed
  bool io_driving_ = false;
  // The eventfd was written for commands the driver has not taken yet: a
  // further command needs no write of its own (the driver takes the whole
  // queue before it waits again).
  bool wake_pending_ = false;
  bool leader_driving_ = false;
  bool stopping_ = false;
  bool io_exited_ = false;
  std::condition_variable io_exited_cv_;

  std::mutex drive_mu_;  // held by the thread driving the multi
  bool aborting_ = false;  // driver only: a transfer is being stopped midway
  // The transfers it drives, linked through Transfer::held_prev/next (driver only).
  Transfer *owned_ = nullptr;
  int64_t next_timer_us_ = 0;  // earliest deadline among the owned transfers, 0: none
  std::vector<Origin *> to_pump_;  // origins whose capacity grew inside a libcurl callback

  // Connections by socket, for the idle-age rule (driver only).
  struct ConnUse {
    uint64_t serial = 0;       // tells a reused descriptor number from the connection before
    int local_port = 0;        // 0 until looked up
    int users = 0;             // attempts running on it
    bool used = false;         // a request went out on it
    int64_t idle_since_us = 0; // when the last one ended
    int64_t max_idle_us = 0;   // conn_max_idle_ms of the client that used it last
  };
  std::unordered_map<curl_socket_t, ConnUse> conn_use_;
  // Local port -> socket of the connections whose port is known, so that a
  // request finds its connection without a scan of every one (driver only).
  std::unordered_map<int, curl_socket_t> conn_by_port_;
  // Entries of conn_use_ that no request used yet: only while there are some
  // may one have been closed unseen (forget_unused_closed_connections).
  size_t unused_conns_ = 0;
  int64_t next_idle_expiry_us_ = 0;  // 0: no idle connection tracked
  uint64_t conn_serial_ = 0;

  SocketLedger sockets_;

  std::mutex join_mu_;
  std::thread io_;
};

}  // namespace esp
