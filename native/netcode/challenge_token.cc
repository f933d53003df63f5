#include "challenge_token.h"

#include <sodium.h>

#include "wire.h"

namespace volley::netcode {

void SequenceNonce(uint64_t sequence, uint8_t out[12]) {
  for (int i = 0; i < 4; ++i) out[i] = 0;
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<uint8_t>(sequence >> (8 * i));
}

void SealChallengeToken(const ChallengeToken& token, uint64_t sequence, const uint8_t key[kKeyBytes],
                        uint8_t out[kChallengeTokenBytes]) {
  uint8_t plain[kChallengeTokenBytes - kMacBytes] = {};
  WireWriter writer(plain, sizeof(plain));
  writer.U64(token.clientId);
  writer.Bytes(token.userData, kUserDataBytes);
  uint8_t nonce[12];
  SequenceNonce(sequence, nonce);
  unsigned long long length = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out, &length, plain, sizeof(plain), nullptr, 0, nullptr, nonce, key);
}

bool OpenChallengeToken(const uint8_t sealed[kChallengeTokenBytes], uint64_t sequence, const uint8_t key[kKeyBytes],
                        ChallengeToken* out) {
  uint8_t plain[kChallengeTokenBytes - kMacBytes];
  uint8_t nonce[12];
  SequenceNonce(sequence, nonce);
  unsigned long long length = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(plain, &length, nullptr, sealed, kChallengeTokenBytes, nullptr, 0,
                                                nonce, key) != 0) {
    return false;
  }
  WireReader reader(plain, sizeof(plain));
  out->clientId = reader.U64();
  reader.Bytes(out->userData, kUserDataBytes);
  return !reader.failed();
}

}  // namespace volley::netcode
