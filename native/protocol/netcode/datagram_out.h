// Where a connection core's datagrams go. Written to, never a way back in: nothing here calls the core, so
// the core's events stay polled (ServerCore::PollEvent, ClientCore::PollEvent) and its state is never re-entered.
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocol/netcode/server_address.h"

namespace volley::netcode {

class DatagramOut {
 public:
  virtual ~DatagramOut() = default;
  virtual void Send(const ServerAddress& to, const uint8_t* data, size_t size) = 0;
};

}  // namespace volley::netcode
