// The keys an SAE holds and their states (research §D.3): AVAILABLE → ASSIGNED → IN_PRODUCTION → ROLLED, and
// EXPIRED, REVOKED. The store is pluggable (a database, an HSM's index); so is the device that uses the keys
// (a "persona": what deletes a key from it at cleanup).

export type KeyState = 'AVAILABLE' | 'ASSIGNED' | 'IN_PRODUCTION' | 'ROLLED' | 'EXPIRED' | 'REVOKED'

export interface StoredKey {
  /** The KME's key_ID. */
  keyId: string
  key: Uint8Array
  state: KeyState
  /** The SAE the key is shared with. */
  peerSaeId: string
  /** When the state last changed, epoch ms. */
  updatedAt: number
}

/**
 * Where an SAE keeps its keys. Each method may return a promise (a database); the key sync awaits each in
 * turn, one session at a time per peer, so a store needs no locking of its own for one key sync.
 */
export interface KeyStore {
  get(keyId: string): StoredKey | undefined | Promise<StoredKey | undefined>
  put(key: StoredKey): void | Promise<void>
  delete(keyId: string): void | Promise<void>
  /** The keys shared with `peerSaeId`, optionally only those in `state`. */
  list(peerSaeId: string, state?: KeyState): StoredKey[] | Promise<StoredKey[]>
}

/** The device side of a key: what deletes it there at cleanup (throws or rejects when it cannot). */
export interface KeyPersona {
  deleteKey(keyId: string): void | Promise<void>
}

/** A KeyStore in memory; deleted keys are wiped. */
export class MemoryKeyStore implements KeyStore {
  readonly #keys = new Map<string, StoredKey>()

  get(keyId: string): StoredKey | undefined {
    const key = this.#keys.get(keyId)
    return key === undefined ? undefined : { ...key }
  }

  put(key: StoredKey): void {
    this.#keys.set(key.keyId, { ...key })
  }

  delete(keyId: string): void {
    const key = this.#keys.get(keyId)
    if (key === undefined) return
    // Only when no other record shares the bytes: a state change copies the record, not the key.
    key.key.fill(0)
    this.#keys.delete(keyId)
  }

  list(peerSaeId: string, state?: KeyState): StoredKey[] {
    const found: StoredKey[] = []
    for (const key of this.#keys.values()) if (key.peerSaeId === peerSaeId && (state === undefined || key.state === state)) found.push({ ...key })
    return found
  }

  /** How many keys it holds. */
  get size(): number {
    return this.#keys.size
  }
}

/** Moves a stored key to `state` (the record is replaced, the bytes kept). */
export async function setKeyState(store: KeyStore, keyId: string, state: KeyState, nowMs: number): Promise<StoredKey | undefined> {
  const key = await store.get(keyId)
  if (key === undefined) return undefined
  const moved = { ...key, state, updatedAt: nowMs }
  await store.put(moved)
  return moved
}

/**
 * The switch at the rotation instant, the same on both sides: `keyId` goes IN_PRODUCTION and the key that was
 * (any other IN_PRODUCTION key shared with the peer) goes ROLLED. The new key's record, or undefined when the
 * store no longer holds it.
 */
export async function rotateStoredKeys(store: KeyStore, peerSaeId: string, keyId: string, nowMs: number): Promise<{ current: StoredKey; rolled: StoredKey[] } | undefined> {
  const current = await store.get(keyId)
  if (current === undefined) return undefined
  const rolled: StoredKey[] = []
  for (const key of await store.list(peerSaeId, 'IN_PRODUCTION')) {
    if (key.keyId === keyId) continue
    rolled.push((await setKeyState(store, key.keyId, 'ROLLED', nowMs))!)
  }
  return { current: (await setKeyState(store, keyId, 'IN_PRODUCTION', nowMs))!, rolled }
}
