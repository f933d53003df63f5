#include "protocol/netcode/challenge_token.h"

#include "protocol/netcode/aead.h"
#include "protocol/netcode/wire.h"

namespace volley::netcode {

void SealChallengeToken(const ChallengeToken& token, uint64_t sequence, const uint8_t key[kKeyBytes],
                        uint8_t out[kChallengeTokenBytes]) {
  uint8_t plain[kChallengeTokenBytes - kMacBytes] = {};
  WireWriter writer(plain, sizeof(plain));
  writer.U64(token.clientId);
  writer.Bytes(token.userData, kUserDataBytes);
  uint8_t nonce[kAeadNonceBytes];
  SequenceNonce(sequence, nonce);
  static_assert(sizeof(plain) <= kMaxAeadPlainBytes, "a challenge token fits one seal");
  const bool sealed = SealAead(plain, sizeof(plain), nullptr, 0, nonce, key, out);
  (void)sealed;  // it fits (above), so it always seals
}

bool OpenChallengeToken(const uint8_t sealed[kChallengeTokenBytes], uint64_t sequence, const uint8_t key[kKeyBytes],
                        ChallengeToken* out) {
  uint8_t plain[kChallengeTokenBytes - kMacBytes];
  uint8_t nonce[kAeadNonceBytes];
  SequenceNonce(sequence, nonce);
  if (!OpenAead(sealed, kChallengeTokenBytes, nullptr, 0, nonce, key, plain)) return false;
  WireReader reader(plain, sizeof(plain));
  out->clientId = reader.U64();
  reader.Bytes(out->userData, kUserDataBytes);
  return !reader.failed();
}

}  // namespace volley::netcode
