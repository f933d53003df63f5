// A deterministic random source, for tests that feed two builds of the protocols (the test bindings' addon and
// the testing WebAssembly build) the same streams: every key, sequence start and table key the protocols draw
// then comes from ChaCha20's keystream under `seed`, in the order they draw them, on both. Never in a shipped
// build: the addon and the fallback engine's module draw from the system.
#pragma once

#include <cstdint>

namespace volley::testing {

// The next 32 bits of the stream.
uint32_t NextDeterministicRandom();

// Restarts the stream from `seed`. Natively, libsodium's randombytes draws from it from then on; in the
// WebAssembly build libsodium draws one 32-bit value per byte from JavaScript's Module.getRandomValue, which
// the test points at NextDeterministicRandom(), and the native source draws as it does, so both see the same.
void UseDeterministicRandom(uint64_t seed);

}  // namespace volley::testing
