#include "engine/deadline_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

namespace volley {

DeadlineTimer::DeadlineTimer() : fd_(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {}

DeadlineTimer::~DeadlineTimer() { Close(); }

void DeadlineTimer::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

bool DeadlineTimer::ArmBy(uint64_t deadlineUs) {
  if (deadlineUs >= armedUs_) return true;
  itimerspec when{};  // (an all-zero it_value would disarm: deadlines are never 0 here)
  when.it_value.tv_sec = static_cast<time_t>(deadlineUs / 1000000);
  when.it_value.tv_nsec = static_cast<long>(deadlineUs % 1000000) * 1000;
  if (fd_ < 0 || timerfd_settime(fd_, TFD_TIMER_ABSTIME, &when, nullptr) != 0) return false;
  armedUs_ = deadlineUs;
  return true;
}

void DeadlineTimer::Fired() {
  uint64_t expirations;
  [[maybe_unused]] const ssize_t bytes = read(fd_, &expirations, sizeof(expirations));
  armedUs_ = kNone;
}

}  // namespace volley
