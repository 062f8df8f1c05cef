// Integer handles for objects crossing the ABI: slot + generation + kind tag,
// so a released, stale, forged or wrong-kind handle is detected, never
// dereferenced. 0 is never a valid handle.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace esp {

// Handle layout: kind (8 bits) | generation (24 bits) | slot index + 1 (32 bits).
template <class T>
class HandleTable {
 public:
  explicit HandleTable(uint8_t kind) : kind_(kind) {}

  uint64_t insert(std::shared_ptr<T> obj) {
    std::lock_guard<std::mutex> lock(mu_);
    uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      index = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    Slot &s = slots_[index];
    s.obj = std::move(obj);
    ++live_;
    return handle_of(index);
  }

  std::shared_ptr<T> get(uint64_t handle) const {
    std::lock_guard<std::mutex> lock(mu_);
    const Slot *s = find(handle);
    return s ? s->obj : nullptr;
  }

  // Frees the slot; later uses of the handle fail. Returns the object.
  std::shared_ptr<T> remove(uint64_t handle) {
    std::lock_guard<std::mutex> lock(mu_);
    Slot *s = const_cast<Slot *>(find(handle));
    if (!s) return nullptr;
    std::shared_ptr<T> obj = std::move(s->obj);
    s->obj.reset();
    s->generation = (s->generation + 1) & 0xFFFFFFu;
    if (s->generation == 0) s->generation = 1;
    free_.push_back(static_cast<uint32_t>(s - slots_.data()));
    --live_;
    return obj;
  }

  // Invalidates every handle; returns the objects (for the caller to finish)
  // and, when asked, the handles they had.
  std::vector<std::shared_ptr<T>> clear(std::vector<uint64_t> *handles = nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<T>> out;
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot &s = slots_[i];
      if (!s.obj) continue;
      if (handles) handles->push_back(handle_of(static_cast<uint32_t>(i)));
      out.push_back(std::move(s.obj));
      s.obj.reset();
      s.generation = (s.generation + 1) & 0xFFFFFFu;
      if (s.generation == 0) s.generation = 1;
      free_.push_back(static_cast<uint32_t>(i));
    }
    live_ = 0;
    return out;
  }

  // Held across fork() so the child never inherits a locked table.
  void lock() { mu_.lock(); }
  void unlock() { mu_.unlock(); }

  size_t live() const {
    std::lock_guard<std::mutex> lock(mu_);
    return live_;
  }

 private:
  struct Slot {
    std::shared_ptr<T> obj;
    uint32_t generation = 1;
  };

  uint64_t handle_of(uint32_t index) const {
    return (uint64_t{kind_} << 56) | (uint64_t{slots_[index].generation} << 32) | (uint64_t{index} + 1);
  }

  const Slot *find(uint64_t handle) const {
    if ((handle >> 56) != kind_) return nullptr;
    uint64_t index1 = handle & 0xFFFFFFFFu;
    if (index1 == 0 || index1 > slots_.size()) return nullptr;
    const Slot &s = slots_[index1 - 1];
    if (!s.obj || s.generation != ((handle >> 32) & 0xFFFFFFu)) return nullptr;
    return &s;
  }

  const uint8_t kind_;
  mutable std::mutex mu_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  size_t live_ = 0;
};

}  // namespace esp
