// Replay protection for one direction of one connection: a window of 256 sequences as a bitmap (40 bytes
// per peer, where a table of 256 sequences would take 2 KiB). A packet older than the window, or seen
// already, is refused; Advance() is called only after the packet has decrypted.
#pragma once

#include <cstdint>

#include "protocol/netcode/constants.h"

namespace volley::netcode {

class ReplayWindow {
 public:
  void Reset() {
    mostRecent_ = 0;
    for (uint64_t& word : seen_) word = 0;
  }

  // Counts every sequence below `end` as received: a later connection under the same key must not take an
  // earlier one's packets, replayed, for new ones.
  void ResetBelow(uint64_t end) {
    Reset();
    if (end == 0) return;
    mostRecent_ = end - 1;
    for (uint64_t& word : seen_) word = ~uint64_t{0};
  }

  // The sequence after every one received (or counted as received) so far; 0 when there was none. Bit 0
  // stands for mostRecent_, set whenever mostRecent_ is a received sequence.
  uint64_t ReceivedEnd() const {
    if ((seen_[0] & 1) == 0) return 0;
    return mostRecent_ == UINT64_MAX ? UINT64_MAX : mostRecent_ + 1;
  }

  // Behind the window: refused whether or not it was received (a packet delayed or reordered that far,
  // or a replay). Subtraction-side, so that sequences near 2^64 cannot wrap (IMPLEMENTERS.md §1).
  bool OlderThanWindow(uint64_t sequence) const {
    return mostRecent_ >= kReplayBufferSize && sequence <= mostRecent_ - kReplayBufferSize;
  }

  // Received already, for a sequence not older than the window.
  bool SeenInWindow(uint64_t sequence) const {
    if (sequence > mostRecent_) return false;
    const uint64_t age = mostRecent_ - sequence;  // < 256
    return (seen_[age >> 6] >> (age & 63)) & 1;
  }

  bool AlreadyReceived(uint64_t sequence) const { return OlderThanWindow(sequence) || SeenInWindow(sequence); }

  void Advance(uint64_t sequence) {
    if (sequence > mostRecent_) {
      Age(sequence - mostRecent_);
      mostRecent_ = sequence;
    }
    const uint64_t age = mostRecent_ - sequence;
    if (age < kReplayBufferSize) seen_[age >> 6] |= uint64_t{1} << (age & 63);
  }

  uint64_t mostRecent() const { return mostRecent_; }

 private:
  static constexpr int kWords = kReplayBufferSize / 64;

  // Bit k stands for sequence mostRecent_ - k: a newer most recent sequence moves every bit up.
  void Age(uint64_t by) {
    if (by >= kReplayBufferSize) {
      for (uint64_t& word : seen_) word = 0;
      return;
    }
    const int words = static_cast<int>(by >> 6);
    const int bits = static_cast<int>(by & 63);
    for (int i = kWords - 1; i >= 0; --i) {
      uint64_t value = 0;
      if (i - words >= 0) {
        value = seen_[i - words] << bits;
        if (bits != 0 && i - words - 1 >= 0) value |= seen_[i - words - 1] >> (64 - bits);
      }
      seen_[i] = value;
    }
  }

  uint64_t mostRecent_ = 0;
  uint64_t seen_[kWords] = {};
};

}  // namespace volley::netcode
