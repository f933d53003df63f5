// The reassembly memory the connections of one server may hold between them. Each message a connection
// starts takes its cost (DeliveryCore::HeldCost, the per-connection bound's own count) until it is
// delivered or dropped, and each reliable queue slot past a channel's first ones takes its size. A take
// that does not fit makes room by evicting the stalest connection (the one whose last new fragment is the
// oldest) if it has been idle long enough, and so on; failing that it is refused, as the per-connection
// bound refuses (reliable data comes again, unreliable data is dropped). Idle means the peer stopped sending
// what it started: once started, a message's fragments are never refused for memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace volley::delivery {

class DeliveryCore;

class ReassemblyBudget {
 public:
  explicit ReassemblyBudget(uint64_t limitBytes) : limit_(limitBytes) {}
  ReassemblyBudget(const ReassemblyBudget&) = delete;
  ReassemblyBudget& operator=(const ReassemblyBudget&) = delete;

  uint64_t limit() const { return limit_; }
  uint64_t used() const { return used_; }
  uint64_t evictions() const { return evictions_; }  // connections evicted to make room
  uint64_t refusals() const { return refusals_; }    // takes refused for want of room

  // Takes `bytes` for `core`, evicting idle connections (other than it) if need be; false when they do not fit.
  bool Take(DeliveryCore& core, uint64_t bytes, uint64_t nowUs);
  void Give(DeliveryCore& core, uint64_t bytes);
  // A new fragment stored by `core`: it moves to the back of the eviction order.
  void Progress(DeliveryCore& core, uint64_t nowUs);
  // A connection an eviction stalled (DeliveryCore::stalled()) during another's call, oldest first; nullptr
  // when none is left. Its owner is to end it (DeliveryCore::connection() names it).
  DeliveryCore* PollStalled();
  // `core` goes: it is no longer given back by PollStalled.
  void Forget(DeliveryCore& core);

 private:
  void Append(DeliveryCore& core);
  void Unlink(DeliveryCore& core);

  uint64_t limit_;
  uint64_t used_ = 0;
  uint64_t evictions_ = 0;
  uint64_t refusals_ = 0;
  // The connections holding some of the budget, the stalest first (an intrusive list through the cores).
  DeliveryCore* head_ = nullptr;
  DeliveryCore* tail_ = nullptr;
  std::vector<DeliveryCore*> stalled_;  // not yet polled (at most one entry a connection: it stalls once)
  size_t stalledNext_ = 0;
};

}  // namespace volley::delivery
