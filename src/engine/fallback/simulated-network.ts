// The network simulator in TypeScript, for the fallback engine (native/sockets/network_simulator.h is the native
// engine's): what a socket sends is lost, delayed (latency ± jitter), duplicated, reordered and held to a
// bandwidth. The same seeded draws (splitmix64, six per datagram) and the same arithmetic, so that a seed
// makes the same choices on either engine.
import { BinaryHeap } from '../../util/binary-heap.ts'
import type { NativeNetworkSimulator } from '../native/addon.ts'

const mask64 = (1n << 64n) - 1n
/** Datagrams held at once (queued or on the way) beyond this are dropped. */
const maxHeld = 65_536

export interface SimulatedNetworkCounters {
  submitted: number
  lost: number
  duplicated: number
  reordered: number
  overflowed: number
}

interface Held<T> {
  releaseUs: number
  /** Equal release times keep the order they were sent in. */
  order: number
  item: T
}

const releasedBefore = <T>(a: Held<T>, b: Held<T>): boolean => (a.releaseUs !== b.releaseUs ? a.releaseUs < b.releaseUs : a.order < b.order)

export class SimulatedNetwork<T> {
  readonly counters: SimulatedNetworkCounters = { submitted: 0, lost: 0, duplicated: 0, reordered: 0, overflowed: 0 }
  readonly #conditions: NativeNetworkSimulator
  #random: bigint
  #order = 0
  /** Bandwidth: when the link has sent what it holds (fractions of a µs add up). */
  #linkFreeUs = 0
  /** Earliest release first. */
  readonly #held = new BinaryHeap<Held<T>>(releasedBefore)

  constructor(conditions: NativeNetworkSimulator) {
    this.#conditions = conditions
    this.#random = BigInt(conditions.seed) & mask64
  }

  /** [0, 1), splitmix64's sequence for the seed. */
  #uniform(): number {
    this.#random = (this.#random + 0x9e3779b97f4a7c15n) & mask64
    let z = this.#random
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask64
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask64
    z ^= z >> 31n
    return Number(z >> 11n) / 9007199254740992
  }

  /** Takes a datagram of `size` bytes that the socket would send now. */
  submit(item: T, size: number, nowUs: number): void {
    const conditions = this.#conditions
    this.counters.submitted++
    // Every datagram draws the same six numbers, whatever becomes of it: a datagram dropped by a full queue
    // (which depends on when the engine ran) must not shift the choices made for the ones after it.
    const lossDraw = this.#uniform()
    const duplicateDraw = this.#uniform()
    const delayDraws = [0, 0]
    const reorderDraws = [0, 0]
    for (let copy = 0; copy < 2; copy++) {
      delayDraws[copy] = this.#uniform()
      reorderDraws[copy] = this.#uniform()
    }
    if (lossDraw < conditions.loss) {
      this.counters.lost++
      return
    }
    const copies = duplicateDraw < conditions.duplicate ? 2 : 1
    for (let copy = 0; copy < copies; copy++) {
      // A full queue drops the copy before the link: it must not take link time.
      const departUs = this.#held.size >= maxHeld ? -1 : this.#depart(size, nowUs)
      if (departUs < 0) {
        this.counters.overflowed++
        continue
      }
      if (copy === 1) this.counters.duplicated++ // a copy the queue dropped was not sent twice
      let delay = Math.max(0, conditions.latencyUs + (delayDraws[copy]! * 2 - 1) * conditions.jitterUs)
      // Added to the clamped delay, so that a held-back datagram leaves after any sent with it, even when
      // the jitter is larger than the latency.
      if (reorderDraws[copy]! < conditions.reorder) {
        this.counters.reordered++
        delay += conditions.latencyUs + conditions.jitterUs + 1000
      }
      this.#hold(item, departUs + Math.floor(delay))
    }
  }

  /** When a datagram of this size that enters the link now leaves it (whole µs, rounded up); -1 when the link's queue is full. */
  #depart(size: number, nowUs: number): number {
    const rate = this.#conditions.bandwidthBytesPerSec
    if (rate === 0) return nowUs
    // One datagram after the other, with 28 bytes of IP and UDP headers each.
    if (this.#linkFreeUs < nowUs) this.#linkFreeUs = nowUs
    const bytes = size + 28
    const queued = ((this.#linkFreeUs - nowUs) * rate) / 1e6
    const limit = this.#conditions.queueBytes > 0 ? this.#conditions.queueBytes : rate
    if (queued > 0 && queued + bytes > limit) return -1 // an empty queue takes any datagram
    this.#linkFreeUs += (bytes * 1e6) / rate
    return Math.ceil(this.#linkFreeUs)
  }

  #hold(item: T, releaseUs: number): void {
    this.#held.push({ releaseUs, order: this.#order++, item })
  }

  /** The datagrams due by nowUs, in the order they leave. */
  release(nowUs: number): T[] {
    const due: T[] = []
    for (let next = this.#held.top(); next !== undefined && next.releaseUs <= nowUs; next = this.#held.top()) {
      due.push(next.item)
      this.#held.pop()
    }
    return due
  }

  /** When the next held datagram is due; Infinity when none is held. */
  get nextReleaseUs(): number {
    return this.#held.top()?.releaseUs ?? Number.POSITIVE_INFINITY
  }
}
