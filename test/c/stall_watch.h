// How late this machine wakes a sleeping thread while a timing check runs, so
// that the check bounds libesp's own lateness and not the load of other work.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

// A thread that sleeps 2 ms at a time while the watch lives and keeps the
// worst overshoot. libesp's timers are woken by the same scheduler: a timeout
// that fired X ms late while the machine stalled sleepers by X ms is the
// machine's, not libesp's. On a quiet machine the worst is about 0 and a check
// keeps its tight slack; under load (2 shared cores, other suites running) the
// slack grows by exactly what the scheduler took, and no more.
class StallWatch {
 public:
  StallWatch() : thread_([this] { watch(); }) {}
  ~StallWatch() { stop(); }
  StallWatch(const StallWatch &) = delete;
  StallWatch &operator=(const StallWatch &) = delete;

  // The worst overshoot seen (whole ms, rounded up); stops the watch.
  int64_t worst_ms() {
    stop();
    return (worst_us_ + 999) / 1000;
  }

 private:
  void watch() {
    constexpr auto kTick = std::chrono::milliseconds(2);
    while (!done_.load()) {
      const auto t0 = std::chrono::steady_clock::now();
      std::this_thread::sleep_for(kTick);
      const auto late = std::chrono::steady_clock::now() - t0 - kTick;
      worst_us_ = std::max<int64_t>(worst_us_, std::chrono::duration_cast<std::chrono::microseconds>(late).count());
    }
  }
  void stop() {
    if (!thread_.joinable()) return;
    done_ = true;
    thread_.join();
  }

  std::atomic<bool> done_{false};
  int64_t worst_us_ = 0;  // written by the watching thread until it is joined
  std::thread thread_;
};
