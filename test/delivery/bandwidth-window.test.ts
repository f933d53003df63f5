// stats().bandwidth: the rate over the last one to two seconds, the same for every reader. It used to be
// the rate since the previous stats() call, whoever made it: a second reader right after the first read 0.
import { describe, expect, it } from 'vitest'
import { BandwidthWindow } from '../../src/api/channels.ts'

describe('the bandwidth window', () => {
  it('gives a reader right after another the same rate, and forgets what is over a second and a half old', () => {
    const window = new BandwidthWindow(0)
    // 1 MB in the first second (8 Mbit/s), then nothing.
    expect(window.read(500, 500_000, 0).inBps).toBe(8e6)
    expect(window.read(1000, 1_000_000, 0).inBps).toBe(8e6)
    expect(window.read(1001, 1_000_000, 0).inBps).toBeCloseTo(8e6 / 1.001) // not 0 over the last millisecond
    expect(window.read(1400, 1_000_000, 0).inBps).toBeCloseTo(8e6 / 1.4) // from the start, 1.4 s ago
    expect(window.read(1600, 1_000_000, 0).inBps).toBe((0.5e6 * 8) / 1.1) // from the reading at 0.5 s
    expect(window.read(2000, 1_000_000, 0).inBps).toBe(0) // from the reading at 1 s: nothing since
    expect(window.read(2500, 1_000_000, 0).inBps).toBe(0)
    expect(window.read(2500, 1_000_000, 0).outBps).toBe(0)
  })

  it('measures a steady rate over a window of one to two seconds, however often it is read', () => {
    const window = new BandwidthWindow(0)
    for (let ms = 1; ms <= 10_000; ms++) {
      const outBps = window.read(ms, 0, ms * 125).outBps // 125 B per ms: 1 Mbit/s
      expect(outBps).toBeCloseTo(1e6)
    }
    expect(10_000 - window.fromMs).toBeGreaterThanOrEqual(1000)
    expect(10_000 - window.fromMs).toBeLessThanOrEqual(1500)
  })

  it('sees traffic stop within two seconds for a reader every second or more often, however often', () => {
    // 1 MB a second until 4 s, then nothing. The window once grew to 2 × 1000/I × I ms for a reader every
    // I ms (nearly 4 s at 990 ms), and a drop showed 3 s late.
    for (const everyMs of [100, 250, 500, 700, 950, 990, 1000]) {
      const window = new BandwidthWindow(0)
      for (let ms = everyMs; ms <= 10_000; ms += everyMs) {
        const { inBps } = window.read(ms, Math.min(ms, 4000) * 1000, 0)
        expect(ms - window.fromMs, `every ${everyMs} ms, at ${ms} ms`).toBeLessThan(2000)
        if (ms >= 6000) expect(inBps, `every ${everyMs} ms, at ${ms} ms`).toBe(0)
      }
    }
  })

  it('gives a reader that reads less often than every second the rate since its last reading, not since the one before', () => {
    const window = new BandwidthWindow(0)
    // 5 MB in the first 5 s (8 Mbit/s), then nothing; a monitor reads every 5 s.
    expect(window.read(5000, 5_000_000, 0).inBps).toBe(8e6)
    // Nothing came in the last 5 s: it was averaged with the 5 s before (4 Mbit/s, a window of 10 s).
    expect(window.read(10_000, 5_000_000, 0).inBps).toBe(0)
    expect(window.read(15_000, 5_000_000, 5_000_000).outBps).toBe(8e6)
  })

  it('after a pause in the readings, counts only what came since the previous reading', () => {
    const window = new BandwidthWindow(0)
    // 1 Mbit/s read every 200 ms for 3.1 s; then the traffic stops, one reading 30 ms later, and the next 2.5 s after it.
    for (let ms = 200; ms <= 3000; ms += 200) expect(window.read(ms, 0, ms * 125).outBps).toBeCloseTo(1e6)
    expect(window.read(3100, 0, 3100 * 125).outBps).toBeCloseTo(1e6)
    expect(window.read(3130, 0, 3100 * 125).outBps).toBeGreaterThan(0.9e6) // the last 1–2 s: mostly traffic
    // 2,500 B of pings since the reading at 3,130 ms: 8 kbit/s, not the traffic of the window before it.
    expect(window.read(5630, 2500, 3100 * 125 + 2500).outBps).toBeCloseTo(8000)
    expect(window.read(5630, 2500, 3100 * 125 + 2500).inBps).toBeCloseTo(8000)
  })
})
