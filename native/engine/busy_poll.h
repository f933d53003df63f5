// Busy polling while JavaScript reads the sockets itself (Engine::ReceiveInline): after a turn, whether to
// keep looking for the next datagram for a short while before going back to the event loop.
//
// Why: a datagram that finds the JavaScript thread asleep in its loop's epoll_wait must wake it, and on a
// virtual machine whose CPU has halted meanwhile that wake-up costs tens of microseconds, on both sides of
// a request/response exchange (the sender's sendmmsg pays for the interrupt, the receiver for the resume).
// A thread still looking when the datagram lands reads it at once and its CPU never halts.
//
// When: only where the gaps say a datagram will come within the window, that is request/response traffic
// with a quick peer. A score counts the gaps from the end of a turn to the next datagram: up for one within
// the window (seen by the loop's wake-up or by a spin), down for a longer one, between 0 and kMaxScore; it
// spins from kScoreToSpin up. Sparse traffic never spins; a peer that is slow once in a while (a
// preempted CPU) costs one window, and the spinning goes on; one that stays slow stops it after three gaps.
// Sans-IO: fed times; the binding's OnReadable does the looking.
#pragma once

#include <cstdint>

namespace volley {

class BusyPoll {
 public:
  // How long a spin looks: about a loopback round trip's turnaround, well under a millisecond.
  static constexpr uint64_t kWindowNs = 50'000;
  // Turns one wake-up of the loop may take by spinning before the loop runs its other work (timers,
  // other handles, setImmediate callbacks): at most this many windows' delay for them.
  static constexpr int kMaxTurnsPerWake = 16;

  // The loop woke JavaScript for the sockets at nowNs (not a spin's find).
  void WokenAt(uint64_t nowNs) {
    if (lastTurnEndNs_ == 0) return;
    Score(nowNs >= lastTurnEndNs_ && nowNs - lastTurnEndNs_ <= kWindowNs);
  }
  // A turn (woken or found by a spin) ended at nowNs.
  void TurnEnded(uint64_t nowNs) { lastTurnEndNs_ = nowNs; }
  bool ShouldSpin() const { return score_ >= kScoreToSpin; }
  // The outcome of a spin: found a datagram within the window, or looked the whole window in vain (the
  // gap then counts when the loop wakes for the datagram).
  void Spun(bool found) {
    ++spins_;
    if (found) {
      ++found_;
      Score(true);
    }
  }

  uint64_t spins() const { return spins_; }
  uint64_t found() const { return found_; }

 private:
  static constexpr int kMaxScore = 4;
  static constexpr int kScoreToSpin = 2;
  void Score(bool quick) { score_ = quick ? (score_ < kMaxScore ? score_ + 1 : score_) : (score_ > 0 ? score_ - 1 : 0); }
  uint64_t lastTurnEndNs_ = 0;
  int score_ = 0;
  uint64_t spins_ = 0;
  uint64_t found_ = 0;
};

}  // namespace volley
