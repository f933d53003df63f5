// Send slabs the I/O thread has finished with, handed back to JavaScript through memory both threads
// see: a ring of slab ids that only the I/O thread writes and only JavaScript reads, with the count
// written so far, and a flag JavaScript raises when it has run out of slabs and waits for one.
//
// Why: a SEND_DONE event per finished slab woke the JavaScript thread once more for every message of
// request/response traffic (the reply's slab), a wake-up and a context switch that did nothing but
// return a buffer. Now JavaScript takes finished slabs back when it needs one, and an event (a wake-up)
// comes only when it waits for one.
#pragma once

#include <cstdint>

namespace volley {

class ReleasedSlabs {
 public:
  static constexpr uint32_t kCapacity = 256;  // a slab is in the ring at most once: kMaxSendSlabs suffice
  // Word offsets (generated into src/engine/native-layout.ts).
  static constexpr uint32_t kWritten = 0;  // ids written so far (wraps as int32)
  static constexpr uint32_t kWanted = 1;   // JavaScript: 1 = wake me when the next slab is released
  static constexpr uint32_t kIds = 2;
  static constexpr uint32_t kWords = kIds + kCapacity;
  static_assert((kCapacity & (kCapacity - 1)) == 0, "the ring's index is a mask");

  int32_t* words() { return words_; }

  // I/O thread: hands slab `id` back; true when JavaScript waits for it (then wake it). The id is stored
  // before the count, and the flag read after it (sequentially consistent, as JavaScript's Atomics are):
  // either JavaScript sees the id when it looks again after raising the flag, or this sees the flag.
  bool Release(int32_t id) {
    const uint32_t written = static_cast<uint32_t>(__atomic_load_n(&words_[kWritten], __ATOMIC_RELAXED));
    __atomic_store_n(&words_[kIds + (written & (kCapacity - 1))], id, __ATOMIC_RELAXED);
    __atomic_store_n(&words_[kWritten], static_cast<int32_t>(written + 1), __ATOMIC_SEQ_CST);
    return __atomic_exchange_n(&words_[kWanted], 0, __ATOMIC_SEQ_CST) != 0;
  }

 private:
  alignas(64) int32_t words_[kWords] = {};
};

}  // namespace volley
