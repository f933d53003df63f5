// volley:server:drops: the engine counts drops where JavaScript never sees the datagrams, so a server reads its
// counters each interval and publishes what grew. Flooded here with datagrams no protocol packet can be (3000
// bytes: malformed on both engines), from a node:dgram socket.
import dgram from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import type { Server, ServerDrops, ServerDropsMessage } from '../../src/index.ts'
import { dropsIntervalMs, dropsSampling } from '../../src/api/diagnostics.ts'
import { onEngine, waitFor } from '../helpers.ts'
import { startServer, whileSubscribed } from './loopback.ts'

const shortIntervalMs = 40
/** Room for a burst of junk without the kernel dropping any, below the usual cap (no warning). */
const recvBufferSize = 256 << 10

afterEach(() => {
  dropsSampling.intervalMs = dropsIntervalMs
})

/** Sends `count` malformed datagrams to the server, 20 at a time, each burst once the server has read the last. */
async function flood(server: Server, address: string, count: number): Promise<void> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const port = Number(address.split(':')[1])
  const junk = Buffer.alloc(3000, 0x5f)
  try {
    let sent = 0
    const packetsAtStart = server.stats().packets.in
    while (sent < count) {
      const burst = Math.min(20, count - sent)
      await Promise.all(Array.from({ length: burst }, () => new Promise<void>((resolve, reject) => socket.send(junk, port, '127.0.0.1', (error) => (error ? reject(error) : resolve())))))
      sent += burst
      await waitFor(() => server.stats().packets.in - packetsAtStart + server.stats().drops.receiveBufferFull >= sent, 3000, `the server to read ${sent} datagrams`)
    }
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()))
  }
}

/** The published deltas, summed by cause. */
function summed(messages: ServerDropsMessage[]): Partial<ServerDrops> {
  const total: Partial<Record<keyof ServerDrops, number>> = {}
  for (const { drops } of messages) {
    for (const [cause, count] of Object.entries(drops) as [keyof ServerDrops, number][]) total[cause] = (total[cause] ?? 0) + count
  }
  return total
}

/** The causes of stats().drops that counted any. */
function nonZero(drops: ServerDrops): Partial<ServerDrops> {
  return Object.fromEntries(Object.entries(drops).filter(([, count]) => count !== 0))
}

describe('volley:server:drops', () => {
  it.each(['native', 'fallback'] as const)('publishes the drops of each interval by cause, only the causes that changed, and adds up to stats().drops (%s engine)', async (engine) => {
    dropsSampling.intervalMs = shortIntervalMs
    await whileSubscribed<ServerDropsMessage>('volley:server:drops', async (messages) => {
      const { server, address } = await onEngine(engine, () => startServer({ recvBufferSize }))
      try {
        await flood(server, address, 400)
        const drops = server.stats().drops
        expect(drops.malformed).toBeGreaterThan(0)
        await waitFor(() => summed(messages).malformed === drops.malformed, 3000, () => `the published malformed drops to add up to ${drops.malformed}: ${JSON.stringify(summed(messages))}`)
        expect(summed(messages)).toEqual(nonZero(server.stats().drops))
        for (const message of messages) {
          expect(message.server).toBe(server)
          expect(message.intervalMs).toBe(shortIntervalMs)
          expect(Object.keys(message.drops).length).toBeGreaterThan(0)
          for (const count of Object.values(message.drops)) expect(count).toBeGreaterThan(0)
        }
        // Nothing dropped: nothing published.
        const published = messages.length
        await new Promise((resolve) => setTimeout(resolve, shortIntervalMs * 4))
        expect(messages).toHaveLength(published)
        // Closed: the timer is gone, and what comes after is not read.
        await server.close()
        await new Promise((resolve) => setTimeout(resolve, shortIntervalMs * 4))
        expect(messages).toHaveLength(published)
      } finally {
        await server.close()
      }
    })
  })

  it('gives a late subscriber the drops from its subscription on, not those before', async () => {
    dropsSampling.intervalMs = shortIntervalMs
    const { server, address } = await startServer({ recvBufferSize })
    try {
      await flood(server, address, 5)
      await waitFor(() => server.stats().drops.malformed === 5, 3000, 'the first five counted')
      await new Promise((resolve) => setTimeout(resolve, shortIntervalMs * 2)) // ticks without a subscriber
      await whileSubscribed<ServerDropsMessage>('volley:server:drops', async (messages) => {
        await new Promise((resolve) => setTimeout(resolve, shortIntervalMs * 3)) // the first tick takes its reading
        expect(messages).toEqual([])
        await flood(server, address, 7)
        await waitFor(() => summed(messages).malformed === 7, 3000, () => `seven published: ${JSON.stringify(summed(messages))}`)
        expect(summed(messages)).toEqual({ malformed: 7 })
        expect(server.stats().drops.malformed).toBe(12)
      })
    } finally {
      await server.close()
    }
  })

  it('publishes every second by default', async () => {
    await whileSubscribed<ServerDropsMessage>('volley:server:drops', async (messages) => {
      const { server, address } = await startServer({ recvBufferSize })
      try {
        const started = performance.now()
        await flood(server, address, 3)
        await waitFor(() => messages.length === 1, 2500, 'the first message')
        expect(performance.now() - started).toBeGreaterThanOrEqual(dropsIntervalMs - 50)
        expect(messages).toEqual([{ server, drops: { malformed: 3 }, intervalMs: 1000 }])
      } finally {
        await server.close()
      }
    })
  })
})
