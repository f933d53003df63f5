// ChaCha20-Poly1305 (IETF), the AEAD that seals every packet and challenge token of netcode 1.02: one place
// for its nonce and for the calls into libsodium's crypto_aead_chacha20poly1305_ietf_*, whose sizes are
// checked here first.
//
// Why libsodium's AEAD call and not a faster assembly of its ChaCha20 and Poly1305 (one keystream call
// reaches libsodium's multi-block paths: measured 0.78x the time for a 64 B message, T0530): that would
// be an AEAD construction of our own, which this project does not write, and libsodium's call makes only
// block 0 before it checks the tag, so a forged packet costs less than a genuine one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocol/netcode/constants.h"

namespace volley::netcode {

constexpr size_t kAeadNonceBytes = 12;
// The largest plaintext sealed: a payload packet's body (a challenge token's is 284 bytes).
constexpr size_t kMaxAeadPlainBytes = kMaxPayloadBytes;

// The 12-byte nonce netcode uses: four zero bytes, then the sequence (LE).
void SequenceNonce(uint64_t sequence, uint8_t out[kAeadNonceBytes]);

// Seals plainSize bytes into out: the ciphertext, then the kMacBytes tag. out may be plain itself.
// False, with nothing written, when plainSize is over kMaxAeadPlainBytes.
[[nodiscard]] bool SealAead(const uint8_t* plain, size_t plainSize, const uint8_t* associated, size_t associatedSize,
                            const uint8_t nonce[kAeadNonceBytes], const uint8_t key[kKeyBytes], uint8_t* out);

// Opens sealedSize bytes (the ciphertext, then its tag) into plain (sealedSize - kMacBytes bytes; it may be
// sealed itself). False when the tag does not verify (plain then holds no plaintext: libsodium zeroes it) or
// when the size is out of range (nothing written).
[[nodiscard]] bool OpenAead(const uint8_t* sealed, size_t sealedSize, const uint8_t* associated, size_t associatedSize,
                            const uint8_t nonce[kAeadNonceBytes], const uint8_t key[kKeyBytes], uint8_t* plain);

}  // namespace volley::netcode
