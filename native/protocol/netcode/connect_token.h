// Connect tokens (netcode 1.02): the 2048-byte public token and its private part, sealed with
// XChaCha20-Poly1305 under the key a web backend shares with its servers.
#pragma once

#include <sodium.h>

#include <cstdint>

#include "protocol/netcode/constants.h"
#include "protocol/netcode/server_address.h"

namespace volley::netcode {

struct PrivateConnectToken {
  uint64_t clientId = 0;
  int32_t timeoutSeconds = 0;
  uint32_t serverAddressCount = 0;
  ServerAddress serverAddresses[kMaxServerAddresses];
  uint8_t clientToServerKey[kKeyBytes] = {};
  uint8_t serverToClientKey[kKeyBytes] = {};
  uint8_t userData[kUserDataBytes] = {};
  // Keys are wiped wherever a token ends (a request read on the stack included).
  ~PrivateConnectToken() {
    sodium_memzero(clientToServerKey, kKeyBytes);
    sodium_memzero(serverToClientKey, kKeyBytes);
  }
};

struct ConnectToken {
  uint64_t protocolId = 0;
  uint64_t createTimestamp = 0;
  uint64_t expireTimestamp = 0;
  uint8_t nonce[kConnectTokenNonceBytes] = {};
  uint8_t privateData[kPrivateConnectTokenBytes] = {};  // sealed
  int32_t timeoutSeconds = 0;
  uint32_t serverAddressCount = 0;
  ServerAddress serverAddresses[kMaxServerAddresses];
  uint8_t clientToServerKey[kKeyBytes] = {};
  uint8_t serverToClientKey[kKeyBytes] = {};
  ~ConnectToken() {
    sodium_memzero(clientToServerKey, kKeyBytes);
    sodium_memzero(serverToClientKey, kKeyBytes);
  }
};

// Seals `token` into out[kPrivateConnectTokenBytes]. False when it does not fit (cannot happen for 32
// addresses) or the address count is out of range.
bool SealPrivateConnectToken(const PrivateConnectToken& token, uint64_t protocolId, uint64_t expireTimestamp,
                             const uint8_t nonce[kConnectTokenNonceBytes], const uint8_t key[kKeyBytes],
                             uint8_t out[kPrivateConnectTokenBytes]);

// Unseals and parses; false when the MAC fails or the contents do not parse.
bool OpenPrivateConnectToken(const uint8_t sealed[kPrivateConnectTokenBytes], uint64_t protocolId,
                             uint64_t expireTimestamp, const uint8_t nonce[kConnectTokenNonceBytes],
                             const uint8_t key[kKeyBytes], PrivateConnectToken* out);

void WriteConnectToken(const ConnectToken& token, uint8_t out[kConnectTokenBytes]);
bool ReadConnectToken(const uint8_t* data, size_t size, ConnectToken* out);

}  // namespace volley::netcode
