// netcode 1.02 packets: the plaintext connection request and the encrypted packet types. Readers follow
// the standard's steps in order and report why a packet was dropped; nothing from the wire is trusted.
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocol/netcode/connect_token.h"
#include "protocol/netcode/constants.h"
#include "protocol/netcode/private_keys.h"
#include "protocol/netcode/replay_window.h"

namespace volley::netcode {

// Bytes the sequence takes on the wire: high zero bytes left out, at least one.
int SequenceBytes(uint64_t sequence);

void WriteConnectionRequest(const ConnectToken& token, uint8_t out[kConnectionRequestBytes]);

struct ConnectionRequest {
  uint64_t expireTimestamp = 0;
  const uint8_t* sealedToken = nullptr;  // into the packet: its last 16 bytes (the MAC) identify the token
  PrivateConnectToken token;
  size_t keyIndex = 0;  // the private key that opened the token: 0 the current one, else one in its grace
};

// The checks of a connection request that need no server state, in the standard's order: size, version,
// protocol id, expiry, decryption (under each key in order, until one opens the token), parse.
DropReason ReadConnectionRequest(const uint8_t* packet, size_t size, uint64_t protocolId, const PrivateKeys& keys,
                                 uint64_t nowSeconds, ConnectionRequest* out);

// Encrypts `body` as a packet of `type` into out; returns its size, 0 if the body is too large. out is an
// array of the largest packet's size, so that a smaller buffer does not compile.
size_t EncryptPacket(PacketType type, uint64_t sequence, const uint8_t* body, size_t bodySize, uint64_t protocolId,
                     const uint8_t key[kKeyBytes], uint8_t (&out)[kMaxPacketBytes]);

struct Packet {
  PacketType type = kConnectionDenied;
  uint64_t sequence = 0;
  size_t bodySize = 0;  // the plaintext is in the caller's buffer
};

// Whether a datagram has the shape of an encrypted packet of a type in acceptMask (prefix, sequence bytes,
// body size for its type), without decrypting it: the checks ReadEncryptedPacket makes first.
bool EncryptedPacketShaped(const uint8_t* packet, size_t size, uint32_t acceptMask);

// Reads an encrypted packet, decrypting its body into `body` (room for kMaxPayloadBytes or kChallengeBodyBytes,
// whichever is larger). acceptMask has bit t set for each packet type this side takes. `replay` (may be
// null) is checked before and advanced after decryption for keep-alive, payload and disconnect packets.
DropReason ReadEncryptedPacket(const uint8_t* packet, size_t size, uint64_t protocolId, const uint8_t key[kKeyBytes],
                               uint32_t acceptMask, ReplayWindow* replay, Packet* out, uint8_t* body);

}  // namespace volley::netcode
