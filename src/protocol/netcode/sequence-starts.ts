// Random starting sequences for the fallback engine's netcode cores, as native/protocol/netcode/sequence_starts.h
// draws them for the native engine's. A packet's nonce is its sequence under the token's key: two processes
// that serve one token from the same start (a failover to the token's next server, another reusePort
// shard, a restart) would encrypt different packets under one key and nonce. From random starts they meet
// only if their ranges overlap: about (packets sent) / 2^48 for a token used twice.
import type { Sodium } from './sodium.ts'

function random64(sodium: Sodium): bigint {
  const bytes = sodium.randombytes_buf(8)
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true)
}

/** Below 2^48: six sequence bytes on the wire instead of one or two, and 2^62 and more left to count. */
export function randomSequenceBase(sodium: Sodium): bigint {
  return random64(sodium) & ((1n << 48n) - 1n)
}

/**
 * The wall clock in microseconds: where a start's challenge sequence begins, so that a later start's
 * challenges count above an earlier one's (native/protocol/netcode/sequence_starts.h says why).
 */
export function challengeSequenceStart(): bigint {
  return BigInt(Math.max(0, Math.floor((performance.timeOrigin + performance.now()) * 1000)))
}

/** In [2^63, 2^63 + 2^62): above every per-client sequence, with 2^62 left to count before it would wrap. */
export function randomGlobalSequenceStart(sodium: Sodium): bigint {
  return (1n << 63n) | (random64(sodium) & ((1n << 62n) - 1n))
}
