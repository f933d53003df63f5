#include "engine/udp_socket.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace volley {

namespace {

bool SetIntOption(int fd, int level, int name, int value, const char* syscall, SystemError* error) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) == 0) return true;
  error->code = errno;
  error->syscall = syscall;
  return false;
}

// A buffer size: SO_RCVBUF or SO_SNDBUF, which the kernel caps at net.core.rmem_max or wmem_max (208 KiB on
// most distributions, a few milliseconds of a busy server's datagrams). A process allowed to (CAP_NET_ADMIN)
// gets what it asked past the cap with the FORCE variant; one that is not keeps the capped size, which
// JavaScript reports (the kernel reads back twice what it grants, its bookkeeping included).
bool SetBufferSize(int fd, int name, int forceName, int bytes, SystemError* error) {
  if (!SetIntOption(fd, SOL_SOCKET, name, bytes, "setsockopt", error)) return false;
  int granted = 0;
  socklen_t length = sizeof(granted);
  if (getsockopt(fd, SOL_SOCKET, name, &granted, &length) == 0 && granted / 2 < bytes) {
    setsockopt(fd, SOL_SOCKET, forceName, &bytes, sizeof(bytes));  // EPERM without the capability: capped it stays
  }
  return true;
}

}  // namespace

UdpSocket::~UdpSocket() { Close(); }

void UdpSocket::Close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

bool UdpSocket::Open(const SocketOptions& options, SystemError* error) {
  Close();
  isV6_ = options.ipv6;
  const int fd = ::socket(isV6_ ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error->code = errno;
    error->syscall = "socket";
    return false;
  }
  fd_ = fd;
  bool ok = true;
  if (ok && isV6_) ok = SetIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, options.ipv6Only ? 1 : 0, "setsockopt", error);
  if (ok && options.reuseAddress) ok = SetIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt", error);
  if (ok && options.reusePort) ok = SetIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt", error);
  if (ok && options.receiveBufferSize > 0) {
    ok = SetBufferSize(fd, SO_RCVBUF, SO_RCVBUFFORCE, options.receiveBufferSize, error);
  }
  if (ok && options.sendBufferSize > 0) {
    ok = SetBufferSize(fd, SO_SNDBUF, SO_SNDBUFFORCE, options.sendBufferSize, error);
  }
  // PROBE: the bit is set, the kernel's path MTU cache is not consulted (no EMSGSIZE from a stale entry).
  // On a dual-stack socket the IPv4 option governs its IPv4 traffic.
  if (ok && options.dontFragment) ok = SetIntOption(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, "setsockopt", error);
  if (ok && options.dontFragment && isV6_) {
    ok = SetIntOption(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, "setsockopt", error);
  }
  if (ok) {
    IpAddress bindAddress = options.bindAddress;
    if (bindAddress.family == 0) bindAddress.family = isV6_ ? 6 : 4;  // all zero bytes: any address
    sockaddr_in6 storage;
    const socklen_t length = ToSockaddr(bindAddress, options.bindPort, isV6_, &storage);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
      error->code = errno;
      error->syscall = "bind";
      ok = false;
    }
  }
  if (!ok) Close();
  return ok;
}

bool UdpSocket::LocalAddress(IpAddress* address, uint16_t* port, SystemError* error) const {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    error->code = errno;
    error->syscall = "getsockname";
    return false;
  }
  FromSockaddr(&storage, address, port);
  return true;
}

}  // namespace volley
