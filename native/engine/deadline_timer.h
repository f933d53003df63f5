// A timerfd that wakes the I/O thread at its earliest timer deadline.
//
// Why not an epoll_wait timeout: every timed wait arms a kernel timer and cancels it when something else
// wakes the thread first. In a virtual machine each of those reprograms the (virtual) local APIC timer,
// a VM exit: ~6 µs per sleep measured here, and the I/O thread sleeps once or twice per request/response.
// This timer is re-armed only when a deadline comes earlier than the armed one; a later deadline lets
// the armed one fire early, and the turn it wakes arms the right one.
#pragma once

#include <cstdint>

namespace volley {

class DeadlineTimer {
 public:
  static constexpr uint64_t kNone = UINT64_MAX;

  DeadlineTimer();
  ~DeadlineTimer();
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // Makes sure the timer fires no later than deadlineUs (CLOCK_MONOTONIC, µs, in the future). False
  // when the kernel refused (the caller must wait with a timeout instead).
  bool ArmBy(uint64_t deadlineUs);
  // epoll reported the timer readable: it has fired and nothing is armed any more.
  void Fired();
  void Close();

 private:
  int fd_;
  uint64_t armedUs_ = kNone;
};

}  // namespace volley
