// An engine: the shards (shard.h, an I/O thread each) that carry the
// transfers of the clients sharing it, and the origins those shards share,
// so that one pool limit, queue and breaker per origin hold across them.
// Callers see one engine; it places each transfer on a shard.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "origin.h"
#include "shard.h"

namespace esp {

class Transfer;

class Engine {
 public:
  // ESP_IO_THREADS shards (1..16), else one per online core, at most 4.
  Engine();
  ~Engine();  // stop()
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  // Every shard completes what it has with ESP_ESHUTDOWN and ends its
  // thread. False when one did not end within timeout_ms (< 0: no limit):
  // then the engine must be leaked, not destroyed.
  bool stop(int64_t timeout_ms = -1);

  // Blocks until t completes (its sink has been called).
  void run_sync(const std::shared_ptr<Transfer> &t);
  // Returns at once; t's sink is called later on an I/O thread.
  void submit(const std::shared_ptr<Transfer> &t);
  void cancel(const std::shared_ptr<Transfer> &t);
  void set_paused(const std::shared_ptr<Transfer> &t, bool paused);

  Origin *origin(const std::string &key, const std::string &label);
  // Calls fn(origin) for each origin, under the origins lock.
  template <class Fn>
  void for_each_origin(Fn fn) {
    std::lock_guard<std::mutex> lock(origins_mu_);
    for (auto &kv : origins_) fn(*kv.second);
  }
  int64_t sockets_open() const;
  size_t shard_count() const { return shards_.size(); }

  // fork(): see Shard.
  void close_inherited_sockets();
  void lock_for_fork();
  void unlock_after_fork();

  // True on any engine's I/O thread: blocking calls are refused there.
  static bool on_io_thread() { return Shard::on_io_thread(); }

 private:
  // The shard t starts on: its origin's home shard for shared (HTTP/2)
  // connections and for rate-limited clients; else one with an idle connection to the origin, then
  // (sync) one with nothing to do, then the least busy.
  Shard &place(Transfer &t, bool sync);

  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint64_t> tickets_{0};
  std::mutex origins_mu_;
  std::map<std::string, std::unique_ptr<Origin>> origins_;
};

}  // namespace esp
