// Replay protection for one direction of one connection: a packet older than the window, or one
// already seen in it, is refused. The window only advances after a packet has decrypted.
import { sizes } from './constants.ts'

// Below every sequence: 2^64 - 1 is a sequence a peer may send, so it cannot mark an empty entry.
const empty = -1n

export class ReplayProtection {
  #mostRecent = 0n
  readonly #received = new Array<bigint>(sizes.replayBuffer).fill(empty)

  get mostRecent(): bigint {
    return this.#mostRecent
  }

  alreadyReceived(sequence: bigint): boolean {
    // Written subtraction-side: sequence + window could wrap past 2^64 (IMPLEMENTERS.md §1).
    const window = BigInt(sizes.replayBuffer)
    if (this.#mostRecent >= window && sequence <= this.#mostRecent - window) return true
    const seen = this.#received[Number(sequence % window)]!
    return seen !== empty && seen >= sequence
  }

  /** Records a sequence that has passed alreadyReceived() and decrypted. */
  advance(sequence: bigint): void {
    if (sequence > this.#mostRecent) this.#mostRecent = sequence
    this.#received[Number(sequence % BigInt(sizes.replayBuffer))] = sequence
  }

  reset(): void {
    this.#mostRecent = 0n
    this.#received.fill(empty)
  }
}
