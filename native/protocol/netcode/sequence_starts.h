// Random starting sequences for the engine's netcode cores (ServerConfig::sequenceBase and
// globalSequenceStart, ClientConfig::sequenceBase). A packet's nonce is its sequence under the token's key:
// two processes that serve one token from the same start (a failover to the token's next server, another
// reusePort shard, a restart) would encrypt different packets under one key and nonce. From random starts
// they meet only if their ranges overlap: about (packets sent) / 2^48 for a token used twice.
#pragma once

#include <sodium.h>

#ifdef __EMSCRIPTEN__
#include <emscripten/emscripten.h>
#endif

#include <chrono>
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

// The wall clock in microseconds: where a start's challenge sequence begins, so that a later start's
// challenges count above an earlier one's. A client takes a later challenge in place of the one it has (a
// replayed one must not stall it); one captured from before a restart and replayed would otherwise win over
// every challenge of the server that restarted, for as many challenges as that one had sent.
inline uint64_t ChallengeSequenceStart() {
#ifdef __EMSCRIPTEN__
  // The WebAssembly build's system clock counts whole milliseconds (Date.now()): two starts within one would
  // begin at the same challenge.
  const double us = EM_ASM_DOUBLE({ return Math.floor((performance.timeOrigin + performance.now()) * 1000); });
  return us > 0 ? static_cast<uint64_t>(us) : 0;
#else
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  return us > 0 ? static_cast<uint64_t>(us) : 0;
#endif
}

}  // namespace volley::netcode
