// An independent TypeScript codec of native/protocol/netcode/challenge_token.cc, for tests (never shipped).
// Challenge tokens: the server's proof, sealed under a key only it knows, that a client reached it from
// the address it claims. 300 bytes: client id, user data, zero padding, MAC.
import { sizes } from '../../../src/protocol/netcode/constants.ts'
import type { Sodium } from '../../../src/protocol/netcode/sodium.ts'
import { Reader, Writer, sequenceNonce } from '../../../src/protocol/netcode/wire.ts'

export interface ChallengeToken {
  clientId: bigint
  userData: Uint8Array
}

export function sealChallengeToken(sodium: Sodium, token: ChallengeToken, sequence: bigint, key: Uint8Array): Uint8Array {
  const plain = new Uint8Array(sizes.challengeToken - sizes.mac)
  new Writer(plain).u64(token.clientId).raw(token.userData)
  return sodium.crypto_aead_chacha20poly1305_ietf_encrypt(plain, null, null, sequenceNonce(sequence), key)
}

/** null when the token does not decrypt under this key and sequence. */
export function openChallengeToken(sodium: Sodium, sealed: Uint8Array, sequence: bigint, key: Uint8Array): ChallengeToken | null {
  if (sealed.byteLength !== sizes.challengeToken) return null
  let plain: Uint8Array
  try {
    plain = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, sealed, null, sequenceNonce(sequence), key)
  } catch {
    return null
  }
  const reader = new Reader(plain)
  return { clientId: reader.u64(), userData: reader.raw(sizes.userData) }
}
