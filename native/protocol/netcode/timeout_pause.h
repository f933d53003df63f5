// Timeouts that wait while the engine does not read a socket (SocketProtocol::ReadingPaused): what the
// peers send meanwhile waits unread in the kernel, so silence then proves nothing. Used by the netcode cores
// for their connections' timeouts and by the delivery links for the wait for the peer's settings.
#pragma once

#include <algorithm>
#include <cstdint>

namespace volley::netcode {

class TimeoutPause {
 public:
  void Pause(uint64_t nowUs) {
    if (sinceUs_ == 0) sinceUs_ = std::max<uint64_t>(nowUs, 1);
  }
  // Ends the pause; returns its length, µs (0 when there was none).
  uint64_t Resume(uint64_t nowUs) {
    if (sinceUs_ == 0) return 0;
    const uint64_t lengthUs = nowUs > sinceUs_ ? nowUs - sinceUs_ : 0;
    sinceUs_ = 0;
    return lengthUs;
  }
  bool paused() const { return sinceUs_ != 0; }
  // The time a connection was last heard from, moved on by a pause's length, never past now: its timeout
  // counts only the time the engine was reading.
  static uint64_t Credit(uint64_t lastReceiveUs, uint64_t pausedUs, uint64_t nowUs) {
    return std::min(lastReceiveUs + pausedUs, nowUs);
  }

 private:
  uint64_t sinceUs_ = 0;  // when the pause began (0: none)
};

}  // namespace volley::netcode
