import { describe, expect, it } from 'vitest'
import { Backoff, type BackoffOptions } from '../../src/sessions/backoff.ts'

/** A random source that gives these values in turn (then the last again). */
function sequence(...values: number[]): () => number {
  let at = 0
  return () => values[Math.min(at++, values.length - 1)]!
}

describe('Backoff', () => {
  it('gives the base delays 1, 2, 4, 8, 16, 32, 60, 60 s without jitter (random → 0)', () => {
    const backoff = new Backoff({ random: () => 0 })
    const delays = Array.from({ length: 9 }, () => backoff.next())
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000])
  })

  it('gives the same base delays with jitter 0, whatever random says', () => {
    const backoff = new Backoff({ jitter: 0, random: () => 0.9 })
    expect(Array.from({ length: 8 }, () => backoff.next())).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000])
  })

  it('adds jitter only upwards: base + random·0.25·base, so 1.25× at most', () => {
    const nearlyOne = 1 - 2 ** -53
    const backoff = new Backoff({ random: () => nearlyOne })
    const bases = [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]
    for (const base of bases) {
      const delay = backoff.next()
      expect(delay).toBeGreaterThan(base * 1.2499)
      expect(delay).toBeLessThanOrEqual(base * 1.25)
    }
  })

  it('scales the jitter by the drawn value: the seed example, base 8 s, gives 8–10 s', () => {
    const backoff = new Backoff({ random: sequence(0, 0, 0, 0.5) })
    backoff.next()
    backoff.next()
    backoff.next()
    expect(backoff.next()).toBe(8000 + 0.5 * 0.25 * 8000) // 9 s
  })

  it('keeps the default Math.random jitter within [base, 1.25·base]', () => {
    const backoff = new Backoff()
    for (const base of [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]) {
      const delay = backoff.next()
      expect(delay).toBeGreaterThanOrEqual(base)
      expect(delay).toBeLessThanOrEqual(base * 1.25)
    }
  })

  it('peek() gives a jittered delay on the current base without advancing', () => {
    const backoff = new Backoff({ random: sequence(0, 0, 0.4, 1, 0.2) })
    expect(backoff.next()).toBe(1000)
    expect(backoff.attempts).toBe(1)
    expect(backoff.peek()).toBe(2000) // random 0
    expect(backoff.peek()).toBe(2000 + 0.4 * 500) // drawn anew, same base
    expect(backoff.peek()).toBe(2500)
    expect(backoff.attempts).toBe(1)
    expect(backoff.next()).toBe(2000 + 0.2 * 500) // the base peek used, and only now advancing
    expect(backoff.attempts).toBe(2)
    expect(backoff.peek()).toBe(4000 + 0.2 * 1000)
  })

  it('counts attempts since the last reset, and reset() returns to the initial delay', () => {
    const backoff = new Backoff({ random: () => 0 })
    expect(backoff.attempts).toBe(0)
    for (let i = 0; i < 10; i++) backoff.next()
    expect(backoff.attempts).toBe(10)
    expect(backoff.peek()).toBe(60_000)
    backoff.reset()
    expect(backoff.attempts).toBe(0)
    expect(backoff.peek()).toBe(1000)
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([1000, 2000, 4000])
    expect(backoff.attempts).toBe(3)
  })

  it('follows custom initialMs, maxMs and multiplier, capping at maxMs', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 3, jitter: 0.5, random: () => 0.5 })
    const delays = Array.from({ length: 5 }, () => backoff.next())
    // bases 100, 300, 900, 1000, 1000; each + 0.5·0.5·base
    expect(delays).toEqual([125, 375, 1125, 1250, 1250])
  })

  it('stays at initialMs with multiplier 1', () => {
    const backoff = new Backoff({ initialMs: 500, multiplier: 1, random: () => 0 })
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([500, 500, 500])
  })

  it('refuses bad options with typed errors', () => {
    const bad = (options: unknown): (() => Backoff) => () => new Backoff(options as BackoffOptions)
    expect(bad(null)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }))
    expect(bad([])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(bad({ initial: 5 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('"initial"') }))
    expect(bad({ initialMs: '1000' })).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"initialMs"') }))
    expect(bad({ initialMs: 0 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }))
    expect(bad({ initialMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(bad({ initialMs: Number.NaN })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(bad({ maxMs: Infinity })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"maxMs"') }))
    expect(bad({ maxMs: 2 ** 31 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(bad({ initialMs: 5000, maxMs: 4000 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('at least "initialMs"') }))
    expect(bad({ multiplier: 0.5 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"multiplier"') }))
    expect(bad({ multiplier: 2n })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(bad({ jitter: -0.1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"jitter"') }))
    expect(bad({ jitter: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(bad({ random: 0.5 })).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"random"') }))
    // undefined means "the default", as everywhere
    expect(bad({ initialMs: undefined, maxMs: undefined, multiplier: undefined, jitter: undefined, random: undefined })().peek()).toBeGreaterThanOrEqual(1000)
    expect(new Backoff({ initialMs: 60_000, random: () => 0 }).next()).toBe(60_000) // initialMs equal to maxMs is fine
  })

  it('refuses a random source that strays outside [0, 1]', () => {
    expect(() => new Backoff({ random: () => 2 }).next()).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('returned type number (2)') }))
    expect(() => new Backoff({ random: () => Number.NaN }).peek()).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new Backoff({ random: () => -0.1 }).next()).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })
})
