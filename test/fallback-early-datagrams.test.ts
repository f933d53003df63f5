// A fallback Server reads from its bind on, before its protocol is made: the first listen() of a process
// waits for libsodium-wrappers to load (here held 300 ms), and node:dgram dropped what came meanwhile,
// uncounted, where the native engine reads it all.
import dgram from 'node:dgram'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Server } from '../src/index.ts'
import { freeUdpPort, onEngine } from './helpers.ts'

vi.mock('../src/protocol/netcode/sodium.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../src/protocol/netcode/sodium.ts')>()
  return { ...original, loadSodium: () => new Promise((resolve) => setTimeout(resolve, 300)).then(() => original.loadSodium()) }
})

const opened: { close(): Promise<void> }[] = []
afterEach(async () => {
  for (const each of opened.splice(0)) await each.close()
})

describe('a fallback server whose protocol is still being made', () => {
  it('keeps the datagrams that came since its bind, and takes them once it is made', async () => {
    const port = await freeUdpPort()
    const server = new Server({ protocolId: 1n, privateKey: new Uint8Array(32).fill(5), address: `127.0.0.1:${port}` })
    opened.push(server)
    const sender = dgram.createSocket('udp4')
    opened.push({ close: () => new Promise<void>((resolve) => sender.close(() => resolve())) })
    // One stray datagram every 10 ms from before the bind: those before it are refused by the kernel.
    let sent = 0
    const stream = setInterval(() => {
      sender.send(new Uint8Array([0xff, 1, 2]), port, '127.0.0.1')
      sent++
    }, 10)
    const listening = onEngine('fallback', () => server.listen())
    await listening.finally(() => clearInterval(stream))
    await new Promise((resolve) => setTimeout(resolve, 50)) // the last ones in
    const { packets, drops } = server.stats()
    expect(sent).toBeGreaterThan(20)
    // 300 ms of them at least, less any before the bind, each counted (a payload-type byte from an address
    // with no connection: unknownAddress) and none answered. Before, none was read at all.
    expect(packets.in).toBeGreaterThan(15)
    expect(drops.unknownAddress).toBe(packets.in)
    expect(packets.out).toBe(0)
  })
})
