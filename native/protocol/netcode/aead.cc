#include "protocol/netcode/aead.h"

#include <sodium.h>

namespace volley::netcode {

static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == kAeadNonceBytes, "IETF ChaCha20-Poly1305 nonce");
static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == kKeyBytes, "IETF ChaCha20-Poly1305 key");
static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == kMacBytes, "Poly1305 tag");

void SequenceNonce(uint64_t sequence, uint8_t out[kAeadNonceBytes]) {
  for (int i = 0; i < 4; ++i) out[i] = 0;
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<uint8_t>(sequence >> (8 * i));
}

bool SealAead(const uint8_t* plain, size_t plainSize, const uint8_t* associated, size_t associatedSize,
              const uint8_t nonce[kAeadNonceBytes], const uint8_t key[kKeyBytes], uint8_t* out) {
  if (plainSize > kMaxAeadPlainBytes) return false;
  return crypto_aead_chacha20poly1305_ietf_encrypt(out, nullptr, plain, plainSize, associated, associatedSize, nullptr,
                                                   nonce, key) == 0;
}

bool OpenAead(const uint8_t* sealed, size_t sealedSize, const uint8_t* associated, size_t associatedSize,
              const uint8_t nonce[kAeadNonceBytes], const uint8_t key[kKeyBytes], uint8_t* plain) {
  if (sealedSize < kMacBytes || sealedSize - kMacBytes > kMaxAeadPlainBytes) return false;
  return crypto_aead_chacha20poly1305_ietf_decrypt(plain, nullptr, nullptr, sealed, sealedSize, associated,
                                                   associatedSize, nonce, key) == 0;
}

}  // namespace volley::netcode
