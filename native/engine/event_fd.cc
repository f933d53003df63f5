#include "engine/event_fd.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace volley {

EventFd::EventFd() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), error_(fd_ < 0 ? errno : 0) {}

EventFd::~EventFd() { Close(); }

void EventFd::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void EventFd::Signal() {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated, which still wakes the reader.
  [[maybe_unused]] const ssize_t written = write(fd_, &one, sizeof(one));
}

void EventFd::Clear() {
  uint64_t value;
  [[maybe_unused]] const ssize_t bytes = read(fd_, &value, sizeof(value));
}

}  // namespace volley
