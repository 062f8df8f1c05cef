// The items a pulled stream holds for its reader, in arrival order: a ring
// that keeps its slots, so a paced stream (one item in, one out) allocates
// nothing per event and holds two slots, not a deque's 512-byte block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "esp.h"

namespace esp {

struct StreamItem {
  int kind = ESP_ITEM_CHUNK;
  std::string event;
  std::string data;  // event data, or the chunk
  std::string id;
  int64_t retry_ms = -1;
};

// A std::deque allocated a 512-byte block every four items and freed it on
// the reader's thread (malloc's arena lock then contended between the I/O
// thread and the reader), and kept one block per live stream.
class StreamItems {
 public:
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }

  void push_back(StreamItem &&item) {
    if (count_ == slots_.size()) grow();
    slots_[(head_ + count_) % slots_.size()] = std::move(item);
    ++count_;
  }

  StreamItem &front() { return slots_[head_]; }

  // A ring a burst grew past kKeptSlots goes once drained, as a deque's
  // blocks would.
  void pop_front() {
    head_ = (head_ + 1) % slots_.size();
    if (--count_ == 0 && slots_.size() > kKeptSlots) clear();
  }

  void clear() {
    std::vector<StreamItem>().swap(slots_);
    head_ = count_ = 0;
  }

 private:
  static constexpr size_t kKeptSlots = 16;

  void grow() {
    std::vector<StreamItem> bigger(slots_.empty() ? 2 : slots_.size() * 2);
    for (size_t i = 0; i < count_; ++i) bigger[i] = std::move(slots_[(head_ + i) % slots_.size()]);
    slots_.swap(bigger);
    head_ = 0;
  }

  std::vector<StreamItem> slots_;
  size_t head_ = 0;   // the oldest item's slot
  size_t count_ = 0;  // items from head_ on, wrapping
};

}  // namespace esp
