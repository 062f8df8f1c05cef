#include "round.h"

#include <utility>
#include <vector>

namespace esp {

namespace {

struct ThisThread {
  int depth = 0;
  std::vector<std::shared_ptr<RoundTask>> deferred;
  std::vector<std::shared_ptr<RoundTask>> running;  // kept for its capacity
};

thread_local ThisThread this_thread;

}  // namespace

bool defer_to_round_end(std::shared_ptr<RoundTask> task) {
  if (this_thread.depth == 0) return false;
  this_thread.deferred.push_back(std::move(task));
  return true;
}

Round::Round() { ++this_thread.depth; }

Round::~Round() {
  if (--this_thread.depth > 0) return;
  // Outside the round now: a task that defers more is refused and runs it at once.
  this_thread.running.swap(this_thread.deferred);
  for (auto &task : this_thread.running) task->at_round_end();
  this_thread.running.clear();
}

}  // namespace esp
