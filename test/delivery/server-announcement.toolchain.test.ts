// How a client without channels reads a server's announcement (src/api/channels-hint.ts, with the WebAssembly
// delivery core's receive path), fed the packets the native delivery core (the test bindings' addon) sends.
import { describe, expect, it } from 'vitest'
import { serverAnnouncement } from '../../src/api/channels-hint.ts'
import { ChannelModeCode } from '../../src/protocol/delivery/wire-format.ts'
import { deliveryCore } from './simulated-link.ts'

describe('a client without channels whose server has them', () => {
  // Two cores' packets: the announcement as a server's and a client's delivery layer send it.
  function announcement(followsPings: boolean, channels: ('reliable' | 'unreliable' | 'sequenced')[]): Uint8Array {
    const core = deliveryCore({ followsPings, channels, maxMessageBytes: 4096 })
    core.announceSettings(1000, 1)
    const { packets } = core.take()
    expect(packets.length).toBeGreaterThan(0)
    return packets[0]!
  }

  it("reads a server's announcement with the delivery layer's own receive path, and nothing else", () => {
    const server = announcement(true, ['reliable', 'sequenced'])
    expect(serverAnnouncement(server)).toMatchObject({ maxMessageBytes: 4096, channels: [ChannelModeCode.reliable, ChannelModeCode.sequenced] })
    // A client's own announcement echoed back (an echo server), a truncated one, one with a byte changed
    // into an unknown mode, a raw payload with the marker byte, and an empty one: no server's channels.
    expect(serverAnnouncement(announcement(false, ['reliable']))).toBeNull()
    expect(serverAnnouncement(server.subarray(0, server.byteLength - 1))).toBeNull()
    const badMode = server.slice()
    badMode[badMode.lastIndexOf(ChannelModeCode.sequenced)] = 9
    expect(serverAnnouncement(badMode)).toBeNull()
    expect(serverAnnouncement(Uint8Array.of(0xd1, 0x00, 0x05, 0x07))).toBeNull()
    expect(serverAnnouncement(new Uint8Array(0))).toBeNull()
  })
})
