// The fallback engine's network simulator (src/engine/fallback/simulated-network.ts): its draws are splitmix64's
// (checked against the generator's published outputs for seed 0), six per datagram whatever becomes of it;
// loss, duplication, latency and jitter, reordering, the bandwidth and its queue, the bound on what it holds.
// The same choices as the native simulator: simulated-network.toolchain.test.ts.
import { describe, expect, it } from 'vitest'
import type { NativeNetworkSimulator } from '../../src/engine/native/addon.ts'
import { SimulatedNetwork } from '../../src/engine/fallback/simulated-network.ts'

/** splitmix64's first outputs for seed 0 (Steele, Lea and Flood; Vigna's splitmix64.c), as [0, 1) draws. */
const seedZeroDraws = [0xe220a8397b1dcdafn, 0x6e789e6aa1b965f4n, 0x06c45d188009454fn, 0xf88bb8a8724c81ecn].map((x) => Number(x >> 11n) / 2 ** 53)

const conditions = (overrides: Partial<NativeNetworkSimulator>): NativeNetworkSimulator => ({
  loss: 0,
  duplicate: 0,
  reorder: 0,
  latencyUs: 0,
  jitterUs: 0,
  bandwidthBytesPerSec: 0,
  queueBytes: 0,
  seed: 0,
  clockOffsetUs: 0,
  clockDriftPpm: 0,
  ...overrides,
})

describe('the simulated network', () => {
  it("draws splitmix64's sequence: a datagram's loss, duplication, delay and reordering come from its six draws", () => {
    const [lossDraw, duplicateDraw, delayDraw, reorderDraw] = seedZeroDraws as [number, number, number, number]
    // Just under and just over each draw: the comparison goes the way the draw says.
    const first = (overrides: Partial<NativeNetworkSimulator>) => {
      const network = new SimulatedNetwork<string>(conditions(overrides))
      network.submit('datagram', 100, 10_000)
      return { network, due: network.nextReleaseUs, released: network.release(Number.MAX_SAFE_INTEGER) }
    }
    expect(first({ loss: lossDraw - 1e-9 }).released).toEqual(['datagram'])
    expect(first({ loss: lossDraw + 1e-9 }).released).toEqual([])
    expect(first({ duplicate: duplicateDraw - 1e-9 }).released).toEqual(['datagram'])
    expect(first({ duplicate: duplicateDraw + 1e-9 }).released).toEqual(['datagram', 'datagram'])
    // Latency ± jitter, from the third draw: 1,000 µs + (2 × draw − 1) × 1,000 µs, whole µs.
    expect(first({ latencyUs: 1000, jitterUs: 1000 }).due).toBe(10_000 + Math.floor(1000 + (2 * delayDraw - 1) * 1000))
    // Held back by latency + jitter + 1 ms more when the fourth draw is under `reorder`.
    const held = first({ latencyUs: 1000, reorder: reorderDraw + 1e-9 })
    expect(held.due).toBe(10_000 + 1000 + 1000 + 1000)
    expect(held.network.counters).toMatchObject({ submitted: 1, reordered: 1 })
    expect(first({ latencyUs: 1000, reorder: reorderDraw - 1e-9 }).due).toBe(11_000)
  })

  it('draws six numbers per datagram whatever becomes of it, so that one lost does not shift the choices for the next', () => {
    // The same seed, one network losing everything: the second datagram's fate on the other is what it would have been.
    const lossy = new SimulatedNetwork<number>(conditions({ seed: 42, loss: 1 }))
    const clean = new SimulatedNetwork<number>(conditions({ seed: 42, latencyUs: 5000, jitterUs: 5000 }))
    const reference = new SimulatedNetwork<number>(conditions({ seed: 42, latencyUs: 5000, jitterUs: 5000 }))
    lossy.submit(1, 100, 0)
    clean.submit(1, 100, 0)
    reference.submit(1, 100, 0)
    expect(lossy.counters.lost).toBe(1)
    const dueOf = (network: SimulatedNetwork<number>): number[] => {
      const due: number[] = []
      while (network.nextReleaseUs !== Number.POSITIVE_INFINITY) {
        due.push(network.nextReleaseUs)
        network.release(network.nextReleaseUs)
      }
      return due
    }
    expect(dueOf(clean)).toEqual(dueOf(reference))
  })

  it('loses, duplicates and reorders about as often as asked, and releases in order of due time, then of sending', () => {
    const network = new SimulatedNetwork<number>(conditions({ seed: 7, loss: 0.2, duplicate: 0.1, reorder: 0.1, latencyUs: 10_000, jitterUs: 4000 }))
    const count = 20_000
    for (let i = 0; i < count; i++) network.submit(i, 100, i * 100)
    const { lost, duplicated, reordered } = network.counters
    expect(lost / count).toBeGreaterThan(0.18)
    expect(lost / count).toBeLessThan(0.22)
    expect(duplicated / (count - lost)).toBeGreaterThan(0.08)
    expect(duplicated / (count - lost)).toBeLessThan(0.12)
    expect(reordered / (count - lost + duplicated)).toBeGreaterThan(0.08)
    let released = 0
    let overtaken = 0
    let last = -1
    for (let now = 0; network.nextReleaseUs !== Number.POSITIVE_INFINITY; now += 1000) {
      expect(network.nextReleaseUs).toBeGreaterThanOrEqual(0)
      for (const i of network.release(now)) {
        if (i < last) overtaken++
        last = i
        released++
      }
    }
    expect(released).toBe(count - lost + duplicated)
    expect(overtaken).toBeGreaterThan(reordered / 2) // jitter and reordering let later ones overtake
  })

  it('holds datagrams to the bandwidth with 28 bytes of headers each, and drops what would wait behind a full queue', () => {
    // 100,000 B/s, 972-byte datagrams: 1,000 bytes on the wire, one every 10 ms; a queue of 5,000 bytes.
    const network = new SimulatedNetwork<number>(conditions({ bandwidthBytesPerSec: 100_000, queueBytes: 5000 }))
    for (let i = 0; i < 10; i++) network.submit(i, 972, 0)
    expect(network.counters.overflowed).toBe(5) // the first takes the link, four more wait (4,000 bytes), the rest would pass 5,000
    const due: number[] = []
    while (network.nextReleaseUs !== Number.POSITIVE_INFINITY) {
      due.push(network.nextReleaseUs)
      network.release(network.nextReleaseUs)
    }
    expect(due).toEqual([10_000, 20_000, 30_000, 40_000, 50_000])
  })

  it('holds a reordered datagram past every one sent with it, even when the jitter is larger than the latency', () => {
    // Unreordered delays are at most latency + jitter (11 ms); a reordered one is at least 1 ms more than that,
    // whatever its delay draw. It used to add to the unclamped delay: a draw of −9 ms put it at 3 ms.
    const held = new SimulatedNetwork<number>(conditions({ seed: 3, reorder: 1, latencyUs: 1000, jitterUs: 10_000 }))
    const plain = new SimulatedNetwork<number>(conditions({ seed: 3, latencyUs: 1000, jitterUs: 10_000 }))
    for (let i = 0; i < 1000; i++) {
      held.submit(i, 100, 0)
      plain.submit(i, 100, 0)
    }
    expect(held.counters.reordered).toBe(1000)
    expect(held.nextReleaseUs).toBeGreaterThanOrEqual(12_000)
    expect(plain.nextReleaseUs).toBe(0) // draws below −1 ms were clamped to 0
    expect(plain.release(11_000)).toHaveLength(1000)
  })

  it('counts a datagram as duplicated only when both copies go out: a copy the full queue drops is an overflow', () => {
    // 972 + 28 bytes: the first copy takes the empty link, the second would wait behind 1,000 bytes of a 1,000-byte queue.
    const network = new SimulatedNetwork<number>(conditions({ duplicate: 1, bandwidthBytesPerSec: 100_000, queueBytes: 1000 }))
    network.submit(1, 972, 0)
    expect(network.counters).toMatchObject({ submitted: 1, duplicated: 0, overflowed: 1 })
    expect(network.release(Number.MAX_SAFE_INTEGER)).toEqual([1])
  })

  it('holds at most 65,536 datagrams at once: more are dropped and counted', () => {
    const network = new SimulatedNetwork<number>(conditions({ latencyUs: 1_000_000 }))
    for (let i = 0; i < 65_540; i++) network.submit(i, 10, 0)
    expect(network.counters.overflowed).toBe(4)
    expect(network.release(1_000_000)).toHaveLength(65_536)
  })
})
