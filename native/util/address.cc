#include "util/address.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace volley {
namespace {

// Interfaces by name and index. The WebAssembly build (the fallback engine's cores) sees none: a scope is
// a number there, and the JavaScript around it names the interfaces.
uint32_t InterfaceIndex(const std::string& name) {
#ifdef __EMSCRIPTEN__
  (void)name;
  return 0;
#else
  return if_nametoindex(name.c_str());
#endif
}

std::string InterfaceName(uint32_t index) {
#ifndef __EMSCRIPTEN__
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(index, name) != nullptr) return name;
#endif
  return std::to_string(index);  // its index when it has no name (gone since)
}

}  // namespace

bool ParseIp(const std::string& text, IpAddress* out) {
  *out = IpAddress{};
  // inet_pton reads up to a NUL: "127.0.0.1\0junk" would pass as 127.0.0.1 (the fallback refuses it).
  if (text.empty() || text.size() > INET6_ADDRSTRLEN + IF_NAMESIZE || text.find('\0') != std::string::npos) return false;
  if (inet_pton(AF_INET, text.c_str(), out->bytes) == 1) {
    out->family = 4;
    return true;
  }
  std::string host = text;
  const size_t percent = text.find('%');
  if (percent != std::string::npos) {
    host = text.substr(0, percent);
    const std::string scope = text.substr(percent + 1);
    if (scope.empty()) return false;
    // A number is digits only (strtoul would take "+1", " 1" and "-1" too, which the fallback engine refuses).
    const bool digits = scope.find_first_not_of("0123456789") == std::string::npos;
    const unsigned long numeric = digits ? std::strtoul(scope.c_str(), nullptr, 10) : ULONG_MAX;  // saturates
    if (digits && numeric <= UINT32_MAX) {
      out->scopeId = static_cast<uint32_t>(numeric);
    } else {
      out->scopeId = InterfaceIndex(scope);
      if (out->scopeId == 0) return false;
    }
  }
  if (inet_pton(AF_INET6, host.c_str(), out->bytes) != 1) return false;
  out->family = 6;
  return true;
}

std::string FormatIp(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN + 1] = {};
  if (address.family == 4) {
    inet_ntop(AF_INET, address.bytes, text, sizeof(text));
  } else if (address.family == 6) {
    inet_ntop(AF_INET6, address.bytes, text, sizeof(text));
  }
  std::string result = text;
  if (address.family == 6 && address.scopeId != 0) {
    result += "%" + InterfaceName(address.scopeId);  // as node:dgram names it
  }
  return result;
}

socklen_t ToSockaddr(const IpAddress& address, uint16_t port, bool socketIsV6, sockaddr_in6* out) {
  std::memset(out, 0, sizeof(*out));
  if (address.family == 4 && !socketIsV6) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(out);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    std::memcpy(&v4->sin_addr, address.bytes, 4);
    return sizeof(sockaddr_in);
  }
  out->sin6_family = AF_INET6;
  out->sin6_port = htons(port);
  if (address.family == 4) {
    // ::ffff:a.b.c.d
    out->sin6_addr.s6_addr[10] = 0xff;
    out->sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(&out->sin6_addr.s6_addr[12], address.bytes, 4);
  } else {
    std::memcpy(&out->sin6_addr, address.bytes, 16);
    out->sin6_scope_id = address.scopeId;
  }
  return sizeof(sockaddr_in6);
}

void FromSockaddr(const void* name, IpAddress* address, uint16_t* port) {
  *address = IpAddress{};
  *port = 0;
  // Copied out field by field: the kernel writes names into buffers of other sockaddr types, whose
  // alignment need not be that of the one read.
  sa_family_t family;
  std::memcpy(&family, static_cast<const uint8_t*>(name) + offsetof(sockaddr, sa_family), sizeof(family));
  if (family == AF_INET) {
    sockaddr_in v4;
    std::memcpy(&v4, name, sizeof(v4));
    address->family = 4;
    std::memcpy(address->bytes, &v4.sin_addr, 4);
    *port = ntohs(v4.sin_port);
  } else if (family == AF_INET6) {
    sockaddr_in6 v6;
    std::memcpy(&v6, name, sizeof(v6));
    address->family = 6;
    std::memcpy(address->bytes, &v6.sin6_addr, 16);
    address->scopeId = v6.sin6_scope_id;
    *port = ntohs(v6.sin6_port);
  }
}

void UnmapIpv4(IpAddress* address) {
  static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (address->family != 6 || std::memcmp(address->bytes, kMappedPrefix, 12) != 0) return;
  std::memmove(address->bytes, address->bytes + 12, 4);
  std::memset(address->bytes + 4, 0, 12);
  address->family = 4;
  address->scopeId = 0;
}

}  // namespace volley
