// IP addresses as the wire-level 16-byte form used in slab records, and their text form.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace volley {

struct IpAddress {
  uint8_t family = 0;  // 4 or 6; 0 = none
  uint8_t bytes[16] = {};
  uint32_t scopeId = 0;
};

// Parses an IPv4 or IPv6 literal (IPv6 may carry a %scope, numeric or an interface name).
bool ParseIp(const std::string& text, IpAddress* out);
std::string FormatIp(const IpAddress& address);

// sockaddr conversions. A socket of family 6 sends IPv4 destinations as v4-mapped IPv6 addresses.
socklen_t ToSockaddr(const IpAddress& address, uint16_t port, bool socketIsV6, sockaddr_in6* out);
// name: a sockaddr_in or sockaddr_in6 as the kernel wrote it (other families give family 0, port 0).
void FromSockaddr(const void* name, IpAddress* address, uint16_t* port);
// Turns a v4-mapped IPv6 address (::ffff:a.b.c.d) into the IPv4 address it stands for.
void UnmapIpv4(IpAddress* address);

}  // namespace volley
