#include "protocol/netcode/connect_token.h"

#include <sodium.h>

#include <cstring>

namespace volley::netcode {

namespace {

constexpr size_t kAssociatedBytes = kVersionInfoBytes + 8 + 8;

void AssociatedData(uint64_t protocolId, uint64_t expireTimestamp, uint8_t out[kAssociatedBytes]) {
  WireWriter writer(out, kAssociatedBytes);
  writer.Bytes(kVersionInfo, kVersionInfoBytes);
  writer.U64(protocolId);
  writer.U64(expireTimestamp);
}

bool ReadAddressList(WireReader* reader, uint32_t* count, ServerAddress* addresses) {
  *count = reader->U32();
  if (reader->failed() || *count < 1 || *count > kMaxServerAddresses) return false;
  for (uint32_t i = 0; i < *count; ++i) {
    if (!ReadServerAddress(reader, &addresses[i])) return false;
  }
  return true;
}

}  // namespace

bool SealPrivateConnectToken(const PrivateConnectToken& token, uint64_t protocolId, uint64_t expireTimestamp,
                             const uint8_t nonce[kConnectTokenNonceBytes], const uint8_t key[kKeyBytes],
                             uint8_t out[kPrivateConnectTokenBytes]) {
  if (token.serverAddressCount < 1 || token.serverAddressCount > kMaxServerAddresses) return false;
  uint8_t plain[kPrivateConnectTokenBytes - kMacBytes] = {};
  WireWriter writer(plain, sizeof(plain));
  writer.U64(token.clientId);
  writer.U32(static_cast<uint32_t>(token.timeoutSeconds));
  writer.U32(token.serverAddressCount);
  for (uint32_t i = 0; i < token.serverAddressCount; ++i) WriteServerAddress(&writer, token.serverAddresses[i]);
  writer.Bytes(token.clientToServerKey, kKeyBytes);
  writer.Bytes(token.serverToClientKey, kKeyBytes);
  writer.Bytes(token.userData, kUserDataBytes);
  if (writer.failed()) return false;
  uint8_t associated[kAssociatedBytes];
  AssociatedData(protocolId, expireTimestamp, associated);
  unsigned long long sealedLength = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, &sealedLength, plain, sizeof(plain), associated, sizeof(associated),
                                             nullptr, nonce, key);
  sodium_memzero(plain, sizeof(plain));
  return sealedLength == kPrivateConnectTokenBytes;
}

bool OpenPrivateConnectToken(const uint8_t sealed[kPrivateConnectTokenBytes], uint64_t protocolId,
                             uint64_t expireTimestamp, const uint8_t nonce[kConnectTokenNonceBytes],
                             const uint8_t key[kKeyBytes], PrivateConnectToken* out) {
  uint8_t associated[kAssociatedBytes];
  AssociatedData(protocolId, expireTimestamp, associated);
  uint8_t plain[kPrivateConnectTokenBytes - kMacBytes];
  unsigned long long plainLength = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plainLength, nullptr, sealed, kPrivateConnectTokenBytes,
                                                 associated, sizeof(associated), nonce, key) != 0) {
    return false;
  }
  WireReader reader(plain, sizeof(plain));
  out->clientId = reader.U64();
  out->timeoutSeconds = static_cast<int32_t>(reader.U32());
  bool ok = ReadAddressList(&reader, &out->serverAddressCount, out->serverAddresses);
  reader.Bytes(out->clientToServerKey, kKeyBytes);
  reader.Bytes(out->serverToClientKey, kKeyBytes);
  reader.Bytes(out->userData, kUserDataBytes);
  ok = ok && !reader.failed();
  sodium_memzero(plain, sizeof(plain));
  return ok;
}

void WriteConnectToken(const ConnectToken& token, uint8_t out[kConnectTokenBytes]) {
  std::memset(out, 0, kConnectTokenBytes);
  WireWriter writer(out, kConnectTokenBytes);
  writer.Bytes(kVersionInfo, kVersionInfoBytes);
  writer.U64(token.protocolId);
  writer.U64(token.createTimestamp);
  writer.U64(token.expireTimestamp);
  writer.Bytes(token.nonce, kConnectTokenNonceBytes);
  writer.Bytes(token.privateData, kPrivateConnectTokenBytes);
  writer.U32(static_cast<uint32_t>(token.timeoutSeconds));
  writer.U32(token.serverAddressCount);
  for (uint32_t i = 0; i < token.serverAddressCount && i < kMaxServerAddresses; ++i) {
    WriteServerAddress(&writer, token.serverAddresses[i]);
  }
  writer.Bytes(token.clientToServerKey, kKeyBytes);
  writer.Bytes(token.serverToClientKey, kKeyBytes);
}

bool ReadConnectToken(const uint8_t* data, size_t size, ConnectToken* out) {
  if (size != kConnectTokenBytes || std::memcmp(data, kVersionInfo, kVersionInfoBytes) != 0) return false;
  WireReader reader(data + kVersionInfoBytes, size - kVersionInfoBytes);
  out->protocolId = reader.U64();
  out->createTimestamp = reader.U64();
  out->expireTimestamp = reader.U64();
  reader.Bytes(out->nonce, kConnectTokenNonceBytes);
  reader.Bytes(out->privateData, kPrivateConnectTokenBytes);
  out->timeoutSeconds = static_cast<int32_t>(reader.U32());
  if (!ReadAddressList(&reader, &out->serverAddressCount, out->serverAddresses)) return false;
  reader.Bytes(out->clientToServerKey, kKeyBytes);
  reader.Bytes(out->serverToClientKey, kKeyBytes);
  return !reader.failed() && out->createTimestamp <= out->expireTimestamp;
}

}  // namespace volley::netcode
