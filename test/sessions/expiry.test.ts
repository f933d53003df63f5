// The expiry lane against a naive model (every entry scanned at every step), on a seeded random schedule
// of refreshes, removals and ticks: the same expiries and warnings, in the same order, at the same ticks.
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../helpers.ts'
import { ExpiryLane, type ExpiryEntry } from '../../src/sessions/resumable/expiry.ts'

interface Entry extends ExpiryEntry {
  readonly name: number
}

describe('ExpiryLane', () => {
  it('expires and warns exactly as a scan of every entry would, without scanning', () => {
    const random = seededRandom(0x1234567)
    const lane = new ExpiryLane(90_000, 0.85)
    const entries: Entry[] = Array.from({ length: 200 }, (_, name) => ({ name, expiresAt: 0, previous: null, next: null, lane: null }))
    // The model: each live entry's expiry, and whether its warning went.
    const model = new Map<number, { expiresAt: number; warned: boolean }>()
    let now = 0
    let warnings = 0
    let expiries = 0
    for (let step = 0; step < 5_000; step++) {
      now += Math.floor(random() * 2_000)
      const entry = entries[Math.floor(random() * entries.length)]!
      if (random() < 0.1) {
        lane.remove(entry)
        model.delete(entry.name)
      } else {
        lane.refresh(entry, now)
        model.set(entry.name, { expiresAt: now + 90_000, warned: false })
      }
      // A tick: warnings first, then expiries, each in the model's order (by expiry, then by refresh order).
      const warned: number[] = []
      for (let next = lane.takeWarning(now); next !== null; next = lane.takeWarning(now)) warned.push((next as Entry).name)
      const expired: number[] = []
      for (let next = lane.takeExpired(now); next !== null; next = lane.takeExpired(now)) expired.push((next as Entry).name)
      const dueWarnings = [...model].filter(([, held]) => !held.warned && held.expiresAt - 13_500 <= now).map(([name]) => name)
      for (const name of dueWarnings) model.get(name)!.warned = true
      const dueExpiries = [...model].filter(([, held]) => held.expiresAt <= now).map(([name]) => name)
      for (const name of dueExpiries) model.delete(name)
      expect(warned.sort((x, y) => x - y)).toEqual(dueWarnings.sort((x, y) => x - y))
      expect(expired.sort((x, y) => x - y)).toEqual(dueExpiries.sort((x, y) => x - y))
      expect(lane.size).toBe(model.size)
      warnings += warned.length
      expiries += expired.length
    }
    // The schedule made warnings and expiries happen, not only refreshes.
    expect(warnings).toBeGreaterThan(100)
    expect(expiries).toBeGreaterThan(100)
  })
})
