// A queue with indexed access (front to back) in a power-of-two ring. Unlike std::deque, which allocates
// a map and a 512-byte block as it is made, an empty Ring holds no memory: most of a gateway's
// connections are idle, and each has a few of these per channel. It grows by doubling, and gives its
// memory back when a large burst has drained, so that memory follows use.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace volley::delivery {

// Allocator: where its slots live (netcode's WipingAllocator for entries that hold keys).
template <typename T, typename Allocator = std::allocator<T>>
class Ring {
 public:
  static constexpr size_t kFirstCapacity = 4;  // its first allocation; then it doubles

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  size_t capacity() const { return slots_.size(); }
  // The capacity resize(count) leaves.
  size_t CapacityFor(size_t count) const {
    size_t capacity = slots_.size();
    while (capacity < count) capacity = capacity == 0 ? kFirstCapacity : capacity * 2;
    return capacity;
  }
  T& operator[](size_t i) { return slots_[(head_ + i) & (slots_.size() - 1)]; }
  const T& operator[](size_t i) const { return slots_[(head_ + i) & (slots_.size() - 1)]; }
  T& front() { return slots_[head_]; }
  const T& front() const { return slots_[head_]; }
  T& back() { return (*this)[size_ - 1]; }

  void push_back(T&& value) {
    if (size_ == slots_.size()) Grow();
    (*this)[size_] = std::move(value);
    ++size_;
  }

  // Adds default-made entries at the back until there are `count` (never removes any).
  void resize(size_t count) {
    while (size_ < count) push_back(T{});
  }

  // Empties it and gives its memory back.
  void clear() {
    std::vector<T, Allocator>().swap(slots_);
    head_ = 0;
    size_ = 0;
  }

  void pop_front() {
    slots_[head_] = T{};  // what the entry still owned goes now, as with std::deque
    head_ = (head_ + 1) & (slots_.size() - 1);
    if (--size_ == 0 && slots_.size() > kKeptSlots) {
      std::vector<T, Allocator>().swap(slots_);
      head_ = 0;
    }
  }

 private:
  static constexpr size_t kKeptSlots = 1024;  // an empty ring larger than this gives its memory back

  void Grow() {
    std::vector<T, Allocator> grown(CapacityFor(size_ + 1));
    for (size_t i = 0; i < size_; ++i) grown[i] = std::move((*this)[i]);
    slots_.swap(grown);
    head_ = 0;
  }

  std::vector<T, Allocator> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace volley::delivery
