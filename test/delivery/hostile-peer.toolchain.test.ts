// What a connected peer can make one delivery core hold or do with well-formed packets of its own making:
// packets that never acknowledge, fragments of messages it never completes. Driven sans-IO with
// hand-built packets and a fake clock; costs are read from the core's counters, not from the time taken.
import { describe, expect, it } from 'vitest'
import { type DeliveryOptions, type TestBudget, blockBytes, deliveryCore, fragmentBytes, peerSettingsFrame, reassemblyBudget, varint } from './simulated-link.ts'

/** The fragment flags the reassembly bound counts for a message of `length` bytes (a fragment each). */
const flags = (length: number): number => Math.max(1, Math.ceil(length / fragmentBytes))

// A FRAGMENT frame with the last fragment of a message of `length` bytes: a few bytes on the wire
// whatever the length (lengths of k × 1100 + 1 carry one byte).
const lastFragment = (channel: number, sequence: number, length: number): number[] => {
  const index = Math.floor((length - 1) / fragmentBytes)
  return [0x11, channel, ...varint(sequence), ...varint(length), ...varint(index), ...new Array<number>(length - index * fragmentBytes).fill(7)]
}
const message = (channel: number, sequence: number): number[] => [0x10, channel, ...varint(sequence), 1, 9]
// A packet from the peer of a core made with `options`: its settings first, as a peer that has no pong
// yet sends them (without them the core takes it for a peer without channels, and delivers nothing).
const fromPeer = (options: DeliveryOptions, number: number, frames: number[]): Uint8Array =>
  Uint8Array.from([0xd1, ...varint(number), ...peerSettingsFrame(options), ...frames])
// Packets of about 1,200 bytes, each filled with as many of `frames(k)` (k counting on) as fit.
function packets(options: DeliveryOptions, count: number, firstNumber: number, frames: (k: number) => number[]): Uint8Array[] {
  const out: Uint8Array[] = []
  let k = 0
  for (let p = 0; p < count; p++) {
    const bytes: number[] = []
    while (bytes.length < 1140) bytes.push(...frames(k++))
    out.push(fromPeer(options, firstNumber + p, bytes))
  }
  return out
}

describe('a peer that never acknowledges', () => {
  it('cannot make the records of sent packets grow with each packet it sends', () => {
    // The server's side holds a reliable message the peer never acknowledges; each of the peer's packets
    // (a PROBE, one packet number skipped: a gap) gets an ACK at once, and each ACK a record behind it.
    const options: DeliveryOptions = { channels: ['reliable'], followsPings: true }
    const core = deliveryCore(options)
    let now = 1_000_000
    expect(core.send(0, new Uint8Array(100), now)).toBe('queued')
    core.flush(now)
    core.take()
    let most = 0
    for (let i = 0; i < 40_000; i++) {
      now += 100
      core.receive(fromPeer(options, 2 * i, [0x04]), now)
      core.update(now)
      core.take()
      most = Math.max(most, core.stats(now).sentRecords)
    }
    const stats = core.stats(now)
    expect(stats.packetsOut).toBeGreaterThan(40_000)
    expect(most).toBeLessThanOrEqual(32_768)
    // The unacknowledged message was declared lost and goes again; nothing was acknowledged.
    expect(stats.resends).toBeGreaterThan(0)
    expect(stats.packetsAcked).toBe(0)
  })
})

describe('fragments of messages a peer never completes', () => {
  const maxMessageBytes = 1 << 20
  const big = Math.floor((maxMessageBytes - 1) / fragmentBytes) * fragmentBytes + 1 // within the maximum
  const over = big + fragmentBytes // over it
  const reassemblyLimit = maxMessageBytes + (1 << 20)
  // Each case: the channel and what each frame group does with message k. Before, every group made (and
  // then dropped) a buffer of a whole megabyte for a dozen bytes: 0.4 to 0.8 ms of a thread per packet at
  // this maximum, 8 to 16 ms at 16 MiB.
  const cases = [
    // The message the channel delivers next, started in fragments, then passed over as oversized.
    { name: 'reliable, passed over', mode: 'reliable', frames: (k: number) => [...lastFragment(0, k, big), ...lastFragment(0, k, over)] },
    // The same, then delivered whole.
    { name: 'reliable, sent whole', mode: 'reliable', frames: (k: number) => [...lastFragment(0, k, big), ...message(0, k)] },
    // Each message evicts the last one's partial slot (the others hold the peer's small messages).
    { name: 'unreliable, evicted', mode: 'unreliable', frames: (k: number) => lastFragment(0, k, big) },
    // Each message is passed by a newer whole one.
    { name: 'sequenced, passed', mode: 'sequenced', frames: (k: number) => [...lastFragment(0, 2 * k, big), ...message(0, 2 * k + 1)] },
  ] as const
  for (const { name, mode, frames } of cases) {
    it(`make buffers of no more than twice the data it sent beyond the bound (${name})`, () => {
      const options: DeliveryOptions = { channels: [mode], maxMessageBytes }
      const core = deliveryCore(options)
      let now = 1_000_000
      // Seven small messages, never completed, at sequences above the attack's: the eviction's oldest is its own.
      const small = Array.from({ length: 7 }, (_, k) => lastFragment(0, 1_000_000 + k, fragmentBytes + 1)).flat()
      if (mode === 'unreliable') core.receive(fromPeer(options, 0, small), now)
      for (const packet of packets(options, 50, 1, frames)) core.receive(packet, (now += 100))
      const stats = core.stats(now)
      expect(stats.reassemblyMade).toBeLessThanOrEqual(maxMessageBytes + reassemblyLimit + 2 * stats.bytesIn)
    })
  }
})

describe('a late fragment of an older message, every partial slot taken by newer ones', () => {
  it('gives way itself: the newer incomplete messages are kept and complete', () => {
    // Eight messages of two fragments each started (the channel's eight partial slots), then the first
    // fragment of an older one (reordered, or a straggler): it evicted the oldest of the eight, which then
    // could not complete either.
    const options: DeliveryOptions = { channels: ['unreliable'] }
    const core = deliveryCore(options)
    const length = fragmentBytes + 1
    const fragment = (sequence: number, index: number): number[] => [0x11, 0, ...varint(sequence), ...varint(length), ...varint(index), ...new Array<number>(index === 0 ? fragmentBytes : 1).fill(sequence)]
    let number = 0
    const now = 1_000_000
    for (let sequence = 10; sequence < 18; sequence++) core.receive(fromPeer(options, number++, fragment(sequence, 0)), now)
    core.receive(fromPeer(options, number++, fragment(5, 0)), now)
    core.receive(fromPeer(options, number++, fragment(5, 1)), now)
    expect(core.stats(now).expiredFragments).toBe(1) // the straggler, once (not once for each of its fragments)
    for (let sequence = 10; sequence < 18; sequence++) core.receive(fromPeer(options, number++, fragment(sequence, 1)), now)
    expect(core.take().messages.map((m) => m.data[0])).toEqual([10, 11, 12, 13, 14, 15, 16, 17]) // without 10 before
  })
})

describe('incomplete unreliable messages on many channels', () => {
  const channels = 255
  const options: DeliveryOptions = { channels: ['reliable', ...Array.from({ length: channels - 1 }, () => 'unreliable' as const)] }
  const fragmentFrame = (channel: number, sequence: number, length: number, index: number): number[] => [
    0x11, channel, ...varint(sequence), ...varint(length), ...varint(index),
    ...new Array<number>(Math.min(fragmentBytes, length - index * fragmentBytes)).fill(5),
  ]

  it('cannot make each packet walk every channel\'s slots while the bound is full and one message is kept going', () => {
    // The bound (2 MiB) filled by two reliable messages after one never sent, an unreliable message on
    // channel 1 given a fragment every 300 ms, and frames starting messages on the other channels, each
    // refused for the bound: each frame walked the slots of all 255 channels for an idle message to evict
    // (230 µs a packet), though none could be idle. Now they are walked once one may be (idle: 250 ms or 4
    // smoothed round trips, 400 ms here), so at most once for each fragment that kept one going: a full one
    // but for a message's last, 1,100 bytes of the peer's data a walk.
    const core = deliveryCore(options)
    let now = 1_000_000
    let number = 0
    const kept = 20 * fragmentBytes + 1 // 21 fragments: incomplete throughout
    // The third fills the bound to the byte: it counts each message's bytes, a flag per fragment, and a held
    // message's overhead.
    const { heldMessageBytes } = core.stats(now)
    let third = (1 << 20) - kept - 3 * heldMessageBytes - flags(kept) - flags(1 << 20)
    third -= flags(third)
    core.receive(fromPeer(options, number++, fragmentFrame(1, 100, kept, 0)), now)
    core.receive(fromPeer(options, number++, fragmentFrame(0, 1, 1 << 20, 0)), now)
    core.receive(fromPeer(options, number++, fragmentFrame(0, 2, third, 0)), now)
    expect(core.stats(now)).toMatchObject({ reassemblyUsed: kept + (1 << 20) + third, overBudget: 0 })
    const slotsBefore = core.stats(now).queueSlots
    let frames = 0
    for (let k = 0; k < 1000; k++) {
      now += 3000
      const attack: number[] = []
      if (k % 100 === 99) attack.push(...fragmentFrame(1, 100, kept, 1 + Math.floor(k / 100)))
      for (let c = 2; attack.length < 600; c = c === channels - 1 ? 2 : c + 1, frames++) attack.push(...fragmentFrame(c, 0, fragmentBytes + 2, 1))
      core.receive(fromPeer(options, number++, attack), now)
    }
    const stats = core.stats(now)
    expect(stats.overBudget).toBe(frames)
    expect(stats.expiredFragments).toBe(0) // the message kept going stays
    expect(stats.partialScans).toBeGreaterThan(0)
    expect(stats.partialScans).toBeLessThanOrEqual(10) // for 74,000 frames in 3 s
    expect(stats.queueSlots).toBe(slotsBefore) // refused messages leave no slots behind
    // Once it is idle, the next message that does not fit evicts it, and takes its place.
    now += 500_000
    core.receive(fromPeer(options, number++, fragmentFrame(2, 0, fragmentBytes + 2, 1)), now)
    expect(core.stats(now)).toMatchObject({ expiredFragments: 1, overBudget: frames })
  })

  it('gives back the slots of a channel that has none left', () => {
    // A frame on each unreliable channel made 8 slots on each (130 kB on 254 channels for 2 kB from the
    // peer), kept for good after their messages expired, and counted nowhere.
    const core = deliveryCore(options)
    const now = 1_000_000
    const slotsBefore = core.stats(now).queueSlots
    let number = 0
    for (let first = 1; first < channels; first += 100) {
      const frames: number[] = []
      for (let c = first; c < Math.min(first + 100, channels); c++) frames.push(...fragmentFrame(c, 0, fragmentBytes + 2, 1))
      core.receive(fromPeer(options, number++, frames), now)
    }
    expect(core.stats(now).queueSlots).toBe(slotsBefore + 8 * (channels - 1)) // counted while in use
    core.update(now + 5_000_000) // the messages expire (5 s)
    const stats = core.stats(now + 5_000_000)
    expect(stats).toMatchObject({ expiredFragments: channels - 1, reassemblyUsed: 0 })
    expect(stats.queueSlots).toBe(slotsBefore)
    // And a message that completes gives them back too.
    core.receive(fromPeer(options, number++, [...fragmentFrame(3, 1, fragmentBytes + 2, 0), ...fragmentFrame(3, 1, fragmentBytes + 2, 1)]), now + 5_000_100)
    expect(core.take().messages).toHaveLength(1)
    expect(core.stats(now + 5_000_100).queueSlots).toBe(slotsBefore)
  })
})

describe('reliable queues drained channel after channel', () => {
  it('cannot make each give-back of their slots walk every channel', () => {
    // The bound full but for one queue's growth (two reliable messages held after one never sent); then on
    // each channel in turn a message past the queue's first slots (it grows) and the ones before it (it
    // drains, keeping the slots). Each growth found the last channel's slots to give back, and walked all 255
    // channels to find them: 11.6-13.4 µs a packet of such frames against 4.2-4.3 µs with two channels
    // (bench/results/delivery-costs-drained-2026-11-26T2350.txt). Now it looks at the channels whose queue
    // drained: 5.3-5.5 µs.
    const channels = 255
    const options: DeliveryOptions = { channels: new Array<'reliable'>(channels).fill('reliable') }
    const core = deliveryCore(options)
    const now = 1_000_000
    const { receiveSlotBytes, heldMessageBytes } = core.stats(now)
    const firstSlots = 4
    const room = firstSlots * receiveSlotBytes + heldMessageBytes + 64 // a queue's growth and a message held in it
    let second = (1 << 20) - room - 2 * heldMessageBytes - flags(1 << 20)
    second -= flags(second)
    core.receive(fromPeer(options, 0, [...lastFragment(0, 1, 1 << 20), ...lastFragment(0, 2, second)]), now)
    expect(core.stats(now)).toMatchObject({ reassemblyUsed: (1 << 20) + second, overBudget: 0 })
    let cycles = 0
    const cycle = (k: number): number[] => {
      cycles++
      const channel = 1 + (k % (channels - 1))
      const base = Math.floor(k / (channels - 1)) * (firstSlots + 1)
      return [...message(channel, base + firstSlots), ...Array.from({ length: firstSlots }, (_, s) => message(channel, base + s)).flat()]
    }
    // Packets of 1,200 bytes: the settings of 255 channels take 260 of them.
    const frameRoom = 1200 - fromPeer(options, 100, []).length
    for (let number = 1, k = 0; number <= 100; number++) {
      const frames: number[] = []
      while (frames.length + 40 <= frameRoom) frames.push(...cycle(k++))
      core.receive(fromPeer(options, number, frames), now + 1000)
    }
    const stats = core.stats(now + 1000)
    expect(stats.malformed).toBe(0)
    expect(core.take().messages).toHaveLength(cycles * (firstSlots + 1)) // every one delivered, in order per channel
    expect(stats.overBudget).toBe(0)
    expect(stats.countsAgree).toBe(true)
    // A give-back for each growth but the first; each looked at the one channel drained since the last.
    expect(stats.queueGiveBacks).toBe(cycles - 1)
    expect(stats.queueSlots * receiveSlotBytes + stats.reassemblyUsed).toBeLessThanOrEqual((2 << 20) + channels * firstSlots * receiveSlotBytes)
  })
})

describe('messages of a byte held on every reliable channel', () => {
  it("count against the bound with their flags and a held message's overhead, not their bytes alone", () => {
    // A peer holds back each reliable channel's next message and sends the ones after it, a byte each: held
    // out of order, 1,023 a channel. Counted as their bytes alone, 40 channels held 32,768 of them for a
    // bound of 2 MiB: 3.2 MB natively and 16.9 MB on the fallback engine, whose objects cost more.
    const channels = 40
    const options: DeliveryOptions = { channels: new Array<'reliable'>(channels).fill('reliable') }
    const core = deliveryCore(options)
    const now = 1_000_000
    let number = 0
    const frameRoom = 1150 - fromPeer(options, 0, []).length
    for (let channel = 0; channel < channels; channel++) {
      for (let sequence = 1; sequence < 1024; ) {
        const frames: number[] = []
        while (frames.length + 8 <= frameRoom && sequence < 1024) frames.push(...message(channel, sequence++))
        core.receive(fromPeer(options, number++, frames), now)
      }
    }
    const stats = core.stats(now)
    const { receiveSlotBytes, heldMessageBytes, reassemblyHeld, queueSlots } = stats
    const held = reassemblyHeld / 2 // a byte and a fragment flag each
    const bound = (1 << 20) + (1 << 20)
    expect(held).toBeGreaterThan(1000) // taken until the bound was full...
    expect(stats.overBudget).toBeGreaterThan(0) // ...and refused beyond it
    expect(held * (2 + heldMessageBytes) + queueSlots * receiveSlotBytes).toBeLessThanOrEqual(bound + channels * 4 * receiveSlotBytes)
    expect(heldMessageBytes).toBeGreaterThanOrEqual(200) // what a held message's buffer costs the fallback engine beyond its bytes
    expect(receiveSlotBytes).toBeGreaterThanOrEqual(120) // and a slot
    expect(stats.countsAgree).toBe(true)
  })
})

describe('copies of packets older than what the receiver remembers', () => {
  it('stay forgotten once a late packet merges two ranges of the record: an unreliable message is not delivered twice', () => {
    // The record keeps 64 ranges of packet numbers. It took a number as forgotten only while it held 64:
    // packet 3, filling the gap between 2 and 4, left 63, and a copy of packet 0 was new again.
    const options: DeliveryOptions = { channels: ['unreliable'], followsPings: true }
    const core = deliveryCore(options)
    const now = 1_000_000
    for (let number = 0; number <= 128; number += 2) core.receive(fromPeer(options, number, message(0, number)), now)
    core.receive(fromPeer(options, 0, message(0, 0)), now) // 65 ranges: packet 0's forgotten
    core.receive(fromPeer(options, 3, message(0, 3)), now)
    core.receive(fromPeer(options, 0, message(0, 0)), now)
    expect(core.take().messages).toHaveLength(65 + 1)
    expect(core.stats(now)).toMatchObject({ forgottenPackets: 2, duplicatePackets: 0 })
  })
})

describe('the next message of every reliable channel', () => {
  it('is taken past the reassembly bound as the data pays for it, one message a channel and nothing more', () => {
    // Five reliable channels, each sent the last fragment of its next message (about 1 MiB): a few bytes
    // each. The bound (the largest message plus 1 MiB) takes two; past it each channel's next message goes
    // as the peer's data pays for it, twice its bytes, from a bound's worth at the start: two more. A
    // message behind any of them is refused.
    const maxMessageBytes = 1 << 20
    // Room for two in the bound beside their flags and overheads.
    const big = Math.floor((maxMessageBytes - 4096) / fragmentBytes) * fragmentBytes + 1
    const channels = [0, 1, 2, 3, 4]
    const options: DeliveryOptions = { channels: channels.map(() => 'reliable' as const), maxMessageBytes }
    const core = deliveryCore(options)
    core.receive(fromPeer(options, 0, channels.flatMap((channel) => lastFragment(channel, 0, big))), 1_000_000)
    expect(core.stats(1_000_000).reassemblyUsed).toBe(4 * big)
    core.receive(fromPeer(options, 1, channels.flatMap((channel) => lastFragment(channel, 1, big))), 1_000_100)
    const stats = core.stats(1_000_100)
    expect(stats.reassemblyUsed).toBe(4 * big) // within the bound + one message of each reliable channel
    expect(stats.overBudget).toBe(1 + 5)
  })

  it('is not taken faster than twice the data beyond the bound, nor made ahead of it: a first fragment on each of 16 channels of 16 MiB', () => {
    // A packet a channel, 1,100 bytes of data each, made a buffer of 16 MiB on each (256 MiB, zeroed, for
    // 18 kB): now the bound's worth (17 MiB) is taken, one more on its first credit, then twice the bytes
    // sent; and of what is taken, only the block each fragment falls in is made.
    const maxMessageBytes = 16 << 20
    const reassemblyLimit = maxMessageBytes + (1 << 20)
    const channels = Array.from({ length: 16 }, (_, channel) => channel)
    const options: DeliveryOptions = { channels: channels.map(() => 'reliable' as const), maxMessageBytes }
    const core = deliveryCore(options)
    let now = 1_000_000
    const firstFragment = (channel: number): number[] => [0x11, channel, ...varint(0), ...varint(maxMessageBytes), ...varint(0), ...new Array<number>(fragmentBytes).fill(3)]
    for (const channel of channels) core.receive(fromPeer(options, channel, firstFragment(channel)), (now += 100))
    const stats = core.stats(now)
    expect(stats.reassemblyUsed).toBe(2 * maxMessageBytes)
    expect(stats.reassemblyUsed).toBeLessThanOrEqual(reassemblyLimit + reassemblyLimit + 2 * stats.bytesIn)
    expect(stats.reassemblyMade).toBe(2 * blockBytes) // a block of 16 fragments each, for their first
    expect(stats.reassemblyHeld).toBeLessThan(2 * blockBytes + 2 * 16 * Math.ceil(maxMessageBytes / blockBytes)) // and its table
    expect(stats.overBudget).toBe(14)
  })
})

describe('copies of a fragment the receiver has already', () => {
  it("earn no credit: they cannot buy another channel's next message past the bound", () => {
    // Three reliable channels of 16 MiB messages (a bound of 17 MiB). The first fragment of channel 0's next
    // message fits the bound, channel 1's is taken on the credit a peer starts with; channel 2's waits for
    // credit that new data brings. Copies of channel 0's stored fragment, each in a new packet, bought it
    // (about 7,200 of 1,100 bytes made 16 MiB more, held for as long as the connection lasted).
    const maxMessageBytes = 16 << 20
    const options: DeliveryOptions = { channels: ['reliable', 'reliable', 'reliable'], maxMessageBytes }
    const core = deliveryCore(options)
    const firstFragment = (channel: number): number[] => [0x11, channel, ...varint(0), ...varint(maxMessageBytes), ...varint(0), ...new Array<number>(fragmentBytes).fill(3)]
    let number = 0
    const now = 1_000_000
    for (const channel of [0, 1]) core.receive(fromPeer(options, number++, firstFragment(channel)), now)
    expect(core.stats(now).reassemblyUsed).toBe(2 * maxMessageBytes)
    for (let copy = 0; copy < 8000; copy++) core.receive(fromPeer(options, number++, firstFragment(0)), now)
    expect(core.stats(now).duplicateMessages).toBe(8000)
    core.receive(fromPeer(options, number++, firstFragment(2)), now)
    const stats = core.stats(now)
    expect(stats.reassemblyUsed).toBe(2 * maxMessageBytes) // it was 3 × 16 MiB: the copies paid for channel 2's
    expect(stats.overBudget).toBe(1)
  })
})

describe('buffers of messages that are done', () => {
  it('go back with each message: a peer cannot leave memory outside the bound in slots it freed', () => {
    // The last fragment of 8 messages of 64 KiB on each sequenced channel (a few hundred bytes each made a
    // 64 KiB buffer; now the block it falls in), then a newer whole message, which frees the 8: kept in their
    // slots, those buffers were 512 KiB a channel that reassemblyUsed did not count, for a few KiB from the peer.
    // Three channels: within the credit a peer starts with for unreliable data (2 MiB).
    const channels = ['reliable', 'sequenced', 'sequenced', 'sequenced'] as const
    const options: DeliveryOptions = { channels: [...channels] }
    const core = deliveryCore(options)
    let number = 0
    for (let channel = 1; channel < channels.length; channel++) {
      for (let sequence = 1; sequence <= 8; sequence++) {
        core.receive(fromPeer(options, number++, lastFragment(channel, sequence, 65_536)), 1000)
      }
      // The 8 in the making: the block each last fragment falls in (and each message's table), not 64 KiB each.
      const lastBlock = 65_536 - Math.floor(65_535 / blockBytes) * blockBytes
      expect(core.stats(1000).reassemblyHeld).toBe(8 * (lastBlock + 16 * (Math.ceil(65_536 / blockBytes) - 1)))
      core.receive(fromPeer(options, number++, message(channel, 100)), 1000)
      expect(core.stats(1000)).toMatchObject({ reassemblyUsed: 0, reassemblyHeld: 0 })
    }
    expect(core.take().messages).toHaveLength(channels.length - 1)
  })

  it('of reliable messages delivered out of order too', () => {
    const options: DeliveryOptions = { channels: ['reliable'] }
    const core = deliveryCore(options)
    // Messages 1 to 20 of 30 KB each, their fragments in reverse order, and then message 0: all delivered.
    let number = 0
    const length = 27 * fragmentBytes + 1
    for (let sequence = 20; sequence >= 0; sequence--) {
      for (let index = 27; index >= 0; index--) {
        const size = index === 27 ? 1 : fragmentBytes
        const frame = [0x11, 0, ...varint(sequence), ...varint(length), ...varint(index), ...new Array<number>(size).fill(sequence)]
        core.receive(fromPeer(options, number++, frame), 1000)
      }
    }
    const delivered = core.take().messages
    expect(delivered).toHaveLength(21)
    expect(core.stats(1000)).toMatchObject({ reassemblyUsed: 0, reassemblyHeld: 0 })
  })
})

describe('memory made as fragments come', () => {
  it('holds the blocks its fragments fell in, not the length a message announces: 16 MiB announced, a block made', () => {
    const maxMessageBytes = 16 << 20
    const options: DeliveryOptions = { channels: ['reliable', 'reliable'], maxMessageBytes }
    const core = deliveryCore(options)
    // What an attacker sent: the second fragment of each channel's next message, announced at 16 MiB. It
    // made and zero-filled 32 MiB for two packets.
    core.receive(fromPeer(options, 0, [0x11, 0, ...varint(0), ...varint(maxMessageBytes), ...varint(1), ...new Array<number>(fragmentBytes).fill(1)]), 1000)
    core.receive(fromPeer(options, 1, [0x11, 1, ...varint(0), ...varint(maxMessageBytes), ...varint(1), ...new Array<number>(fragmentBytes).fill(2)]), 1000)
    const stats = core.stats(1000)
    expect(stats.reassemblyUsed).toBe(2 * maxMessageBytes) // taken against the bound as before
    expect(stats.reassemblyMade).toBe(2 * blockBytes)
    const table = 16 * (Math.ceil(maxMessageBytes / blockBytes) - 1)
    expect(stats.reassemblyHeld).toBe(2 * (blockBytes + table))
  })

  it('delivers a message whose fragments came in any order, its blocks joined, byte for byte', () => {
    const options: DeliveryOptions = { channels: ['reliable'], maxMessageBytes: 1 << 20 }
    const core = deliveryCore(options)
    const length = 3 * blockBytes + 777 // four blocks, the last short
    const fragments = Math.ceil(length / fragmentBytes)
    const order = Array.from({ length: fragments }, (_, i) => (i * 37) % fragments) // every index once, scattered
    expect(new Set(order).size).toBe(fragments)
    const byte = (at: number): number => (at * 7 + (at >> 8)) & 255
    let number = 0
    for (const index of order) {
      const size = Math.min(fragmentBytes, length - index * fragmentBytes)
      const data = Array.from({ length: size }, (_, i) => byte(index * fragmentBytes + i))
      core.receive(fromPeer(options, number++, [0x11, 0, ...varint(0), ...varint(length), ...varint(index), ...data]), 1000 + number)
    }
    const [message] = core.take().messages
    expect(message!.data.byteLength).toBe(length)
    expect(message!.data.every((value, at) => value === byte(at))).toBe(true)
    expect(core.stats(10_000)).toMatchObject({ reassemblyUsed: 0, reassemblyHeld: 0, reassemblyMade: 4 * blockBytes - (blockBytes - 777), countsAgree: true })
  })
})

describe('a reliable message the peer stops sending', () => {
  const maxMessageBytes = 16 << 20
  const reliableStallUs = 20_000_000
  const options: DeliveryOptions = { channels: ['reliable'], maxMessageBytes, reliableStallUs }
  const fragment = (index: number): number[] => [0x11, 0, ...varint(0), ...varint(maxMessageBytes), ...varint(index), ...new Array<number>(fragmentBytes).fill(index & 255)]

  it('stalls the connection reliableStallUs after its last new fragment, copies not counting: what it held goes, nothing more is taken', () => {
    const core = deliveryCore(options)
    const t0 = 1_000_000
    core.receive(fromPeer(options, 0, fragment(1)), t0)
    expect(core.nextDeadlineUs(t0)).toBeLessThanOrEqual(t0 + reliableStallUs)
    core.receive(fromPeer(options, 1, fragment(2)), t0 + 5_000_000) // a new fragment
    for (let copy = 0; copy < 40; copy++) core.receive(fromPeer(options, 2 + copy, fragment(2)), t0 + 5_000_000 + copy * 500_000) // copies of it
    core.update(t0 + 5_000_000 + reliableStallUs - 1)
    expect(core.stalled()).toBe(false)
    expect(core.nextDeadlineUs(t0 + 5_000_000 + reliableStallUs - 1)).toBe(t0 + 5_000_000 + reliableStallUs)
    core.update(t0 + 5_000_000 + reliableStallUs)
    expect(core.stalled()).toBe(true)
    expect(core.stats(t0)).toMatchObject({ reassemblyUsed: 0, reassemblyHeld: 0, countsAgree: true })
    core.receive(fromPeer(options, 50, [...fragment(0), 0x10, 0, ...varint(1), 1, 9]), t0 + 40_000_000)
    expect(core.stats(t0)).toMatchObject({ reassemblyUsed: 0, messagesIn: 0 })
  })

  it('never stalls one whose peer keeps sending it, however slowly, nor one with no message incomplete', () => {
    const core = deliveryCore(options)
    let now = 1_000_000
    for (let index = 0; index < 10; index++) {
      core.receive(fromPeer(options, index, fragment(index)), now)
      now += reliableStallUs - 1
      core.update(now)
    }
    expect(core.stalled()).toBe(false)
    const idle = deliveryCore(options)
    idle.receive(fromPeer(options, 0, [0x10, 0, ...varint(0), 1, 9]), 1000) // a whole message, delivered
    idle.update(1000 + 10 * reliableStallUs)
    expect(idle.stalled()).toBe(false)
  })
})

describe('connections sharing a reassembly budget', () => {
  const maxMessageBytes = 16 << 20
  const options = (budget: TestBudget): DeliveryOptions => ({ channels: ['reliable', 'unreliable'], maxMessageBytes, budget })
  const start = (channel: number, index = 0): number[] => [0x11, channel, ...varint(0), ...varint(maxMessageBytes), ...varint(index), ...new Array<number>(fragmentBytes).fill(4)]
  const cost = maxMessageBytes + Math.ceil(maxMessageBytes / fragmentBytes) + 256 // HeldCost

  it('take what their messages take from it; one that does not fit waits while the holder is sending, then evicts it once idle a second', () => {
    const budget = reassemblyBudget(cost + (1 << 20))
    const a = deliveryCore(options(budget))
    const b = deliveryCore(options(budget))
    a.receive(fromPeer(options(budget), 0, start(0)), 1_000_000)
    expect(budget.used()).toBe(cost)
    expect(a.stats(1_000_000).budgetHeld).toBe(cost)
    // b's next message does not fit beside it, and a sent a fragment half a second ago: b's is refused.
    a.receive(fromPeer(options(budget), 1, start(0, 1)), 1_500_000)
    b.receive(fromPeer(options(budget), 0, start(0)), 2_000_000)
    expect(b.stats(2_000_000)).toMatchObject({ reassemblyUsed: 0, overBudget: 1 })
    expect(budget.refusals()).toBe(1)
    expect(a.stalled()).toBe(false)
    // Sent again once a has been idle a second: a is evicted (its reliable message was lost: it stalls), and b's starts.
    b.receive(fromPeer(options(budget), 1, start(0)), 2_500_000)
    expect(a.stalled()).toBe(true)
    expect(a.stats(2_500_000)).toMatchObject({ reassemblyUsed: 0, budgetHeld: 0, countsAgree: true })
    expect(b.stats(2_500_000)).toMatchObject({ reassemblyUsed: maxMessageBytes, budgetHeld: cost, countsAgree: true })
    expect(budget.used()).toBe(cost)
    expect(budget.evictions()).toBe(1)
  })

  it('evict only the incomplete unreliable messages of a connection that holds no reliable one: it goes on', () => {
    const budget = reassemblyBudget(cost + (1 << 20))
    const a = deliveryCore(options(budget))
    const b = deliveryCore(options(budget))
    a.receive(fromPeer(options(budget), 0, start(1)), 1_000_000)
    expect(budget.used()).toBe(cost)
    b.receive(fromPeer(options(budget), 0, start(0)), 2_000_000)
    expect(a.stalled()).toBe(false)
    expect(a.stats(2_000_000)).toMatchObject({ reassemblyUsed: 0, budgetHeld: 0, expiredFragments: 1, countsAgree: true })
    a.receive(fromPeer(options(budget), 1, [0x10, 0, ...varint(0), 1, 9]), 2_000_000)
    expect(a.take().messages).toHaveLength(1)
    expect(budget.used()).toBe(cost) // b's
  })

  it('give back what a message took once it is delivered', () => {
    const budget = reassemblyBudget(cost)
    const core = deliveryCore(options(budget))
    const length = fragmentBytes + 1
    core.receive(fromPeer(options(budget), 0, [0x11, 0, ...varint(0), ...varint(length), ...varint(1), 5]), 1000)
    expect(budget.used()).toBe(length + 2 + 256)
    core.receive(fromPeer(options(budget), 1, [0x11, 0, ...varint(0), ...varint(length), ...varint(0), ...new Array<number>(fragmentBytes).fill(6)]), 2000)
    expect(core.take().messages.map((m) => m.data.byteLength)).toEqual([length])
    expect(budget.used()).toBe(0)
    expect(core.stats(2000)).toMatchObject({ budgetHeld: 0, countsAgree: true })
  })
})
