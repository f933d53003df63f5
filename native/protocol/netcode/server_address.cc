#include "protocol/netcode/server_address.h"

#include <cstdlib>
#include <cstring>

#include "protocol/netcode/constants.h"

namespace volley::netcode {

namespace {

// A token's address is one a client sends to: not the unspecified address or the rest of 0.0.0.0/8, not the
// broadcast address, not a multicast group (IPv4-mapped forms alike), as the TypeScript side refuses them.
bool IsDestination(IpAddress ip) {
  UnmapIpv4(&ip);
  if (ip.family == 4) return ip.bytes[0] != 0 && !(ip.bytes[0] >= 224 && ip.bytes[0] <= 239) &&
                             !(ip.bytes[0] == 255 && ip.bytes[1] == 255 && ip.bytes[2] == 255 && ip.bytes[3] == 255);
  static const uint8_t kUnspecified[16] = {};
  return ip.bytes[0] != 0xff && std::memcmp(ip.bytes, kUnspecified, 16) != 0;
}

// "host:port", the host an IPv4 literal or an IPv6 one in brackets. A token's address is a destination with a
// port from 1 and no IPv6 scope; a datagram's source (asSource) may have port 0 and a scope ('%2' or an
// interface name).
bool ParseAddressText(const std::string& text, bool asSource, ServerAddress* out) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size() || text.size() - colon - 1 > 5) return false;
  std::string host = text.substr(0, colon);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  for (size_t i = colon + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  const long port = std::strtol(text.c_str() + colon + 1, nullptr, 10);
  if (port < (asSource ? 0 : 1) || port > 65535) return false;
  if ((!asSource && host.find('%') != std::string::npos) || !ParseIp(host, &out->ip)) return false;
  if ((out->ip.family == 6) != bracketed) return false;  // IPv6 only in brackets, IPv4 never
  if (!asSource && !IsDestination(out->ip)) return false;
  out->port = static_cast<uint16_t>(port);
  return true;
}

}  // namespace

bool ParseServerAddress(const std::string& text, ServerAddress* out) { return ParseAddressText(text, false, out); }

bool ParseDatagramSource(const std::string& text, ServerAddress* out) { return ParseAddressText(text, true, out); }

void WriteServerAddress(WireWriter* writer, const ServerAddress& address) {
  if (address.ip.family == 4) {
    writer->U8(kAddressIpv4);
    writer->Bytes(address.ip.bytes, 4);
  } else {
    writer->U8(kAddressIpv6);
    for (int i = 0; i < 8; ++i) {
      writer->U16(static_cast<uint16_t>((address.ip.bytes[2 * i] << 8) | address.ip.bytes[2 * i + 1]));
    }
  }
  writer->U16(address.port);
}

bool ReadServerAddress(WireReader* reader, ServerAddress* out) {
  *out = ServerAddress{};
  const uint8_t type = reader->U8();
  if (type == kAddressIpv4) {
    out->ip.family = 4;
    reader->Bytes(out->ip.bytes, 4);
  } else if (type == kAddressIpv6) {
    out->ip.family = 6;
    for (int i = 0; i < 8; ++i) {
      const uint16_t group = reader->U16();
      out->ip.bytes[2 * i] = static_cast<uint8_t>(group >> 8);
      out->ip.bytes[2 * i + 1] = static_cast<uint8_t>(group);
    }
  } else {
    return false;
  }
  out->port = reader->U16();
  return !reader->failed();
}

bool SameServerAddress(const ServerAddress& a, const ServerAddress& b) {
  if (a.port != b.port) return false;
  if (a.ip.family == b.ip.family) return std::memcmp(a.ip.bytes, b.ip.bytes, a.ip.family == 4 ? 4 : 16) == 0;
  // ::ffff:a.b.c.d is a.b.c.d: a token may list either, and a dual-stack socket reports the second form.
  IpAddress left = a.ip;
  IpAddress right = b.ip;
  UnmapIpv4(&left);
  UnmapIpv4(&right);
  return left.family == 4 && right.family == 4 && std::memcmp(left.bytes, right.bytes, 4) == 0;
}

}  // namespace volley::netcode
