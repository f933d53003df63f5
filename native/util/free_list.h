// Storage whose entries are reused: an index for a new entry is one given back earlier, or a new
// default-constructed entry at the end. The caller pushes an index onto `free` when its entry goes.
#pragma once

#include <cstdint>
#include <vector>

namespace volley {

template <typename T, typename Allocator>
uint32_t TakeFreeIndex(std::vector<uint32_t>& free, std::vector<T, Allocator>& items) {
  if (free.empty()) {
    items.emplace_back();
    return static_cast<uint32_t>(items.size() - 1);
  }
  const uint32_t index = free.back();
  free.pop_back();
  return index;
}

}  // namespace volley
