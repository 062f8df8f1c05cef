// How late this machine ran the test's threads while a timing check ran, so
// that the check bounds libesp's own lateness and not the load of other work.
#pragma once

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

// Two readings of the scheduler, the larger one counts:
// - a thread that sleeps 2 ms at a time keeps its worst overshoot: how late
//   a sleeper is woken (libesp's timers are woken by the same scheduler);
// - the time the process's other threads spent runnable but not running
//   (the run delay of /proc/self/task/*/schedstat). A sleeper that wakes
//   every 2 ms is run at once on wake-up (the scheduler favours it), while a
//   thread with work to do (libcurl's timeout handling, the completion) can
//   wait behind the other processes' time slices: the sleeper alone saw 7 ms
//   while a connect timeout ended 75 ms late.
// On a quiet machine both are about 0 and a check keeps its tight slack;
// under load (2 shared cores, other suites running) the slack grows by what
// the scheduler took, and no more.
class StallWatch {
 public:
  StallWatch() : queued_before_(run_delays()), thread_([this] { watch(); }) {}
  ~StallWatch() { stop(); }
  StallWatch(const StallWatch &) = delete;
  StallWatch &operator=(const StallWatch &) = delete;

  // The worst stall seen (whole ms, rounded up); stops the watch.
  int64_t worst_ms() {
    stop();
    int64_t queued_ns = 0;
    for (const auto &[tid, ns] : run_delays()) {
      if (tid == watcher_tid_) continue;
      auto before = queued_before_.find(tid);
      queued_ns += ns - (before == queued_before_.end() ? 0 : before->second);
    }
    return (std::max(worst_us_, queued_ns / 1000) + 999) / 1000;
  }

 private:
  // Thread id -> nanoseconds it waited on a run queue, for every thread of
  // this process (empty where the kernel keeps no such count).
  static std::map<long, int64_t> run_delays() {
    std::map<long, int64_t> out;
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return out;
    while (const dirent *e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      const std::string path = std::string("/proc/self/task/") + e->d_name + "/schedstat";
      if (FILE *f = std::fopen(path.c_str(), "r")) {
        long long on_cpu = 0, waited = 0;
        if (std::fscanf(f, "%lld %lld", &on_cpu, &waited) == 2) out[std::stol(e->d_name)] = waited;
        std::fclose(f);
      }
    }
    closedir(dir);
    return out;
  }

  void watch() {
    watcher_tid_ = static_cast<long>(::syscall(SYS_gettid));
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

  const std::map<long, int64_t> queued_before_;
  std::atomic<bool> done_{false};
  int64_t worst_us_ = 0;   // written by the watching thread until it is joined
  long watcher_tid_ = -1;  // likewise
  std::thread thread_;
};
