#include "protocol/netcode/packet.h"

#include <cstring>

#include "protocol/netcode/aead.h"
#include "protocol/netcode/wire.h"

namespace volley::netcode {

namespace {

constexpr size_t kPacketAssociatedBytes = kVersionInfoBytes + 8 + 1;

void PacketAssociatedData(uint64_t protocolId, uint8_t prefix, uint8_t out[kPacketAssociatedBytes]) {
  WireWriter writer(out, kPacketAssociatedBytes);
  writer.Bytes(kVersionInfo, kVersionInfoBytes);
  writer.U64(protocolId);
  writer.U8(prefix);
}

bool BodySizeFits(uint8_t type, size_t size) {
  switch (type) {
    case kConnectionDenied:
    case kDisconnect:
      return size == 0;
    case kConnectionChallenge:
    case kConnectionResponse:
      return size == kChallengeBodyBytes;
    case kKeepAlive:
      return size == kKeepAliveBodyBytes;
    case kPayload:
      return size >= 1 && size <= kMaxPayloadBytes;
    default:
      return false;
  }
}

bool ReplayProtected(uint8_t type) { return type == kKeepAlive || type == kPayload || type == kDisconnect; }

// The checks on an encrypted packet that need no key, in the order they are made.
DropReason CheckShape(const uint8_t* packet, size_t size, uint32_t acceptMask) {
  if (size < kMinEncryptedPacketBytes) return DropReason::kMalformed;
  const uint8_t prefix = packet[0];
  const uint8_t type = prefix & 0x0f;
  if (type >= kPacketTypeCount || type == kConnectionRequest) return DropReason::kMalformed;
  if (((acceptMask >> type) & 1) == 0) return DropReason::kUnexpectedType;
  const int count = prefix >> 4;
  if (count < 1 || count > 8) return DropReason::kMalformed;
  if (size < 1 + static_cast<size_t>(count) + kMacBytes) return DropReason::kMalformed;
  if (!BodySizeFits(type, size - 1 - static_cast<size_t>(count) - kMacBytes)) return DropReason::kMalformed;
  return DropReason::kNone;
}

}  // namespace

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone: return "none";
    case DropReason::kMalformed: return "malformed";
    case DropReason::kUnexpectedType: return "unexpected-type";
    case DropReason::kReplayed: return "replayed";
    case DropReason::kTooOld: return "too-old";
    case DropReason::kDecryptionFailed: return "decryption-failed";
    case DropReason::kWrongProtocol: return "wrong-protocol";
    case DropReason::kExpired: return "expired";
    case DropReason::kTokenRefused: return "token-refused";
  }
  return "unknown";
}

int SequenceBytes(uint64_t sequence) {
  int bytes = 1;
  while (bytes < 8 && (sequence >> (8 * bytes)) != 0) ++bytes;
  return bytes;
}

void WriteConnectionRequest(const ConnectToken& token, uint8_t out[kConnectionRequestBytes]) {
  WireWriter writer(out, kConnectionRequestBytes);
  writer.U8(kConnectionRequest);
  writer.Bytes(kVersionInfo, kVersionInfoBytes);
  writer.U64(token.protocolId);
  writer.U64(token.expireTimestamp);
  writer.Bytes(token.nonce, kConnectTokenNonceBytes);
  writer.Bytes(token.privateData, kPrivateConnectTokenBytes);
}

DropReason ReadConnectionRequest(const uint8_t* packet, size_t size, uint64_t protocolId, const PrivateKeys& keys,
                                 uint64_t nowSeconds, ConnectionRequest* out) {
  if (size != kConnectionRequestBytes || packet[0] != kConnectionRequest) return DropReason::kMalformed;
  if (std::memcmp(packet + 1, kVersionInfo, kVersionInfoBytes) != 0) return DropReason::kWrongProtocol;  // another version
  WireReader reader(packet + 1 + kVersionInfoBytes, size - 1 - kVersionInfoBytes);
  if (reader.U64() != protocolId) return DropReason::kWrongProtocol;
  out->expireTimestamp = reader.U64();
  if (out->expireTimestamp <= nowSeconds) return DropReason::kExpired;
  const uint8_t* nonce = reader.Skip(kConnectTokenNonceBytes);
  out->sealedToken = reader.Skip(kPrivateConnectTokenBytes);
  if (reader.failed()) return DropReason::kMalformed;
  // A token names no key: the current one first (nearly every token's), then those in their grace. A token none
  // opens costs a decryption per key (its MAC fails under each).
  for (size_t i = 0; i < keys.count(); ++i) {
    if (OpenPrivateConnectToken(out->sealedToken, protocolId, out->expireTimestamp, nonce, keys.key(i), &out->token)) {
      out->keyIndex = i;
      return DropReason::kNone;
    }
  }
  return DropReason::kTokenRefused;
}

size_t EncryptPacket(PacketType type, uint64_t sequence, const uint8_t* body, size_t bodySize, uint64_t protocolId,
                     const uint8_t key[kKeyBytes], uint8_t (&out)[kMaxPacketBytes]) {
  if (bodySize > kMaxPayloadBytes) return 0;
  const int count = SequenceBytes(sequence);
  const auto prefix = static_cast<uint8_t>((count << 4) | type);
  out[0] = prefix;
  for (int i = 0; i < count; ++i) out[1 + i] = static_cast<uint8_t>(sequence >> (8 * i));
  uint8_t associated[kPacketAssociatedBytes];
  PacketAssociatedData(protocolId, prefix, associated);
  uint8_t nonce[kAeadNonceBytes];
  SequenceNonce(sequence, nonce);
  if (!SealAead(body, bodySize, associated, sizeof(associated), nonce, key, out + 1 + count)) return 0;
  return 1 + static_cast<size_t>(count) + bodySize + kMacBytes;
}

bool EncryptedPacketShaped(const uint8_t* packet, size_t size, uint32_t acceptMask) {
  return CheckShape(packet, size, acceptMask) == DropReason::kNone;
}

DropReason ReadEncryptedPacket(const uint8_t* packet, size_t size, uint64_t protocolId, const uint8_t key[kKeyBytes],
                               uint32_t acceptMask, ReplayWindow* replay, Packet* out, uint8_t* body) {
  const DropReason shape = CheckShape(packet, size, acceptMask);
  if (shape != DropReason::kNone) return shape;
  const uint8_t prefix = packet[0];
  const uint8_t type = prefix & 0x0f;
  const int count = prefix >> 4;
  uint64_t sequence = 0;
  for (int i = 0; i < count; ++i) sequence |= static_cast<uint64_t>(packet[1 + i]) << (8 * i);
  const uint8_t* encrypted = packet + 1 + count;
  const size_t encryptedSize = size - 1 - static_cast<size_t>(count);
  ReplayWindow* window = ReplayProtected(type) ? replay : nullptr;
  if (window != nullptr) {
    if (window->OlderThanWindow(sequence)) return DropReason::kTooOld;
    if (window->SeenInWindow(sequence)) return DropReason::kReplayed;
  }
  uint8_t associated[kPacketAssociatedBytes];
  PacketAssociatedData(protocolId, prefix, associated);
  uint8_t nonce[kAeadNonceBytes];
  SequenceNonce(sequence, nonce);
  if (!OpenAead(encrypted, encryptedSize, associated, sizeof(associated), nonce, key, body)) {
    return DropReason::kDecryptionFailed;
  }
  if (window != nullptr) window->Advance(sequence);
  out->type = static_cast<PacketType>(type);
  out->sequence = sequence;
  out->bodySize = encryptedSize - kMacBytes;
  return DropReason::kNone;
}

}  // namespace volley::netcode
