// The delivery layer's state machine (native/protocol/delivery/), two of them over a simulated network on a fake
// clock: reliable-ordered delivery at 0, 5 and 20 % loss with jitter, duplication and reordering,
// sequenced and unreliable channels, fragmentation up to 16 MiB, unreliable traffic beside a reliable
// backlog, congestion control under loss, clock synchronisation with a skewed clock, and hostile input.
import { describe, expect, it } from 'vitest'
import { layout } from '../../src/engine/layout.ts'
import { seededRandom } from '../helpers.ts'
import { type DeliveryOptions, type LinkConditions, type NativeDeliveryCore, SimulatedPair, ackPacket, dataFrames, deliveryCore, frameTypes, numberedMessage, packetNumber, peerSettingsFrame, readNumberedMessage, varint } from './simulated-link.ts'

const ms = 1000
const second = 1_000_000
const CHANNELS = ['reliable', 'unreliable', 'sequenced'] as ('reliable' | 'unreliable' | 'sequenced')[]

/**
 * Numbered 64-byte messages from a to b on `channel`: send(i) sends message i now, and `latencies` gets each
 * one's one-way latency (µs) as it arrives.
 */
function latencyProbe(pair: SimulatedPair, channel: number): { latencies: number[]; send: (i: number) => ReturnType<SimulatedPair['send']> } {
  const latencies: number[] = []
  const sentAt = new Map<number, number>()
  pair.onMessage.b = (from, data, at) => {
    if (from === channel) latencies.push(at - sentAt.get(readNumberedMessage(data))!)
  }
  const send = (i: number): ReturnType<SimulatedPair['send']> => {
    sentAt.set(i, pair.now)
    return pair.send('a', channel, numberedMessage(i, 64))
  }
  return { latencies, send }
}

describe('reliable-ordered channel through the simulator', () => {
  for (const loss of [0, 0.05, 0.2]) {
    it(`delivers every message once and in order at ${loss * 100} % loss with jitter, duplication and reordering`, () => {
      const pair = new SimulatedPair({ channels: CHANNELS }, { loss, latencyMs: 10, jitterMs: 4, duplicate: 0.05, reorder: 0.05 }, 42)
      const random = seededRandom(7)
      const count = 1500
      // Sizes from 1 byte to 3 fragments, sent in bursts as an application would.
      const sizes: number[] = Array.from({ length: count }, () => (random() < 0.1 ? 1100 + Math.floor(random() * 2400) : 8 + Math.floor(random() * 300)))
      let sent = 0
      while (sent < count) {
        for (let burst = 0; burst < 50 && sent < count; burst++, sent++) expect(pair.send('a', 0, numberedMessage(sent, sizes[sent] ?? 8))).toBe('queued')
        pair.run(pair.now + 20 * ms)
      }
      pair.run(pair.now + 120 * second, () => pair.received.b.length >= count)
      const order = pair.received.b.map((m) => (m.channel === 0 ? readNumberedMessage(m.data) : -2))
      expect(order).toEqual(Array.from({ length: count }, (_, i) => i))
      const stats = pair.a.stats()
      if (loss > 0) {
        expect(stats.packetsLost).toBeGreaterThan(0)
        expect(stats.resends).toBeGreaterThan(0)
      }
      // Settles: everything acknowledged, nothing queued.
      pair.run(pair.now + 5 * second, () => pair.a.stats().queuedMessages === 0)
      expect(pair.a.stats().queuedMessages).toBe(0)
      expect(pair.b.stats().duplicateMessages + pair.b.stats().duplicatePackets).toBeGreaterThan(0)
    })
  }

  it('keeps many packets in flight (a window, not stop-and-wait) and measures the RTT', () => {
    const pair = new SimulatedPair({ channels: ['reliable'] }, { latencyMs: 10 }, 3)
    let inFlightMax = 0
    for (let i = 0; i < 3000; i++) pair.send('a', 0, numberedMessage(i, 1000))
    pair.run(pair.now + 30 * second, () => {
      inFlightMax = Math.max(inFlightMax, pair.a.stats().bytesInFlight)
      return pair.received.b.length === 3000
    })
    expect(pair.received.b).toHaveLength(3000)
    // A window of many packets per 20 ms round trip.
    expect(inFlightMax).toBeGreaterThan(50 * 1000)
    const stats = pair.a.stats()
    expect(stats.minRttUs).toBeGreaterThanOrEqual(20 * ms)
    expect(stats.smoothedRttUs).toBeLessThan(60 * ms)
  })
})

describe('reassembly bound under loss', () => {
  it('never deadlocks: the next message to deliver is always taken, even with the bound full of later ones', () => {
    // 2.5 kB messages (3 fragments), a bound of two of them, 2 % loss: the window (several kB) is larger
    // than the bound, so later messages fill it while the one before them waits for a resend.
    const options = { channels: ['reliable' as const], maxMessageBytes: 3000, reassemblyBytes: 6000, sendQueueBytes: 8 << 20 }
    const pair = new SimulatedPair(options, { loss: 0.02, latencyMs: 5, jitterMs: 2, reorder: 0.1 }, 17)
    for (let i = 0; i < 400; i++) pair.send('a', 0, numberedMessage(i, 2500))
    pair.run(pair.now + 600 * second, () => pair.received.b.length === 400)
    expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: 400 }, (_, i) => i))
    expect(pair.b.stats().overBudget).toBeGreaterThan(0) // the bound was reached, and delivery went on
  })
})

describe('reassembly bound with two reliable channels', () => {
  it("neither channel's next message waits for good on the other's", () => {
    // Two 60 kB messages a channel against a bound of 100 kB: each channel's next message needs to go past
    // the bound while the other's is held. That permission was held until the message completed; when the
    // other channel's next message was then refused, its resends took every packet at the minimum window,
    // the holder's fragments were never sent, and both channels stalled for good (these seeds, and about
    // one in four others, found by review with a harness of its own).
    for (const seed of [11, 12, 15, 23, 25]) {
      const options = { channels: ['reliable' as const, 'reliable' as const], maxMessageBytes: 65_536, reassemblyBytes: 100_000, sendQueueBytes: 8 << 20 }
      const pair = new SimulatedPair(options, { loss: 0.02, latencyMs: 5, jitterMs: 2 }, seed)
      for (let i = 0; i < 2; i++) for (const channel of [0, 1]) pair.send('a', channel, numberedMessage(i, 60_000))
      pair.run(pair.now + 120 * second, () => pair.received.b.length === 4)
      for (const channel of [0, 1]) {
        expect(pair.received.b.filter((m) => m.channel === channel).map((m) => readNumberedMessage(m.data)), `seed ${seed}, channel ${channel}`).toEqual([0, 1])
      }
      expect(pair.b.stats().overBudget).toBeGreaterThan(0) // the bound was reached
    }
  })
})

describe('reassembly bound smaller than a message, two reliable channels', () => {
  it('the sender finishes the message the receiver took past its bound before resending what it refuses', () => {
    // The receiver takes one channel's next message past the bound and refuses the other's until that one
    // completes. The sender resent the refused one's fragments first (lower sequence) and sent the started
    // one's remaining fragments only after every resend: at the minimum window that was never (these seeds).
    for (const seed of [1, 8, 14, 16, 17]) {
      const options = { channels: ['reliable' as const, 'reliable' as const], maxMessageBytes: 65_536, reassemblyBytes: 50_000, reliableWindow: 4, sendQueueBytes: 8 << 20 }
      const pair = new SimulatedPair(options, { loss: 0.05, latencyMs: 20, jitterMs: 10, duplicate: 0.05 }, seed)
      const sizes = [60_000, 15_000, 500, 40_000]
      for (let i = 0; i < 20; i++) for (const channel of [0, 1]) pair.send('a', channel, numberedMessage(i, sizes[(i + channel) % 4]!))
      pair.run(pair.now + 300 * second, () => pair.received.b.length === 40)
      for (const channel of [0, 1]) {
        expect(pair.received.b.filter((m) => m.channel === channel).map((m) => readNumberedMessage(m.data)), `seed ${seed}, channel ${channel}`).toEqual(Array.from({ length: 20 }, (_, i) => i))
      }
    }
  })
})

describe('reassembly bound smaller than a message, reordering', () => {
  it('a message the receiver started is resent ahead even when the sender learns it after queuing the resends', () => {
    // Its resends were queued as "not started" and stayed behind the other channel's lower sequence, which
    // the receiver refused, at the minimum window: with seed 41 three of eight messages arrived, ever.
    const options = { channels: ['reliable' as const, 'reliable' as const], maxMessageBytes: 65_536, reassemblyBytes: 50_000, sendQueueBytes: 8 << 20 }
    const pair = new SimulatedPair(options, { loss: 0.05, latencyMs: 20, jitterMs: 10, reorder: 0.1 }, 41)
    for (let i = 0; i < 4; i++) for (const channel of [0, 1]) pair.send('a', channel, numberedMessage(i, 60_000))
    pair.run(pair.now + 60 * second, () => pair.received.b.length === 8)
    for (const channel of [0, 1]) expect(pair.received.b.filter((m) => m.channel === channel).map((m) => readNumberedMessage(m.data))).toEqual([0, 1, 2, 3])
  })
})

describe('reassembly bound smaller than a message, a packet held back past what the sender remembers', () => {
  /**
   * Channel 1 has delivered three messages, channel 0 none. Channel 0's message 0 (60 kB) goes past the
   * 50 kB bound; channel 0's message 1 and channel 1's message 3 come behind it. One packet of channel 1's
   * message 3 is held back 310 ms; from the moment channel 0's message 0 is complete until it arrives, the
   * packets of the two other messages are lost. The held packet then starts message 3, past the bound, and
   * is acknowledged, but the sender has forgotten it by then (it remembers losses 8 RTTs): it cannot tell
   * that the receiver took message 3. Returns when channel 0's message 0 was complete (true time, µs),
   * with the losses starting at `lossFromUs`.
   */
  function run(secondBytes: number, lossFromUs: number): { pair: SimulatedPair; firstDoneUs: number } {
    const options = { channels: ['reliable' as const, 'reliable' as const], maxMessageBytes: 65_536, reassemblyBytes: 50_000, sendQueueBytes: 8 << 20 }
    let heldArrivesUs = Infinity
    const pair = new SimulatedPair(options, {
      latencyMs: 10,
      shape: ({ to, sentUs, data }) => {
        if (to !== 'b') return 0
        const frames = dataFrames(data)
        const late = frames.some((f) => f.channel === 1 && f.sequence === 3)
        if (late && heldArrivesUs === Infinity) {
          heldArrivesUs = sentUs + 310 * ms
          return 300 * ms
        }
        const arrivesUs = sentUs + 10 * ms
        const lost = late || frames.some((f) => f.channel === 0 && f.sequence === 1)
        return lost && arrivesUs >= lossFromUs && arrivesUs <= heldArrivesUs ? null : 0
      },
    })
    let firstDoneUs = Infinity
    pair.onMessage.b = (channel, data, at) => {
      if (channel === 0 && readNumberedMessage(data) === 0) firstDoneUs = at
    }
    for (let i = 0; i < 3; i++) pair.send('a', 1, numberedMessage(i, 500))
    pair.run(50 * ms)
    pair.send('a', 0, numberedMessage(0, 60_000))
    pair.run(65 * ms)
    pair.send('a', 0, numberedMessage(1, secondBytes))
    pair.send('a', 1, numberedMessage(3, 60_000))
    pair.run(pair.now + 60 * second, () => pair.received.b.length === 6)
    return { pair, firstDoneUs }
  }

  it("the other channel's next message is taken too, and both arrive", () => {
    for (const secondBytes of [5_000, 30_000]) {
      // The same run twice (nothing random differs before the losses start): first to learn when channel
      // 0's first message is complete, then with the losses from then on.
      const { firstDoneUs } = run(secondBytes, Infinity)
      const { pair } = run(secondBytes, firstDoneUs)
      expect(pair.packetsLost, 'the losses happened').toBeGreaterThan(0)
      // Before, channel 0's message 1 was refused while message 3 was past the bound, and the sender, which
      // did not know message 3 had been started, resent message 1 first (lower sequence) at the minimum
      // window, for good: neither arrived in a minute.
      expect(pair.received.b.map((m) => `${m.channel}:${readNumberedMessage(m.data)}`).sort()).toEqual(['0:0', '0:1', '1:0', '1:1', '1:2', '1:3'])
    }
  })
})

/** 200 messages of 64 KiB (13 MB) queued on a reliable channel over the link. */
function transfer(link: LinkConditions, seed: number): { pair: SimulatedPair; count: number } {
  const count = 200
  const pair = new SimulatedPair({ channels: ['reliable'], sendQueueBytes: 32 << 20 }, link, seed)
  for (let i = 0; i < count; i++) pair.send('a', 0, numberedMessage(i, 64 * 1024))
  return { pair, count }
}

/**
 * Drops packets at rate `loss` for `durationUs`, then runs until the transfer has arrived, in order;
 * returns how long that took once the link was back, µs.
 */
function completeAfterLoss(pair: SimulatedPair, count: number, loss: number, durationUs: number): number {
  pair.link.loss = loss
  pair.run(pair.now + durationUs)
  pair.link.loss = 0
  const back = pair.now
  pair.run(pair.now + 120 * second, () => pair.received.b.length === count)
  expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: count }, (_, i) => i))
  return pair.now - back
}

/** The transfer over a 10 Gbit/s path with a 4 MiB queue. */
function fastTransfer(latencyMs: number, seed: number): { pair: SimulatedPair; count: number } {
  return transfer({ latencyMs, bandwidthBytesPerSec: 1.25e9, queueBytes: 4 << 20 }, seed)
}

describe('reassembly bound after a loss burst', () => {
  it('a fast transfer through a full bound completes in order, promptly, after a burst of loss', () => {
    // 64 KiB messages (57 fragments each) on a 10 Gbit/s path with a 4 MiB queue, so the window grows to
    // megabytes; the default bound (maxMessageBytes + 1 MiB) holds about 32 such messages. A burst of
    // loss leaves many of them with holes while the sender's window (1,024 messages) reaches far beyond
    // the bound: the receiver refuses fragments of messages it cannot start (not acknowledged, resent).
    // The fragments it needs next must not wait behind those it refuses: resent in the order their losses
    // were found, they did, each refusal counted as a loss at the minimum window, and what was left took
    // about 4 s instead of 9 ms.
    const { pair, count } = fastTransfer(0.5, 21)
    pair.run(pair.now + second, () => pair.received.b.length >= 40)
    expect(pair.a.stats().congestionWindow).toBeGreaterThan(1 << 20)
    expect(pair.received.b.length).toBeLessThan(count)
    const rest = completeAfterLoss(pair, count, 0.5, 5 * ms)
    expect(pair.b.stats().overBudget).toBeGreaterThan(0) // the bound was reached
    // What was left (about 10 MB at 1.25 GB/s, with resends) takes milliseconds, not seconds.
    expect(rest).toBeLessThan(0.1 * second)
  })
})

describe('probe timeout', () => {
  it('is not postponed by pings: a link up 4 ms in every 12, in step with the pings, still carries the transfer', () => {
    // Every ping reaches the peer at the end of an up-period and every answer is lost. The data in flight
    // is never acknowledged; when each ping restarted the probe timeout, the timeout (backed off beyond
    // the 100 ms between pings) never fired and the data was never probed: 153 of 200 messages after a
    // minute, and no more.
    const { pair, count } = fastTransfer(0.05, 5)
    while (pair.received.b.length < count && pair.now < 60 * second) {
      pair.link.loss = 0
      pair.run(pair.now + 4 * ms, () => pair.received.b.length === count)
      pair.link.loss = 1
      pair.run(pair.now + 8 * ms)
    }
    expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: count }, (_, i) => i))
    expect(pair.a.stats().probeTimeouts).toBeGreaterThan(0)
  })
})

describe('an outage', () => {
  it('leaves no lasting mark: after 2 s down, a transfer at 100 ms RTT goes on at the rate of the path', () => {
    // 13 MB over 12.5 MB/s: about a second of sending. Every packet in flight when the link went down is
    // lost, which is persistent congestion: the window goes to its minimum. Slow start must lead it back to
    // where it was; when the threshold stayed where the outage's losses put it (half the window in flight,
    // RFC 9002's reduction), the rest took 14 s at one packet more per round trip.
    const { pair, count } = transfer({ latencyMs: 50, bandwidthBytesPerSec: 12.5e6 }, 5)
    pair.run(pair.now + 200 * ms)
    const rest = completeAfterLoss(pair, count, 1, 2 * second)
    expect(pair.a.stats().persistentCongestion).toBeGreaterThan(0)
    expect(rest).toBeLessThan(4 * second)
  })
})

describe('sequenced and unreliable channels', () => {
  it('sequenced never goes backwards, under reordering and loss', () => {
    const pair = new SimulatedPair({ channels: CHANNELS }, { loss: 0.2, latencyMs: 10, jitterMs: 5, duplicate: 0.05, reorder: 0.2 }, 9)
    for (let i = 0; i < 600; i++) {
      pair.send('a', 2, numberedMessage(i, i % 7 === 0 ? 2500 : 40))
      pair.run(pair.now + 2 * ms)
    }
    pair.run(pair.now + 2 * second)
    const order = pair.received.b.filter((m) => m.channel === 2).map((m) => readNumberedMessage(m.data))
    // Each message goes in a packet of its own (random loss leaves the window alone): a fifth are lost,
    // and nearly half the rest arrive behind a newer one, stale (230 here).
    expect(order.length).toBeGreaterThan(200)
    expect(order.every((index) => index >= 0)).toBe(true)
    for (let i = 1; i < order.length; i++) expect(order[i]!).toBeGreaterThan(order[i - 1]!)
    expect(pair.b.stats().staleSequenced).toBeGreaterThan(0)
  })

  it('unreliable messages arrive intact or not at all, fragmented ones included', () => {
    const pair = new SimulatedPair({ channels: CHANNELS }, { loss: 0.05, latencyMs: 5, jitterMs: 2, duplicate: 0.05, reorder: 0.1 }, 11)
    for (let i = 0; i < 400; i++) {
      pair.send('a', 1, numberedMessage(i, i % 5 === 0 ? 4000 : 100))
      pair.run(pair.now + ms)
    }
    pair.run(pair.now + 10 * second)
    const got = pair.received.b.filter((m) => m.channel === 1).map((m) => readNumberedMessage(m.data))
    expect(got.every((index) => index >= 0)).toBe(true)
    expect(new Set(got).size).toBe(got.length) // never twice
    expect(got.length).toBeGreaterThan(300)
    expect(got.length).toBeLessThan(400) // some were lost: nothing resends them
    expect(pair.b.stats().reassemblyUsed).toBe(0) // incomplete ones expired
  })

  it('unreliable traffic keeps flowing while a reliable backlog drains', () => {
    // A 20 Mbit/s path with a short queue: the backlog takes longer than the second the test watches.
    const link = { loss: 0.05, latencyMs: 10, jitterMs: 2, bandwidthBytesPerSec: 2.5e6, queueBytes: 16 * 1024 }
    const pair = new SimulatedPair({ channels: CHANNELS, sendQueueBytes: 16 << 20 }, link, 5)
    // 3 MiB of reliable data, queued at once.
    for (let i = 0; i < 3000; i++) expect(pair.send('a', 0, numberedMessage(i, 1024))).toBe('queued')
    const { latencies, send } = latencyProbe(pair, 1)
    for (let i = 0; i < 100; i++) {
      send(i)
      pair.run(pair.now + 10 * ms)
    }
    // The backlog was still draining while the unreliable messages went through.
    expect(pair.received.b.filter((m) => m.channel === 0).length).toBeLessThan(3000)
    expect(latencies.length).toBeGreaterThan(85)
    latencies.sort((x, y) => x - y)
    expect(latencies[Math.floor(latencies.length * 0.9)]!).toBeLessThan(30 * ms) // one-way latency 10 ms
    pair.run(pair.now + 60 * second, () => pair.received.b.filter((m) => m.channel === 0).length === 3000)
    expect(pair.received.b.filter((m) => m.channel === 0).map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: 3000 }, (_, i) => i))
  })

  it.each([
    ['two reliable channels', ['reliable', 'reliable'] as const, 0],
    // Unreliable messages filling every other packet: the turns kept in step with the packets' alternation
    // of kinds, and channel 1 never went first in a packet with room.
    ['beside an unreliable flood', ['reliable', 'reliable', 'unreliable'] as const, 40],
  ])('a reliable channel is not held back by a backlog on another: they take turns (%s)', (_name, channels, flood) => {
    // A bulk transfer on channel 0, a chat on channel 1, both reliable, over a 20 Mbit/s path: the chat's
    // messages went out only once all of the bulk had (strict channel order).
    const link = { latencyMs: 10, bandwidthBytesPerSec: 2.5e6, queueBytes: 64 * 1024 }
    const pair = new SimulatedPair({ channels: [...channels], sendQueueBytes: 64 << 20 }, link, 9)
    for (let i = 0; i < 3000; i++) expect(pair.send('a', 0, numberedMessage(i, 1024))).toBe('queued')
    const { latencies, send } = latencyProbe(pair, 1)
    for (let i = 0; i < 50; i++) {
      expect(send(i)).toBe('queued')
      for (let k = 0; k < flood; k++) pair.send('a', 2, numberedMessage(k, 1100))
      pair.run(pair.now + 10 * ms)
    }
    pair.run(pair.now + 100 * ms)
    // All 50 in order, each within a few round trips, while the bulk (1.2 s of the path) still drains.
    expect(pair.received.b.filter((m) => m.channel === 1).map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(pair.received.b.filter((m) => m.channel === 0).length).toBeLessThan(3000)
    expect(Math.max(...latencies)).toBeLessThan(100 * ms)
    pair.run(pair.now + 120 * second, () => pair.received.b.filter((m) => m.channel === 0).length === 3000)
    expect(pair.received.b.filter((m) => m.channel === 0).map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: 3000 }, (_, i) => i))
  })
})

describe('incomplete messages over the reassembly bound', () => {
  it('give way to the newer messages of their channel, which arrive whole', () => {
    // The default bound (maxMessageBytes + 1 MiB) holds two 900 kB messages. Fragment 3 of messages 0
    // and 1 is lost once, nothing else: the two stale halves filled the bound until they expired (5 s),
    // and every newer message, though whole, was dropped over it.
    const lost = new Set<string>()
    const shape = ({ to, data }: { to: 'a' | 'b'; data: Uint8Array }): number | null => {
      if (to !== 'b') return 0
      for (const frame of dataFrames(data)) {
        const key = `${frame.sequence}/${frame.fragment}`
        if (frame.sequence < 2 && frame.fragment === 3 && !lost.has(key)) {
          lost.add(key)
          return null
        }
      }
      return 0
    }
    for (const mode of ['sequenced', 'unreliable'] as const) {
      lost.clear()
      const pair = new SimulatedPair({ channels: [mode], sendQueueBytes: 64 << 20 }, { latencyMs: 10, shape }, 3)
      pair.run(200 * ms)
      for (let i = 0; i < 20; i++) {
        expect(pair.send('a', 0, numberedMessage(i, 900_000))).toBe('queued')
        pair.run(pair.now + 100 * ms)
      }
      pair.run(pair.now + 500 * ms) // 2.5 s in all, half the fragment timeout
      expect(lost.size, mode).toBe(2)
      expect(pair.received.b.map((m) => readNumberedMessage(m.data)), mode).toEqual(Array.from({ length: 18 }, (_, i) => i + 2))
      expect(pair.b.stats().overBudget, mode).toBe(0)
      expect(pair.b.stats().expiredFragments, mode).toBe(2) // the two that gave way
    }
  })
})

describe("another channel's incomplete messages over the reassembly bound", () => {
  it('give way once they have had no fragment for a while, to fragmented messages that would not fit beside them', () => {
    // Two messages of about 1 MiB on channel 0 each lose a fragment: incomplete, they fill the bound (2 MiB,
    // which counts each one's bytes, a flag per fragment and a held message's overhead). The sequenced
    // messages of channel 1, fragmented (2,500 B), were all dropped until those two expired (5 s).
    const large = (1 << 20) - 2048
    const shape = ({ to, data }: { to: 'a' | 'b'; data: Uint8Array }): number | null => {
      if (to !== 'b') return 0
      return dataFrames(data).some((frame) => frame.channel === 0 && frame.sequence < 2 && frame.fragment === 3) ? null : 0
    }
    for (const mode of ['sequenced', 'unreliable'] as const) {
      const pair = new SimulatedPair({ channels: [mode, 'sequenced'], sendQueueBytes: 64 << 20 }, { latencyMs: 10, shape }, 3)
      pair.run(200 * ms)
      expect(pair.send('a', 0, numberedMessage(0, large))).toBe('queued')
      expect(pair.send('a', 0, numberedMessage(1, large))).toBe('queued')
      pair.run(pair.now + 100 * ms)
      // While their fragments still come, the two are kept: a message of channel 1 does not fit.
      expect(pair.send('a', 1, numberedMessage(100, 2500))).toBe('queued')
      pair.run(pair.now + 100 * ms)
      expect(pair.b.stats().overBudget, mode).toBe(3) // each of its 3 fragments
      pair.run(pair.now + 400 * ms) // idle since, longer than 250 ms
      for (let i = 0; i < 20; i++) {
        expect(pair.send('a', 1, numberedMessage(i, 2500))).toBe('queued')
        pair.run(pair.now + 100 * ms)
      }
      // 2.8 s in all, about half the fragment timeout: one of the two gave way, which made room enough.
      expect(pair.received.b.map((m) => ({ channel: m.channel, index: readNumberedMessage(m.data) })), mode).toEqual(Array.from({ length: 20 }, (_, i) => ({ channel: 1, index: i })))
      expect(pair.b.stats().overBudget, mode).toBe(3)
      expect(pair.b.stats().expiredFragments, mode).toBe(1)
    }
  })
})

describe('reliable queues that a reordering burst grew', () => {
  it('give their room in the bound back once they have drained', () => {
    // On each of 30 channels one burst: message 0 late, 1 to 1,000 ahead of it. Drained, each queue kept
    // 1,024 empty slots (80 kB) counted against the bound, which they filled for the rest of the connection:
    // nothing ahead of a channel's next message was taken again.
    const options: DeliveryOptions = { channels: new Array<'reliable'>(30).fill('reliable') }
    const core = deliveryCore(options)
    const settings = peerSettingsFrame(options)
    let pn = 0
    let now = 1_000_000
    const receive = (frames: number[][]): void => core.receive(Uint8Array.from([0xd1, ...varint(pn++), ...settings, ...frames.flat()]), (now += 10))
    const tiny = (channel: number, sequence: number): number[] => [0x10, channel, ...varint(sequence), 1, 7]
    for (let channel = 0; channel < 30; channel++) {
      for (let s = 1; s <= 1000; s += 150) receive(Array.from({ length: Math.min(150, 1001 - s) }, (_, k) => tiny(channel, s + k)))
      receive([tiny(channel, 0)])
    }
    expect(core.take().messages).toHaveLength(30 * 1001)
    const before = core.stats()
    expect(before.reassemblyUsed).toBe(0)
    // A 20 kB message one ahead of channel 0's next: taken, not refused.
    const fragment = (index: number): number[] => [0x11, 0, ...varint(1002), ...varint(20_000), ...varint(index), ...new Array<number>(1100).fill(1)]
    receive([fragment(0)])
    expect(core.stats().overBudget).toBe(before.overBudget)
    expect(core.stats().reassemblyUsed).toBe(20_000)
  })
})

describe('unreliable traffic that fills the path', () => {
  it('leaves every other packet to reliable messages', () => {
    // 1 MB/s and 20 ms RTT; the application offers 1.5 MB/s of unreliable messages, then one reliable one.
    // Unreliable messages went first in every packet: the reliable one had not arrived after 10 s.
    const pair = new SimulatedPair({ channels: ['reliable', 'unreliable'], sendQueueBytes: 1 << 20 }, { latencyMs: 10, bandwidthBytesPerSec: 1e6, queueBytes: 64_000 }, 3)
    let unreliable = 0
    const offer = () => {
      for (let k = 0; k < 15; k++) pair.send('a', 1, numberedMessage(unreliable++, 1000))
      pair.run(pair.now + 10 * ms)
    }
    for (let t = 0; t < 2 * second; t += 10 * ms) offer()
    const sentAt = pair.now
    expect(pair.send('a', 0, numberedMessage(0, 100))).toBe('queued')
    let arrivedAt = -1
    pair.onMessage.b = (channel, _data, at) => {
      if (channel === 0) arrivedAt = at
    }
    for (let t = 0; t < 2 * second && arrivedAt < 0; t += 10 * ms) offer()
    expect(arrivedAt).toBeGreaterThan(0)
    expect(arrivedAt - sentAt).toBeLessThan(500 * ms)
  })
})

describe('fragmentation', () => {
  it('a 16 MiB message arrives intact through 5 % loss', () => {
    const size = 16 << 20
    const pair = new SimulatedPair({ channels: ['reliable'], maxMessageBytes: size, sendQueueBytes: size }, { loss: 0.05, latencyMs: 2, jitterMs: 1 }, 21)
    const message = new Uint8Array(size)
    const random = seededRandom(99)
    for (let i = 0; i < size; i += 4096) message[i] = Math.floor(random() * 256)
    for (let i = 0; i < size; i++) message[i] = (message[i] ?? 0) ^ (i & 0xff)
    expect(pair.send('a', 0, message)).toBe('queued')
    pair.run(pair.now + 600 * second, () => pair.received.b.length === 1)
    expect(pair.received.b).toHaveLength(1)
    expect(Buffer.compare(Buffer.from(pair.received.b[0]!.data), Buffer.from(message))).toBe(0)
    expect(pair.a.stats().resends).toBeGreaterThan(0)
    expect(pair.b.stats().reassemblyUsed).toBe(0)
  }, 60_000)

  it('refuses messages over the maximum and channels that do not exist, with a result', () => {
    const core = deliveryCore({ channels: ['reliable'], maxMessageBytes: 5000 })
    expect(core.send(0, new Uint8Array(5001), 0)).toBe('too-large')
    expect(core.send(1, new Uint8Array(10), 0)).toBe('no-channel')
    expect(core.send(0, new Uint8Array(5000), 0)).toBe('queued')
  })

  it('applies back-pressure when the send queue is full', () => {
    const core = deliveryCore({ channels: ['reliable'], sendQueueBytes: 10_000 })
    let queued = 0
    while (core.send(0, new Uint8Array(1000), 0) === 'queued') queued++
    // Each message counts its bytes and a fixed charge for its record (layout.queuedMessageOverheadBytes).
    expect(queued).toBe(Math.floor(10_000 / (1000 + layout.queuedMessageOverheadBytes)))
    expect(core.stats().queuedBytes).toBe(queued * 1000)
  })

  it('applies back-pressure to empty messages too: each counts a charge for its record', () => {
    const core = deliveryCore({ channels: ['reliable'], sendQueueBytes: 64 * 1024 })
    let queued = 0
    // Nothing is acknowledged (no peer): the queue only grows, until it is full.
    for (let i = 0; i < 200_000 && core.send(0, new Uint8Array(0), 0) === 'queued'; i++) queued++
    expect(queued).toBe((64 * 1024) / layout.queuedMessageOverheadBytes)
  })
})

describe('congestion control', () => {
  it('keeps its rate under 20 % random loss and still completes a bulk transfer, without flooding', () => {
    // Random loss is not congestion: a window cut at each loss (or at more than a tenth of recent packets
    // lost, as before) left 20 % loss a crawl.
    const elapsed = (loss: number): { us: number; packetsOut: number } => {
      const pair = new SimulatedPair({ channels: ['reliable'], sendQueueBytes: 8 << 20 }, { loss, latencyMs: 10 }, 1)
      for (let i = 0; i < 2000; i++) pair.send('a', 0, numberedMessage(i, 1000))
      pair.run(pair.now + 600 * second, () => pair.received.b.length === 2000)
      expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: 2000 }, (_, i) => i))
      return { us: pair.now, packetsOut: pair.a.stats().packetsOut }
    }
    const clean = elapsed(0)
    const lossy = elapsed(0.2)
    expect(lossy.us).toBeLessThan(2.5 * clean.us)
    // It did not flood: what it sent is what had to arrive, plus the resends of a fifth lost.
    expect(lossy.packetsOut).toBeLessThan((2000 / 0.8) * 1.1)
  })
})

/** Sends `count` 1,000-byte reliable messages over `pair` and returns the goodput, bytes per second. */
function bulkGoodput(pair: SimulatedPair, count: number): number {
  const start = pair.now
  for (let i = 0; i < count; i++) expect(pair.send('a', 0, numberedMessage(i, 1000))).toBe('queued')
  pair.run(pair.now + 600 * second, () => pair.received.b.length === count)
  expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: count }, (_, i) => i))
  return (count * 1000 * 1e6) / (pair.received.b.at(-1)!.at - start)
}

describe('congestion control on a bottleneck', () => {
  // 100 Mbit/s, 4 ms RTT (a bandwidth-delay product of 50 kB), a 64 kB tail-drop queue.
  const bottleneck = { latencyMs: 2, bandwidthBytesPerSec: 12.5e6, queueBytes: 64 * 1024 }
  const options = { channels: ['reliable' as const], sendQueueBytes: 16 << 20 }

  it('fills the path without flooding it: few drops at the queue, most of the bandwidth used', () => {
    const pair = new SimulatedPair(options, bottleneck, 3)
    const goodput = bulkGoodput(pair, 8000)
    // The estimate it reduces to on congestion is the bottleneck's rate.
    expect(pair.a.stats().bandwidthBytesPerSec).toBeGreaterThan(0.9 * 12.5e6)
    expect(pair.a.stats().bandwidthBytesPerSec).toBeLessThan(1.1 * 12.5e6)
    expect(goodput).toBeGreaterThan(0.8 * 12.5e6)
    expect(pair.packetsQueueDropped / pair.packetsCarried).toBeLessThan(0.02)
  })

  it('keeps most of its rate through 5 % random loss (the window does not halve on every loss)', () => {
    const pair = new SimulatedPair(options, { ...bottleneck, loss: 0.05 }, 4)
    const goodput = bulkGoodput(pair, 8000)
    // NewReno's halving on every loss kept it under 10 % of the link here.
    expect(goodput).toBeGreaterThan(0.6 * 12.5e6)
    expect(pair.a.stats().packetsOut).toBeLessThan(8000 * 1.25)
  })

  it('keeps its rate on a path whose jitter reorders packets: losses proved wrong raise the thresholds and undo the cut', () => {
    // ±1 ms of jitter on each packet: back-to-back packets overtake each other all the time, and nothing
    // is lost. With RFC 9002's fixed thresholds (3 packets, 9/8 RTT) this read as loss and congestion and
    // held the path to a few per cent of its rate.
    const steady = bulkGoodput(new SimulatedPair(options, { ...bottleneck }, 8), 8000)
    const pair = new SimulatedPair(options, { ...bottleneck, jitterMs: 1 }, 8)
    const goodput = bulkGoodput(pair, 8000)
    const stats = pair.a.stats()
    expect(stats.spuriousLosses).toBeGreaterThan(0)
    // Fixed thresholds: 5 % of the steady path's rate here, and 1,230 packets counted lost.
    expect(goodput).toBeGreaterThan(0.8 * steady)
    // The only losses are the bottleneck queue's drops: what was declared lost and then acknowledged is
    // not counted.
    expect(pair.packetsLost).toBe(0)
    expect(stats.packetsLost).toBeLessThanOrEqual(pair.packetsQueueDropped + 0.002 * stats.ackElicitingOut)
  })

  it('keeps most of its rate through 5 % random loss on a jittery path (jitter is not taken for a queue)', () => {
    // Which packets a seed drops moves one run's rate a lot (5.6 to 9.1 MB/s over seeds 5 to 9): the median of five.
    const goodputs = [5, 6, 7, 8, 9].map((seed) => bulkGoodput(new SimulatedPair(options, { ...bottleneck, loss: 0.05, jitterMs: 1 }, seed), 8000))
    expect(goodputs.sort((a, b) => a - b)[2]).toBeGreaterThan(0.5 * 12.5e6)
  })

  it('falls to the minimum window when everything sent over three probe timeouts is lost, then recovers', () => {
    const pair = new SimulatedPair(options, { ...bottleneck }, 5)
    for (let i = 0; i < 4000; i++) pair.send('a', 0, numberedMessage(i, 1000))
    pair.run(pair.now + 0.1 * second)
    expect(pair.a.stats().congestionWindow).toBeGreaterThan(20 * 1200)
    pair.link.loss = 1  // a black hole for half a second
    pair.run(pair.now + 0.5 * second)
    expect(pair.a.stats().persistentCongestion).toBe(0)  // nothing acknowledged yet: no loss declared
    pair.link.loss = 0
    // The first acknowledgement after it declares the whole span lost: persistent congestion.
    pair.run(pair.now + 0.5 * second, () => pair.a.stats().persistentCongestion > 0)
    expect(pair.a.stats().persistentCongestion).toBe(1)
    expect(pair.a.stats().congestionWindow).toBeLessThanOrEqual(4 * 1200)
    pair.run(pair.now + 60 * second, () => pair.received.b.length === 4000)
    expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: 4000 }, (_, i) => i))
  })
})

/**
 * Keeps `pair`'s a side sending 1,000-byte reliable messages for `seconds` and returns what arrived in each
 * second, bytes. atSecond(s) runs before second s, observe() after every event.
 */
function bulkBytesPerSecond(pair: SimulatedPair, seconds: number, { atSecond = () => {}, observe = () => {} }: { atSecond?: (s: number) => void; observe?: () => void } = {}): number[] {
  let sent = pair.received.b.length
  const perSecond: number[] = []
  for (let s = 0; s < seconds; s++) {
    atSecond(s)
    while (sent - pair.received.b.length < 3000) expect(pair.send('a', 0, numberedMessage(sent++, 1000))).toBe('queued')
    const before = pair.received.b.length
    pair.run(pair.now + second, () => {
      observe()
      return false
    })
    perSecond.push((pair.received.b.length - before) * 1000)
  }
  expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: pair.received.b.length }, (_, i) => i))
  return perSecond
}

const mean = (values: number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length

/** The drains of side a of `pair` so far, as [start, end] in true time (µs); call after every event. */
function drainWatcher(pair: SimulatedPair): { observe: () => void; drains: [number, number][] } {
  const drains: [number, number][] = []
  return {
    drains,
    observe: () => {
      const draining = pair.a.stats().draining === 1
      const open = drains.length > 0 && drains.at(-1)![1] < 0
      if (draining && !open) drains.push([pair.now, -1])
      if (!draining && open) drains.at(-1)![1] = pair.now
    },
  }
}

describe("congestion control's minimum RTT", () => {
  // 10 Mbit/s with a 64 kB tail-drop queue.
  const options = { channels: ['reliable' as const], sendQueueBytes: 64 << 20 }
  const link = { bandwidthBytesPerSec: 1.25e6, queueBytes: 64 * 1024 }
  // A packet carries 1,000 bytes of a message in about 1,040.
  const goodputOfLink = 1.25e6 * (1000 / 1040)

  it('follows a route that got longer: random loss stops reading as congestion after one drain', () => {
    // 4 ms RTT, then 40 ms from second 3, at 2 % random loss. With the lifetime minimum (4 ms) every
    // standing-queue test then saw a queue, every random loss cut the window, and the connection kept
    // 1.5 Mbit/s for good where one that began on the 40 ms path keeps 9.
    const moved = new SimulatedPair(options, { ...link, latencyMs: 2, loss: 0.02 }, 1)
    const rates = bulkBytesPerSecond(moved, 25, {
      atSecond: (s) => {
        if (s === 3) moved.link.latencyMs = 20
      },
    })
    const fresh = mean(bulkBytesPerSecond(new SimulatedPair(options, { ...link, latencyMs: 20, loss: 0.02 }, 1), 25).slice(15))
    expect(mean(rates.slice(4, 12))).toBeLessThan(0.4 * fresh) // the old minimum holds for 10 s...
    expect(mean(rates.slice(15))).toBeGreaterThan(0.9 * fresh) // ...then one drain finds the new one
    const stats = moved.a.stats()
    expect(stats.rttDrains).toBe(1)
    expect(stats.pathMinRttUs).toBeGreaterThanOrEqual(40 * ms)
    expect(stats.pathMinRttUs).toBeLessThan(41 * ms)
    expect(stats.minRttUs).toBeLessThan(5 * ms) // the statistics keep the lifetime minimum
  })

  it('drains a standing queue of its own rather than take it for path, at little cost', () => {
    // A 256 kB queue on a 4 ms path: the sawtooth never empties it (130 to 210 ms), so no round trip comes
    // near the minimum for 10 s at a time. A minimum that simply expired would take ~200 ms for the path.
    const pair = new SimulatedPair(options, { ...link, latencyMs: 2, queueBytes: 256 * 1024 }, 1)
    const watcher = drainWatcher(pair)
    const rates = bulkBytesPerSecond(pair, 40, { observe: watcher.observe })
    const stats = pair.a.stats()
    expect(stats.rttDrains).toBeGreaterThanOrEqual(3)
    expect(watcher.drains).toHaveLength(stats.rttDrains)
    // Each ends once the queue has drained (its 256 kB take 210 ms at the link's rate) and a round trip
    // comes near the old minimum (240 to 290 ms here), not after the length it was given (370 to 420 ms).
    for (const [start, end] of watcher.drains) expect(end - start).toBeLessThan(330 * ms)
    expect(stats.pathMinRttUs).toBeGreaterThanOrEqual(4 * ms)
    expect(stats.pathMinRttUs).toBeLessThan(5 * ms)
    // (0.97 with a window that halved at losses: each drain now holds a window the model made small.)
    expect(mean(rates.slice(5))).toBeGreaterThan(0.96 * goodputOfLink)
  })

  it('does not drain a path without a standing queue', () => {
    // 40 ms RTT, 1 % random loss: some round trips come near the minimum every few seconds.
    const pair = new SimulatedPair(options, { ...link, latencyMs: 20, queueBytes: 256 * 1024, loss: 0.01 }, 1)
    bulkBytesPerSecond(pair, 30)
    expect(pair.a.stats().rttDrains).toBe(0)
  })

  it('forgets the minimum after persistent congestion: the path after an outage is measured afresh', () => {
    // Half a second of black hole, after which the route is 40 ms instead of 4: RFC 9002 §5.2's case.
    const pair = new SimulatedPair(options, { ...link, latencyMs: 2 }, 1)
    bulkBytesPerSecond(pair, 4, {
      atSecond: (s) => {
        if (s === 2) pair.link.loss = 1
        if (s === 3) Object.assign(pair.link, { loss: 0, latencyMs: 20 })
      },
    })
    expect(pair.a.stats().persistentCongestion).toBeGreaterThan(0)
    expect(pair.a.stats().pathMinRttUs).toBeGreaterThanOrEqual(40 * ms) // within a second, not after a 10 s drain
    expect(pair.a.stats().rttDrains).toBe(0)
  })

  it("leaves alone the window of a flow that does not fill it, however long its round trips stay above the minimum", () => {
    // a sends 1 kB every 10 ms while b sends a bulk transfer back through a 256 kB queue, and from second 3
    // a's way to b is 10 ms longer: a's minimum goes stale 10 s later. (It was b's standing queue that made
    // it stale, before b's congestion control kept none.) Holding a's window then (half a bandwidth-delay
    // product of its own small rate, two packets) delayed its messages by up to 190 ms, and drained nothing.
    const pair = new SimulatedPair(options, { ...link, latencyMs: 2, queueBytes: 256 * 1024 }, 1)
    const sentAt = new Map<number, number>()
    let worstUs = 0
    pair.onMessage.b = (_channel, data, at) => {
      worstUs = Math.max(worstUs, at - sentAt.get(readNumberedMessage(data))!)
    }
    let fromA = 0
    let fromB = 0
    for (let s = 0; s < 30; s++) {
      if (s === 3) pair.link.extraLatencyToBMs = 10
      while (fromB - pair.received.a.length < 3000) pair.send('b', 0, numberedMessage(fromB++, 1000))
      for (let tick = 0; tick < 100; tick++) {
        sentAt.set(fromA, pair.now)
        pair.send('a', 0, numberedMessage(fromA++, 1000))
        pair.run(pair.now + 10 * ms)
      }
    }
    expect(pair.a.stats().rttDrains).toBeGreaterThanOrEqual(1) // it did recheck
    expect(pair.received.b.length).toBeGreaterThan(fromA - 10)
    expect(worstUs).toBeLessThan(30 * ms) // 12 ms of path and a packet's time on the link, with room
  })
})

describe('congestion window of a connection that sends little', () => {
  it('does not grow while the window is not in use, so a burst later does not flood the path', () => {
    // 20 ms RTT, 1 MB/s with a 64 kB queue. Every acknowledgement grew the window before: after a minute
    // of 200 B every 33 ms it was 421 kB, and the 2 MB burst that followed lost 554 packets at the queue.
    const pair = new SimulatedPair({ channels: ['reliable'], sendQueueBytes: 32 << 20 }, { latencyMs: 10, bandwidthBytesPerSec: 1e6, queueBytes: 64_000 }, 3)
    let sent = 0
    while (pair.now < 60 * second) {
      pair.send('a', 0, numberedMessage(sent++, 200))
      pair.run(pair.now + 33 * ms)
    }
    pair.run(pair.now + 200 * ms)
    expect(pair.a.stats().congestionWindow).toBeLessThanOrEqual(2 * 12_000)
    const dropsBefore = pair.packetsQueueDropped
    for (let k = 0; k < 2000; k++) pair.send('a', 0, numberedMessage(sent++, 1000))
    pair.run(pair.now + 60 * second, () => pair.received.b.length === sent)
    expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: sent }, (_, i) => i))
    expect(pair.packetsQueueDropped - dropsBefore).toBeLessThan(200) // a fresh connection's burst: 86
  })
})

describe('clock synchronisation', () => {
  it('converges to within 1 ms of a skewed clock at 20 ms RTT and 5 ms jitter', () => {
    const skew = 80e-6 // B's clock runs 80 ppm fast
    const offsetUs = 3_700_000 // and started 3.7 s ahead
    const pair = new SimulatedPair({ channels: ['unreliable'] }, { latencyMs: 10, jitterMs: 5 }, 13, { b: { skew, offsetUs } })
    pair.run(30 * second)
    const aClock = pair.clock('a')
    const truth = pair.clock('b') - aClock // B's clock minus A's, now
    const estimate = pair.a.stats(aClock).clockOffsetUs
    expect(pair.a.stats().clockSamples).toBeGreaterThan(200) // pings at 10 Hz answered
    expect(Math.abs(estimate - truth)).toBeLessThan(1 * ms)
    // The other side's view is the mirror image.
    expect(Math.abs(pair.b.stats(pair.clock('b')).clockOffsetUs + truth)).toBeLessThan(1 * ms)
  })

  it('bounds its own error, however the path splits the delay between the two ways', () => {
    // Checked every 100 ms of 12 s (the line through 1-second periods starts at 4 s), on both sides.
    // The 1 µs added covers the whole microseconds the clocks are read in.
    const cases: { name: string; link: LinkConditions; skew: number; at?: (pair: SimulatedPair, ms: number) => void }[] = [
      { name: 'loopback', link: { latencyMs: 0.02 }, skew: 0 },
      { name: '20 ms RTT with jitter', link: { latencyMs: 10, jitterMs: 5 }, skew: 80e-6 },
      { name: 'lossy, reordering, clock 500 ppm slow', link: { latencyMs: 5, jitterMs: 3, loss: 0.2, reorder: 0.1, duplicate: 0.05 }, skew: -500e-6 },
      // 9 ms one way, 1 ms back: every exchange is 4 ms off, which no two-way measurement can see.
      { name: 'asymmetric', link: { latencyMs: 1, extraLatencyToBMs: 8 }, skew: 0 },
      // The same, then the other way round from 5 s on: the line through the exchanges tilts, and where
      // it is extrapolated its error passes their half RTTs.
      {
        name: 'asymmetry that flips',
        link: { latencyMs: 1, extraLatencyToBMs: 8 },
        skew: 0,
        at: (pair, ms) => {
          if (ms === 5000) Object.assign(pair.link, { extraLatencyToBMs: 0, extraLatencyToAMs: 8 })
        },
      },
    ]
    for (const { name, link, skew, at } of cases) {
      const pair = new SimulatedPair({ channels: ['reliable'] }, link, 7, { b: { skew, offsetUs: 2_500_000 } })
      expect(pair.a.stats(pair.clock('a')).clockErrorBoundUs, name).toBe(Infinity) // before any exchange
      let worstShare = 0 // the largest error seen, as a share of the bound at the time
      let worstOverHalfRtt = 0 // and as a share of the largest half RTT of the exchanges (5 ms where asymmetric)
      let checks = 0
      for (let ms = 100; ms <= 12_000; ms += 100) {
        at?.(pair, ms)
        pair.run(ms * 1000)
        const truth = pair.clock('b') - pair.clock('a')
        for (const [side, sign] of [['a', 1], ['b', -1]] as const) {
          const stats = pair.core(side).stats(pair.clock(side))
          if (stats.clockSamples === 0) continue
          const error = Math.abs(stats.clockOffsetUs - sign * truth)
          expect(error, `${name}, side ${side} at ${ms} ms`).toBeLessThanOrEqual(stats.clockErrorBoundUs + 1)
          worstShare = Math.max(worstShare, error / (stats.clockErrorBoundUs + 1))
          worstOverHalfRtt = Math.max(worstOverHalfRtt, error / 5000)
          checks++
        }
      }
      expect(checks, name).toBeGreaterThan(230)
      if (name === 'asymmetric') expect(worstShare, 'the bound is not loose: the error comes near it').toBeGreaterThan(0.75)
      if (name === 'asymmetry that flips') expect(worstOverHalfRtt, 'the error passes the half RTT: the bound must widen').toBeGreaterThan(1)
    }
  })

  it('is not thrown off by one second whose exchanges all waited in a queue one way', () => {
    // 1 ms round trips, but for one second in which the way to b waits 100 ms: that second's best exchange
    // is 50 ms off. Equally weighted, it tilted the line past the largest drift, and the clamped line put
    // the estimate 15 ms off for as long as that second stayed in the window (16 s).
    const pair = new SimulatedPair({ channels: ['reliable'] }, { latencyMs: 0.5 }, 3, { b: { skew: 20e-6, offsetUs: 2_500_000 } })
    pair.run(4.5 * second)
    pair.link.extraLatencyToBMs = 100 // the whole of second 5: every exchange that ends in it waited
    pair.run(6.5 * second)
    pair.link.extraLatencyToBMs = 0
    let worst = 0
    for (let ms = 7000; ms <= 15_000; ms += 100) {
      pair.run(ms * 1000)
      const truth = pair.clock('b') - pair.clock('a')
      worst = Math.max(worst, Math.abs(pair.a.stats(pair.clock('a')).clockOffsetUs - truth))
    }
    expect(worst).toBeLessThan(0.5 * ms) // 15 ms; now a few µs
  })

  it('keeps working on a clock past 2^32 seconds', () => {
    // Its periods are tagged in 32 bits: past 136 years (a time the sans-IO core accepts) the tags wrap,
    // and the fit once found no live period and read through a null pointer.
    // Starting there (the first exchanges in the period whose tag is 0), and crossing it.
    for (const start of [2 ** 32 * second + 200 * ms, 2 ** 32 * second - 3 * second]) {
      const pair = new SimulatedPair({ channels: ['unreliable'] }, { latencyMs: 10, jitterMs: 2 }, 13, { a: { skew: 0, offsetUs: start }, b: { skew: 40e-6, offsetUs: start + 1_500_000 } })
      pair.run(12 * second)
      const truth = pair.clock('b') - pair.clock('a')
      expect(pair.a.stats().clockSamples).toBeGreaterThan(80)
      expect(Math.abs(pair.a.stats(pair.clock('a')).clockOffsetUs - truth)).toBeLessThan(1 * ms)
    }
  })
})

describe('an idle connection', () => {
  it('sends one packet per ping interval each way, and both sides still measure the RTT and the clock', () => {
    // The leader (a, the client) pings and holds its pong to the follower's ping for that same packet;
    // the follower (b, the server) pongs and pings in one. Pings and pongs ask for no ACK. Before, each
    // side sent its ping and its pong apart and pings were acknowledged: 20 packets a second each way,
    // and 30 when pongs were acknowledged too.
    const pair = new SimulatedPair({ channels: ['reliable'] }, { latencyMs: 5, jitterMs: 1 }, 1)
    pair.run(second)
    const before = { a: pair.a.stats(), b: pair.b.stats() }
    pair.run(11 * second)
    for (const side of ['a', 'b'] as const) {
      const after = pair.core(side).stats()
      expect(after.packetsOut - before[side].packetsOut).toBeLessThanOrEqual(101)
      expect(after.ackElicitingOut - before[side].ackElicitingOut).toBe(0)
      expect(after.clockSamples - before[side].clockSamples).toBeGreaterThanOrEqual(99) // each ping answered
      // The RTT comes from the pongs, net of the time a pong was held.
      expect(after.rttSamples - before[side].rttSamples).toBeGreaterThanOrEqual(99)
      expect(after.minRttUs).toBeGreaterThanOrEqual(8 * ms)
      expect(after.maxRttUs).toBeLessThanOrEqual(12 * ms)
      expect(after.packetsLost).toBe(0)
    }
  })

  it("reports as the largest RTT the round trip net of the peer's ACK delay, as the smoothed RTT takes it", () => {
    // 20 ms each way; one message every 50 ms, each acknowledged alone after the 1 ms ACK delay. The
    // largest RTT read 41 ms: the ACK delay in it, though every other RTT figure takes it out.
    const pair = new SimulatedPair({ channels: ['reliable'] }, { latencyMs: 20 }, 1)
    for (let i = 0; i < 40; i++) {
      pair.send('a', 0, numberedMessage(i, 64))
      pair.run(pair.now + 50 * ms)
    }
    const stats = pair.a.stats()
    expect(stats.rttSamples).toBeGreaterThanOrEqual(40)
    expect(stats.minRttUs).toBeGreaterThanOrEqual(40 * ms)
    expect(stats.maxRttUs).toBeLessThan(40 * ms + 500)
  })

  it("reports the RTT's variance, not the square of RFC 9002's mean deviation", () => {
    // 20 ms each way, each datagram delayed a further uniform ±6 ms: the RTT's variance is 2 × 6²/3 = 24 ms².
    // The square of RFC 9002's rttvar (a mean deviation) read about 0.64 of it, and (RTT/2)², 400 ms², after
    // the first sample; on a path without jitter the variance is 0 (within a tick of rounding).
    const jittery = new SimulatedPair({ channels: ['reliable'] }, { latencyMs: 20, jitterMs: 6 }, 5)
    const steady = new SimulatedPair({ channels: ['reliable'] }, { latencyMs: 20 }, 5)
    steady.run(steady.now + 150 * ms, () => steady.a.stats().rttSamples > 0)
    expect(steady.a.stats().rttSamples).toBe(1)
    expect(steady.a.stats().rttVarianceUs2).toBe(0)
    jittery.run(2 * second)
    steady.run(2 * second)
    const readings: Record<'a' | 'b', number[]> = { a: [], b: [] }
    for (let t = 0; t < 600; t++) {
      jittery.run(jittery.now + 100 * ms)
      for (const side of ['a', 'b'] as const) readings[side].push(jittery.core(side).stats().rttVarianceUs2 / 1e6)
    }
    steady.run(steady.now + 10 * second)
    // From the first few samples on, not only once the average has filled: after 5 distances, over 40 seeds.
    let early = 0
    for (let seed = 1; seed <= 40; seed++) {
      const pair = new SimulatedPair({ channels: ['reliable'] }, { latencyMs: 20, jitterMs: 6 }, seed)
      pair.run(2 * second, () => pair.a.stats().rttSamples >= 6)
      early += pair.a.stats().rttVarianceUs2 / 1e6 / 40
    }
    expect(early).toBeGreaterThan(24 * 0.8)
    expect(early).toBeLessThan(24 * 1.2)
    for (const side of ['a', 'b'] as const) {
      const mean = readings[side].reduce((sum, value) => sum + value, 0) / readings[side].length
      expect(mean, side).toBeGreaterThan(24 * 0.8)
      expect(mean, side).toBeLessThan(24 * 1.2)
      expect(steady.core(side).stats().rttVarianceUs2 / 1e6, side).toBeLessThan(0.01)
    }
  })

  it('reports as jitter the change between round trips of one kind, not the offset between ACKs and pongs', () => {
    // A peer whose ACKs come 2 ms later than its pongs say a round trip takes (it held them past the 1 ms
    // of ACK delay this side subtracts at most, or sends them at the end of a long turn): taken in turn, the
    // two kinds read as 2 ms of jitter on a path with none. Driven sans-IO with hand-built packets; this side
    // pings once a cycle (50 ms), ping `cycle` as the cycle starts, and the peer answers each.
    const options = { channels: ['reliable' as const], pingIntervalUs: 50 * ms }
    const run = (ackRttUs: (cycle: number) => number, pongRttUs: (cycle: number) => number): number => {
      const core = deliveryCore(options)
      let number = 0
      const fromPeer = (frames: number[]): Uint8Array => Uint8Array.from([0xd1, ...varint(number++), ...peerSettingsFrame(options), ...frames])
      const sent: number[] = []
      let now = second
      for (let cycle = 0; cycle < 200; cycle++) {
        const start = now
        expect(core.send(0, numberedMessage(cycle, 64), start)).toBe('queued')
        core.flush(start)
        for (const packet of core.take().packets) sent.push(packetNumber(packet))
        const newest = Math.max(...sent)
        // The pong to this cycle's ping, answered at once.
        now = start + pongRttUs(cycle)
        core.receive(fromPeer([0x03, ...varint(cycle), ...varint(start), ...varint(now), ...varint(0)]), now)
        // Every packet so far, in one range (the pings' packets too), with an ACK delay of 0.
        now = start + ackRttUs(cycle)
        core.receive(fromPeer([0x01, ...varint(newest), ...varint(0), ...varint(newest - Math.min(...sent)), ...varint(0)]), now)
        now = start + 30 * ms
        core.update(now)
        now = start + 50 * ms
        core.update(now)
        core.take()
      }
      const stats = core.stats(now)
      expect(stats.rttSamples).toBeGreaterThanOrEqual(400) // both kinds, every cycle
      return stats.jitterUs
    }
    // Each kind steady: no jitter (it read 2 ms).
    expect(run(() => 22 * ms, () => 20 * ms)).toBeLessThan(50)
    // The path's round trip changing by 2 ms from one exchange to the next, for both kinds: that is jitter.
    const changing = run((cycle) => (cycle % 2 === 0 ? 21 : 23) * ms, (cycle) => (cycle % 2 === 0 ? 19 : 21) * ms)
    expect(changing).toBeGreaterThan(1900)
    expect(changing).toBeLessThan(2100)
  })

  it("the follower's minimum RTT comes from the first exchange, though the leader took 3 ms to answer it", () => {
    // The fallback engine answers a ping at the end of its JavaScript turn, a millisecond or more after it
    // came: at the ACK delay (1 ms) as the limit for a prompt pong, the server's minimum stayed 0 for the 4 s
    // the drift takes to measure, beside a smoothed RTT. Driven by hand: the leader (a) reads each packet
    // when it arrives and acts on it 3 ms later; 20 ms each way.
    const a = deliveryCore({ channels: ['reliable'] })
    const b = deliveryCore({ channels: ['reliable'], followsPings: true })
    const oneWayUs = 20 * ms
    const turnUs = 3 * ms
    let arrivals: { at: number; to: NativeDeliveryCore; data: Uint8Array }[] = []
    let aActsAt = Number.POSITIVE_INFINITY
    const send = (from: NativeDeliveryCore, to: NativeDeliveryCore, at: number) => {
      for (const data of from.take().packets) arrivals.push({ at: at + oneWayUs, to, data })
    }
    let now = 0
    a.update(now)
    b.update(now)
    send(a, b, now)
    send(b, a, now)
    while (now < 400 * ms && b.stats().rttSamples === 0) {
      const aNext = aActsAt !== Number.POSITIVE_INFINITY ? aActsAt : a.nextDeadlineUs(now)
      now = Math.max(now, Math.min(aNext, b.nextDeadlineUs(now), ...arrivals.map((arrival) => arrival.at)))
      for (const arrival of arrivals.filter((each) => each.at <= now)) {
        arrival.to.receive(arrival.data, now)
        if (arrival.to === a && aActsAt === Number.POSITIVE_INFINITY) aActsAt = now + turnUs
      }
      arrivals = arrivals.filter((each) => each.at > now)
      if (aActsAt !== Number.POSITIVE_INFINITY ? now >= aActsAt : aNext <= now) {
        aActsAt = Number.POSITIVE_INFINITY
        a.update(now)
        send(a, b, now)
      }
      b.update(now)
      send(b, a, now)
    }
    const stats = b.stats()
    expect(stats.rttSamples).toBe(1)
    expect(stats.minRttUs).toBeGreaterThanOrEqual(2 * oneWayUs)
    expect(stats.minRttUs).toBeLessThanOrEqual(stats.smoothedRttUs + 1)
  })

  it('the server pings on its own when the client pings less often, and those pings are answered at once', () => {
    // The client (a) at one ping a second, the server (b) at 100 ms: b pings every two of its intervals
    // (200 ms) on its own. Its pings come without a pong, so a answers each at once instead of holding
    // the pong for its own next ping, a second away (10 answers in 10 s when it held them).
    const pair = new SimulatedPair({ channels: ['reliable'], pingIntervalUs: second }, { latencyMs: 5 }, 3, {}, { channels: ['reliable'], pingIntervalUs: 100 * ms })
    pair.run(second)
    const before = { a: pair.a.stats(), b: pair.b.stats() }
    pair.run(11 * second)
    const after = { a: pair.a.stats(), b: pair.b.stats() }
    expect(after.b.clockSamples - before.b.clockSamples).toBeGreaterThanOrEqual(49)
    expect(after.b.maxRttUs).toBeLessThanOrEqual(10 * ms)
    expect(after.b.packetsOut - before.b.packetsOut).toBeLessThanOrEqual(70) // its 50 pings, pongs to a's 10
    expect(after.a.clockSamples - before.a.clockSamples).toBeGreaterThanOrEqual(10)
  })

  it('measures the RTT from held pongs right when the two clocks run at different rates', () => {
    // 100 µs RTT; the client's clock (a) runs 1,000 ppm fast or slow, so the 100 ms it holds each pong
    // reads 100 µs long or short on it. Taken as read, the server's minimum RTT fell to 1 µs (and never
    // rose again): the minimum now takes held pongs only once the drift is measured, corrected, and
    // starts from a pong that was not held.
    for (const skew of [1000e-6, -1000e-6]) {
      const pair = new SimulatedPair({ channels: ['reliable'] }, { latencyMs: 0.05 }, 5, { a: { skew, offsetUs: 0 } })
      // From the start: the client answers the server's first ping at once, not held.
      pair.run(0.3 * second)
      expect(pair.b.stats().minRttUs).toBeGreaterThanOrEqual(100)
      expect(pair.b.stats().minRttUs).toBeLessThanOrEqual(101)
      pair.run(10 * second)
      const b = pair.b.stats()
      expect(b.minRttUs).toBeGreaterThanOrEqual(100)
      expect(b.minRttUs).toBeLessThanOrEqual(120)
      expect(b.smoothedRttUs).toBeGreaterThanOrEqual(90)
      expect(b.smoothedRttUs).toBeLessThanOrEqual(110)
    }
  })

  it('finds a link back from an outage within a ping interval while data awaits acknowledgement', () => {
    // Pings carry a PROBE frame while reliable data is unacknowledged. Without it the first ACK after a
    // 2 s outage waited for the backed-off probe timeout (1.1 s later here).
    const pair = new SimulatedPair({ channels: ['reliable'] }, { latencyMs: 5 }, 2)
    pair.run(second)
    pair.link.loss = 1
    pair.send('a', 0, numberedMessage(1, 100))
    pair.run(pair.now + 2 * second)
    expect(pair.received.b).toHaveLength(0)
    pair.link.loss = 0
    const back = pair.now
    pair.run(pair.now + 5 * second, () => pair.received.b.length === 1)
    expect(pair.received.b).toHaveLength(1)
    expect(pair.now - back).toBeLessThanOrEqual(100 * ms + 20 * ms) // the next ping, its ACK, the resend
  })
})

describe('a long outage on a short path', () => {
  it('backs the probe timeout off and keeps every timer in the future', () => {
    // Found by fuzz/delivery_fuzz.cc: with reliable data in flight the probe timeout was counted from the
    // last packet that carried some, and here the probes filled up with queued unreliable messages and
    // carried none. At 100 µs RTT (a ~2 ms probe timeout, backed off at most × 1,024) the timer fell
    // behind the clock after about 2 s of outage: 197 probe timeouts in 6 s. Probes now carry the data
    // first ('probes' below), and the timeout restarts at each firing ('a spurious probe' below).
    const pair = new SimulatedPair({ channels: ['reliable', 'unreliable'] }, { latencyMs: 0.05 }, 3)
    pair.run(second)
    pair.link.loss = 1
    pair.send('a', 0, numberedMessage(1, 100))
    for (let i = 0; i < 400; i++) pair.send('a', 1, numberedMessage(i, 1100))
    const before = pair.a.stats()
    let turns = 0
    const end = pair.now + 6 * second
    pair.run(end, () => ++turns > 50_000)
    expect(pair.now).toBe(end)
    const probeTimeouts = pair.a.stats().probeTimeouts - before.probeTimeouts
    // ~2 ms doubling up to its cap of ~2 s: 11 to get there, then one every ~2 s.
    expect(probeTimeouts).toBeGreaterThanOrEqual(10)
    expect(probeTimeouts).toBeLessThanOrEqual(16)
    // Pings (10 Hz) and two probes per probe timeout.
    expect(pair.a.stats().packetsOut - before.packetsOut).toBeLessThanOrEqual(6 * 10 + 2 * 16 + 4)
    pair.link.loss = 0
    pair.run(pair.now + second, () => pair.received.b.some((m) => m.channel === 0))
    expect(pair.received.b.filter((m) => m.channel === 0).map((m) => readNumberedMessage(m.data))).toEqual([1])
  })
})

describe('probes', () => {
  it('a probe carries the reliable data it probes before queued unreliable messages', () => {
    const core = deliveryCore({ channels: ['reliable', 'unreliable'] })
    core.send(0, numberedMessage(1, 100), 0)
    core.flush(0)
    for (let i = 0; i < 400; i++) core.send(1, numberedMessage(i, 1100), 0)
    core.flush(0) // as many as the window takes; the rest waits
    core.take()
    core.update(2_000_000) // nothing acknowledged: past the probe timeout
    expect(core.stats().probeTimeouts).toBe(1)
    // MESSAGE, channel 0, sequence 0, 100 bytes, message 1: with unreliable messages first, a probe had
    // no room left for it.
    const frame = [0x10, 0, 0, 100, 1, 0, 0, 0]
    const carries = (p: Uint8Array) => p.some((_, i) => frame.every((b, k) => p[i + k] === b))
    const sent = core.take().packets
    expect(carries(sent[0]!)).toBe(true)
  })
})

describe('a spurious probe, then an outage', () => {
  it('the probe timeout backs off from its last firing when the data it probed was acknowledged meanwhile', () => {
    // Found by fuzz/delivery_fuzz.cc. The probe resends the message, then the ACK of the original arrives:
    // the message is done, but the probe's packet is still in flight and no loss rule can settle it (no
    // later packet is acknowledged), so only probe timeouts remain, and they have nothing to resend. Counted
    // from the last packet with data, the timeout (~2 ms at this RTT, backed off at most × 1,024) fell
    // behind the clock two seconds into the outage and stayed due: a probe timeout at every engine turn.
    const a = deliveryCore({ channels: ['reliable'] })
    const b = deliveryCore({ channels: ['reliable'], followsPings: true })
    let delivered = 0 // by b
    const carry = (from: typeof a, to: typeof a, at: number) => {
      const { packets, messages } = from.take()
      if (from === b) delivered += messages.length
      for (const packet of packets) to.receive(packet, at)
    }
    let now = 0
    for (let i = 0; i < 20; i++) { // RTT ~100 µs
      a.send(0, numberedMessage(i, 100), now)
      a.flush(now)
      carry(a, b, (now += 50))
      b.update((now += 1000))
      carry(b, a, (now += 50))
      a.update(now)
    }
    a.send(0, numberedMessage(20, 100), now)
    a.flush(now)
    const original = a.take().packets
    now = a.nextDeadlineUs(now) // the probe timeout: it resends message 20
    a.update(now)
    a.take() // lost
    for (const packet of original) b.receive(packet, now)
    b.update((now += 1000))
    carry(b, a, (now += 50)) // the original's ACK: message 20 is done
    expect(delivered).toBe(21)
    const before = a.stats()
    const end = now + 10 * second
    let turns = 0
    while (now < end && ++turns < 20_000) { // the link is down: nothing arrives
      now = Math.min(end, Math.max(now, Math.min(a.nextDeadlineUs(now), b.nextDeadlineUs(now))))
      a.update(now)
      b.update(now)
      a.take()
      b.take()
    }
    expect(now).toBe(end)
    expect(a.stats().probeTimeouts - before.probeTimeouts).toBeLessThanOrEqual(20)
  })
})

describe('memory', () => {
  it('an idle connection holds no queue slots, four packet records and no loss records, and is back there after a transfer', () => {
    const link = { latencyMs: 20, bandwidthBytesPerSec: 12.5e6, queueBytes: 256 * 1024, loss: 0.01 }
    const pair = new SimulatedPair({ channels: ['reliable'], sendQueueBytes: 16 << 20 }, link, 4)
    pair.run(second)
    for (const side of ['a', 'b'] as const) {
      expect(pair.core(side).stats().queueSlots).toBe(0)
      expect(pair.core(side).stats().sentRecords).toBe(4)
      expect(pair.core(side).stats().lostRecords).toBe(0) // 128 reserved per connection (2 KiB) before
    }
    for (let i = 0; i < 3000; i++) pair.send('a', 0, numberedMessage(i, 1000))
    // In flight the send queue and the records grow; once all is acknowledged they are given back (the
    // records never were before).
    let most = { queueSlots: 0, sentRecords: 0, lostRecords: 0 }
    const end = pair.now + 30 * second
    while (pair.now < end && !(pair.received.b.length === 3000 && pair.a.stats().queuedMessages === 0)) {
      pair.run(pair.now + 10 * ms)
      const { queueSlots, sentRecords, lostRecords } = pair.a.stats()
      most = { queueSlots: Math.max(most.queueSlots, queueSlots), sentRecords: Math.max(most.sentRecords, sentRecords), lostRecords: Math.max(most.lostRecords, lostRecords) }
    }
    expect(most.queueSlots).toBeGreaterThan(1024)
    expect(most.sentRecords).toBeGreaterThan(256)
    expect(most.lostRecords).toBeGreaterThan(0) // 1 % loss
    expect(pair.received.b.map((m) => readNumberedMessage(m.data))).toEqual(Array.from({ length: 3000 }, (_, i) => i))
    pair.run(pair.now + second) // the next pings find nothing outstanding
    expect(pair.a.stats().queueSlots).toBe(0)
    expect(pair.a.stats().sentRecords).toBe(4)
    expect(pair.a.stats().lostRecords).toBe(0) // the losses, real ones among them, forgotten
    // The receiver keeps its reorder ring for the losses when it is small (up to 1,024 slots).
    expect(pair.b.stats().queueSlots).toBeLessThanOrEqual(1024)
  })

  it('an idle connection keeps at most 256 KiB of buffers for the messages it will send', () => {
    // It kept up to 256 of 64 KiB each (16 MiB) for good.
    const pair = new SimulatedPair({ channels: ['reliable'], sendQueueBytes: 32 << 20 }, { latencyMs: 5 }, 6)
    for (let i = 0; i < 256; i++) pair.send('a', 0, numberedMessage(i, 60_000))
    pair.run(pair.now + 30 * second, () => pair.received.b.length === 256 && pair.a.stats().queuedMessages === 0)
    expect(pair.received.b).toHaveLength(256)
    expect(pair.a.stats().spareBytes).toBeGreaterThan(0) // some are kept: no allocation per message
    expect(pair.a.stats().spareBytes).toBeLessThanOrEqual(256 * 1024)
  })

  it('an idle connection gives back the lists of fragments its packet records kept (1.5 MB before)', () => {
    // Found in review: a record's list of the reliable fragments its packet carried kept its room when the
    // record was reused, and a ring of up to 256 records is kept: room for ~200 small messages in each.
    const pair = new SimulatedPair({ channels: ['reliable'], sendQueueBytes: 64 << 20 }, { latencyMs: 10 }, 5)
    pair.run(second)
    for (let i = 0; i < 250; i++) pair.send('a', 0, new Uint8Array(1000)) // a ring of about 128 records
    pair.run(pair.now + second)
    let most = 0
    for (let t = 0; t < 1000; t++) {
      // Packets full of small messages, queued together and sent at the next timer (not flushed one by one).
      for (let i = 0; i < 150; i++) pair.a.send(0, new Uint8Array(1), pair.clock('a'))
      pair.run(pair.now + 2 * ms)
      most = Math.max(most, pair.a.stats().sentRecordsHeld)
    }
    pair.run(pair.now + 5 * second) // idle
    expect(pair.received.b).toHaveLength(250 + 150_000)
    expect(most).toBeGreaterThan(256 * 1024) // what the lists held in flight
    const { sentRecordsHeld, sentRecords, queuedMessages } = pair.a.stats()
    expect(queuedMessages).toBe(0)
    expect(sentRecords).toBeLessThanOrEqual(256)
    expect(sentRecordsHeld).toBeLessThan(64 * 1024) // was 795,648 bytes, in 128 records
  })
})

describe('congestion window reductions', () => {
  /** A core that has sent `count` 1,000-byte messages in one flush at `now`: their packet numbers. */
  const flight = (core: ReturnType<typeof deliveryCore>, count: number, now: number): number[] => {
    for (let i = 0; i < count; i++) core.send(0, new Uint8Array(1000), now)
    core.flush(now)
    return core.take().packets.filter((p) => dataFrames(p).length > 0).map(packetNumber)
  }

  /**
   * Makes `core` see a standing queue, so that a loss is congestion: the path's minimum is 10 ms, and the
   * round trips since took 40. Returns the time then and the next packet number for its peer's ACKs.
   */
  const standingQueue = (core: ReturnType<typeof deliveryCore>): { now: number; ackNumber: number } => {
    let now = second
    let ackNumber = 100
    const exchange = (rttUs: number): void => {
      const [packet] = flight(core, 1, now)
      now += rttUs
      core.receive(ackPacket(ackNumber++, [packet!]), now)
    }
    exchange(10 * ms)
    for (let i = 0; i < 64; i++) exchange(40 * ms)
    return { now, ackNumber }
  }

  it('keeps the cut of a real loss when another packet of the same flush proves only reordered', () => {
    // Found in review: the undo was keyed by the send time of the loss that made the cut, which every
    // packet of one flush shares: the late acknowledgement of any of them undid a real loss's cut.
    const core = deliveryCore({ channels: ['reliable'] })
    let { now, ackNumber } = standingQueue(core)
    const sent = flight(core, 40, now)
    const [lost, late] = [sent[2]!, sent[4]!]
    now += 50 * ms
    core.receive(ackPacket(ackNumber++, sent.slice(0, 10).filter((n) => n !== lost && n !== late)), now)
    const cut = core.stats()
    expect(cut.packetsLost).toBe(2)
    expect(cut.congestionWindow).toBeLessThan(10 * 1200) // the initial window, cut
    now += 5 * ms
    core.receive(ackPacket(ackNumber++, sent.slice(0, 10).filter((n) => n !== lost)), now) // `late` arrives after all
    expect(core.stats()).toMatchObject({ spuriousLosses: 1, packetsLost: 1, congestionWindow: cut.congestionWindow })
    // Once the other proves reordered too, every loss of the event was spurious: the cut is undone.
    now += 5 * ms
    core.receive(ackPacket(ackNumber++, sent.slice(0, 10)), now)
    expect(core.stats().spuriousLosses).toBe(2)
    expect(core.stats().congestionWindow).toBeGreaterThan(cut.congestionWindow)
  })

  it('cuts once for the losses of one flight, even when a later packet was acknowledged first', () => {
    // Found in review: an acknowledgement of a packet sent after the cut ended the recovery before the
    // losses of the same ACK were looked at, and a loss from before the cut cut the window again.
    const core = deliveryCore({ channels: ['reliable'] })
    let { now, ackNumber } = standingQueue(core)
    const first = flight(core, 60, now)
    const acked = new Set<number>()
    const ack = (numbers: number[]): void => {
      for (const n of numbers) acked.add(n)
      core.receive(ackPacket(ackNumber++, acked), now)
    }
    now += 50 * ms
    ack(first.slice(0, 7).filter((n) => n !== first[3]))
    expect(core.stats()).toMatchObject({ packetsLost: 1, congestionCuts: 1 })
    now += ms
    core.flush(now)
    const second_ = core.take().packets.filter((p) => dataFrames(p).length > 0).map(packetNumber)
    expect(second_.length).toBeGreaterThan(0)
    now += 20 * ms
    ack([...first.slice(7).filter((n) => n !== first[9]), ...second_]) // first[9], sent before the cut, lost
    expect(core.stats()).toMatchObject({ packetsLost: 2, congestionCuts: 1 })
  })

})

describe('hostile input', () => {
  it('drops malformed packets and counts them, never delivering anything', () => {
    const core = coreWith({ channels: CHANNELS })
    const random = seededRandom(5)
    for (let i = 0; i < 3000; i++) {
      const bytes = new Uint8Array(1 + Math.floor(random() * 200)).map(() => Math.floor(random() * 256))
      if (i % 2 === 0) bytes[0] = 0xd1 // past the marker, into the frames
      core.receive(bytes, i)
    }
    expect(core.take().messages).toEqual([])
    expect(core.stats().malformed).toBeGreaterThan(2500)
  })

  // Packets from the peer of the core made last: its settings first, as a peer sends them until it has a
  // pong (without them the core takes it for a peer without channels, and delivers nothing).
  let peerSettings: number[] = []
  const coreWith = (options: DeliveryOptions): NativeDeliveryCore => {
    peerSettings = peerSettingsFrame(options)
    return deliveryCore(options)
  }
  const packet = (number: number[], ...frames: number[][]) => Uint8Array.from([0xd1, ...number, ...peerSettings, ...frames.flat()])

  it('takes varints up to 2^53 − 1 and finds a packet with a larger one malformed, whatever field it is in', () => {
    // JavaScript's exact integers (native/protocol/delivery/wire_format.h): the limit of the format. No honest
    // value comes near it.
    const core = coreWith({ channels: ['unreliable'] })
    const message = (pn: number[] | number, sequence: number[]) => packet(typeof pn === 'number' ? varint(pn) : pn, [0x10, 0], sequence, varint(1), [9])
    core.receive(message(varint(2n ** 53n - 1n), varint(2n ** 53n - 1n)), 0)
    expect(core.take().messages).toHaveLength(1)
    const tooLarge = [varint(2n ** 53n), varint(2n ** 64n - 1n), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]] // the last: 9 bytes for 2^56
    for (const big of tooLarge) {
      core.receive(message(big, varint(0)), 0) // as the packet number
      core.receive(message(1, big), 0) // as a message's sequence
    }
    expect(core.stats().malformed).toBe(2 * tooLarge.length)
    expect(core.take().messages).toEqual([])
    // A value written in more bytes than it needs is still read, up to eight of them.
    core.receive(message([0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], varint(1)), 0) // packet number 5
    expect(core.take().messages).toHaveLength(1)
  })

  it('refuses out-of-range fragment indexes and unknown channels, and drops messages over the maximum', () => {
    const core = coreWith({ channels: ['reliable'], maxMessageBytes: 4000 })
    const fragment = (pn: number, channel: number, length: number, index: number, bytes: number) =>
      packet(varint(pn), [0x11, channel], varint(0), varint(length), varint(index), new Array(bytes).fill(1))
    core.receive(fragment(0, 0, 3000, 3, 800), 0) // 3,000 bytes have fragments 0..2
    core.receive(fragment(1, 0, 5000, 0, 1100), 0) // over the maximum: dropped, counted, not malformed
    core.receive(fragment(2, 0, 3000, 0, 1000), 0) // shorter than the fragment must be
    expect(core.stats().malformed).toBe(2)
    expect(core.stats().oversized).toBe(1)

    core.receive(packet(varint(3), [0x10, 7], varint(0), varint(2), [1, 2]), 0) // channel 7 does not exist
    expect(core.stats().unknownChannel).toBe(1)
    expect(core.take().messages).toEqual([])
    expect(core.stats().reassemblyUsed).toBe(0)
  })

  it('drops and counts messages over its maximum, and a reliable channel goes on past them', () => {
    // A peer configured with a larger maxMessageBytes. Whole messages over the maximum were delivered
    // (found by fuzz/delivery_fuzz.cc); refusing their packets instead stalled the channel for good (the
    // sender resends them forever).
    const core = coreWith({ channels: ['reliable', 'unreliable'], maxMessageBytes: 100 })
    const whole = (pn: number, channel: number, sequence: number, length: number) =>
      packet(varint(pn), [0x10, channel], varint(sequence), varint(length), new Array(length).fill(sequence))
    const fragment = (pn: number, sequence: number, index: number) =>
      packet(varint(pn), [0x11, 0], varint(sequence), varint(3000), varint(index), new Array(Math.min(1100, 3000 - index * 1100)).fill(sequence))
    core.receive(whole(0, 1, 0, 101), 0) // unreliable, over the maximum
    core.receive(whole(1, 0, 0, 50), 0)
    core.receive(fragment(2, 2, 1), 0) // reliable 2, fragmented, over the maximum: ahead of 1
    core.receive(whole(3, 0, 3, 60), 0)
    core.receive(fragment(4, 2, 0), 0)
    core.receive(whole(5, 0, 1, 300), 0) // reliable 1, whole, over the maximum
    core.receive(fragment(6, 2, 2), 0) // the rest of 2, after the channel passed it
    core.receive(whole(7, 0, 4, 100), 0)
    expect(core.take().messages.map((m) => [m.channel, m.data.byteLength])).toEqual([[0, 50], [0, 60], [0, 100]])
    expect(core.stats().oversized).toBe(3)
    expect(core.stats().malformed).toBe(0)
    expect(core.stats().reassemblyUsed).toBe(0)
    // Every packet is acknowledged (the sender stops sending them): an ACK of 0..7 in one range.
    core.update(1_000_000)
    const [first] = core.take().packets
    expect([...first!.subarray(0, 4)]).toEqual([0xd1, 0, 0x01, 7]) // marker, packet 0, ACK, largest 7
    let at = 4
    while (first![at]! & 0x80) at++ // the ACK delay
    expect([...first!.subarray(at + 1, at + 3)]).toEqual([7, 0]) // 7 below the largest, no other range
  })

  it('a peer sending endless fragments of endless messages cannot make it hold more than its bound', () => {
    const limit = 256 * 1024
    const maxMessage = 200_000
    const core = coreWith({ channels: ['reliable', 'unreliable'], maxMessageBytes: maxMessage, reassemblyBytes: limit })
    for (let i = 0; i < 5000; i++) {
      // First fragments of ever new messages, never completed, on both channel kinds (the reliable
      // channel's next message, sequence 0, among them: it is taken beyond the bound, once).
      const channel = i % 2
      core.receive(packet(varint(i), [0x11, channel], varint(i), varint(maxMessage), varint(0), new Array(1100).fill(i & 0xff)), i)
      expect(core.stats().reassemblyUsed).toBeLessThanOrEqual(limit + maxMessage)
    }
    expect(core.stats().overBudget).toBeGreaterThan(0)
    expect(core.take().messages).toEqual([])
  })

  it("a peer that holds back a channel's next message cannot grow its queue of later ones past the bound", () => {
    // One empty message far ahead on each channel, at the edge of a large window: each made a channel's
    // out-of-order queue that far long (80 bytes a slot, none of it counted), 15 MB for one 20-byte packet
    // with three channels at a window of 65,536.
    const limit = 64 * 1024
    const core = coreWith({ channels: ['reliable', 'reliable', 'reliable'], reliableWindow: 65_536, reassemblyBytes: limit })
    core.receive(packet(varint(0), ...[0, 1, 2].map((channel) => [0x10, channel, ...varint(65_535), ...varint(0)])), 0)
    expect(core.stats().queueSlots * core.stats().receiveSlotBytes).toBeLessThanOrEqual(limit)
    expect(core.stats().overBudget).toBe(3)
    // Refused, not acknowledged; the channels go on: their next messages are always taken.
    core.receive(packet(varint(1), ...[0, 1, 2].map((channel) => [0x10, channel, ...varint(0), ...varint(1), channel])), 10)
    expect(core.take().messages.map((m) => [m.channel, [...m.data]])).toEqual([[0, [0]], [1, [1]], [2, [2]]])
    // Within the bound, messages ahead are held as before: a few hundred slots' worth.
    core.receive(packet(varint(2), [0x10, 0, ...varint(300), ...varint(1), 7]), 20)
    expect(core.stats().overBudget).toBe(3)
  })

  it('holds its queues of messages ahead and the messages in them within one bound; each next message is taken as data pays for it', () => {
    // The queues' slots were checked against the bound only as they grew, and messages ahead against the
    // bound only with their own bytes: slots up to the bound, then messages up to it as well.
    const limit = 64 * 1024
    const channels = ['reliable', 'reliable', 'reliable', 'reliable'] as const
    const core = coreWith({ channels: [...channels], maxMessageBytes: limit, reassemblyBytes: limit })
    let pn = 0
    // Empty messages far ahead grow each channel's queue as far as the bound lets them.
    for (let channel = 0; channel < 4; channel++) {
      for (const sequence of [60, 120, 250]) core.receive(packet(varint(pn++), [0x10, channel, ...varint(sequence), ...varint(0)]), pn)
    }
    // Then the first fragment of a 20 kB message ahead on each channel, and of the one each delivers next.
    for (let channel = 0; channel < 4; channel++) {
      core.receive(fragmentOf(pn++, channel, 2, 20_000, 0, 1100), pn)
      core.receive(fragmentOf(pn++, channel, 0, 60_000, 0, 1100), pn)
    }
    const { queueSlots, receiveSlotBytes, reassemblyUsed, overBudget } = core.stats()
    // The bound, the next message of each channel past it, and the four slots each queue may always have.
    expect(receiveSlotBytes).toBeGreaterThan(0)
    expect(queueSlots * receiveSlotBytes + reassemblyUsed).toBeLessThanOrEqual(limit + 4 * 60_000 + 4 * 4 * receiveSlotBytes)
    // Past the bound the next messages are taken as the peer's data pays for them (twice its bytes, from a
    // bound's worth at the start): one now, the others as the sender sends their fragments again.
    expect(reassemblyUsed).toBe(60_000)
    expect(overBudget).toBeGreaterThan(0)
    // Each channel's fragment goes again until it is taken (then acknowledged, a sender sends it no more; its
    // copies would earn no credit).
    let resent = 0
    const waiting = new Set([1, 2, 3])
    while (waiting.size > 0 && resent < 400) {
      for (const channel of waiting) {
        const before = core.stats().reassemblyUsed
        core.receive(fragmentOf(pn++, channel, 0, 60_000, 0, 1100), pn)
        resent++
        if (core.stats().reassemblyUsed > before) waiting.delete(channel)
      }
    }
    expect(core.stats().reassemblyUsed).toBe(4 * 60_000) // each channel's next message was taken in the end
    // 180,000 bytes of buffers past the first credit, at twice the 1,100 of each resent fragment: about 82.
    expect(resent).toBeLessThanOrEqual(90)
  })

  it('a packet refused for memory delivers its unreliable message once, even when it comes twice', () => {
    // Found by fuzz/delivery_fuzz.cc: the refused packet is not acknowledged (its reliable fragment must
    // come again), so it was not recorded as seen either, and a network duplicate delivered the
    // unreliable message it also carried a second time.
    const core = coreWith({ channels: ['reliable', 'unreliable'], maxMessageBytes: 20_000, reassemblyBytes: 4096 })
    const refusedFragment = [0x11, 0, ...varint(1), ...varint(20_000), ...varint(0), ...new Array(1100).fill(7)]
    const unreliable = [0x10, 1, ...varint(0), ...varint(2), 0xab, 0xcd]
    const both = packet(varint(0), refusedFragment, unreliable)
    core.receive(both, 0)
    core.receive(both, 10)
    expect(core.stats().overBudget).toBe(1)
    expect(core.stats().duplicatePackets).toBe(1)
    expect(core.take().messages.map((m) => [m.channel, [...m.data]])).toEqual([[1, [0xab, 0xcd]]])
    // Not acknowledged: once the message before it arrives, the fragment is taken when it comes again.
    core.receive(packet(varint(1), [0x10, 0, ...varint(0), ...varint(1), 9]), 20)
    core.receive(packet(varint(2), refusedFragment), 30)
    expect(core.stats().reassemblyUsed).toBe(20_000)
  })

  // Whole and fragmented message frames, for a message of `length` bytes with the given sequence.
  const whole = (pn: number, channel: number, sequence: number, length: number, fill = 1) =>
    packet(varint(pn), [0x10, channel], varint(sequence), varint(length), new Array(length).fill(fill))
  const fragmentOf = (pn: number, channel: number, sequence: number, length: number, index: number, bytes: number) =>
    packet(varint(pn), [0x11, channel], varint(sequence), varint(length), varint(index), new Array(bytes).fill(1))

  it('drops an empty message that takes the sequence of one passed over for its size (it crashed the process)', () => {
    const core = coreWith({ channels: ['reliable'], maxMessageBytes: 100 })
    // Sequence 1, not the next to deliver, over the maximum: passed over, nothing of it kept.
    core.receive(fragmentOf(0, 0, 1, 3000, 0, 1100), 0)
    expect(core.stats().oversized).toBe(1)
    // The same sequence again, whole and empty: its length matched the passed-over slot's empty buffer, and
    // the slot's fragment flags (never made) were written at [0], a null write that took the process down.
    core.receive(whole(1, 0, 1, 0), 0)
    expect(core.stats().duplicateMessages).toBe(1)
    core.receive(whole(2, 0, 0, 5), 0)
    expect(core.take().messages.map((m) => m.data.byteLength)).toEqual([5])
  })

  it('refuses a whole frame longer than a fragment, so that no fragment indexes past its message', () => {
    // A sender sends whole only what fits one fragment (1,100 bytes). A whole frame of 1,150 bytes made a
    // message of one fragment; fragment 1 of the same 1,150-byte message then read and wrote past it.
    const core = coreWith({ channels: ['reliable'] })
    core.receive(whole(0, 0, 1, 1150), 0)
    expect(core.stats().malformed).toBe(1)
    core.receive(fragmentOf(1, 0, 1, 1150, 1, 50), 0)
    core.receive(fragmentOf(2, 0, 1, 1150, 0, 1100), 0)
    core.receive(whole(3, 0, 0, 3), 0)
    expect(core.take().messages.map((m) => m.data.byteLength)).toEqual([3, 1150])
    expect(core.stats().reassemblyUsed).toBe(0)
  })

  it('counts a message over the maximum once on every channel mode, not once per fragment', () => {
    const core = coreWith({ channels: ['reliable', 'unreliable', 'sequenced'], maxMessageBytes: 2000 })
    let pn = 0
    for (const channel of [0, 1, 2]) {
      for (let index = 0; index < 5; index++) core.receive(fragmentOf(pn++, channel, 0, 5000, index, index < 4 ? 1100 : 600), 0)
    }
    expect(core.stats().oversized).toBe(3)
  })

  it('counts a stale sequenced message once: when a newer one supersedes it, or at its first fragment', () => {
    // Found in review: a partial message that a newer one superseded was freed uncounted, and each of its
    // late fragments then counted as a stale message of its own.
    const core = coreWith({ channels: ['sequenced'] })
    core.receive(fragmentOf(0, 0, 1, 3000, 0, 1100), 0)
    core.receive(fragmentOf(1, 0, 1, 3000, 1, 1100), 0)
    core.receive(whole(2, 0, 2, 10), 0) // supersedes message 1, two of its three fragments in
    expect(core.stats().staleSequenced).toBe(1)
    core.receive(fragmentOf(3, 0, 1, 3000, 2, 800), 0) // its last fragment, late: counted already
    expect(core.stats().staleSequenced).toBe(1)
    // Message 0, all late: counted once, at its first fragment, whatever the order its fragments come in.
    core.receive(fragmentOf(4, 0, 0, 3000, 2, 800), 0)
    core.receive(fragmentOf(5, 0, 0, 3000, 1, 1100), 0)
    core.receive(fragmentOf(6, 0, 0, 3000, 0, 1100), 0)
    expect(core.stats().staleSequenced).toBe(2)
    expect(core.take().messages.map((m) => m.data.byteLength)).toEqual([10])
    expect(core.stats().reassemblyUsed).toBe(0)
  })

  it('drops a packet older than its records remember, counted as forgotten, not as a duplicate', () => {
    // 64 refused packets far apart fill the record of refused packets: an older packet may be one of those
    // it forgot (a copy must not deliver its messages twice), so it is dropped, and counted as what it is.
    const core = coreWith({ channels: ['reliable', 'unreliable'], maxMessageBytes: 20_000, reassemblyBytes: 4096 })
    const refusedFragment = [0x11, 0, ...varint(1), ...varint(20_000), ...varint(0), ...new Array(1100).fill(7)]
    const unreliable = (tag: number) => [0x10, 1, ...varint(tag), ...varint(1), tag]
    for (let k = 0; k < 64; k++) core.receive(packet(varint(10 + 2 * k), refusedFragment), k)
    expect(core.stats().overBudget).toBe(64)
    core.receive(packet(varint(5), unreliable(5)), 100) // never seen, but older than every refused one kept
    expect(core.stats()).toMatchObject({ forgottenPackets: 1, duplicatePackets: 0 })
    core.receive(packet(varint(11), unreliable(11)), 101) // between two refused ones: remembered as unseen
    core.receive(packet(varint(12), unreliable(12)), 102) // refused before: a duplicate
    expect(core.stats()).toMatchObject({ forgottenPackets: 1, duplicatePackets: 1 })
    expect(core.take().messages.map((m) => m.data[0])).toEqual([11])
  })

  it('keeps its record of packets seen when a peer sends the largest packet number, 2^53 − 1', () => {
    // (With 64-bit numbers, number + 1 wrapped to 0: the range of packets 0..2 became 2^64 − 1..2, a
    // duplicate of packet 1 delivered its message again, and every ACK said "first range 3 below largest 2".)
    const core = coreWith({ channels: ['unreliable'] })
    for (let pn = 0; pn < 3; pn++) core.receive(whole(pn, 0, pn, 1, pn), 0)
    core.receive(packet(varint(2n ** 53n - 1n), [0x04]), 0) // a PROBE
    core.receive(whole(1, 0, 1, 1, 1), 0) // a duplicate of packet 1
    expect(core.take().messages.map((m) => m.data[0])).toEqual([0, 1, 2])
    expect(core.stats().duplicatePackets).toBe(1)
    // The ACK this side sends is one a peer accepts: its first range is not larger than its largest.
    core.update(10_000)
    const ack = core.take().packets.find((p) => p[2] === 0x01)!
    let at = 3
    const read = (): bigint => {
      let value = 0n
      for (let shift = 0n; ; shift += 7n) {
        const byte = ack[at++]!
        value |= BigInt(byte & 0x7f) << shift
        if ((byte & 0x80) === 0) return value
      }
    }
    const largest = read()
    read() // the delay
    expect(read()).toBeLessThanOrEqual(largest)
  })

  it('takes one ACK, PING, PONG and SETTINGS frame a packet: a second makes the packet malformed, and changes nothing', () => {
    // Each costs far more than its bytes (an ACK walks the packets in flight and looks for losses): a
    // packet of 200 ACKs cost 150 µs with 255 channels, a hundred times a normal one.
    const core = coreWith({ channels: ['reliable'] })
    let now = second
    for (let i = 0; i < 4; i++) {
      core.send(0, new Uint8Array(10), now)
      core.flush(now)
      now += 10 * ms
    }
    core.take()
    const ack = [0x01, ...varint(3), 0, 0, 0] // packet 3 acknowledged
    const ping = [0x02, 0, ...varint(5)]
    const pong = [0x03, 0, ...varint(second), ...varint(7), 0]
    const cases = [[...ack, ...ack], [...ping, ...ping], [...pong, 0x04, ...pong], [...peerSettings]] // (the last: settings twice)
    cases.forEach((frames, pn) => core.receive(packet(varint(pn), frames), now))
    expect(core.stats().malformed).toBe(cases.length)
    expect(core.stats()).toMatchObject({ packetsAcked: 0, rttSamples: 0, clockSamples: 0 })
    core.update(now)
    expect(core.take().packets.flatMap(frameTypes)).not.toContain(0x03) // no pong to the pings
    // One of each is taken.
    core.receive(packet(varint(10), ack, ping), now)
    expect(core.stats()).toMatchObject({ malformed: cases.length, packetsAcked: 1 })
  })

  it('refuses an ACK whose gap would wrap below packet 0', () => {
    const core = coreWith({ channels: ['reliable'] })
    let now = second
    for (let i = 0; i < 8; i++) {
      core.send(0, new Uint8Array(10), now)
      core.flush(now)
      now += 100 * ms
      core.update(now)
    }
    // Largest 5, first range 0, one more range with gap 2^53 − 2 (with 64-bit varints, 2^64 − 2 made
    // low − gap − 2 wrap to 5).
    core.receive(packet(varint(0), [0x01], varint(5), varint(0), varint(0), varint(1), varint(2n ** 53n - 2n), varint(0)), now)
    expect(core.stats().malformed).toBe(1)
    // An ordinary one is taken: ranges [5, 5] and [0, 0].
    core.receive(packet(varint(1), [0x01], varint(5), varint(0), varint(0), varint(1), varint(3), varint(0)), now)
    expect(core.stats().malformed).toBe(1)
  })

  it('ignores an ACK for packets it never sent', () => {
    const core = coreWith({ channels: ['reliable'] })
    core.receive(packet(varint(0), [0x01], varint(50), varint(0), varint(0), varint(0)), 0)
    expect(core.stats().malformed).toBe(1)
    expect(core.stats().packetsAcked).toBe(0)
  })

  /**
   * Drives a core that sends a 10-byte message every millisecond, acknowledging all but its last 8 packets,
   * until a packet number is skipped (or `limit` packets): the numbers it sent, the one skipped, and the time.
   */
  const sendUntilSkip = (core: NativeDeliveryCore, limit = 4000): { sent: number[]; skipped: number | undefined; now: number; peerNumber: number } => {
    const sent: number[] = []
    let now = second
    let peerNumber = 0
    while (sent.length < limit) {
      core.send(0, new Uint8Array(10), now)
      core.flush(now)
      for (const out of core.take().packets) {
        const number = packetNumber(out)
        if (sent.length > 0 && number !== sent.at(-1)! + 1) return { sent: [...sent, number], skipped: sent.at(-1)! + 1, now, peerNumber }
        sent.push(number)
      }
      if (sent.length > 8) core.receive(packet(varint(peerNumber++), ackFrame(Array.from({ length: sent.at(-1)! - 7 }, (_, i) => i))), now)
      now += ms
    }
    return { sent, skipped: undefined, now, peerNumber }
  }
  /** An ACK frame for `acked` (packet numbers), as ackPacket writes it. */
  const ackFrame = (acked: number[]): number[] => [...ackPacket(0, acked).subarray(2)]

  it('skips a packet number now and then (RFC 9000 §21.4): an ACK of one is forged, dropped and acknowledges nothing', () => {
    // A peer that acknowledges packets it has not received yet, to be sent to faster than its path carries,
    // cannot tell a number never sent from one in flight.
    const core = coreWith({ channels: ['unreliable'] })
    const { sent, skipped, now, peerNumber } = sendUntilSkip(core)
    expect(skipped).toBeDefined()
    expect(skipped).toBeGreaterThanOrEqual(256) // the first after 256 to 1,279 packets
    expect(skipped).toBeLessThanOrEqual(1279)
    expect(sent.at(-1)).toBe(skipped! + 1)
    const before = core.stats()
    // The packets either side of it, not acknowledged yet, with it: forged.
    core.receive(packet(varint(peerNumber), ackFrame([skipped! - 1, skipped!, skipped! + 1])), now)
    expect(core.stats()).toMatchObject({ malformed: before.malformed + 1, packetsAcked: before.packetsAcked, bytesInFlight: before.bytesInFlight })
    // Without it: taken.
    core.receive(packet(varint(peerNumber + 1), ackFrame([skipped! - 1, skipped! + 1])), now)
    expect(core.stats()).toMatchObject({ malformed: before.malformed + 1, packetsAcked: before.packetsAcked + 2 })
  })

  it('skips numbers by its own key: another key skips others, and no key none', () => {
    const skippedBy = (packetSkipKey: Uint8Array | null): number | undefined => sendUntilSkip(coreWith({ channels: ['unreliable'], packetSkipKey })).skipped
    const first = skippedBy(Uint8Array.from({ length: 16 }, (_, i) => i))
    const others = [1, 2, 3].map((k) => skippedBy(Uint8Array.from({ length: 16 }, (_, i) => i * k + 7)))
    expect(others.filter((other) => other !== first).length).toBeGreaterThan(0)
    expect(skippedBy(null)).toBeUndefined() // 4,000 packets numbered one after another
  })
})
