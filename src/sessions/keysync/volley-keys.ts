// A QKD key as Volley's own key. A netcode private key is a symmetric key that the token-issuing backend and
// the gateways share: after a key sync, the master (the backend) and the slave (a gateway) hold the same
// one. The gateway accepts tokens under the agreed key from the confirmation on, and under the key it
// replaces until the instant plus a grace; the backend mints under the new key from the instant.
import { hkdfSync } from 'node:crypto'
import { VolleyRangeError, surfaceLater } from '../../util/errors.ts'
import { numberOption } from '../../util/options.ts'
import type { Server } from '../../api/server.ts'
import type { AgreedRotation, CompletedRotation, KeySyncRole } from './role.ts'

/** The bytes of a netcode private key. */
const netcodeKeyBytes = 32
/** What a longer QKD key's derivation is bound to, so that the derived key serves no other purpose. */
const derivationInfo = 'volley netcode private key'

/**
 * A netcode private key from a QKD key: the key itself when it is 32 bytes (a KME's key_size of 256 bits),
 * else HKDF-SHA-256 of it (for 352 bits, the spec's example). Both sides derive the same. A key shorter than
 * 32 bytes is refused (ERR_OUT_OF_RANGE): it holds less secret than the token's key needs.
 */
export function netcodeKeyFrom(qkdKey: Uint8Array): Uint8Array {
  if (qkdKey.byteLength === netcodeKeyBytes) return new Uint8Array(qkdKey)
  if (qkdKey.byteLength < netcodeKeyBytes) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `A QKD key for Volley must be at least ${netcodeKeyBytes} bytes (256 bits). Received ${qkdKey.byteLength} bytes`)
  }
  return new Uint8Array(hkdfSync('sha256', qkdKey, new Uint8Array(0), derivationInfo, netcodeKeyBytes))
}

export interface ServerKeyRotationOptions {
  /**
   * How long after the agreed instant (on this host's clock) the replaced key is still accepted, ms (default
   * 60,000): at least the life of a connect token (expireSeconds) plus how far the backend's clock may run
   * behind this one, so that a token minted under the old key just before the backend's instant stays usable.
   */
  graceMs?: number | undefined
}

/**
 * Keeps a Server's private keys in step with a key sync (on a gateway, the slave): at each confirmation the
 * agreed key is accepted at once (a client holding a token of the new key before this clock reaches the
 * instant is not refused), and the replaced one until the instant plus graceMs. Returns what detaches it.
 */
export function rotateServerKeys(server: Server, role: KeySyncRole, options: ServerKeyRotationOptions = {}): () => void {
  const graceMs = numberOption('graceMs', options.graceMs, 60_000, 0, 2 ** 31 - 1, ' ms')
  const onConfirmed = (rotation: AgreedRotation): void => {
    let key: Uint8Array | undefined
    try {
      key = netcodeKeyFrom(rotation.key)
      server.rotatePrivateKey(key, { graceMs: Math.max(0, rotation.rotationAt - Date.now()) + graceMs })
    } catch (error) {
      // A closed server takes no key, and needs none; anything else is a defect to see, not to lose.
      if ((error as { code?: unknown }).code !== 'ERR_SERVER_CLOSED') surfaceLater(error)
    } finally {
      key?.fill(0)
    }
  }
  role.on('confirmed', onConfirmed)
  return () => role.off('confirmed', onConfirmed)
}

/**
 * The key a token issuer (on the backend, the master) mints under: the one in production, switched at each
 * rotation's instant. `current` is undefined until the first rotation when no initial key is given.
 */
export class IssuerKey {
  #current: Uint8Array | undefined
  readonly #role: KeySyncRole
  readonly #onRotated = (rotation: CompletedRotation): void => {
    this.#current?.fill(0)
    this.#current = netcodeKeyFrom(rotation.key)
  }

  constructor(role: KeySyncRole, initial?: Uint8Array) {
    this.#role = role
    this.#current = initial === undefined ? undefined : netcodeKeyFrom(initial)
    role.on('rotated', this.#onRotated)
  }

  /** A copy of the key to mint under (the one held is wiped at the next rotation). */
  get current(): Uint8Array | undefined {
    return this.#current === undefined ? undefined : new Uint8Array(this.#current)
  }

  /** Stops following the rotations, and wipes the key. */
  close(): void {
    this.#role.off('rotated', this.#onRotated)
    this.#current?.fill(0)
    this.#current = undefined
  }
}
