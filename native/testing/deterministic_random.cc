#include "testing/deterministic_random.h"

#include <sodium.h>

#include <cstring>

namespace volley::testing {
namespace {

uint8_t gKey[crypto_stream_chacha20_ietf_KEYBYTES];
uint64_t gBlock = 0;
uint8_t gBuffer[64];
size_t gUsed = sizeof(gBuffer);

#ifndef __EMSCRIPTEN__
const char* Name() { return "volley-deterministic"; }
// As libsodium's WebAssembly build fills a buffer: a 32-bit draw per byte, its low byte kept.
void Buffer(void* out, size_t size) {
  auto* bytes = static_cast<uint8_t*>(out);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(NextDeterministicRandom());
}
void Stir() {}
int Close() { return 0; }

randombytes_implementation MakeImplementation() {
  randombytes_implementation implementation{};
  implementation.implementation_name = Name;
  implementation.random = NextDeterministicRandom;
  implementation.stir = Stir;
  implementation.uniform = nullptr;  // libsodium's own, over random(), as in its WebAssembly build
  implementation.buf = Buffer;
  implementation.close = Close;
  return implementation;
}

randombytes_implementation gImplementation = MakeImplementation();
#endif

}  // namespace

uint32_t NextDeterministicRandom() {
  if (gUsed + sizeof(uint32_t) > sizeof(gBuffer)) {
    uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {};
    std::memcpy(nonce, &gBlock, sizeof(gBlock));  // little-endian on both builds
    ++gBlock;
    crypto_stream_chacha20_ietf(gBuffer, sizeof(gBuffer), nonce, gKey);
    gUsed = 0;
  }
  uint32_t value = 0;
  std::memcpy(&value, gBuffer + gUsed, sizeof(value));
  gUsed += sizeof(value);
  return value;
}

void UseDeterministicRandom(uint64_t seed) {
  std::memset(gKey, 0, sizeof(gKey));
  std::memcpy(gKey, &seed, sizeof(seed));
  gBlock = 0;
  gUsed = sizeof(gBuffer);
#ifndef __EMSCRIPTEN__
  randombytes_set_implementation(&gImplementation);
#endif
}

}  // namespace volley::testing
