// The native and the TypeScript delivery cores, fed the same seeded stream of calls and packets (a
// connection's two sides over a lossy, duplicating, reordering link, with packets mutated, cut, forged and
// replayed, messages of every size on channels of every mode, under tight bounds), must do the same thing
// at every step: the same packets, byte for byte, the same messages, the same counters and figures.
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../helpers.ts'
import { typescriptDeliveryCore } from './core-adapter.ts'
import { type DeliveryOptions, type NativeDeliveryCore, SimulatedPair, hex, lockstepDeliveryCore, nativeDeliveryCore, numberedMessage, unlikeStats, varint } from './simulated-link.ts'

type Mode = 'reliable' | 'unreliable' | 'sequenced'

/** One side of the connection, twice: every call goes to both, and what they do must match. */
class Twin {
  readonly native: NativeDeliveryCore
  readonly typescript: NativeDeliveryCore
  steps = 0

  constructor(
    readonly name: string,
    options: DeliveryOptions,
  ) {
    this.native = nativeDeliveryCore(options)
    this.typescript = typescriptDeliveryCore(options)
  }

  /** Runs `call` on both; returns the native core's packets and messages after checking the other's. */
  do<T>(what: string, call: (core: NativeDeliveryCore) => T, nowUs: number): { packets: Uint8Array[]; messages: { channel: number; data: Uint8Array }[] } {
    this.steps++
    const context = `${this.name}, step ${this.steps}: ${what} at ${nowUs}`
    expect(call(this.typescript), context).toEqual(call(this.native))
    const expected = this.native.take()
    const actual = this.typescript.take()
    expect(actual.packets.map(hex), `${context}: packets`).toEqual(expected.packets.map(hex))
    expect(actual.messages.map((m) => `${m.channel}:${hex(m.data)}`), `${context}: messages`).toEqual(expected.messages.map((m) => `${m.channel}:${hex(m.data)}`))
    const nativeStats = this.native.stats(nowUs)
    const typescriptStats = this.typescript.stats(nowUs)
    for (const [field, value] of Object.entries(nativeStats)) {
      if (unlikeStats.has(field)) continue
      expect(typescriptStats[field as keyof typeof typescriptStats], `${context}: stats.${field}`).toEqual(value)
    }
    expect(typescriptStats.countsAgree, context).toBe(true)
    expect(this.typescript.nextDeadlineUs(nowUs), `${context}: next deadline`).toBe(this.native.nextDeadlineUs(nowUs))
    expect(this.typescript.peerSettings(), `${context}: peer settings`).toEqual(this.native.peerSettings())
    expect(this.typescript.mismatch(), `${context}: mismatch`).toBe(this.native.mismatch())
    return expected
  }
}

interface InFlight {
  at: number
  to: 0 | 1
  data: Uint8Array
}

function run(seed: number, steps: number): { delivered: number; malformed: number; mismatch: boolean } {
  const random = seededRandom(seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const chance = (p: number): boolean => random() < p
  const modes: Mode[] = Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(['reliable', 'unreliable', 'sequenced'] as const))
  const options: DeliveryOptions = {
    channels: modes,
    maxMessageBytes: pick([5000, 40_000, 1 << 20]),
    sendQueueBytes: pick([30_000, 8 << 20]),
    reassemblyBytes: pick([undefined, 8000, 60_000]),
    reliableWindow: pick([8, 1024]),
    fragmentTimeoutUs: pick([300_000, 5_000_000]),
    pingIntervalUs: pick([50_000, 100_000]),
  }
  // Some seeds' sides disagree: another mode on channel 0 (the connection's end), or a larger maximum on
  // the other side (messages over this side's, passed over).
  const otherMode: Mode = modes[0] === 'reliable' ? 'unreliable' : 'reliable'
  const other: DeliveryOptions = seed % 6 === 0 ? { ...options, channels: [otherMode, ...modes.slice(1)] } : seed % 6 === 3 ? { ...options, maxMessageBytes: 1 << 20 } : options
  const sides = [new Twin(`seed ${seed} side a`, options), new Twin(`seed ${seed} side b`, { ...other, followsPings: true })] as const
  // Each side's own clock: b's runs ahead of a's.
  const offsets = [1_000_000, 1_000_000 + Math.floor(random() * 5_000_000)]
  const loss = pick([0, 0.05, 0.2])
  let now = 0
  let inFlight: InFlight[] = []
  const seen: Uint8Array[] = []
  let delivered = 0
  // Hostile input once both sides have the other's settings: before, it ends the connection (a packet
  // without them comes from a peer without channels), and the stream would deliver nothing more.
  const settled = (): boolean => sides[0].native.peerSettings() !== null && sides[1].native.peerSettings() !== null
  const carry = (from: 0 | 1, packets: Uint8Array[]): void => {
    for (const packet of packets) {
      seen.push(packet)
      if (seen.length > 200) seen.shift()
      if (chance(loss)) continue
      const copies = chance(0.05) ? 2 : 1
      for (let copy = 0; copy < copies; copy++) {
        let data = packet
        if (settled() && chance(0.03)) {
          // Mutated: a byte changed, or the packet cut short. Not the marker: a payload without it comes from a
          // peer without channels, which ends the connection (that path has tests of its own).
          data = packet.slice(0, chance(0.5) ? 1 + Math.floor(random() * (packet.byteLength - 1)) : packet.byteLength)
          if (data.byteLength > 1) data[1 + Math.floor(random() * (data.byteLength - 1))] = Math.floor(random() * 256)
        }
        inFlight.push({ at: now + 1000 + Math.floor(random() * (chance(0.05) ? 30_000 : 8000)), to: from === 0 ? 1 : 0, data })
      }
    }
  }
  const apply = (side: 0 | 1, what: string, call: (core: NativeDeliveryCore, clock: number) => unknown): void => {
    const clock = now + offsets[side]!
    const { packets, messages } = sides[side].do(what, (core) => call(core, clock), clock)
    delivered += messages.length
    carry(side, packets)
  }
  for (let step = 0; step < steps; step++) {
    const side = chance(0.5) ? 0 : 1
    const roll = random()
    if (roll < 0.3) {
      // Messages, a burst of them now and then: empty to several fragments, a large one, a channel that does not exist.
      const count = chance(0.1) ? 1 + Math.floor(random() * 40) : 1
      for (let i = 0; i < count; i++) {
        const size = chance(0.05) ? Math.floor(random() * 50_000) : chance(0.2) ? Math.floor(random() * 4000) : Math.floor(random() * 300)
        const channel = chance(0.03) ? modes.length + Math.floor(random() * 3) : Math.floor(random() * modes.length)
        const data = new Uint8Array(size).map((_, j) => (j * 7 + step) & 0xff)
        apply(side, `send ${size} B on ${channel}`, (core, clock) => core.send(channel, data, clock))
      }
      apply(side, 'flush', (core, clock) => core.flush(clock))
    } else if (roll < 0.315 && settled()) {
      // Hostile input: a forged packet of random frames, or an old packet again.
      const data = chance(0.5) && seen.length > 0 ? pick(seen) : forged(random)
      apply(side, 'receive a forged or replayed packet', (core, clock) => core.receive(data, clock))
    } else if (roll < 0.32) {
      apply(side, 'announce settings', (core, clock) => core.announceSettings(clock, 2))
    } else {
      // Time passes: to the next packet's arrival or a deadline of either side, or a little past.
      let next = now + 1 + Math.floor(random() * 20_000)
      for (const packet of inFlight) next = Math.min(next, packet.at)
      for (const s of [0, 1] as const) next = Math.min(next, sides[s].native.nextDeadlineUs(now + offsets[s]!) - offsets[s]!)
      now = Math.max(now + 1, next + (chance(0.2) ? Math.floor(random() * 3000) : 0))
      const arriving = inFlight.filter((packet) => packet.at <= now).sort((x, y) => x.at - y.at)
      inFlight = inFlight.filter((packet) => packet.at > now)
      for (const packet of arriving) apply(packet.to, `receive ${packet.data.byteLength} B`, (core, clock) => core.receive(packet.data, clock))
      for (const s of [0, 1] as const) apply(s, 'update', (core, clock) => core.update(clock))
    }
  }
  return { delivered, malformed: sides[0].native.stats().malformed + sides[1].native.stats().malformed, mismatch: sides[0].native.mismatch() !== 'none' || sides[1].native.mismatch() !== 'none' }
}

/** A delivery packet of random frames, most of them well formed enough to reach past the parser. */
function forged(random: () => number): Uint8Array {
  const bytes: number[] = [0xd1, ...varint(Math.floor(random() * 400))]
  const frames = 1 + Math.floor(random() * 3)
  for (let i = 0; i < frames; i++) {
    const kind = Math.floor(random() * 7)
    if (kind === 0) bytes.push(0x01, ...varint(Math.floor(random() * 300)), ...varint(Math.floor(random() * 5000)), ...varint(Math.floor(random() * 10)), ...varint(0))
    else if (kind === 1) bytes.push(0x02, ...varint(Math.floor(random() * 100)), ...varint(Math.floor(random() * 1e7)))
    else if (kind === 2) bytes.push(0x03, 0, ...varint(Math.floor(random() * 1e7)), ...varint(Math.floor(random() * 1e7)), ...varint(Math.floor(random() * 1e5)))
    else if (kind === 3) bytes.push(0x04)
    else if (kind === 4) bytes.push(0x05, Math.floor(random() * 2), ...varint(1 + Math.floor(random() * 100_000)), 1, 1 + Math.floor(random() * 3))
    else {
      const fragmented = kind === 6
      const length = fragmented ? 1101 + Math.floor(random() * 5000) : Math.floor(random() * 200)
      const fragment = fragmented ? Math.floor(random() * 5) : 0
      const payload = fragmented ? Math.max(0, Math.min(1100, length - fragment * 1100)) : length
      bytes.push(fragmented ? 0x11 : 0x10, Math.floor(random() * 4), ...varint(Math.floor(random() * 12)), ...varint(length))
      if (fragmented) bytes.push(...varint(fragment))
      for (let b = 0; b < payload && bytes.length < 1200; b++) bytes.push(b & 0xff)
    }
  }
  if (random() < 0.2) bytes.push(...varint(2n ** 53n + BigInt(Math.floor(random() * 1000)))) // a varint past what either side reads
  return Uint8Array.from(bytes.slice(0, 1200))
}

describe('the TypeScript delivery core against the native one', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]) {
    it(`does what the native core does, call for call (seed ${seed})`, () => {
      const { delivered, malformed, mismatch } = run(seed, 1500)
      // The stream exercised both sides: messages went through (or the channels' mismatch was found), and
      // hostile packets were refused.
      if (seed % 6 === 0) expect(mismatch).toBe(true)
      else expect(delivered).toBeGreaterThan(10)
      expect(malformed).toBeGreaterThan(0)
    })
  }
})

describe("the two cores over drains of congestion control's minimum RTT", () => {
  it('do the same thing, call for call: a route change at 2 % loss, then a standing queue, 30 s of it', () => {
    // The seeded streams above cover a few seconds each: no drain (10 s without a round trip near the
    // minimum) comes in them.
    const link = { bandwidthBytesPerSec: 1.25e6, queueBytes: 256 * 1024, latencyMs: 2, loss: 0.02 }
    const pair = new SimulatedPair({ channels: ['reliable'], sendQueueBytes: 64 << 20 }, link, 1, {}, undefined, (options) => lockstepDeliveryCore(options))
    let sent = 0
    for (let s = 0; s < 30; s++) {
      if (s === 2) link.latencyMs = 20
      if (s === 15) link.loss = 0
      while (sent - pair.received.b.length < 3000) pair.send('a', 0, numberedMessage(sent++, 1000))
      pair.run(pair.now + 1_000_000)
    }
    expect(pair.a.stats().rttDrains).toBeGreaterThanOrEqual(2)
    expect(pair.received.b.length).toBeGreaterThan(20_000)
  })
})

describe('the two cores where their memory policies differ', () => {
  it('credit a packet declared lost and acknowledged late whether or not the records of sent packets started over since', () => {
    // Found in review: the native core starts its records over when their lists of fragments hold more than
    // 64 KiB of capacity, the TypeScript one when they list that many fragments; a late acknowledgement was
    // credited from the record, so one core credited it and the other, whose record had gone, resent. Now a
    // declared loss keeps its fragments itself. Here the native core starts over (2,816 entries of capacity),
    // the TypeScript one does not (2,404 listed).
    const side = new Twin('late acknowledgement', { channels: ['reliable'], reliableWindow: 65_536 })
    let now = 1_000_000
    for (let i = 0; i < 2500; i++) side.do('send', (core) => core.send(0, new Uint8Array(0), now), now)
    const first = side.do('flush', (core) => core.flush(now), now).packets
    expect(first).toHaveLength(10)
    const peerSettings = [0x05, 1, ...varint(1 << 20), 1, 1]
    const ack = (largest: number, firstRange: number, more: number[] = []) => [0x01, ...varint(largest), 0, ...varint(firstRange), ...varint(more.length / 2), ...more]
    now += 50_000
    // Every packet but 1 acknowledged: 1 is declared lost (3 later ones are acknowledged), everything is settled.
    side.do('ack all but 1', (core) => core.receive(Uint8Array.from([0xd1, 0, ...peerSettings, ...ack(9, 7, [0, 0])]), now), now)
    expect(side.native.stats().packetsLost).toBe(1)
    side.do('flush: the resends', (core) => core.flush(now), now)
    now += 1000
    side.do('the late acknowledgement of packet 1', (core) => core.receive(Uint8Array.from([0xd1, 1, ...ack(9, 9)]), now), now)
    expect(side.native.stats().spuriousLosses).toBe(1)
    now += 2_000_000
    side.do('a probe timeout', (core) => core.update(now), now)
  })
})
