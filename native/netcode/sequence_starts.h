// Random starting sequences for the engine's netcode cores (ServerConfig::sequenceBase and
// globalSequenceStart, ClientConfig::sequenceBase). A packet's nonce is its sequence under the token's key:
// two processes that serve one token from the same start (a failover to the token's next server, another
// reusePort shard, a restart) would encrypt different packets under one key and nonce. From random starts
// they meet only if their ranges overlap: about (packets sent) / 2^48 for a token used twice.
#pragma once

#include <sodium.h>

#include <cstdint>

namespace volley::netcode {

// Below 2^48: six sequence bytes on the wire instead of one or two, and 2^62 and more left to count.
inline uint64_t RandomSequenceBase() {
  uint64_t value = 0;
  randombytes_buf(&value, sizeof(value));
  return value & ((uint64_t{1} << 48) - 1);
}

// In [2^63, 2^63 + 2^62): above every per-client sequence, with 2^62 left to count before it would wrap.
inline uint64_t RandomGlobalSequenceStart() {
  uint64_t value = 0;
  randombytes_buf(&value, sizeof(value));
  return (uint64_t{1} << 63) | (value & ((uint64_t{1} << 62) - 1));
}

}  // namespace volley::netcode
