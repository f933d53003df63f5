// The testing WebAssembly build's exports beyond wasm/protocols.cc's (scripts/build-wasm.sh --testing, never
// shipped): a deterministic random source, so that a differential test can feed this build and the test
// bindings' addon the same streams and expect the same bytes back. libsodium draws here through JavaScript's
// Module.getRandomValue, which the test sets to vp_test_next_random.
#include <emscripten/emscripten.h>

#include <cstdint>

#include "testing/deterministic_random.h"

extern "C" {

EMSCRIPTEN_KEEPALIVE void vp_test_use_deterministic_random(uint32_t seedLow, uint32_t seedHigh) {
  volley::testing::UseDeterministicRandom(uint64_t{seedHigh} << 32 | seedLow);
}

EMSCRIPTEN_KEEPALIVE uint32_t vp_test_next_random() { return volley::testing::NextDeterministicRandom(); }

}  // extern "C"
