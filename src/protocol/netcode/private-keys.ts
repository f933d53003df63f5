// The private keys a server opens connect tokens with: the current one, then the ones it replaced, each until
// its grace ends on the server's monotonic clock. A token names no key, so a request's is tried under each in
// that order. It follows the rules of native/protocol/netcode/private_keys.h, whose list the engines use; the
// Server keeps this one for the keys it rotated before it listened and for privateKeyCount.
import { maxPrivateKeys, sizes } from './constants.ts'

/** What a token is opened with: the keys in the order they are tried (key(0) the current one). */
export interface TokenKeys {
  readonly count: number
  key(index: number): Uint8Array
}

/** A key a server replaced before it started, in its grace: accepted until untilUs (monotonic µs). */
export interface PreviousPrivateKey {
  key: Uint8Array
  untilUs: number
}

/** Constant time in the bytes' values, as sodium_memcmp (the keys are secrets). */
function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  let difference = 0
  for (let i = 0; i < sizes.key; i++) difference |= a[i]! ^ b[i]!
  return difference === 0
}

export class PrivateKeys implements TokenKeys {
  /** maxPrivateKeys key buffers, made once: rotations copy into them, and no request allocates. */
  readonly #keys: Uint8Array[]
  /** When each key's grace ends; Infinity for the current one. */
  readonly #untilUs: number[]
  #count = 1

  /** Copies `current` (and each previous key): the set owns its bytes, and wipes them. */
  constructor(current: Uint8Array, previous: readonly PreviousPrivateKey[] = [], nowUs = 0) {
    this.#keys = Array.from({ length: maxPrivateKeys }, () => new Uint8Array(sizes.key))
    this.#untilUs = new Array<number>(maxPrivateKeys).fill(0)
    this.#keys[0]!.set(current)
    this.#untilUs[0] = Number.POSITIVE_INFINITY
    for (const each of previous) this.addPrevious(each.key, each.untilUs, nowUs)
  }

  get count(): number {
    return this.#count
  }

  key(index: number): Uint8Array {
    return this.#keys[index]!
  }

  /** When the index-th key's grace ends (Infinity for the current one). */
  untilUs(index: number): number {
    return this.#untilUs[index]!
  }

  /**
   * `key` becomes the current key. The one it replaces is accepted until previousUntilUs (at or before nowUs: no
   * longer), the ones replaced before keep their own deadlines, and a key held already leaves its older place
   * (rotating back to a key in its grace). Past maxPrivateKeys the oldest goes.
   */
  rotate(key: Uint8Array, previousUntilUs: number, nowUs: number): void {
    this.expire(nowUs)
    for (let i = 1; i < this.#count; i++) {
      if (sameKey(this.#keys[i]!, key)) {
        this.#remove(i)
        break
      }
    }
    if (previousUntilUs > nowUs && !sameKey(this.#keys[0]!, key)) {
      if (this.#count === maxPrivateKeys) this.#remove(this.#count - 1)
      // Move every entry one place down: the buffer of the last place (wiped) comes round to the front.
      const spare = this.#keys[this.#count]!
      for (let i = this.#count; i > 0; i--) {
        this.#keys[i] = this.#keys[i - 1]!
        this.#untilUs[i] = this.#untilUs[i - 1]!
      }
      this.#keys[0] = spare
      this.#untilUs[1] = previousUntilUs
      this.#count++
    }
    this.#keys[0]!.set(key)
    this.#untilUs[0] = Number.POSITIVE_INFINITY
  }

  /**
   * A key replaced before this set was made (a server that starts with keys in their grace), accepted until
   * untilUs behind those held. Ignored when its grace is over, when it is held already, or when the set is full.
   */
  addPrevious(key: Uint8Array, untilUs: number, nowUs: number): void {
    if (!(untilUs > nowUs) || this.#count === maxPrivateKeys) return
    for (let i = 0; i < this.#count; i++) if (sameKey(this.#keys[i]!, key)) return
    this.#keys[this.#count]!.set(key)
    this.#untilUs[this.#count] = untilUs
    this.#count++
  }

  /** Wipes and drops the keys whose grace has ended (at or before nowUs). Per request: one comparison with one key. */
  expire(nowUs: number): void {
    for (let i = this.#count - 1; i >= 1; i--) if (this.#untilUs[i]! <= nowUs) this.#remove(i)
  }

  /** When the next grace ends (Infinity when only the current key is held). */
  nextExpiryUs(): number {
    let next = Number.POSITIVE_INFINITY
    for (let i = 1; i < this.#count; i++) next = Math.min(next, this.#untilUs[i]!)
    return next
  }

  /** The previous keys (copies) with their deadlines, newest first: what a server starting now is given. */
  previous(): PreviousPrivateKey[] {
    const list: PreviousPrivateKey[] = []
    for (let i = 1; i < this.#count; i++) list.push({ key: this.#keys[i]!.slice(), untilUs: this.#untilUs[i]! })
    return list
  }

  /** Wipes every key; none is accepted any more (count 0). */
  wipe(): void {
    for (const key of this.#keys) key.fill(0)
    this.#untilUs.fill(0)
    this.#count = 0
  }

  /** Wipes the index-th key and moves the later ones up; its buffer goes to the last place. */
  #remove(index: number): void {
    const removed = this.#keys[index]!
    removed.fill(0)
    for (let i = index; i < this.#count - 1; i++) {
      this.#keys[i] = this.#keys[i + 1]!
      this.#untilUs[i] = this.#untilUs[i + 1]!
    }
    this.#count--
    this.#keys[this.#count] = removed
    this.#untilUs[this.#count] = 0
  }
}
