// Work an I/O thread puts off until it has served every socket ready in its
// current round (Shard::drive_once): a stream's ready callback. Run at once,
// one per event, the callbacks woke the reader's thread (a Go netpoller, a
// tokio worker, a C reader) once per event even when one round carried
// several events, and on 2 cores each wake-up is a context switch and often
// an IPI; put off to the round's end, they arrive together and one wake-up
// serves them all.
#pragma once

#include <memory>

namespace esp {

class RoundTask {
 public:
  virtual void at_round_end() = 0;

 protected:
  ~RoundTask() = default;
};

// Queues task->at_round_end() for the end of this thread's current round and
// returns true; false (nothing queued) when the thread is in no round.
bool defer_to_round_end(std::shared_ptr<RoundTask> task);

// A round on this thread, for as long as it lives; when the outermost one
// ends, the tasks put off meanwhile run, in the order they came.
class Round {
 public:
  Round();
  ~Round();
  Round(const Round &) = delete;
  Round &operator=(const Round &) = delete;
};

}  // namespace esp
