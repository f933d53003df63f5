// A JavaScript thread that stalls while every receive slab is full: the engine stops reading, and what the
// peers send waits in the kernel. Their timeouts must wait too, else a busy gateway (or a long synchronous
// handler) times out every peer that is alive. The engines here get one receive slab (256 KiB), so a
// burst of payloads fills it; the tokens' timeout is 2 s and JavaScript stalls for 3 s.
import { describe, expect, it } from 'vitest'
import { Client, type Peer, Server, generateConnectToken } from '../../src/index.ts'
import { dedicatedEngine, useDedicatedEngine } from '../../src/engine/engine.ts'
import { blockUntil, waitFor } from '../helpers.ts'

const privateKey = new Uint8Array(32).fill(9)
const protocolId = 0x5150n
const oneSlab = { initialReceiveSlabs: 1, maxReceiveSlabs: 1, maxSendSlabs: 32 }
const payload = new Uint8Array(1000).fill(0x2a)
// Longer than the clients' 2 s timeout by a second: a loaded machine may read late after it too.
const stallMs = 3000

/** A server and a client, one of them on a one-slab engine, connected; closed by the test's finally. */
function pair(smallSide: 'server' | 'client'): { server: Server; client: Client; connect: () => Promise<Peer>; close: () => Promise<void> } {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, engine: 'dedicated', disconnectIntervalMs: 5 })
  if (smallSide === 'server') useDedicatedEngine(server, () => dedicatedEngine(oneSlab))
  const client = new Client({ engine: 'dedicated', disconnectIntervalMs: 5 })
  if (smallSide === 'client') useDedicatedEngine(client, () => dedicatedEngine(oneSlab))
  const connect = async (): Promise<Peer> => {
    const { port } = await server.listen()
    const peerConnected = new Promise<Peer>((resolve) => server.once('connect', resolve))
    await client.connect(await generateConnectToken({ protocolId, privateKey, clientId: 77n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 60, timeoutSeconds: 2 }))
    const peer = await peerConnected
    // Until the client's first keep-alive confirms it, the server sends a keep-alive before each payload.
    await new Promise((resolve) => setTimeout(resolve, 300))
    return peer
  }
  const close = async (): Promise<void> => {
    await client.close()
    await server.close()
  }
  return { server, client, connect, close }
}

describe('a JavaScript stall with every receive slab full', () => {
  it("does not time out the client's server: its timeout waits while the engine does not read", async () => {
    const { server, client, connect, close } = pair('client')
    const ends: string[] = []
    client.on('disconnect', (reason) => ends.push(reason))
    let received = 0
    client.on('message', () => received++)
    try {
      const peer = await connect()
      // 2,000 payloads of 1,000 bytes: the slab takes about 250, the socket's buffer about 250 more and the
      // kernel drops the rest (counted). The sends reach the engine in this turn's microtasks; no callback
      // of the client's engine runs before the stall, so its slab is full through it.
      const before = client.stats().packets.in
      for (let i = 0; i < 2000; i++) peer.send(payload)
      await new Promise<void>((resolve) => queueMicrotask(resolve))
      // The server's keep-alives through the stall find the socket's buffer full and are dropped there.
      expect(blockUntil(() => false, stallMs)).toBe(false)
      const readDuringStall = client.stats().packets.in - before
      expect(readDuringStall).toBeGreaterThan(200) // the slab filled...
      expect(readDuringStall).toBeLessThan(400) // ...and reading stopped
      // Before the fix the client's core timed the server out 1 s into the stall (its token's timeout then). Now every payload is
      // delivered or counted as dropped by the kernel: none is lost unseen.
      const accounted = (): number => received + client.stats().drops.receiveBufferFull
      await waitFor(() => accounted() >= 2000, 2000, () => `every payload delivered or counted as dropped (${received} + ${client.stats().drops.receiveBufferFull})`)
      await new Promise((resolve) => setTimeout(resolve, 300)) // keep-alives flow again
      expect(ends).toEqual([])
      expect(client.state).toBe('connected')
      expect(server.stats().connectedClients).toBe(1)
    } finally {
      await close()
    }
  })

  it("does not time out the server's clients: their timeouts wait while the engine does not read", async () => {
    const { server, client, connect, close } = pair('server')
    const ends: string[] = []
    server.on('disconnect', (_peer, reason) => ends.push(reason))
    let received = 0
    server.on('message', () => received++)
    try {
      await connect()
      const before = server.stats().packets.in
      for (let i = 0; i < 2000; i++) client.send(payload)
      await new Promise<void>((resolve) => queueMicrotask(resolve))
      expect(blockUntil(() => false, stallMs)).toBe(false)
      const readDuringStall = server.stats().packets.in - before
      expect(readDuringStall).toBeGreaterThan(200)
      expect(readDuringStall).toBeLessThan(400)
      const accounted = (): number => received + server.stats().drops.receiveBufferFull
      await waitFor(() => accounted() >= 2000, 2000, () => `every payload delivered or counted as dropped (${received} + ${server.stats().drops.receiveBufferFull})`)
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(ends).toEqual([])
      expect(server.stats().connectedClients).toBe(1)
      expect(client.state).toBe('connected')
    } finally {
      await close()
    }
  })

  it("does not end a connection whose peer's channel settings wait in the kernel", async () => {
    // The wait for a new peer's settings (2 s) is a timeout on what it sends too. Client b connects, its
    // packets 400 ms on the way, just before a floods the server's one slab and JavaScript stalls: b's
    // settings wait in the kernel through the stall, past the 2 s.
    const channels = [{ mode: 'reliable' as const }]
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, engine: 'dedicated', channels, disconnectIntervalMs: 5 })
    useDedicatedEngine(server, () => dedicatedEngine(oneSlab))
    const a = new Client({ engine: 'dedicated', channels, disconnectIntervalMs: 5 })
    const b = new Client({ engine: 'dedicated', channels, disconnectIntervalMs: 5, networkSimulator: { latencyMs: 400 } })
    const ends: string[] = []
    server.on('disconnect', (peer, reason) => ends.push(`${peer.clientId}: ${reason}`))
    try {
      const { port } = await server.listen()
      const token = (clientId: bigint) => generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 60, timeoutSeconds: 5 })
      await a.connect(await token(1n))
      await new Promise((resolve) => setTimeout(resolve, 300))
      await b.connect(await token(2n))
      for (let i = 0; i < 2000; i++) a.send(payload)
      await new Promise<void>((resolve) => queueMicrotask(resolve))
      expect(blockUntil(() => false, stallMs)).toBe(false)
      // The server announces a peer once its settings are in.
      await waitFor(() => server.peers.size === 2, 3000, () => `both peers announced (${server.peers.size}; ended: ${ends.join(', ')})`)
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(ends).toEqual([])
      expect(server.stats().channelsUnannounced).toBe(0)
      // Acknowledgements that waited in the kernel through the stall measured it, not the path: they give
      // no RTT sample (before, the server's view of a had a maximum RTT of 2.4 s; one across this stall would
      // be 3 s at least, and a loaded machine's path may take hundreds of ms).
      const peerA = [...server.peers.values()].find((peer) => peer.clientId === 1n)!
      expect(peerA.stats().rtt.maxMs).toBeLessThan(1500)
      expect(b.state).toBe('connected')
    } finally {
      await a.close()
      await b.close()
      await server.close()
    }
  })
})
