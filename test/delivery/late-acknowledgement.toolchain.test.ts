// The native delivery core credits a packet declared lost whose acknowledgement comes late, after its
// records of sent packets have started over (they do when their lists of fragments hold more than 64 KiB of
// capacity): the declared loss keeps the fragments it carried itself, so the credit does not depend on a
// record that may be gone.
import { describe, expect, it } from 'vitest'
import { dataFrames, deliveryCore, varint } from './simulated-link.ts'

describe('a packet declared lost and acknowledged late', () => {
  it('is credited after the records of sent packets started over: its messages wait no more', () => {
    const core = deliveryCore({ channels: ['reliable'], reliableWindow: 65_536 })
    let now = 1_000_000
    for (let i = 0; i < 2500; i++) core.send(0, new Uint8Array(0), now)
    core.flush(now)
    expect(core.take().packets).toHaveLength(10)
    const heldBefore = core.stats(now).sentRecordsHeld
    expect(heldBefore).toBeGreaterThan(64 * 1024)
    const peerSettings = [0x05, 1, ...varint(1 << 20), 1, 1]
    const ack = (largest: number, firstRange: number, more: number[] = []) => [0x01, ...varint(largest), 0, ...varint(firstRange), ...varint(more.length / 2), ...more]
    now += 50_000
    // Every packet but 1 acknowledged: 1 is declared lost (3 later ones are acknowledged), everything else is settled.
    core.receive(Uint8Array.from([0xd1, 0, ...peerSettings, ...ack(9, 7, [0, 0])]), now)
    expect(core.stats(now).packetsLost).toBe(1)
    core.flush(now)
    const resends = core.take().packets
    const { resends: resent, sentRecordsHeld } = core.stats(now)
    expect(resent).toBeGreaterThan(0)
    expect(sentRecordsHeld).toBeLessThan(heldBefore) // the records started over
    now += 1000
    core.receive(Uint8Array.from([0xd1, 1, ...ack(9, 9)]), now)
    const stats = core.stats(now)
    expect(stats.spuriousLosses).toBe(1)
    // What waits is what went out with the resends for the first time, never acknowledged: packet 1's messages are done.
    const framesSent = resends.reduce((sum, packet) => sum + dataFrames(packet).length, 0)
    expect(stats.queuedMessages).toBe(framesSent - resent)
    expect(stats.countsAgree).toBe(true)
  })
})
