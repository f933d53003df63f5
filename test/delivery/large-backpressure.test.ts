// Large messages (over 64 KiB) wait for JavaScript outside the receive slabs, so slab space does not bound
// them: the engine stops reading past 64 MiB of them and goes on once JavaScript has taken some.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Server } from '../../src/index.ts'
import { sharedEngine } from '../../src/engine/engine.ts'
import { waitFor } from '../helpers.ts'

const MiB = 1 << 20

describe('large messages while JavaScript is busy', () => {
  it('are held to 64 MiB, then all arrive, intact and in order', async () => {
    const privateKey = new Uint8Array(32).fill(5)
    const server = new Server({ protocolId: 0x4c41n, privateKey, address: '127.0.0.1:0', maxClients: 2, channels: [{ mode: 'reliable' }], maxMessageBytes: MiB })
    const { port } = await server.listen()
    const received: number[] = []
    let corrupt = 0
    server.on('message', (_peer, data) => {
      const index = new DataView(data.buffer, data.byteOffset).getUint32(0)
      if (data.byteLength !== MiB || data[MiB - 1] !== (index & 0xff)) corrupt++
      received.push(index)
    })
    const count = 160
    const sender = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../fixtures/large-sender.ts'), String(port), Buffer.from(privateKey).toString('hex'), String(count), String(MiB)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let output = ''
    sender.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    try {
      await once(server, 'connect', { signal: AbortSignal.timeout(15_000) }) // bounded: the finally kills the sender
      // Busy: the I/O thread delivers, nothing is taken; until the sender has filled the 64 MiB (however
      // slow this machine is), then 300 ms more, in which the engine must read nothing more.
      const deadline = Date.now() + 30_000
      while (sharedEngine().largeBytes() <= 64 * MiB && Date.now() < deadline);
      const filled = sharedEngine().largeBytes()
      for (const until = Date.now() + 300; Date.now() < until; );
      const held = sharedEngine().largeBytes()
      expect(filled).toBeGreaterThan(64 * MiB) // the sender did fill it
      expect(held).toBeLessThanOrEqual(66 * MiB) // the bound, and the message that crossed it
      await waitFor(() => received.length === count, 30_000, 'every message')
      expect(received).toEqual(Array.from({ length: count }, (_, i) => i))
      expect(corrupt).toBe(0)
      expect(sharedEngine().largeBytes()).toBe(0)
      const [code] = (await once(sender, 'exit', { signal: AbortSignal.timeout(10_000) })) as [number]
      expect({ code, output: output.trim() }).toEqual({ code: 0, output: 'sent' })
    } finally {
      sender.kill()
      await server.close()
    }
  }, 60_000)
})
