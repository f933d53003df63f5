// The source address a server bound to a wildcard address (0.0.0.0, ::) gives its datagrams.
//
// A netcode client drops every datagram whose source is not the server address its token lists. A server
// bound to a wildcard address leaves the source to the kernel's route, which on a host with several
// addresses (a secondary or floating IPv4 address, several global IPv6 ones, any 127.x on loopback) may be
// another of them: the client then drops every answer. When the public address (what tokens list) is one
// of this host's, each datagram names it as its source (IP_PKTINFO / IPV6_PKTINFO on sendmmsg). Behind NAT
// (the public address is not this host's) the route's choice stands.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "address.h"

namespace volley {

class ReplySource {
 public:
  // Room one control message of Write() takes (CMSG_SPACE of the larger pktinfo), in bytes.
  static constexpr size_t kControlBytes = CMSG_SPACE(sizeof(in6_pktinfo));

  // Sets the source when `bound` is a wildcard address and `published` is an address of this host (a
  // socket of its family binds to it); leaves it unset otherwise.
  void Choose(const IpAddress& bound, const IpAddress& published, bool socketIsV6);
  bool set() const { return family_ != 0; }

  // Writes the control message naming the source for a datagram to `to` at `control` (kControlBytes of
  // room, 8-byte aligned); returns the bytes it takes (CMSG_SPACE), 0 when none applies: no source set, or
  // a destination of the other family on a dual-stack socket (its route's source stands).
  size_t Write(const sockaddr_in6& to, uint8_t* control) const;

 private:
  uint8_t family_ = 0;  // 0: none; 4 or 6: the public address's family
  bool socketIsV6_ = false;
  uint8_t bytes_[16] = {};
};

}  // namespace volley
