// What the netcode fuzz targets build their peers from: addresses, keys and real connect tokens.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "protocol/netcode/connect_token.h"
#include "protocol/netcode/server_address.h"

namespace volley::fuzz {

using netcode::ConnectToken;
using netcode::kConnectTokenBytes;
using netcode::kKeyBytes;
using netcode::PrivateConnectToken;
using netcode::SealPrivateConnectToken;
using netcode::ServerAddress;
using netcode::WriteConnectToken;

constexpr uint64_t kProtocolId = 0x1122334455667788ull;
constexpr uint64_t kUnixStart = 1700000000;

inline ServerAddress Address(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  ServerAddress address;
  address.ip.family = 4;
  address.ip.bytes[0] = a;
  address.ip.bytes[1] = b;
  address.ip.bytes[2] = c;
  address.ip.bytes[3] = d;
  address.port = port;
  return address;
}

// fd00::<last>, port.
inline ServerAddress Address6(uint8_t last, uint16_t port) {
  ServerAddress address;
  address.ip.family = 6;
  address.ip.bytes[0] = 0xfd;
  address.ip.bytes[15] = last;
  address.port = port;
  return address;
}

struct Keys {
  uint8_t clientToServer[kKeyBytes];
  uint8_t serverToClient[kKeyBytes];
};

// A connect token for client i, with the keys `keys`, valid for a minute from `unixNow`.
inline std::vector<uint8_t> Token(uint32_t i, const uint8_t privateKey[kKeyBytes], const ServerAddress& server,
                                  int32_t timeoutSeconds, uint64_t unixNow, const Keys& keys) {
  PrivateConnectToken secret;
  secret.clientId = 1000 + i;
  secret.timeoutSeconds = timeoutSeconds;
  secret.serverAddressCount = 1;
  secret.serverAddresses[0] = server;
  std::memcpy(secret.clientToServerKey, keys.clientToServer, kKeyBytes);
  std::memcpy(secret.serverToClientKey, keys.serverToClient, kKeyBytes);
  secret.userData[0] = static_cast<uint8_t>(i);
  ConnectToken token;
  token.protocolId = kProtocolId;
  token.createTimestamp = unixNow;
  token.expireTimestamp = unixNow + 60;
  token.nonce[0] = static_cast<uint8_t>(i + 1);
  token.timeoutSeconds = timeoutSeconds;
  token.serverAddressCount = 1;
  token.serverAddresses[0] = server;
  std::memcpy(token.clientToServerKey, keys.clientToServer, kKeyBytes);
  std::memcpy(token.serverToClientKey, keys.serverToClient, kKeyBytes);
  if (!SealPrivateConnectToken(secret, kProtocolId, token.expireTimestamp, token.nonce, privateKey, token.privateData)) std::abort();
  std::vector<uint8_t> bytes(kConnectTokenBytes);
  WriteConnectToken(token, bytes.data());
  return bytes;
}

}  // namespace volley::fuzz
