#include "reply_source.h"

#include <unistd.h>

#include <cstring>

namespace volley {

namespace {

bool IsWildcard(const IpAddress& address) {
  static const uint8_t kZero[16] = {};
  static const uint8_t kMappedZero[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  if (address.family == 4) return std::memcmp(address.bytes, kZero, 4) == 0;
  return address.family == 6 &&
         (std::memcmp(address.bytes, kZero, 16) == 0 || std::memcmp(address.bytes, kMappedZero, 16) == 0);
}

// Whether `address` is one of this host's: a socket of its family can bind to it.
bool IsLocal(const IpAddress& address) {
  const int fd = socket(address.family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 name{};
  const socklen_t length = ToSockaddr(address, 0, address.family == 6, &name);
  const bool bound = bind(fd, reinterpret_cast<const sockaddr*>(&name), length) == 0;
  close(fd);
  return bound;
}

// One control message at `control` (zeroed first, padding included); returns the bytes it takes.
template <typename Info>
size_t WriteControl(int level, int type, const Info& info, uint8_t* control) {
  std::memset(control, 0, CMSG_SPACE(sizeof(info)));
  auto* header = reinterpret_cast<cmsghdr*>(control);
  header->cmsg_level = level;
  header->cmsg_type = type;
  header->cmsg_len = CMSG_LEN(sizeof(info));
  std::memcpy(CMSG_DATA(header), &info, sizeof(info));
  return CMSG_SPACE(sizeof(info));
}

}  // namespace

void ReplySource::Choose(const IpAddress& bound, const IpAddress& published, bool socketIsV6) {
  family_ = 0;
  IpAddress source = published;
  UnmapIpv4(&source);
  if (!IsWildcard(bound) || (source.family != 4 && source.family != 6) || (source.family == 6 && !socketIsV6) ||
      IsWildcard(source) || !IsLocal(source)) {
    return;
  }
  family_ = source.family;
  socketIsV6_ = socketIsV6;
  std::memcpy(bytes_, source.bytes, source.family == 4 ? 4 : 16);
}

size_t ReplySource::Write(const sockaddr_in6& to, uint8_t* control) const {
  if (family_ == 0) return 0;
  if (!socketIsV6_) {
    in_pktinfo info{};
    std::memcpy(&info.ipi_spec_dst, bytes_, 4);
    return WriteControl(IPPROTO_IP, IP_PKTINFO, info, control);
  }
  // A dual-stack socket sends to IPv4 peers at v4-mapped addresses; the kernel takes a v4-mapped source
  // for those, and only for those.
  const bool toIpv4 = IN6_IS_ADDR_V4MAPPED(&to.sin6_addr);
  if (toIpv4 != (family_ == 4)) return 0;
  in6_pktinfo info{};
  if (family_ == 4) {
    info.ipi6_addr.s6_addr[10] = 0xff;
    info.ipi6_addr.s6_addr[11] = 0xff;
    std::memcpy(&info.ipi6_addr.s6_addr[12], bytes_, 4);
  } else {
    std::memcpy(&info.ipi6_addr, bytes_, 16);
  }
  return WriteControl(IPPROTO_IPV6, IPV6_PKTINFO, info, control);
}

}  // namespace volley
