// A server with channels and a few clients on loopback for the exporters' tests, their echoes all in. The
// server's simulated network loses some of what it sends, with a seed, so that a peer's loss is more than 0.
// Keep-alives and pings go 4 times a second: few datagrams, so that a scrape finds the server at rest
// (readAtRest), and a lost channel announcement is sent again soon (a client's connect() waits for it).
import dgram from 'node:dgram'
import { Client, Server, type ServerStats, generateConnectToken } from '../../src/index.ts'
import { waitFor } from '../helpers.ts'

const privateKey = new Uint8Array(32).fill(9)
const protocolId = 0x3e7n
const quiet = { channels: [{ mode: 'reliable' as const }], keepAliveIntervalMs: 250, pingIntervalMs: 250, disconnectIntervalMs: 5 }

export interface Loopback {
  server: Server
  clients: Client[]
  close(): Promise<void>
}

/**
 * attach: called with the server listening, before the clients connect (metrics that count their 'connect'
 * events). The clients send messages in rounds, each echoed, until a peer has lost some (a round or more).
 */
export async function loopback(clientCount: number, attach: (server: Server) => void = () => {}): Promise<Loopback> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', ...quiet, networkSimulator: { loss: 0.3, seed: 7 } })
  server.on('message', (peer, data) => peer.send(data))
  const { port } = await server.listen()
  attach(server)
  const clients: Client[] = []
  let echoes = 0
  try {
    for (let i = 0; i < clientCount; i++) {
      const client = new Client(quiet)
      clients.push(client)
      client.on('message', () => echoes++)
      await client.connect(
        await generateConnectToken({ protocolId, privateKey, clientId: BigInt(i + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 30 }),
      )
    }
    await waitFor(() => server.peers.size === clientCount, 5000, () => `${clientCount} peers (${server.peers.size})`)
    const lossy = (): boolean => [...server.peers.values()].some((peer) => peer.stats().lossPercent > 0)
    for (let round = 1; round <= 50 && !lossy(); round++) {
      for (const [i, client] of clients.entries()) client.send(new Uint8Array([i, round]))
      await waitFor(() => echoes === clientCount * round, 5000, () => `${clientCount * round} echoes (${echoes})`)
    }
    if (!lossy()) throw new Error('no peer lost a packet in 50 rounds of messages')
  } catch (error) {
    await Promise.all(clients.map((client) => client.close()))
    await server.close()
    throw error
  }
  return {
    server,
    clients,
    async close() {
      await Promise.all(clients.map((client) => client.close()))
      await server.close()
    },
  }
}

/** What changes while datagrams come and go, as one string to compare. */
export function countsOf(stats: ServerStats): string {
  return JSON.stringify([stats.packets, stats.bytes, stats.drops, stats.connectedClients])
}

/**
 * Reads the server's stats, runs `read` (a scrape, a collection, and the peers' own stats), reads them again,
 * and returns what `read` gave with the stats, once both reads agree: no datagram came or went meanwhile, so
 * the scrape read what the stats say.
 */
export async function readAtRest<T>(server: Server, read: () => Promise<T>): Promise<{ result: T; stats: ServerStats }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const before = server.stats()
    const result = await read()
    const stats = server.stats()
    if (countsOf(before) === countsOf(stats)) return { result, stats }
    await new Promise((resolve) => setTimeout(resolve, 7))
  }
  throw new Error('the server never stood still across a read')
}

/** Sends a datagram of nonsense to the server from a socket of its own: a drop to count. */
export async function sendNonsense(port: number): Promise<void> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => socket.send(new Uint8Array(40).fill(0xee), port, '127.0.0.1', (error) => (error ? reject(error) : resolve())))
  await new Promise<void>((resolve) => socket.close(() => resolve()))
}

/** The nearest-rank quantile of values, as the snapshot computes it (the ⌈q·n⌉-th smallest). */
export function nearestRank(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
}

/** Cumulative bucket counts of values over bounds (then +Inf), as Prometheus's _bucket lines give them. */
export function cumulativeBuckets(values: readonly number[], bounds: readonly number[]): number[] {
  return [...bounds, Number.POSITIVE_INFINITY].map((bound) => values.filter((value) => value <= bound).length)
}
