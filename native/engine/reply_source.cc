#include "engine/reply_source.h"

#include <ifaddrs.h>

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

// Whether `address` is one of this host's: assigned to an interface, or in 127.0.0.0/8, all of which
// loopback takes. (Not whether a socket can bind to it: with net.ipv4.ip_nonlocal_bind, common on
// keepalived and HAProxy hosts, any address binds, and a NAT's public address named as the source made
// every datagram fail.)
bool IsLocal(const IpAddress& address) {
  if (address.family == 4 && address.bytes[0] == 127) return true;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (const ifaddrs* entry = list; entry != nullptr && !found; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr) continue;
    if (address.family == 4 && entry->ifa_addr->sa_family == AF_INET) {
      found = std::memcmp(&reinterpret_cast<const sockaddr_in*>(entry->ifa_addr)->sin_addr, address.bytes, 4) == 0;
    } else if (address.family == 6 && entry->ifa_addr->sa_family == AF_INET6) {
      found = std::memcmp(&reinterpret_cast<const sockaddr_in6*>(entry->ifa_addr)->sin6_addr, address.bytes, 16) == 0;
    }
  }
  freeifaddrs(list);
  return found;
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

void ReplySource::Configure(const IpAddress& bound, const IpAddress& published, bool socketIsV6) {
  source_ = published;
  UnmapIpv4(&source_);
  socketIsV6_ = socketIsV6;
  candidate_ = IsWildcard(bound) && (source_.family == 4 || (source_.family == 6 && socketIsV6)) && !IsWildcard(source_);
  set_ = false;
  nextCheckUs_ = 0;
}

void ReplySource::Recheck(uint64_t nowUs) {
  set_ = IsLocal(source_);
  nextCheckUs_ = nowUs + kRecheckUs;
}

size_t ReplySource::Write(const sockaddr_in6& to, uint8_t* control) const {
  if (!set_) return 0;
  if (!socketIsV6_) {
    in_pktinfo info{};
    std::memcpy(&info.ipi_spec_dst, source_.bytes, 4);
    return WriteControl(IPPROTO_IP, IP_PKTINFO, info, control);
  }
  // A dual-stack socket sends to IPv4 peers at v4-mapped addresses; the kernel takes a v4-mapped source
  // for those, and only for those.
  const bool toIpv4 = IN6_IS_ADDR_V4MAPPED(&to.sin6_addr);
  if (toIpv4 != (source_.family == 4)) return 0;
  in6_pktinfo info{};
  if (source_.family == 4) {
    info.ipi6_addr.s6_addr[10] = 0xff;
    info.ipi6_addr.s6_addr[11] = 0xff;
    std::memcpy(&info.ipi6_addr.s6_addr[12], source_.bytes, 4);
  } else {
    std::memcpy(&info.ipi6_addr, source_.bytes, 16);
  }
  return WriteControl(IPPROTO_IPV6, IPV6_PKTINFO, info, control);
}

}  // namespace volley
