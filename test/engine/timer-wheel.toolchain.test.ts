// The engine's timer wheel (native/util/timer_wheel.h) against a model of what it promises: a timer fires
// once, never before its due tick, and at the latest in the first advance that reaches its due tick (or
// the tick after the last advance, for a timer scheduled in the past); cancelled timers never fire; no
// advance before nextDueUs() fires anything.
import { describe, expect, it } from 'vitest'
import { loadTestingAddon } from '../testing-addon.ts'
import { seededRandom } from '../helpers.ts'

const TICK = 1000

function makeWheel(bucketBits = 6) {
  return new (loadTestingAddon().TimerWheel)(TICK, bucketBits)
}

describe('timer wheel', () => {
  it('fires a timer in its due tick, not before, and only once', () => {
    const wheel = makeWheel()
    wheel.schedule(7, 5_500)
    expect(wheel.dueUs(7)).toBe(5_500)
    expect(wheel.nextDueUs()).toBe(5_000)
    expect(wheel.advance(4_999)).toEqual([])
    expect(wheel.advance(5_000)).toEqual([7])
    expect(wheel.dueUs(7)).toBeNull()
    expect(wheel.advance(9_000)).toEqual([])
    expect(wheel.size).toBe(0)
    expect(wheel.nextDueUs()).toBeNull()
  })

  it('moves and cancels timers', () => {
    const wheel = makeWheel()
    wheel.schedule(1, 3_000)
    wheel.schedule(2, 3_000)
    wheel.schedule(1, 8_000) // moved
    wheel.cancel(2)
    wheel.cancel(99) // never scheduled: nothing happens
    expect(wheel.size).toBe(1)
    expect(wheel.advance(7_999)).toEqual([])
    expect(wheel.advance(8_000)).toEqual([1])
  })

  it('keeps timers beyond one turn of the wheel for their own turn', () => {
    const wheel = makeWheel(4) // 16 buckets of 1 ms
    wheel.schedule(3, 50_000) // three turns ahead, in the bucket of tick 2
    expect(wheel.advance(2_000)).toEqual([])
    expect(wheel.advance(49_000)).toEqual([])
    expect(wheel.advance(50_000)).toEqual([3])
  })

  it('fires a timer scheduled in the past at the next tick, and everything after a long gap', () => {
    const wheel = makeWheel(4)
    wheel.advance(10_000)
    wheel.schedule(1, 2_000) // in the past
    expect(wheel.nextDueUs()).toBe(11_000)
    expect(wheel.advance(10_500)).toEqual([]) // the same tick as the last advance
    expect(wheel.advance(11_000)).toEqual([1])
    for (let id = 0; id < 40; id++) wheel.schedule(id, 12_000 + id * 1_000)
    expect(wheel.advance(10_000_000).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i))
  })

  it('agrees with a model over 20,000 random operations', () => {
    const random = seededRandom(42)
    const wheel = makeWheel(6) // 64 buckets: many timers are several turns ahead
    const model = new Map<number, { due: number; latestTick: number }>()
    let now = 0
    let lastTick = 0
    let fired = 0
    for (let step = 0; step < 20_000; step++) {
      const roll = random()
      if (roll < 0.45) {
        const id = Math.floor(random() * 300)
        // Mostly soon, some in the past, some many turns ahead.
        const spread = random() < 0.1 ? 500_000 : 20_000
        const due = Math.max(0, now - 5_000 + Math.floor(random() * spread))
        wheel.schedule(id, due)
        model.set(id, { due, latestTick: Math.max(Math.floor(due / TICK), lastTick + 1) })
      } else if (roll < 0.55) {
        const id = Math.floor(random() * 300)
        wheel.cancel(id)
        model.delete(id)
      } else {
        const next = wheel.nextDueUs()
        if (model.size === 0) expect(next).toBeNull()
        else {
          expect(next).not.toBeNull()
          const earliest = Math.min(...[...model.values()].map((entry) => entry.latestTick * TICK))
          expect(next!).toBeLessThanOrEqual(earliest)
          expect(next!).toBeGreaterThan(lastTick * TICK)
        }
        const quiet = next !== null && random() < 0.3 && next - 1 > now
        now = quiet ? next! - 1 : now + Math.floor(random() * (random() < 0.02 ? 200_000 : 3_000))
        const ids = wheel.advance(now)
        const tick = Math.floor(now / TICK)
        if (quiet) expect(ids).toEqual([])
        for (const id of ids) {
          const entry = model.get(id)
          expect(entry, `timer ${id} fired but was not scheduled`).toBeDefined()
          expect(Math.floor(entry!.due / TICK)).toBeLessThanOrEqual(tick)
          model.delete(id)
          fired++
        }
        for (const [id, entry] of model) {
          expect(entry.latestTick > tick, `timer ${id} (due ${entry.due}) did not fire by ${now}`).toBe(true)
        }
        lastTick = Math.max(lastTick, tick)
      }
      expect(wheel.size).toBe(model.size)
    }
    expect(fired).toBeGreaterThan(3_000)
  })
})
