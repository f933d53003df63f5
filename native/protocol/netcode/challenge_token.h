// Challenge tokens: 300 bytes sealed with ChaCha20-Poly1305-IETF under the server's per-start key.
#pragma once

#include <cstdint>

#include "protocol/netcode/constants.h"

namespace volley::netcode {

struct ChallengeToken {
  uint64_t clientId = 0;
  uint8_t userData[kUserDataBytes] = {};
};

void SealChallengeToken(const ChallengeToken& token, uint64_t sequence, const uint8_t key[kKeyBytes],
                        uint8_t out[kChallengeTokenBytes]);
bool OpenChallengeToken(const uint8_t sealed[kChallengeTokenBytes], uint64_t sequence, const uint8_t key[kKeyBytes],
                        ChallengeToken* out);

}  // namespace volley::netcode
