// An allocator that wipes memory before giving it back, for containers of keys: when such a container grows,
// the buffer it leaves would otherwise keep copies of every key it held.
#pragma once

#include <sodium.h>

#include <cstddef>
#include <memory>

namespace volley::netcode {

template <typename T>
struct WipingAllocator {
  using value_type = T;

  WipingAllocator() = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT: converting, as allocators are

  T* allocate(size_t count) { return std::allocator<T>().allocate(count); }
  void deallocate(T* items, size_t count) noexcept {
    sodium_memzero(items, count * sizeof(T));
    std::allocator<T>().deallocate(items, count);
  }

  template <typename U>
  bool operator==(const WipingAllocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const WipingAllocator<U>&) const noexcept { return false; }
};

}  // namespace volley::netcode
