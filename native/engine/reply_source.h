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

#include "util/address.h"

namespace volley {

class ReplySource {
 public:
  // Room one control message of Write() takes (CMSG_SPACE of the larger pktinfo), in bytes.
  static constexpr size_t kControlBytes = CMSG_SPACE(sizeof(in6_pktinfo));
  // How often a wildcard-bound server asks again whether the public address is the host's: a floating
  // address (keepalived's) comes and goes while the server runs.
  static constexpr uint64_t kRecheckUs = 1000000;

  // A socket bound to `bound` that publishes `published`: only a wildcard bind with a specific public
  // address may name a source; Refresh() decides whether it does.
  void Configure(const IpAddress& bound, const IpAddress& published, bool socketIsV6);
  // Asks the host's interfaces again, at most once every kRecheckUs (monotonic µs).
  void Refresh(uint64_t nowUs) {
    if (candidate_ && nowUs >= nextCheckUs_) Recheck(nowUs);
  }
  bool set() const { return set_; }

  // Writes the control message naming the source for a datagram to `to` at `control` (kControlBytes of
  // room, 8-byte aligned); returns the bytes it takes (CMSG_SPACE), 0 when none applies: no source set, or
  // a destination of the other family on a dual-stack socket (its route's source stands).
  size_t Write(const sockaddr_in6& to, uint8_t* control) const;

 private:
  void Recheck(uint64_t nowUs);

  bool candidate_ = false;  // bound to a wildcard, publishing a specific address of the socket's families
  bool set_ = false;        // the public address is the host's now: it is named
  bool socketIsV6_ = false;
  uint64_t nextCheckUs_ = 0;
  IpAddress source_;  // the public address, IPv4 unmapped
};

}  // namespace volley
