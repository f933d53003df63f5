// What a connected peer's pongs can do to the RTT and the clock one delivery core keeps: a pong's echo,
// receive time and processing delay are the peer's word. Driven sans-IO with hand-built packets.
import { describe, expect, it } from 'vitest'
import { deliveryCore, peerSettingsFrame, varint } from './simulated-link.ts'

const ms = 1000
const second = 1_000_000

// One packet with one PONG (after the peer's settings, as it sends them until it has a pong itself): the
// ping's id, its send time echoed, the peer's clock when it arrived, the peer's processing delay.
const pong = (pn: number, echo: number, remoteReceived: number | bigint, delay: number) =>
  Uint8Array.from([0xd1, ...varint(pn), ...peerSettingsFrame({ channels: ['reliable'] }), 0x03, ...varint(0), ...varint(echo), ...varint(remoteReceived), ...varint(delay)])

// Four pongs, one in each of four clock-sync periods (seconds 100 to 103), whose exchanges' middles — the
// echo and the arrival — lie `spacingUs` apart, and whose receive times put the peer's clock `offsetUs`
// plus errors[k] ahead of ours. RTT net of the delay: 20 ms each.
function fourPongs(core: ReturnType<typeof deliveryCore>, spacingUs: number, offsetUs: number, errors: (number | bigint)[]): number {
  let now = 0
  for (let k = 0; k < 4; k++) {
    now = 100 * second + k * second + 500 * ms
    const middle = 100.4 * second + k * spacingUs
    const echo = 2 * middle - now
    const delay = now - echo - 20 * ms
    // θ = t1 + delay/2 − middle
    const remote = BigInt(middle + offsetUs - delay / 2) + BigInt(errors[k]!)
    core.receive(pong(k, echo, remote, delay), now)
  }
  expect(core.stats().clockSamples).toBe(4)
  return now
}

describe('pongs from a hostile peer', () => {
  it('a peer whose clock reads within 1 ms of ours + 5 s cannot make the estimate run backwards or drift by minutes', () => {
    // The echoes are forged (no ping left at those times): the four exchanges' middles are 1 µs apart,
    // and the line through their offsets takes a 1 ms error in one of them for a drift of −300 µs per µs.
    const core = deliveryCore({ channels: ['reliable'] })
    const now = fourPongs(core, 1, 5 * second, [0, 0, 0, -1 * ms])
    const offsetNow = core.stats(now).clockOffsetUs
    const offsetLater = core.stats(now + second).clockOffsetUs
    expect(Math.abs(offsetNow - 5 * second)).toBeLessThan(10 * ms)
    // The peer's clock as estimated (ours plus the offset) never runs backwards.
    expect(offsetLater + second).toBeGreaterThan(offsetNow)
  })

  it('a pong held long after a forged drift cannot make the RTT absurd (over the 60 s a pong may take)', () => {
    // The same forged echoes, with a 5 × 10^12 µs step in the peer's claimed clock: a drift of 1.5 × 10^12.
    // The fourth pong, held 6.2 s, is then "corrected" for that drift: 6.2 s × 1.5 × 10^12 of round trip;
    // and so is each later pong in the same period (its exchange is no better: the fit stays).
    const core = deliveryCore({ channels: ['reliable'] })
    let now = fourPongs(core, 1, 5 * second, [0, 0, 0, 5e12])
    for (let i = 0; i < 12; i++) {
      now += ms
      core.receive(pong(10 + i, now - 6 * second, 0, 6 * second - 20 * ms), now)
    }
    const stats = core.stats()
    expect(stats.maxRttUs).toBeLessThanOrEqual(60 * second)
    expect(stats.smoothedRttUs).toBeLessThanOrEqual(60 * second)
    expect(stats.rttVariationUs).toBeLessThanOrEqual(60 * second)
  })
})

describe("pongs and congestion control's minimum RTT", () => {
  it('a forged pong lowers the minimum the statistics show, never the one congestion control uses', () => {
    // Echoes of pings never sent: a round trip of 1 ms, then of 15 s. Congestion control takes its minimum
    // from ACK samples alone, which cannot come before their packets have crossed; with pongs, a peer could
    // set it low at will, so that every later drain of the path held the window at two packets.
    const core = deliveryCore({ channels: ['reliable'] })
    const now = 100 * second
    core.receive(pong(0, now - 1 * ms, 0, 0), now)
    core.receive(pong(1, now + ms - 15 * second, 0, 0), now + ms)
    const stats = core.stats()
    expect(stats.minRttUs).toBe(1 * ms) // the statistics' lifetime minimum takes the peer's word, as before
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
