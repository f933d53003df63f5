// A non-blocking UDP socket: creation, options and bind. Owned by its engine once registered.
#pragma once

#include <cstdint>
#include <string>

#include "util/address.h"

namespace volley {

struct SocketOptions {
  bool ipv6 = false;
  bool ipv6Only = false;
  bool reuseAddress = false;
  bool reusePort = false;
  int receiveBufferSize = 0;  // 0 = kernel default
  int sendBufferSize = 0;
  // Datagrams leave with the don't-fragment bit and are never fragmented (netcode's are at most ~1.25 kB,
  // within any IPv6 path's 1,280 bytes). Saves the kernel an IP id per datagram (a hash and an atomic on
  // a table every core shares) on IPv4. For protocol sockets; raw ones may send up to 64 kB.
  bool dontFragment = false;
  IpAddress bindAddress;      // family 0 = any address of the socket's family
  uint16_t bindPort = 0;
};

// Failure of a system call: errno and the call's name, for a Node-style error in JavaScript.
struct SystemError {
  int code = 0;
  const char* syscall = "";
};

class UdpSocket {
 public:
  UdpSocket() = default;
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // Creates, configures and binds the socket. On failure the socket stays closed.
  bool Open(const SocketOptions& options, SystemError* error);
  void Close();

  int fd() const { return fd_; }
  bool isV6() const { return isV6_; }
  // The bound address and port, as the kernel reports them.
  bool LocalAddress(IpAddress* address, uint16_t* port, SystemError* error) const;

 private:
  int fd_ = -1;
  bool isV6_ = false;
};

}  // namespace volley
