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
  void Signal();
  void Clear();
  void Close();

 private:
  int fd_;
};

}  // namespace volley
