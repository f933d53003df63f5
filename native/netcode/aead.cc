#include "aead.h"

#include <sodium.h>

#include <cstring>

namespace volley::netcode {

namespace {

constexpr size_t kChaChaBlockBytes = 64;
// libsodium's ChaCha20 takes its multi-block paths for each whole 256 bytes of a call.
constexpr size_t kKeystreamRounding = 256;
constexpr size_t RoundedKeystream(size_t plainSize) {
  return (kChaChaBlockBytes + plainSize + kKeystreamRounding - 1) / kKeystreamRounding * kKeystreamRounding;
}
constexpr size_t kMaxKeystreamBytes = RoundedKeystream(kMaxAeadPlainBytes);

static_assert(crypto_stream_chacha20_ietf_NONCEBYTES == kAeadNonceBytes, "IETF ChaCha20 nonce");
static_assert(crypto_stream_chacha20_ietf_KEYBYTES == kKeyBytes, "IETF ChaCha20 key");
static_assert(crypto_onetimeauth_poly1305_BYTES == kMacBytes, "Poly1305 tag");
static_assert(crypto_onetimeauth_poly1305_KEYBYTES <= kChaChaBlockBytes, "Poly1305 key from block 0");

// Block 0 of the keystream gives the Poly1305 key; blocks 1 on encrypt the message.
class Keystream {
 public:
  Keystream(size_t plainSize, const uint8_t nonce[kAeadNonceBytes], const uint8_t key[kKeyBytes])
      : length_(RoundedKeystream(plainSize)) {
    crypto_stream_chacha20_ietf(bytes_, length_, nonce, key);
  }
  ~Keystream() { sodium_memzero(bytes_, length_); }
  Keystream(const Keystream&) = delete;
  Keystream& operator=(const Keystream&) = delete;

  const uint8_t* poly1305Key() const { return bytes_; }

  // out = in XOR the message's keystream; out may be in.
  void Apply(const uint8_t* in, size_t size, uint8_t* out) const {
    const uint8_t* stream = bytes_ + kChaChaBlockBytes;
    size_t i = 0;
    for (; i + sizeof(uint64_t) <= size; i += sizeof(uint64_t)) {
      uint64_t word, pad;
      std::memcpy(&word, in + i, sizeof word);
      std::memcpy(&pad, stream + i, sizeof pad);
      word ^= pad;
      std::memcpy(out + i, &word, sizeof word);
    }
    for (; i < size; ++i) out[i] = static_cast<uint8_t>(in[i] ^ stream[i]);
  }

 private:
  size_t length_;
  uint8_t bytes_[kMaxKeystreamBytes];
};

// Poly1305 over associated || pad16 || ciphertext || pad16 || le64(associated size) || le64(ciphertext size).
void Tag(const Keystream& keystream, const uint8_t* associated, size_t associatedSize, const uint8_t* ciphertext,
         size_t ciphertextSize, uint8_t tag[kMacBytes]) {
  static const uint8_t kZeros[16] = {};
  crypto_onetimeauth_poly1305_state state;
  crypto_onetimeauth_poly1305_init(&state, keystream.poly1305Key());
  crypto_onetimeauth_poly1305_update(&state, associated, associatedSize);
  crypto_onetimeauth_poly1305_update(&state, kZeros, (16 - associatedSize % 16) % 16);
  crypto_onetimeauth_poly1305_update(&state, ciphertext, ciphertextSize);
  crypto_onetimeauth_poly1305_update(&state, kZeros, (16 - ciphertextSize % 16) % 16);
  uint8_t sizes[16];
  for (int i = 0; i < 8; ++i) {
    sizes[i] = static_cast<uint8_t>(static_cast<uint64_t>(associatedSize) >> (8 * i));
    sizes[8 + i] = static_cast<uint8_t>(static_cast<uint64_t>(ciphertextSize) >> (8 * i));
  }
  crypto_onetimeauth_poly1305_update(&state, sizes, sizeof sizes);
  crypto_onetimeauth_poly1305_final(&state, tag);
  sodium_memzero(&state, sizeof state);
}

}  // namespace

void SequenceNonce(uint64_t sequence, uint8_t out[kAeadNonceBytes]) {
  for (int i = 0; i < 4; ++i) out[i] = 0;
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<uint8_t>(sequence >> (8 * i));
}

bool SealAead(const uint8_t* plain, size_t plainSize, const uint8_t* associated, size_t associatedSize,
              const uint8_t nonce[kAeadNonceBytes], const uint8_t key[kKeyBytes], uint8_t* out) {
  if (plainSize > kMaxAeadPlainBytes) return false;
  const Keystream keystream(plainSize, nonce, key);
  keystream.Apply(plain, plainSize, out);
  Tag(keystream, associated, associatedSize, out, plainSize, out + plainSize);
  return true;
}

bool OpenAead(const uint8_t* sealed, size_t sealedSize, const uint8_t* associated, size_t associatedSize,
              const uint8_t nonce[kAeadNonceBytes], const uint8_t key[kKeyBytes], uint8_t* plain) {
  if (sealedSize < kMacBytes || sealedSize - kMacBytes > kMaxAeadPlainBytes) return false;
  const size_t plainSize = sealedSize - kMacBytes;
  const Keystream keystream(plainSize, nonce, key);
  uint8_t expected[kMacBytes];
  Tag(keystream, associated, associatedSize, sealed, plainSize, expected);
  // The tag is checked, in constant time, before a byte of plaintext is written.
  const bool authentic = crypto_verify_16(expected, sealed + plainSize) == 0;
  sodium_memzero(expected, sizeof expected);
  if (!authentic) return false;
  keystream.Apply(sealed, plainSize, plain);
  return true;
}

}  // namespace volley::netcode
