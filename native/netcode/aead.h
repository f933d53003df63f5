// ChaCha20-Poly1305 (IETF) as RFC 8439 §2.8 defines it and libsodium's crypto_aead_chacha20poly1305_ietf_*
// compute it, byte for byte, made of libsodium's ChaCha20 and Poly1305: every packet and challenge token
// of netcode 1.02 is sealed with it.
//
// Why not libsodium's AEAD call: it asks ChaCha20 for the keystream twice (block 0 for the Poly1305 key,
// then the message from block 1), and libsodium computes whatever part of a call is under 256 bytes one
// 64-byte block at a time, at about three times the cost per byte of its 4- and 8-block paths. Asking once
// for the whole keystream, rounded up to 256 bytes, takes those paths: a 64 B message seals or opens in
// about three quarters of the time, a 1200 B one in about 75 % (bench/native/aead-costs.cc).
//
// The keystream is thus made before the tag is checked, where libsodium made block 0 alone: a forged
// packet costs what a genuine one of its size does (up to about 1 µs at 1200 B here), no more. Making
// the rest only after the check would halve a forgery's cost and add a quarter to every genuine packet's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "constants.h"

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
// sealed itself). False, with nothing written, when the tag does not verify or the size is out of range.
[[nodiscard]] bool OpenAead(const uint8_t* sealed, size_t sealedSize, const uint8_t* associated, size_t associatedSize,
                            const uint8_t nonce[kAeadNonceBytes], const uint8_t key[kKeyBytes], uint8_t* plain);

}  // namespace volley::netcode
