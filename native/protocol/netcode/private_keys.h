// The private keys a server opens connect tokens with: the current one, then the ones it replaced, each until
// its grace ends on the server's monotonic clock. A token names no key, so a request's is tried under each in
// that order (the Server keeps the same list in JavaScript: src/protocol/netcode/private-keys.ts).
#pragma once

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "protocol/netcode/constants.h"

namespace volley::netcode {

// Keys accepted at once, the current one included: every key past the current one costs a refused token a
// decryption more. JavaScript's layout.maxPrivateKeys (src/engine/layout.ts) is checked against it at load.
constexpr size_t kMaxPrivateKeys = 4;

class PrivateKeys {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  explicit PrivateKeys(const uint8_t current[kKeyBytes]) {
    std::memcpy(entries_[0].key, current, kKeyBytes);
    entries_[0].untilUs = kNever;
  }
  ~PrivateKeys() { sodium_memzero(entries_, sizeof(entries_)); }
  PrivateKeys(const PrivateKeys&) = delete;
  PrivateKeys& operator=(const PrivateKeys&) = delete;

  // `key` becomes the current key. The one it replaces is accepted until previousUntilUs (at or before nowUs: no
  // longer), the ones replaced before keep their own deadlines, and a key held already leaves its older place
  // (rotating back to a key in its grace). Past kMaxPrivateKeys the oldest goes.
  void Rotate(const uint8_t key[kKeyBytes], uint64_t previousUntilUs, uint64_t nowUs) {
    Expire(nowUs);
    for (size_t i = 1; i < count_; ++i) {
      if (sodium_memcmp(entries_[i].key, key, kKeyBytes) == 0) {
        Remove(i);
        break;
      }
    }
    if (previousUntilUs > nowUs && sodium_memcmp(entries_[0].key, key, kKeyBytes) != 0) {
      if (count_ == kMaxPrivateKeys) Remove(count_ - 1);
      std::memmove(&entries_[1], &entries_[0], count_ * sizeof(Entry));  // entries_[0] is written over below
      entries_[1].untilUs = previousUntilUs;
      ++count_;
    }
    std::memcpy(entries_[0].key, key, kKeyBytes);
    entries_[0].untilUs = kNever;
  }

  // A key replaced before this set was made (a server that starts with keys in their grace), accepted until
  // untilUs behind those held. Ignored when its grace is over, when it is held already, or when the set is full.
  void AddPrevious(const uint8_t key[kKeyBytes], uint64_t untilUs, uint64_t nowUs) {
    if (untilUs <= nowUs || count_ == kMaxPrivateKeys) return;
    for (size_t i = 0; i < count_; ++i) {
      if (sodium_memcmp(entries_[i].key, key, kKeyBytes) == 0) return;
    }
    std::memcpy(entries_[count_].key, key, kKeyBytes);
    entries_[count_].untilUs = untilUs;
    ++count_;
  }

  // Wipes and drops the keys whose grace has ended (at or before nowUs). Per request: one comparison with one key.
  void Expire(uint64_t nowUs) {
    for (size_t i = count_; i-- > 1;) {
      if (entries_[i].untilUs <= nowUs) Remove(i);
    }
  }

  // The keys to try, in order: key(0) is the current one.
  size_t count() const { return count_; }
  const uint8_t* key(size_t index) const { return entries_[index].key; }

  // When the next grace ends (kNever when only the current key is held).
  uint64_t nextExpiryUs() const {
    uint64_t next = kNever;
    for (size_t i = 1; i < count_; ++i) next = entries_[i].untilUs < next ? entries_[i].untilUs : next;
    return next;
  }

 private:
  struct Entry {
    uint8_t key[kKeyBytes];
    uint64_t untilUs;
  };

  // Moves the later entries up over it; the last place, now a copy, is wiped.
  void Remove(size_t index) {
    std::memmove(&entries_[index], &entries_[index + 1], (count_ - index - 1) * sizeof(Entry));
    --count_;
    sodium_memzero(&entries_[count_], sizeof(Entry));
  }

  Entry entries_[kMaxPrivateKeys] = {};
  size_t count_ = 1;
};

}  // namespace volley::netcode
