// Socket ids of one engine: 1, 2, 3, ... (0 is the wake-up's epoll token). After 2^32 sockets they wrap, and
// an id still in use is passed over: two sockets with one id would share the I/O thread's tables (the later
// one's state freed while still listed) and JavaScript's.
#pragma once

#include <cstdint>

namespace volley {

class SocketIds {
 public:
  // inUse(id): whether a socket still holds id (open, or closed but not yet forgotten by JavaScript).
  template <typename InUse>
  uint32_t Next(InUse inUse) {
    for (;;) {
      const uint32_t id = next_++;
      if (next_ == 0) next_ = 1;
      if (!inUse(id)) return id;
    }
  }

  // The next id Next() tries, as if that many sockets had been made: for tests of the wrap.
  void SkipTo(uint32_t next) { next_ = next == 0 ? 1 : next; }

 private:
  uint32_t next_ = 1;
};

}  // namespace volley
