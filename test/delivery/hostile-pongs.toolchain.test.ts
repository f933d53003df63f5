// What a connected peer's pongs can do to the RTT and the clock one delivery core keeps: a pong's echo must
// be the send time of one of the last 16 pings, under its id; when it answers them, its receive time and
// processing delay are the peer's word. Driven sans-IO with hand-built packets.
import { describe, expect, it } from 'vitest'
import { deliveryCore, peerSettingsFrame, varint } from './simulated-link.ts'

const ms = 1000
const second = 1_000_000

// One packet with one PONG (after the peer's settings, as it sends them until it has a pong itself): the
// ping's id, its send time echoed, the peer's clock when it arrived, the peer's processing delay.
const pong = (pn: number, id: number, echo: number, remoteReceived: number | bigint, delay: number) =>
  Uint8Array.from([0xd1, ...varint(pn), ...peerSettingsFrame({ channels: ['reliable'] }), 0x03, ...varint(id), ...varint(echo), ...varint(remoteReceived), ...varint(delay)])

type Core = ReturnType<typeof deliveryCore>

/** A core that pings whenever it is asked to (every 1 ms at most), so that a test chooses its pings' times. */
const pingingCore = (): Core => deliveryCore({ channels: ['reliable'], pingIntervalUs: ms })

/**
 * Makes `core` send a ping at each of `times` (µs; in rising order, each at least 1 ms after the one
 * before), the only packets it sends: a hostile peer's pongs below echo real pings, answered as it likes.
 * The ids the pings got, by their times.
 */
function pingsAt(core: Core, times: number[]): Map<number, number> {
  const ids = new Map<number, number>()
  for (const time of [...times].sort((a, b) => a - b)) {
    core.update(time)
    expect(core.take().packets).toHaveLength(1)
    ids.set(time, ids.size)
  }
  return ids
}

// Four exchanges, one in each of four clock-sync periods (seconds 100 to 103), whose middles — the ping's
// send time and the pong's arrival — lie `spacingUs` apart: the pong of the last answers the first ping.
function fourExchanges(spacingUs: number): { now: number; echo: number }[] {
  return [0, 1, 2, 3].map((k) => {
    const now = 100 * second + k * second + 500 * ms
    const middle = 100_400_000 + k * spacingUs
    return { now, echo: 2 * middle - now }
  })
}

// The pongs of fourExchanges(spacingUs), whose receive times put the peer's clock `offsetUs` plus errors[k]
// ahead of ours. RTT net of the delay: 20 ms each.
function fourPongs(core: Core, pings: Map<number, number>, spacingUs: number, offsetUs: number, errors: (number | bigint)[]): number {
  let last = 0
  fourExchanges(spacingUs).forEach(({ now, echo }, k) => {
    const delay = now - echo - 20 * ms
    // θ = t1 + delay/2 − middle
    const remote = BigInt((now + echo) / 2 + offsetUs - delay / 2) + BigInt(errors[k]!)
    core.receive(pong(k, pings.get(echo)!, echo, remote, delay), now)
    last = now
  })
  expect(core.stats().clockSamples).toBe(4)
  return last
}

describe('pongs from a hostile peer', () => {
  it('a peer whose clock reads within 1 ms of ours + 5 s cannot make the estimate run backwards or drift by minutes', () => {
    // The peer answers four pings out of order and late, so that the exchanges' middles lie 1 µs apart: the
    // line through their offsets takes a 1 ms error in one of them for a drift of −300 µs per µs.
    const core = pingingCore()
    const pings = pingsAt(core, fourExchanges(1).map(({ echo }) => echo))
    const now = fourPongs(core, pings, 1, 5 * second, [0, 0, 0, -1 * ms])
    const offsetNow = core.stats(now).clockOffsetUs
    const offsetLater = core.stats(now + second).clockOffsetUs
    expect(Math.abs(offsetNow - 5 * second)).toBeLessThan(10 * ms)
    // The peer's clock as estimated (ours plus the offset) never runs backwards.
    expect(offsetLater + second).toBeGreaterThan(offsetNow)
  })

  it('a pong held long after a forged drift cannot make the RTT absurd (over the 60 s a pong may take)', () => {
    // The same exchanges, with a 5 × 10^12 µs step in the peer's claimed clock: a drift of 1.5 × 10^12.
    // Each of twelve pongs after them, held 6 s, is then "corrected" for that drift: 6 s × 1.5 × 10^12 of
    // round trip (its exchange is no better: the fit stays). Sixteen pings in all: each still answerable.
    const last = fourExchanges(1)[3]!.now
    const held = Array.from({ length: 12 }, (_, i) => ({ now: last + (i + 1) * ms, echo: last + (i + 1) * ms - 6 * second }))
    const core = pingingCore()
    const pings = pingsAt(core, [...fourExchanges(1), ...held].map(({ echo }) => echo))
    fourPongs(core, pings, 1, 5 * second, [0, 0, 0, 5e12])
    held.forEach(({ now, echo }, i) => core.receive(pong(10 + i, pings.get(echo)!, echo, 0, 6 * second - 20 * ms), now))
    const stats = core.stats()
    expect(stats.clockSamples).toBe(16)
    expect(stats.maxRttUs).toBeLessThanOrEqual(60 * second)
    expect(stats.smoothedRttUs).toBeLessThanOrEqual(60 * second)
    expect(stats.rttVariationUs).toBeLessThanOrEqual(60 * second)
  })

  it('a pong that echoes no ping this side sent, or one it no longer remembers, is no sample', () => {
    const core = pingingCore()
    const now = 100 * second
    const times = Array.from({ length: 17 }, (_, i) => now - 100 * ms + i * ms)
    const pings = pingsAt(core, times)
    let pn = 0
    const answer = (id: number, echo: number): void => core.receive(pong(pn++, id, echo, echo, 0), now)
    answer(pings.get(times[16]!)!, times[16]! - 1) // an echo its ping did not have
    answer(pings.get(times[16]!)!, times[15]!) // another ping's time
    answer(17, times[16]!) // an id not sent yet
    answer(0, times[0]!) // the 17th ping back: past the 16 remembered
    expect(core.stats()).toMatchObject({ rttSamples: 0, clockSamples: 0 })
    answer(1, times[1]!) // the 16th: remembered
    answer(pings.get(times[16]!)!, times[16]!)
    expect(core.stats()).toMatchObject({ rttSamples: 2, clockSamples: 2 })
  })
})

describe("pongs and congestion control's minimum RTT", () => {
  it('a pong lowers the minimum the statistics show, never the one congestion control uses', () => {
    // Pongs answered at once and 15 s late: round trips of 1 ms and 15 s. Congestion control takes its
    // minimum from ACK samples alone, which cannot come before their packets have crossed; with pongs, a
    // peer could set it low at will (holding back its pongs to every other ping), so that every later
    // drain of the path held the window at two packets.
    const core = pingingCore()
    const now = 100 * second
    const pings = pingsAt(core, [now + ms - 15 * second, now - 1 * ms])
    core.receive(pong(0, pings.get(now - 1 * ms)!, now - 1 * ms, 0, 0), now)
    core.receive(pong(1, pings.get(now + ms - 15 * second)!, now + ms - 15 * second, 0, 0), now + ms)
    const stats = core.stats()
    expect(stats.rttSamples).toBe(2)
    expect(stats.minRttUs).toBe(1 * ms) // the statistics' lifetime minimum takes the pong's, as before
    expect(stats.pathMinRttUs).toBe(0) // no ACK sample yet: none
    expect(stats.rttDrains).toBe(0)
  })
})

describe('acknowledgements from a hostile peer', () => {
  it('an ACK held back for 20 minutes is no RTT sample (it set the smoothed, latest and largest RTT to 20 minutes)', () => {
    const options = { channels: ['reliable' as const], followsPings: true }
    const core = deliveryCore(options)
    let now = second
    let number = 0
    let pingId = 0
    // The peer's packets: its settings, a PING (it keeps the connection alive), and maybe an ACK.
    const fromPeer = (ackLargest?: number): Uint8Array =>
      Uint8Array.from([
        0xd1, ...varint(number++),
        ...(ackLargest === undefined ? [] : [0x01, ...varint(ackLargest), ...varint(0), ...varint(0), ...varint(0)]),
        ...peerSettingsFrame(options),
        0x02, ...varint(pingId++), ...varint(now),
      ])
    core.receive(fromPeer(), now)
    core.update(now)
    expect(core.send(0, new Uint8Array(100), now)).toBe('queued')
    core.flush(now)
    const held = core.stats(now).packetsOut - 1
    for (let i = 0; i < 20 * 60 * 10; i++) {
      now += 100 * ms
      core.receive(fromPeer(), now)
      core.update(now)
    }
    core.take()
    const before = core.stats(now)
    core.receive(fromPeer(held), now)
    const after = core.stats(now)
    expect(after.packetsAcked).toBeGreaterThan(before.packetsAcked) // taken as an acknowledgement...
    expect(after.rttSamples).toBe(before.rttSamples) // ...but not as a round trip
    expect(after.maxRttUs).toBeLessThan(60 * second)
    expect(after.smoothedRttUs).toBe(before.smoothedRttUs)
  })
})

describe('a pong sent with a clock read before its ping came', () => {
  it('says a delay of 0: the packet it rides in stays well-formed', () => {
    // A caller that read the clock, then fed a packet stamped later, then flushed: the delay wrapped (a
    // 10-byte varint past 2^53, or a negative number), and the peer dropped the packet, acknowledgements and all.
    const core = deliveryCore({ channels: ['reliable'] })
    // From the peer below, which follows pings (the client's role) and whose settings it carries.
    const ping = Uint8Array.from([0xd1, ...varint(0), ...peerSettingsFrame({ channels: ['reliable'] }), 0x02, ...varint(7), ...varint(123)])
    core.receive(ping, 5 * second)
    core.flush(5 * second - 1)
    const [packet] = core.take().packets
    const peer = deliveryCore({ channels: ['reliable'], followsPings: true })
    peer.receive(packet!, 5 * second)
    expect(peer.stats()).toMatchObject({ malformed: 0, packetsIn: 1 })
  })
})
