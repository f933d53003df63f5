// Each side's delivery layer announces its channels and largest message in a SETTINGS frame first in every
// packet until a pong shows the peer has them (native/protocol/delivery/wire_format.h); the receiver keeps the first
// and flags a mismatch (a channel both have in two modes, or a payload without the delivery marker), after
// which it delivers nothing.
// Sans-IO, on the fake clock of the simulated pair, and with hand-built packets.
import { describe, expect, it } from 'vitest'
import { SimulatedPair, dataFrames, deliveryCore, frameTypes, peerSettingsFrame, pingFrames, varint } from './simulated-link.ts'

const ms = 1000
const second = 1_000_000
const SETTINGS = 0x05

describe('SETTINGS frame', () => {
  it('goes first in the first packet, before its ping, in the bytes of wire_format.h', () => {
    const core = deliveryCore({ channels: ['reliable', 'sequenced'], maxMessageBytes: 5000 })
    core.flush(1000)
    const [packet] = core.take().packets
    // marker, packet 0 | SETTINGS role 0 (leads the pings), 5000, 2 channels: reliable (1), sequenced (3) |
    // PING id 0, clock 1000
    expect([...packet!]).toEqual([0xd1, 0x00, 0x05, 0x00, 0x88, 0x27, 0x02, 0x01, 0x03, 0x02, 0x00, 0xe8, 0x07])
    // The side that follows the pings (a server) says so.
    const follower = deliveryCore({ channels: ['unreliable'], maxMessageBytes: 100, followsPings: true })
    follower.flush(1000)
    expect([...follower.take().packets[0]!.subarray(0, 7)]).toEqual([0xd1, 0x00, 0x05, 0x01, 0x64, 0x01, 0x02])
  })

  it('goes ahead of the messages of every packet until a pong shows the peer has them', () => {
    const core = deliveryCore({ channels: ['reliable', 'unreliable'] })
    // Two messages a packet: six packets, within the first congestion window.
    for (let i = 0; i < 12; i++) core.send(i % 2, new Uint8Array(400).fill(i), 1000)
    core.flush(1000)
    const { packets } = core.take()
    expect(packets.length).toBeGreaterThanOrEqual(5)
    for (const packet of packets) expect(frameTypes(packet)[0]).toBe(SETTINGS)
    // The peer's pong to ping 0 (its clock 1,500 when the ping came, held 100 µs): settings no more.
    core.receive(Uint8Array.from([0xd1, 0x00, 0x03, 0x00, ...varint(1000), ...varint(1500), ...varint(100)]), 2000)
    core.send(0, new Uint8Array(10), 2000)
    core.flush(2000)
    const after = core.take().packets
    expect(after.length).toBeGreaterThan(0)
    for (const packet of after) expect(frameTypes(packet)).not.toContain(SETTINGS)
  })

  it('announced: in packets of their own, however many asked, even once the peer has them', () => {
    const core = deliveryCore({ channels: ['sequenced'], maxMessageBytes: 300 })
    core.flush(1000)
    core.receive(Uint8Array.from([0xd1, 0x00, 0x03, 0x00, ...varint(1000), ...varint(1500), ...varint(100)]), 2000)
    core.take()
    core.announceSettings(3000, 2)
    const { packets } = core.take()
    expect(packets.map((packet) => [...packet])).toEqual([
      [0xd1, 0x01, 0x05, 0x00, ...varint(300), 0x01, 0x03],
      [0xd1, 0x02, 0x05, 0x00, ...varint(300), 0x01, 0x03],
    ])
  })

  it('each side learns the other\'s; pings stop carrying them once a pong shows the peer has them', () => {
    const sent: { to: 'a' | 'b'; sentUs: number; types: number[] }[] = []
    const pair = new SimulatedPair(
      { channels: ['reliable', 'unreliable'], maxMessageBytes: 4096 },
      { latencyMs: 10, shape: ({ to, sentUs, data }) => (sent.push({ to, sentUs, types: frameTypes(data) }), 0) },
      1,
      {},
      { channels: ['reliable', 'unreliable', 'sequenced'], maxMessageBytes: 1 << 30 },
    )
    pair.a.flush(0)
    pair.run(2 * second)
    expect(pair.b.peerSettings()).toEqual({ maxMessageBytes: 4096, channels: ['reliable', 'unreliable'] })
    expect(pair.a.peerSettings()).toEqual({ maxMessageBytes: 1 << 30, channels: ['reliable', 'unreliable', 'sequenced'] })
    // A channel only one side has is no mismatch: its sender refuses it (JavaScript reads peerSettings).
    expect(pair.a.mismatch()).toBe('none')
    expect(pair.b.mismatch()).toBe('none')
    for (const to of ['a', 'b'] as const) {
      // Towards `to`: the other side's packets. The first ones carry the settings, up to the pong to its
      // first ping (a round trip, 20 ms, later), and none after.
      const packets = sent.filter((packet) => packet.to === to)
      const withSettings = packets.filter((packet) => packet.types.includes(SETTINGS))
      expect(packets.length).toBeGreaterThan(10)
      expect(withSettings.length).toBeGreaterThanOrEqual(1)
      expect(withSettings.length).toBeLessThanOrEqual(3)
      expect(packets.slice(0, withSettings.length)).toEqual(withSettings)
      expect(withSettings.every((packet) => packet.sentUs < 25 * ms)).toBe(true)
    }
  })

  it('comes again with every ping while they are lost', () => {
    // Every packet from a lost for the first 550 ms: a pings at 10 Hz, each with its settings.
    let lostWithSettings = 0
    const pair = new SimulatedPair(
      { channels: ['reliable'] },
      {
        latencyMs: 5,
        shape: ({ to, sentUs, data }) => {
          if (to !== 'b' || sentUs >= 550 * ms) return 0
          if (frameTypes(data).includes(SETTINGS)) lostWithSettings++
          return null
        },
      },
    )
    pair.a.flush(0)
    pair.run(2 * second)
    expect(lostWithSettings).toBeGreaterThanOrEqual(5)
    expect(pair.b.peerSettings()).toEqual({ maxMessageBytes: 1 << 20, channels: ['reliable'] })
  })

  it('comes again after 200 ms, then 400, 800, then every second while lost, however long the ping interval', () => {
    // A minute between pings: carried by the pings alone, lost settings would come again a minute later, and
    // the peer's 'connect' with them. Both sides' first three packets towards the other are lost.
    const lost: Record<'a' | 'b', number[]> = { a: [], b: [] }
    const pair = new SimulatedPair(
      { channels: ['reliable'], pingIntervalUs: 60 * second },
      {
        latencyMs: 5,
        shape: ({ to, sentUs, data }) => {
          if (lost[to].length === 3 || !frameTypes(data).includes(SETTINGS)) return 0
          lost[to].push(sentUs)
          return null
        },
      },
    )
    pair.a.flush(0)
    pair.run(3 * second)
    expect(lost.b).toEqual([0, 200 * ms, 600 * ms]) // the client's: its own timer, backing off
    expect(pair.b.peerSettings()).toEqual({ maxMessageBytes: 1 << 20, channels: ['reliable'] })
    expect(pair.a.peerSettings()).toEqual({ maxMessageBytes: 1 << 20, channels: ['reliable'] })
    // Once a pong shows each side the other has them (the server's rides with its next ping), no packet
    // carries them, and the pings go at their interval again.
    pair.run(4 * second)
    const later: number[][] = []
    pair.link.shape = ({ data }) => (later.push(frameTypes(data)), 0)
    pair.run(64 * second)
    expect(later.filter((types) => types.includes(SETTINGS))).toEqual([])
    expect(later.length).toBeLessThan(10)
  })

  it('a channel both have in two modes is a mismatch, on both sides, and no message is delivered', () => {
    const pair = new SimulatedPair({ channels: ['reliable', 'unreliable'] }, { latencyMs: 10 }, 1, {}, { channels: ['reliable', 'sequenced', 'reliable'] })
    // Messages from the start, on every channel: the settings ahead of them in the same packets.
    for (let i = 0; i < 5; i++) {
      pair.send('a', i % 2, new Uint8Array(20).fill(i))
      pair.send('b', i % 3, new Uint8Array(20).fill(i))
    }
    pair.run(second)
    expect(pair.a.mismatch()).toBe('channel-modes')
    expect(pair.b.mismatch()).toBe('channel-modes')
    expect([pair.received.a, pair.received.b]).toEqual([[], []])
    // b's message on its channel 2, which a does not have, is dropped as such; the others for the mismatch.
    expect([pair.a.stats().mismatched, pair.a.stats().unknownChannel]).toEqual([4, 1])
    expect(pair.b.stats().mismatched).toBe(5)
  })

  it('a payload without the delivery marker is a mismatch (the peer has no channels), dropped and counted', () => {
    const core = deliveryCore({ channels: ['reliable'] })
    core.receive(Uint8Array.from([0x68, 0x65, 0x6c, 0x6c, 0x6f]), 1000)
    expect(core.mismatch()).toBe('no-delivery-layer')
    expect(core.stats().malformed).toBe(1)
    expect(core.take().messages).toEqual([])
    // A marked packet that does not parse is malformed only: a peer with channels sent it.
    const other = deliveryCore({ channels: ['reliable'] })
    other.receive(Uint8Array.from([0xd1, 0x00, 0x7f]), 1000)
    expect(other.stats().malformed).toBe(1)
    expect(other.mismatch()).toBe('none')
  })

  it("its own role coming back is its own packets echoed by a peer without channels: a mismatch, nothing taken", () => {
    const client = deliveryCore({ channels: ['reliable'] })
    client.send(0, Uint8Array.from([1, 2, 3]), 1000)
    client.flush(1000)
    // An echo server without channels sends each payload back as it came.
    for (const packet of client.take().packets) client.receive(packet, 2000)
    expect(client.mismatch()).toBe('no-delivery-layer')
    expect(client.peerSettings()).toBeNull()
    expect(client.take().messages).toEqual([])
  })

  it('a packet without settings before they are known comes from a peer of an older format: a mismatch, nothing delivered', () => {
    // Version 1 of the format had no SETTINGS frame; a peer of this version sends them first in every
    // packet until it has a pong, and this side pongs only pings that came after them.
    const message = [0x10, 0x00, 0x00, 0x01, 0x41] // channel 0, sequence 0, "A"
    const core = deliveryCore({ channels: ['reliable'] })
    core.receive(Uint8Array.from([0xd1, 0x00, ...message]), 1000)
    expect(core.mismatch()).toBe('no-delivery-layer')
    expect(core.take().messages).toEqual([])
    expect(core.stats()).toMatchObject({ malformed: 0, mismatched: 1 })
    // Settings that come after it change nothing: the peer was found out.
    core.receive(Uint8Array.from([0xd1, 0x01, SETTINGS, 1, ...varint(1024), 1, 1, 0x10, 0x00, 0x01, 0x01, 0x42]), 2000)
    expect(core.mismatch()).toBe('no-delivery-layer')
    expect(core.take().messages).toEqual([])
    // Once they are known, packets without them are the peer's ordinary ones (it had this side's pong).
    const other = deliveryCore({ channels: ['reliable'] })
    other.receive(Uint8Array.from([0xd1, 0x00, SETTINGS, 1, ...varint(1024), 1, 1, ...message]), 1000)
    other.receive(Uint8Array.from([0xd1, 0x01, 0x10, 0x00, 0x01, 0x01, 0x42]), 2000)
    expect(other.mismatch()).toBe('none')
    expect(other.take().messages.map((m) => [...m.data])).toEqual([[0x41], [0x42]])
    // After an ACK is where a sender puts them; after a message is not (it would come before them).
    const acked = deliveryCore({ channels: ['reliable'] })
    acked.flush(500) // its packet 0, which the ACK (largest 0, no delay, no other range) acknowledges
    acked.take()
    acked.receive(Uint8Array.from([0xd1, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, SETTINGS, 1, ...varint(1024), 1, 1, ...message]), 1000)
    expect(acked.stats().malformed).toBe(0)
    expect(acked.mismatch()).toBe('none')
    expect(acked.take().messages).toHaveLength(1)
    const late = deliveryCore({ channels: ['reliable'] })
    late.receive(Uint8Array.from([0xd1, 0x00, ...message, SETTINGS, 1, ...varint(1024), 1, 1]), 1000)
    expect(late.mismatch()).toBe('no-delivery-layer')
    expect(late.take().messages).toEqual([])
    expect(late.stats()).toMatchObject({ malformed: 0, mismatched: 1 })
  })

  it('keeps the first settings: a later frame that says otherwise changes nothing', () => {
    const core = deliveryCore({ channels: ['reliable', 'unreliable'] })
    const settings = (pn: number, modes: number[]) => Uint8Array.from([0xd1, ...varint(pn), SETTINGS, 1, ...varint(2048), modes.length, ...modes])
    core.receive(settings(0, [1, 2]), 1000)
    core.receive(settings(1, [3, 3, 3]), 2000)
    expect(core.peerSettings()).toEqual({ maxMessageBytes: 2048, channels: ['reliable', 'unreliable'] })
    expect(core.mismatch()).toBe('none')
    expect(core.stats().malformed).toBe(0)
  })

  describe('a hostile or broken frame drops its whole packet, counted, and announces nothing', () => {
    const message = [0x10, 0x00, 0x00, 0x01, 0x41] // channel 0, sequence 0, "A"
    // From a server (role 1) to this core, a client's.
    const cases: [string, number[]][] = [
      ['role 2', [SETTINGS, 2, ...varint(1024), 1, 1]],
      ['no channels', [SETTINGS, 1, ...varint(1024), 0]],
      ['256 channels', [SETTINGS, 1, ...varint(1024), ...varint(256), ...new Array<number>(256).fill(1)]],
      ['mode 0', [SETTINGS, 1, ...varint(1024), 2, 1, 0]],
      ['mode 4', [SETTINGS, 1, ...varint(1024), 1, 4]],
      ['a largest message of 0', [SETTINGS, 1, 0, 1, 1]],
      ['a largest message over 1 GiB', [SETTINGS, 1, ...varint(2 ** 30 + 1), 1, 1]],
      ['fewer modes than channels', [SETTINGS, 1, ...varint(1024), 3, 1, 1]],
      ['a truncated varint', [SETTINGS, 1, 0x80]],
      ['no role', [SETTINGS]],
    ]
    for (const [name, frame] of cases) {
      it(name, () => {
        const core = deliveryCore({ channels: ['reliable'] })
        core.receive(Uint8Array.from([0xd1, 0x00, ...frame, ...message]), 1000)
        expect(core.stats().malformed).toBe(1)
        expect(core.take().messages).toEqual([])
        expect(core.peerSettings()).toBeNull()
        expect(core.mismatch()).toBe('none')
      })
    }

    it('the same packet with a valid frame is taken (the cases differ from it only in the frame)', () => {
      const core = deliveryCore({ channels: ['reliable'] })
      core.receive(Uint8Array.from([0xd1, 0x00, SETTINGS, 1, ...varint(1024), 1, 1, ...message]), 1000)
      expect(core.stats().malformed).toBe(0)
      expect(core.take().messages.map((m) => [...m.data])).toEqual([[0x41]])
      expect(core.peerSettings()).toEqual({ maxMessageBytes: 1024, channels: ['reliable'] })
    })
  })
})

describe('many channels: a message whose frame does not fit beside the settings', () => {
  // With 255 channels the SETTINGS frame takes 264 bytes, and a packet has no room left for a 1,000-byte
  // message. Each packet carried the settings and an ACK alone, and Flush() sent 4,096 of them at once,
  // again at every tick: a storm a peer that never answers pings could keep going.
  const channels = new Array<'reliable'>(255).fill('reliable')
  const PONG = 0x03

  it('waits for the pong that shows the peer has the settings, then goes', () => {
    const server = deliveryCore({ channels, followsPings: true })
    let now = 1_000_000
    // The client's first packet (its settings and a ping), answered with a pong and the server's own ping.
    server.receive(Uint8Array.from([0xd1, 0, ...peerSettingsFrame({ channels, followsPings: true }), 0x02, 0, ...varint(now)]), now)
    server.update(now)
    const [ping] = server.take().packets.flatMap(pingFrames)
    expect(ping).toBeDefined()
    // A welcome in the 'connect' handler.
    now += 100
    expect(server.send(0, new Uint8Array(1000).fill(7), now)).toBe('queued')
    server.flush(now)
    let sent = server.take().packets.length
    expect(server.nextDeadlineUs(now)).toBeGreaterThan(now) // the engine is not called again at once
    for (let i = 0; i < 10; i++) {
      now += 100
      server.update(now)
      sent += server.take().packets.length
    }
    expect(sent).toBeLessThanOrEqual(1) // (an ACK that was due)
    expect(server.stats().queuedMessages).toBe(1)
    // The client's pong to the server's ping: it has the settings, and the message goes without them.
    server.receive(Uint8Array.from([0xd1, 1, ...peerSettingsFrame({ channels, followsPings: true }), PONG, ...varint(ping!.id), ...varint(ping!.clockUs), ...varint(now - 500), 0]), now)
    server.flush(now)
    const after = server.take().packets
    expect(after.flatMap(dataFrames)).toEqual([{ channel: 0, sequence: 0, fragment: 0 }])
    for (const packet of after) expect(frameTypes(packet)).not.toContain(SETTINGS)
  })

  it('sends a bounded number of packets to a peer whose packets came with gaps (a long ACK), and never settles into a loop', () => {
    const few = new Array<'reliable'>(24).fill('reliable')
    const server = deliveryCore({ channels: few, followsPings: true, maxMessageBytes: 16 << 20 })
    const settings = peerSettingsFrame({ channels: few, followsPings: true })
    let now = 5_000_000_000
    // The client's packets 0, 2, 4, ...: each with its settings and a PROBE, none a pong.
    for (let pn = 0; pn < 80; pn += 2) {
      now += 1000
      server.receive(Uint8Array.from([0xd1, ...varint(pn), ...settings, 0x04]), now)
      server.update(now)
      server.take()
    }
    now += 100
    expect(server.send(0, new Uint8Array(4000), now)).toBe('queued')
    server.flush(now)
    expect(server.take().packets.length).toBeLessThanOrEqual(2)
    let updates = 0
    for (let deadline = server.nextDeadlineUs(now); deadline <= now + 100_000 && updates < 1000; deadline = server.nextDeadlineUs(now)) {
      now = Math.max(now, deadline)
      server.update(now)
      server.take()
      updates++
    }
    expect(updates).toBeLessThan(10) // the ping timer, not a loop
  })

})
