// An independent TypeScript model of native/protocol/netcode/replay_window.h, for tests (never shipped).
// Replay protection for one direction of one connection: a packet older than the window, or one
// already seen in it, is refused. The window only advances after a packet has decrypted.
import { maxUint64 } from '../../../src/util/bytes.ts'
import { sizes } from '../../../src/protocol/netcode/constants.ts'

// Below every sequence: 2^64 - 1 is a sequence a peer may send, so it cannot mark an empty entry.
const empty = -1n
const windowSize = BigInt(sizes.replayBuffer)

export class ReplayProtection {
  #mostRecent = 0n
  readonly #received = new Array<bigint>(sizes.replayBuffer).fill(empty)

  get mostRecent(): bigint {
    return this.#mostRecent
  }

  /**
   * Behind the window: refused whether or not it was received (a packet delayed or reordered that far, or
   * a replay). Written subtraction-side: sequence + window could wrap past 2^64 (IMPLEMENTERS.md §1).
   */
  olderThanWindow(sequence: bigint): boolean {
    return this.#mostRecent >= windowSize && sequence <= this.#mostRecent - windowSize
  }

  /** Received already, for a sequence not older than the window. */
  seenInWindow(sequence: bigint): boolean {
    const seen = this.#received[Number(sequence % windowSize)]!
    return seen !== empty && seen >= sequence
  }

  alreadyReceived(sequence: bigint): boolean {
    return this.olderThanWindow(sequence) || this.seenInWindow(sequence)
  }

  /** Records a sequence that has passed alreadyReceived() and decrypted. */
  advance(sequence: bigint): void {
    if (sequence > this.#mostRecent) this.#mostRecent = sequence
    this.#received[Number(sequence % windowSize)] = sequence
  }

  reset(): void {
    this.#mostRecent = 0n
    this.#received.fill(empty)
  }

  /**
   * Counts every sequence below `end` as received: a later connection under the same key must not take an
   * earlier one's packets, replayed, for new ones.
   */
  resetBelow(end: bigint): void {
    this.reset()
    if (end === 0n) return
    this.#mostRecent = end - 1n
    for (let age = 0n; age < windowSize && age < end; age++) {
      const sequence = end - 1n - age
      this.#received[Number(sequence % windowSize)] = sequence
    }
  }

  /** The sequence after every one received (or counted as received) so far; 0 when there was none. */
  receivedEnd(): bigint {
    if (this.#received[Number(this.#mostRecent % windowSize)] !== this.#mostRecent) return 0n
    return this.#mostRecent === maxUint64 ? maxUint64 : this.#mostRecent + 1n
  }
}
