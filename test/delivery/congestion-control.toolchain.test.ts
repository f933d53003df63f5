// Congestion control's states (native/protocol/delivery/congestion_control.h) on a fake clock: two delivery
// cores over a simulated bottleneck, each state seen as it happens and what it is for checked.
import { describe, expect, it } from 'vitest'
import { SimulatedPair, numberedMessage, readNumberedMessage } from './simulated-link.ts'

const ms = 1000
const second = 1_000_000
const Startup = 0
const Drain = 1
const ProbeBandwidth = 2
const ProbeRtt = 3

// 10 Mbit/s, 20 ms RTT (a bandwidth-delay product of 25 kB), a 100 kB tail-drop queue.
const linkRate = 1.25e6
const bottleneck = { latencyMs: 10, bandwidthBytesPerSec: linkRate, queueBytes: 100_000 }
const options = { channels: ['reliable' as const], sendQueueBytes: 64 << 20 }
// A packet carries 1,000 bytes of a message in about 1,040.
const goodputOfLink = linkRate * (1000 / 1040)

const sentByPair = new WeakMap<SimulatedPair, number>()

/** Keeps a's queue topped up with numbered 1,000-byte messages until untilUs; observe() runs after every event. */
function bulk(pair: SimulatedPair, untilUs: number, observe: () => void = () => {}): void {
  while (pair.now < untilUs) {
    let sent = sentByPair.get(pair) ?? 0
    while (sent - pair.received.b.length < 2000) expect(pair.send('a', 0, numberedMessage(sent++, 1000))).toBe('queued')
    sentByPair.set(pair, sent)
    pair.run(Math.min(untilUs, pair.now + 50 * ms), () => {
      observe()
      return false
    })
  }
}

/** The states side a went through, in order, each with when it began (true time, µs). */
function stateWatcher(pair: SimulatedPair): { observe: () => void; states: { state: number; at: number }[] } {
  const states = [{ state: pair.a.stats().congestionState, at: pair.now }]
  return {
    states,
    observe: () => {
      const state = pair.a.stats().congestionState
      if (state !== states.at(-1)!.state) states.push({ state, at: pair.now })
    },
  }
}

const bytesArrived = (pair: SimulatedPair, fromUs: number): number => pair.received.b.filter((m) => m.at >= fromUs).length * 1000

describe('congestion control: Startup', () => {
  it('doubles the rate each round trip from the initial window, pacing at 2/ln 2 times the bandwidth', () => {
    const pair = new SimulatedPair(options, bottleneck, 1)
    const rates: number[] = []
    const watcher = stateWatcher(pair)
    bulk(pair, 500 * ms, () => {
      watcher.observe()
      const stats = pair.a.stats()
      if (stats.congestionState === Startup && stats.bandwidthBytesPerSec > 0) {
        rates.push(stats.bandwidthBytesPerSec)
        // Paced at the startup gain times the bandwidth, or the window over a round trip if that is more.
        expect(stats.pacingRateBytesPerSec).toBeGreaterThanOrEqual(2.885 * stats.bandwidthBytesPerSec * 0.999)
      }
    })
    expect(watcher.states[0]).toEqual({ state: Startup, at: 0 })
    // The bandwidth found grows past the initial window's rate (12 kB per 20 ms: 600 kB/s) to the link's.
    expect(rates[0]!).toBeLessThan(0.6 * linkRate)
    expect(Math.max(...rates)).toBeGreaterThan(0.9 * linkRate)
    // It takes a few round trips (longer as its queue grows), not seconds.
    expect(watcher.states[1]!.at).toBeLessThan(400 * ms)
  })

  it('ends when three round trips add less than a quarter to the bandwidth, and Drain empties the queue it built', () => {
    const pair = new SimulatedPair(options, bottleneck, 2)
    const watcher = stateWatcher(pair)
    let queueWhenDrainBegan = 0
    const queueDelays: { at: number; delayUs: number }[] = []
    pair.onQueueDelay = (delayUs) => queueDelays.push({ at: pair.now, delayUs })
    bulk(pair, 2 * second, () => {
      watcher.observe()
      if (watcher.states.length === 2 && queueWhenDrainBegan === 0) queueWhenDrainBegan = pair.a.stats().bytesInFlight
    })
    expect(watcher.states.slice(0, 3).map((s) => s.state)).toEqual([Startup, Drain, ProbeBandwidth])
    const [, drain, probe] = watcher.states as [unknown, { at: number }, { at: number }]
    // Startup left more than a bandwidth-delay product (25 kB) in flight; Drain ends once it is down to one,
    // within a few round trips.
    expect(queueWhenDrainBegan).toBeGreaterThan(40_000)
    expect(probe.at - drain.at).toBeLessThan(8 * 20 * ms)
    // Half a second on, packets wait little at the bottleneck: the queue Startup built is gone.
    const later = queueDelays.filter((q) => q.at > probe.at + 500 * ms).map((q) => q.delayUs).sort((a, b) => a - b)
    expect(later[Math.floor(later.length / 2)]!).toBeLessThan(5 * ms)
  })
})

describe('congestion control: ProbeBandwidth', () => {
  it('cruises at the bandwidth, probes above it one round trip in eight, then drains below it', () => {
    const pair = new SimulatedPair(options, bottleneck, 3)
    const gains = new Set<string>()
    bulk(pair, 1 * second)
    expect(pair.a.stats().congestionState).toBe(ProbeBandwidth)
    const start = pair.now
    bulk(pair, 6 * second, () => {
      const stats = pair.a.stats()
      if (stats.congestionState === ProbeBandwidth) gains.add((stats.pacingRateBytesPerSec / stats.bandwidthBytesPerSec).toFixed(2))
    })
    expect([...gains].sort()).toEqual(['0.75', '1.00', '1.25'])
    // The model is the link: the bandwidth within a few per cent of it, the link kept full.
    expect(pair.a.stats().bandwidthBytesPerSec).toBeGreaterThan(0.95 * linkRate)
    expect(pair.a.stats().bandwidthBytesPerSec).toBeLessThan(1.1 * linkRate)
    expect(bytesArrived(pair, start) / ((pair.now - start) / second)).toBeGreaterThan(0.95 * goodputOfLink)
    expect(pair.packetsQueueDropped).toBe(0)
  })

  it('keeps the link full through 10 % and 20 % random loss: lost packets count as carried, not as congestion', () => {
    for (const loss of [0.1, 0.2]) {
      const pair = new SimulatedPair(options, { ...bottleneck, loss }, 4)
      bulk(pair, 2 * second)
      const start = pair.now
      bulk(pair, 8 * second)
      const goodput = bytesArrived(pair, start) / ((pair.now - start) / second)
      // What the path can carry is (1 − loss) of the link; a controller that reads the delivery rate alone
      // sets its model (1 − loss) low and keeps (1 − loss)² of it.
      expect(goodput, `${loss * 100} % loss`).toBeGreaterThan(0.85 * (1 - loss) * goodputOfLink)
      expect(pair.a.stats().congestionState).not.toBe(Startup)
      // Its statistics tell the truth: the share of its packets counted lost is the link's loss.
      const stats = pair.a.stats()
      expect(stats.packetsLost / stats.ackElicitingOut).toBeGreaterThan(loss * 0.9)
      expect(stats.packetsLost / stats.ackElicitingOut).toBeLessThan(loss * 1.1)
    }
  })

  it('backs off from a queue that overflows: a loss behind a standing queue bounds what is in flight', () => {
    // A 15 kB queue, less than the 25 kB bandwidth-delay product: the probes overflow it.
    const pair = new SimulatedPair(options, { ...bottleneck, queueBytes: 15_000 }, 5)
    bulk(pair, 1 * second)
    const dropsBefore = pair.packetsQueueDropped
    const carriedBefore = pair.packetsCarried
    const start = pair.now
    bulk(pair, 11 * second)
    const drops = (pair.packetsQueueDropped - dropsBefore) / (pair.packetsCarried - carriedBefore)
    expect(drops).toBeLessThan(0.02)
    expect(bytesArrived(pair, start) / ((pair.now - start) / second)).toBeGreaterThan(0.85 * goodputOfLink)
  })
})

describe('congestion control: ProbeRtt', () => {
  it('holds the window low while it rechecks a stale minimum RTT, then cruises again', () => {
    // A route 4 ms long that becomes 40 ms at second 3: no round trip comes near the old minimum, which
    // goes stale 10 s after the last one that did.
    const pair = new SimulatedPair(options, { ...bottleneck, latencyMs: 2 }, 6)
    const watcher = stateWatcher(pair)
    let windowInProbeRtt = Infinity
    bulk(pair, 3 * second, watcher.observe)
    pair.link.latencyMs = 20
    bulk(pair, 16 * second, () => {
      watcher.observe()
      const stats = pair.a.stats()
      if (stats.congestionState === ProbeRtt) {
        expect(stats.draining).toBe(1)
        windowInProbeRtt = Math.min(windowInProbeRtt, stats.congestionWindow)
      }
    })
    const probeRtt = watcher.states.findIndex((s) => s.state === ProbeRtt)
    expect(probeRtt).toBeGreaterThan(0)
    expect(watcher.states[probeRtt]!.at).toBeGreaterThan(12 * second)
    // Half the old bandwidth-delay product (1.25 MB/s × 4 ms / 2), at least four packets.
    expect(windowInProbeRtt).toBeLessThanOrEqual(4 * 1200)
    expect(watcher.states.at(-1)!.state).toBe(ProbeBandwidth)
    expect(pair.a.stats().pathMinRttUs).toBeGreaterThanOrEqual(40 * ms)
    expect(pair.a.stats().rttDrains).toBe(1)
  })
})

describe('congestion control after an outage', () => {
  it('measures the path afresh from Startup after persistent congestion', () => {
    const pair = new SimulatedPair(options, bottleneck, 7)
    bulk(pair, 2 * second)
    expect(pair.a.stats().congestionState).toBe(ProbeBandwidth)
    pair.link.loss = 1
    bulk(pair, 3 * second)
    pair.link.loss = 0
    const watcher = stateWatcher(pair)
    bulk(pair, 6 * second, watcher.observe)
    expect(pair.a.stats().persistentCongestion).toBe(1)
    expect(watcher.states.map((s) => s.state)).toEqual(expect.arrayContaining([Startup, ProbeBandwidth]))
    expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: pair.received.b.length }, (_, i) => i))
  })
})
