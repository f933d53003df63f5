// A hashed timing wheel for many timers identified by small dense ids (a server's client slots, an
// engine's protocol sockets): scheduling, moving and cancelling a timer cost O(1), and advancing the
// clock costs O(ticks elapsed + timers fired), not O(timers). Time is cut into ticks of tickUs: a timer
// fires in the first Advance() that reaches its due tick (so up to one tick before its exact due time;
// callers that need the exact time check it and schedule again, which costs one more tick at most).
// Timers due further away than one turn of the wheel wait in their bucket for later turns.
#pragma once

#include <cstdint>
#include <vector>

namespace volley {

class TimerWheel {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // bucketBits: the wheel has 2^bucketBits buckets of tickUs each.
  explicit TimerWheel(uint64_t tickUs = 1000, uint32_t bucketBits = 10)
      : tickUs_(tickUs),
        mask_((uint64_t{1} << bucketBits) - 1),
        heads_(size_t{1} << bucketBits, kNone),
        occupied_(((size_t{1} << bucketBits) + 63) / 64, 0) {}

  // Sets (or moves) the timer of `id` to fire at dueUs.
  void Schedule(uint32_t id, uint64_t dueUs) {
    if (id >= entries_.size()) entries_.resize(size_t{id} + 1);
    Entry& entry = entries_[id];
    if (entry.list != kUnscheduled) Unlink(id);
    entry.dueUs = dueUs;
    Link(id);
  }

  void Cancel(uint32_t id) {
    if (id < entries_.size() && entries_[id].list != kUnscheduled) Unlink(id);
  }

  // When the timer of `id` is due, or kNever when it is not scheduled.
  uint64_t DueUs(uint32_t id) const {
    return id < entries_.size() && entries_[id].list != kUnscheduled ? entries_[id].dueUs : kNever;
  }

  size_t size() const { return count_; }
  uint64_t tickUs() const { return tickUs_; }

  // Fires, as fire(id), every timer due in a tick up to nowUs's. A timer is unscheduled before it fires, so the
  // callback may schedule it again or schedule and cancel any other timer.
  template <typename Fire>
  void Advance(uint64_t nowUs, Fire&& fire) {
    const uint64_t nowTick = nowUs / tickUs_;
    if (nowTick <= currentTick_) return;
    // After a long gap every bucket is visited once, not once per elapsed tick.
    if (nowTick - currentTick_ > mask_ + 1) currentTick_ = nowTick - (mask_ + 1);
    while (currentTick_ < nowTick) {
      ++currentTick_;
      const uint32_t bucket = static_cast<uint32_t>(currentTick_ & mask_);
      if (heads_[bucket] == kNone) continue;
      // Detach the bucket: what the callbacks schedule goes into the buckets, not into this list.
      firing_ = heads_[bucket];
      heads_[bucket] = kNone;
      SetOccupied(bucket, false);
      for (uint32_t id = firing_; id != kNone; id = entries_[id].next) entries_[id].list = kFiring;
      while (firing_ != kNone) {
        const uint32_t id = firing_;
        Unlink(id);
        if (entries_[id].dueUs / tickUs_ <= nowTick) {
          fire(id);
        } else {
          Link(id);  // a later turn of the wheel
        }
      }
    }
  }

  // The start of the first tick ahead whose bucket holds a timer: no Advance() before it fires anything.
  // (That timer may belong to a later turn of the wheel: the caller then wakes once for nothing.) A caller
  // that wants each timer's exact time passed advances to the end of that tick. kNever when empty.
  uint64_t NextDueUs() const {
    if (count_ == 0) return kNever;
    const uint64_t buckets = mask_ + 1;
    const uint64_t words = occupied_.size();
    const uint64_t start = (currentTick_ + 1) & mask_;
    for (uint64_t step = 0; step <= words; ++step) {
      const uint64_t word = ((start >> 6) + step) % words;
      uint64_t bits = occupied_[static_cast<size_t>(word)];  // below words, occupied_.size()
      if (step == 0) bits &= ~uint64_t{0} << (start & 63);
      if (step == words) bits &= (start & 63) == 0 ? 0 : ~(~uint64_t{0} << (start & 63));
      if (bits == 0) continue;
      const uint64_t bucket = (word << 6) + static_cast<uint64_t>(__builtin_ctzll(bits));
      const uint64_t ahead = (bucket - start + buckets) & mask_;
      return (currentTick_ + 1 + ahead) * tickUs_;
    }
    return kNever;
  }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr uint32_t kUnscheduled = UINT32_MAX;
  static constexpr uint32_t kFiring = UINT32_MAX - 1;

  struct Entry {
    uint64_t dueUs = 0;
    uint32_t prev = kNone;
    uint32_t next = kNone;
    uint32_t list = kUnscheduled;  // its bucket, kFiring, or kUnscheduled
  };

  void Link(uint32_t id) {
    Entry& entry = entries_[id];
    // Due in a tick already passed: the next tick, so that it fires at the next Advance.
    const uint64_t tick = entry.dueUs / tickUs_ > currentTick_ ? entry.dueUs / tickUs_ : currentTick_ + 1;
    const uint32_t bucket = static_cast<uint32_t>(tick & mask_);
    entry.list = bucket;
    entry.prev = kNone;
    entry.next = heads_[bucket];
    if (entry.next != kNone) entries_[entry.next].prev = id;
    heads_[bucket] = id;
    SetOccupied(bucket, true);
    ++count_;
  }

  void Unlink(uint32_t id) {
    Entry& entry = entries_[id];
    if (entry.prev != kNone) {
      entries_[entry.prev].next = entry.next;
    } else if (entry.list == kFiring) {
      firing_ = entry.next;
    } else {
      heads_[entry.list] = entry.next;
      if (entry.next == kNone) SetOccupied(entry.list, false);
    }
    if (entry.next != kNone) entries_[entry.next].prev = entry.prev;
    entry.list = kUnscheduled;
    entry.prev = entry.next = kNone;
    --count_;
  }

  void SetOccupied(uint32_t bucket, bool occupied) {
    const uint64_t bit = uint64_t{1} << (bucket & 63);
    if (occupied) {
      occupied_[bucket >> 6] |= bit;
    } else {
      occupied_[bucket >> 6] &= ~bit;
    }
  }

  uint64_t tickUs_;
  uint64_t mask_;
  uint64_t currentTick_ = 0;  // every bucket up to this tick has been visited
  std::vector<uint32_t> heads_;
  std::vector<uint64_t> occupied_;  // a bit per bucket that holds a timer
  std::vector<Entry> entries_;
  uint32_t firing_ = kNone;  // the detached bucket Advance is working through
  size_t count_ = 0;
};

}  // namespace volley
