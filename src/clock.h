// The one clock of deadlines, timers and rate limits: microseconds on the
// steady clock, which never jumps when the wall clock is set.
#pragma once

#include <chrono>
#include <cstdint>

namespace esp {

inline int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace esp
