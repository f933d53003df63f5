// While JavaScript holds every receive slab (the engine is starved), a raw socket stops reading: what
// arrives waits in the kernel's buffer, and past it is dropped and counted there. A protocol socket must
// do the same: its records wait in memory (ProtocolOutput::records) until slab space frees up, so reading
// on while starved grows that memory with whatever the peer sends for as long as JavaScript is busy.
// What the kernel drops meanwhile, the server counts (stats().drops.receiveBufferFull).
import { describe, expect, it } from 'vitest'
import { Client, Server, generateConnectToken } from '../../src/index.ts'
import { waitFor } from '../helpers.ts'

const privateKey = new Uint8Array(32).fill(3)
const protocolId = 0x1234n

describe('a starved engine and its protocol sockets', () => {
  it('stops reading a protocol socket while every receive slab is held', async () => {
    // 8 receive slabs of 256 KiB (the default limits) hold ~1,700 records of 1,200-byte payloads; the
    // kernel's buffer (128 KiB) a few dozen datagrams more.
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 2, engine: 'dedicated', recvBufferSize: 64 << 10, disconnectIntervalMs: 5 })
    const { port } = await server.listen()
    let received = 0
    server.on('message', () => received++)
    // The client's simulated link paces its datagrams (~8,000 a second), so they keep arriving while the
    // server's JavaScript is busy.
    const client = new Client({ engine: 'dedicated', disconnectIntervalMs: 5, networkSimulator: { bandwidthBytesPerSec: 10_000_000, seed: 1 } })
    await client.connect(
      await generateConnectToken({ protocolId, privateKey, clientId: 1n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 }),
    )
    await waitFor(() => server.peers.size === 1)
    const before = server.stats().packets.in
    const clientOutBefore = client.stats().packets.out
    const payload = Buffer.alloc(1200)
    let sent = 0
    for (; sent < 6000 && client.send(payload); sent++);
    expect(sent).toBeGreaterThan(5000)
    await Promise.resolve() // the client's flush of its last, partly filled slab (a microtask) has run
    // Busy: nothing is drained, so the slabs the server's engine fills stay held. For the second its
    // simulated link takes to send all of it (~0.75 s), and at least until the server's engine has filled
    // its slabs (so that it was starved while datagrams kept coming, however slow this machine is), and until
    // the client has sent them all (so that how many the kernel dropped does not hang on how fast its thread ran).
    const started = Date.now()
    const starved = () => server.stats().packets.in - before >= 1500
    const allSent = () => client.stats().packets.out - clientOutBefore >= sent
    while ((Date.now() < started + 1000 || !starved() || !allSent()) && Date.now() < started + 4000) {
      // the client's I/O thread sends what was queued; the server's reads it
    }
    const readWhileStarved = server.stats().packets.in - before
    expect(readWhileStarved).toBeGreaterThanOrEqual(1500) // the slabs filled up: it was starved
    expect(received).toBe(0)
    // Slab capacity + one batch + the kernel's buffer; before the fix the engine read every datagram
    // (~6,000) into memory.
    expect(readWhileStarved).toBeLessThan(2_200)
    // Nothing is lost once JavaScript is back: what was read reaches it.
    await waitFor(() => received >= readWhileStarved, 5000, 'the records read while starved')
    // Nor silently lost: every datagram the client sent was read by the server or counted as dropped by the
    // kernel (the server's receive buffer was full while it was starved).
    const accounted = () => server.stats().packets.in + server.stats().drops.receiveBufferFull
    await waitFor(() => accounted() === client.stats().packets.out, 5000, () => `${client.stats().packets.out} datagrams accounted for (${accounted()})`)
    const dropped = () => server.stats().drops.receiveBufferFull
    expect(dropped()).toBeGreaterThan(1000)
    // Every payload that was read reaches JavaScript: with those the kernel dropped, all that were sent.
    await waitFor(() => received + dropped() >= sent, 5000, () => `${sent} payloads accounted for (${received} received, ${dropped()} dropped)`)
    expect(client.stats().drops.receiveBufferFull).toBe(0)
    await client.close()
    await server.close()
  }, 20_000)
})
