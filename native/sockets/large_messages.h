// Messages too large for a receive slab (above kLargeMessageBytes), handed from the I/O thread to
// JavaScript: the I/O thread parks the bytes here and puts a small record with their id in the slab;
// JavaScript takes them (one native call per large message) as an ArrayBuffer that owns them.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace volley {

// Delivered messages above this size take the large path; below, they are records in a slab.
constexpr size_t kLargeMessageBytes = 64 * 1024;

class LargeMessages {
 public:
  uint32_t Park(std::vector<uint8_t> bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    const uint32_t id = nextId_++;
    bytes_.fetch_add(bytes.size(), std::memory_order_seq_cst);
    parked_.emplace(id, std::move(bytes));
    return id;
  }
  // False when there is no such message (taken already, or never parked).
  bool Take(uint32_t id, std::vector<uint8_t>* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = parked_.find(id);
    if (found == parked_.end()) return false;
    *out = std::move(found->second);
    parked_.erase(found);
    bytes_.fetch_sub(out->size(), std::memory_order_seq_cst);
    return true;
  }
  // The bytes parked and not taken yet (sequentially consistent: see Engine::ReceiveRound).
  uint64_t bytes() const { return bytes_.load(std::memory_order_seq_cst); }

 private:
  std::mutex mutex_;
  std::unordered_map<uint32_t, std::vector<uint8_t>> parked_;
  uint32_t nextId_ = 1;
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace volley
