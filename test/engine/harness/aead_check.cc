// Checks the wrapper native/protocol/netcode/aead.cc against libsodium's crypto_aead_chacha20poly1305_ietf_* called
// directly and against RFC 8439's example, where JavaScript cannot see: every plaintext size 0..1200 with
// associated data of 0, 22 and other sizes, sealed and opened apart and in place; forgeries refused with no
// plaintext written (the output left as it was, or zeroed by libsodium); sizes out of range refused with
// nothing written. Built with ASan and UBSan by test/netcode/aead-harness.toolchain.test.ts; prints one JSON object.
#include <sodium.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "protocol/netcode/aead.h"

using namespace volley::netcode;

namespace {

int gFailures = 0;

void Fail(const char* what, size_t size, size_t associatedSize) {
  if (++gFailures <= 5) std::fprintf(stderr, "aead_check: %s (plaintext %zu B, associated %zu B)\n", what, size, associatedSize);
}

std::vector<uint8_t> FromHex(const char* hex) {
  std::vector<uint8_t> out(std::strlen(hex) / 2);
  for (size_t i = 0; i < out.size(); ++i) std::sscanf(hex + 2 * i, "%2hhx", &out[i]);
  return out;
}

// RFC 8439 §2.8.2: the AEAD example.
bool Rfc8439Example() {
  uint8_t key[kKeyBytes];
  for (size_t i = 0; i < kKeyBytes; ++i) key[i] = static_cast<uint8_t>(0x80 + i);
  const uint8_t nonce[kAeadNonceBytes] = {0x07, 0x00, 0x00, 0x00, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47};
  const uint8_t associated[] = {0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7};
  const char* text =
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
  const std::vector<uint8_t> expected = FromHex(
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b29"
      "05d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b"
      "6116"
      "1ae10b594f09e26a7e902ecbd0600691");
  const size_t size = std::strlen(text);
  std::vector<uint8_t> sealed(size + kMacBytes), opened(size);
  if (!SealAead(reinterpret_cast<const uint8_t*>(text), size, associated, sizeof associated, nonce, key, sealed.data())) return false;
  return sealed == expected &&
         OpenAead(expected.data(), expected.size(), associated, sizeof associated, nonce, key, opened.data()) &&
         std::memcmp(opened.data(), text, size) == 0;
}

}  // namespace

int main() {
  if (sodium_init() < 0) return 2;
  uint8_t key[kKeyBytes];
  randombytes_buf(key, sizeof key);
  std::vector<uint8_t> plain(kMaxAeadPlainBytes), associated(64);
  randombytes_buf(plain.data(), plain.size());
  randombytes_buf(associated.data(), associated.size());
  std::vector<uint8_t> theirs(kMaxAeadPlainBytes + kMacBytes), ours(theirs.size()), inPlace(theirs.size());
  std::vector<uint8_t> opened(kMaxAeadPlainBytes), untouched(kMaxAeadPlainBytes, 0xa5);
  long cases = 0, forgeriesRefused = 0;
  bool noPlaintextOnForgery = true, untouchedOutOfRange = true;

  for (size_t size = 0; size <= kMaxAeadPlainBytes; ++size) {
    for (const size_t associatedSize : {size_t{0}, size_t{22}, (size * 7) % 65}) {
      ++cases;
      uint8_t nonce[kAeadNonceBytes];
      SequenceNonce(size * 1000003 + associatedSize, nonce);
      unsigned long long length = 0;
      crypto_aead_chacha20poly1305_ietf_encrypt(theirs.data(), &length, plain.data(), size, associated.data(),
                                                associatedSize, nullptr, nonce, key);
      const size_t sealedSize = size + kMacBytes;
      if (!SealAead(plain.data(), size, associated.data(), associatedSize, nonce, key, ours.data()) ||
          std::memcmp(ours.data(), theirs.data(), sealedSize) != 0) {
        Fail("sealed differently from libsodium", size, associatedSize);
      }
      std::memcpy(inPlace.data(), plain.data(), size);
      if (!SealAead(inPlace.data(), size, associated.data(), associatedSize, nonce, key, inPlace.data()) ||
          std::memcmp(inPlace.data(), theirs.data(), sealedSize) != 0) {
        Fail("sealed in place differently from libsodium", size, associatedSize);
      }
      if (!OpenAead(theirs.data(), sealedSize, associated.data(), associatedSize, nonce, key, opened.data()) ||
          std::memcmp(opened.data(), plain.data(), size) != 0) {
        Fail("could not open what libsodium sealed", size, associatedSize);
      }
      if (!OpenAead(inPlace.data(), sealedSize, associated.data(), associatedSize, nonce, key, inPlace.data()) ||
          std::memcmp(inPlace.data(), plain.data(), size) != 0) {
        Fail("could not open in place", size, associatedSize);
      }
      // Forgeries: a bit of the ciphertext or tag, a bit of the associated data, the size one short.
      const size_t bit = (size * 2654435761u) % (8 * sealedSize);
      std::vector<uint8_t> forged(theirs.begin(), theirs.begin() + static_cast<std::ptrdiff_t>(sealedSize));
      forged[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      std::vector<uint8_t> otherAssociated(associated);
      if (associatedSize > 0) otherAssociated[size % associatedSize] ^= 0x01;
      struct Forgery {
        const uint8_t* sealed;
        size_t size;
        const uint8_t* associated;
      };
      std::vector<Forgery> forgeries = {{forged.data(), sealedSize, associated.data()}};
      if (associatedSize > 0) forgeries.push_back({theirs.data(), sealedSize, otherAssociated.data()});
      if (size > 0) forgeries.push_back({theirs.data(), sealedSize - 1, associated.data()});
      for (const Forgery& forgery : forgeries) {
        std::memset(opened.data(), 0xa5, opened.size());
        if (OpenAead(forgery.sealed, forgery.size, forgery.associated, associatedSize, nonce, key, opened.data())) {
          Fail("opened a forgery", size, associatedSize);
        } else {
          ++forgeriesRefused;
        }
        for (size_t i = 0; i < opened.size(); ++i) {
          if (opened[i] != 0xa5 && opened[i] != 0) noPlaintextOnForgery = false;
        }
      }
    }
  }

  // Sizes out of range: refused, nothing written.
  bool rangeRefused = true;
  uint8_t nonce[kAeadNonceBytes] = {};
  std::memset(opened.data(), 0xa5, opened.size());
  for (size_t sealedSize = 0; sealedSize < kMacBytes; ++sealedSize) {
    if (OpenAead(theirs.data(), sealedSize, nullptr, 0, nonce, key, opened.data())) rangeRefused = false;
  }
  if (OpenAead(theirs.data(), kMaxAeadPlainBytes + kMacBytes + 1, nullptr, 0, nonce, key, opened.data()) ||
      OpenAead(theirs.data(), SIZE_MAX, nullptr, 0, nonce, key, opened.data())) {
    rangeRefused = false;
  }
  if (opened != untouched) untouchedOutOfRange = false;
  std::vector<uint8_t> big(kMaxAeadPlainBytes + 1), out(kMaxAeadPlainBytes + 1 + kMacBytes, 0xa5);
  if (SealAead(big.data(), big.size(), nullptr, 0, nonce, key, out.data())) rangeRefused = false;
  for (const uint8_t byte : out) untouchedOutOfRange = untouchedOutOfRange && byte == 0xa5;

  std::printf("{\"cases\":%ld,\"failures\":%d,\"forgeriesRefused\":%ld,\"noPlaintextOnForgery\":%s,"
              "\"untouchedOutOfRange\":%s,\"rangeRefused\":%s,"
              "\"rfc8439\":%s}\n",
              cases, gFailures, forgeriesRefused, noPlaintextOnForgery ? "true" : "false",
              untouchedOutOfRange ? "true" : "false", rangeRefused ? "true" : "false",
              Rfc8439Example() ? "true" : "false");
  return 0;
}
