// Server addresses in connect tokens: text "a.b.c.d:port" / "[v6]:port", and the wire form (type byte,
// 4 bytes or 8 little-endian 16-bit groups, port).
#pragma once

#include <string>

#include "util/address.h"
#include "protocol/netcode/wire.h"

namespace volley::netcode {

struct ServerAddress {
  IpAddress ip;  // family 4 or 6, network-order bytes
  uint16_t port = 0;
};

bool ParseServerAddress(const std::string& text, ServerAddress* out);
// A datagram's source in the same text form, as the test bindings take it: port 0 and an IPv6 scope allowed.
bool ParseDatagramSource(const std::string& text, ServerAddress* out);
void WriteServerAddress(WireWriter* writer, const ServerAddress& address);
bool ReadServerAddress(WireReader* reader, ServerAddress* out);
bool SameServerAddress(const ServerAddress& a, const ServerAddress& b);

}  // namespace volley::netcode
