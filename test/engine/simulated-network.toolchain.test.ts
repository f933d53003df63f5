// The fallback engine's network simulator (src/engine/fallback/simulated-network.ts) against the native one
// (native/sockets/network_simulator.cc, through the test bindings' addon): the same choices for the same seed
// and traffic.
import { describe, expect, it } from 'vitest'
import type { NativeNetworkSimulator } from '../../src/engine/native/addon.ts'
import { SimulatedNetwork } from '../../src/engine/fallback/simulated-network.ts'
import { seededRandom } from '../helpers.ts'
import { loadTestingAddon } from '../testing-addon.ts'

interface NativeSimulator {
  submit(id: number, size: number, nowUs: number): void
  release(nowUs: number): number[]
  nextReleaseUs(): number | null
  counters(): Record<string, number>
}

describe('the TypeScript simulated network against the native one', () => {
  it('makes the same choices for the same seed and traffic: the same datagrams out, in the same order, at the same times', () => {
    const NativeSimulator = (loadTestingAddon() as unknown as { NetworkSimulator: new (conditions: NativeNetworkSimulator) => NativeSimulator }).NetworkSimulator
    const random = seededRandom(11)
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
    for (let run = 0; run < 40; run++) {
      const settings: NativeNetworkSimulator = {
        clockOffsetUs: 0,
        clockDriftPpm: 0,
        seed: Math.floor(random() * 2 ** 40),
        loss: pick([0, 0.05, 0.3]),
        duplicate: pick([0, 0.1]),
        reorder: pick([0, 0.1]),
        latencyUs: pick([0, 1000, 20_000]),
        jitterUs: pick([0, 500, 30_000]),
        bandwidthBytesPerSec: pick([0, 50_000, 1_000_000, 3_333_333]),
        queueBytes: pick([0, 4000, 100_000]),
      }
      const native = new NativeSimulator(settings)
      const typescript = new SimulatedNetwork<number>(settings)
      let now = 1_000_000
      let id = 0
      for (let step = 0; step < 400; step++) {
        const burst = Math.floor(random() * 4)
        for (let i = 0; i < burst; i++) {
          const size = 4 + Math.floor(random() * 1276)
          native.submit(id, size, now)
          typescript.submit(id, size, now)
          id++
        }
        now += Math.floor(random() * (random() < 0.1 ? 50_000 : 3000))
        expect(typescript.release(now), `run ${run}, step ${step}`).toEqual(native.release(now))
        expect(typescript.nextReleaseUs, `run ${run}, step ${step}`).toBe(native.nextReleaseUs() ?? Number.POSITIVE_INFINITY)
      }
      expect(typescript.counters).toEqual(native.counters())
    }
  })
})
