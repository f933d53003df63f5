// GapSet against the reference's examples (research §B.3) and against a plain set of numbers on seeded
// random observations: the same answers to observe(), has() and gaps() at every step.
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../helpers.ts'
import { GapSet } from '../../src/sessions/sync/gap-set.ts'
import type { SeqRange } from '../../src/sessions/sync/wire.ts'

function observed(size: number, seqs: number[]): GapSet {
  const set = new GapSet(size)
  for (const seq of seqs) set.observe(seq)
  return set
}

/** The gaps of a plain set, the slow and obvious way. */
function referenceGaps(size: number, seen: Set<number>): SeqRange[] {
  const ranges: SeqRange[] = []
  for (let seq = 0; seq < size; seq++) {
    if (seen.has(seq)) continue
    const last = ranges[ranges.length - 1]
    if (last !== undefined && last.end === seq - 1) last.end = seq
    else ranges.push({ begin: seq, end: seq })
  }
  return ranges
}

describe('GapSet', () => {
  it("answers the reference's examples", () => {
    expect(observed(10, [0, 9, 4, 5]).gaps()).toEqual([{ begin: 1, end: 3 }, { begin: 6, end: 8 }])
    expect(observed(10, [3, 4, 7]).gaps()).toEqual([{ begin: 0, end: 2 }, { begin: 5, end: 6 }, { begin: 8, end: 9 }])
    expect(observed(10, []).gaps()).toEqual([{ begin: 0, end: 9 }])
    const empty = new GapSet(0)
    expect(empty.complete).toBe(true)
    expect(empty.gaps()).toEqual([])
  })

  it('counts duplicates and refuses seqs outside 0 to size - 1', () => {
    const set = new GapSet(5)
    expect(set.observe(2)).toBe('new')
    expect(set.observe(2)).toBe('duplicate')
    expect(set.observe(5)).toBe('out-of-range')
    expect(set.observe(-1)).toBe('out-of-range')
    expect(set.observe(1.5)).toBe('out-of-range')
    expect(set.observe(2 ** 64)).toBe('out-of-range')
    expect(set.observed).toBe(1)
    for (const seq of [0, 1, 3, 4]) set.observe(seq)
    expect(set.complete).toBe(true)
    expect(set.intervals).toBe(1)
    expect(set.gaps()).toEqual([])
  })

  it('gives at most `limit` gaps, the lowest first', () => {
    const set = observed(10, [1, 3, 5, 7])
    expect(set.gaps(2)).toEqual([{ begin: 0, end: 0 }, { begin: 2, end: 2 }])
    expect(set.gaps(0)).toEqual([])
  })

  it('agrees with a plain set on seeded random observations', () => {
    const random = seededRandom(2)
    for (let round = 0; round < 40; round++) {
      const size = 1 + Math.floor(random() * (round < 20 ? 50 : 3000))
      const set = new GapSet(size)
      const seen = new Set<number>()
      const steps = Math.floor(random() * size * 1.5)
      for (let step = 0; step < steps; step++) {
        // Mostly in order with losses, as a sync arrives, then anywhere, as retransmissions fill the gaps.
        const seq = random() < 0.5 ? Math.min(size, seen.size + Math.floor(random() * 3)) : Math.floor(random() * (size + 2)) - 1
        const expected = seq < 0 || seq >= size ? 'out-of-range' : seen.has(seq) ? 'duplicate' : 'new'
        expect(set.observe(seq)).toBe(expected)
        if (expected === 'new') seen.add(seq)
        if (step % 97 === 0) expect(set.gaps()).toEqual(referenceGaps(size, seen))
      }
      expect(set.gaps()).toEqual(referenceGaps(size, seen))
      expect(set.observed).toBe(seen.size)
      expect(set.complete).toBe(seen.size === size)
      for (let seq = 0; seq < size; seq += 7) expect(set.has(seq)).toBe(seen.has(seq))
    }
  })

  it('fills the 50,000 gaps of a million-item session in ascending order', () => {
    // Every 20th seq lost out of a million, then retransmitted: the blocks keep each fill cheap.
    const size = 1_000_000
    const set = new GapSet(size)
    for (let seq = 0; seq < size; seq++) if (seq % 20 !== 7) set.observe(seq)
    expect(set.intervals).toBe(50_001)
    expect(set.gaps(3)).toEqual([{ begin: 7, end: 7 }, { begin: 27, end: 27 }, { begin: 47, end: 47 }])
    for (let seq = 7; seq < size; seq += 20) expect(set.observe(seq)).toBe('new')
    expect(set.complete).toBe(true)
    expect(set.intervals).toBe(1)
  })
})
