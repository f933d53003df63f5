// An eventfd that wakes the I/O thread out of epoll_wait.
#pragma once

namespace volley {

class EventFd {
 public:
  EventFd();
  ~EventFd();
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // Why eventfd() failed (its errno, kept: what runs before it is reported may set errno again); 0 if valid.
  int error() const { return error_; }
  void Signal();
  void Clear();
  void Close();

 private:
  int fd_;
  int error_;
};

}  // namespace volley
