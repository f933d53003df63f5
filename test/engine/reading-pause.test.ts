// A JavaScript thread that stalls while every receive slab is full: the engine stops reading, and what the
// peers send waits in the kernel. Their timeouts must wait too, else a busy gateway (or a long synchronous
// handler) times out every peer that is alive. The engines here get one receive slab (256 KiB), so a
// burst of payloads fills it; the tokens' timeout is 1 s and JavaScript stalls for 2.5 s.
import { describe, expect, it } from 'vitest'
import { Client, type Peer, Server, generateConnectToken } from '../../src/index.ts'
import { dedicatedEngine, useDedicatedEngine } from '../../src/engine/engine.ts'
import { blockUntil, waitFor } from '../helpers.ts'

const privateKey = new Uint8Array(32).fill(9)
const protocolId = 0x5150n
const oneSlab = { initialReceiveSlabs: 1, maxReceiveSlabs: 1, maxSendSlabs: 32 }
const payload = new Uint8Array(1000).fill(0x2a)
const stallMs = 2500

async function connectedPair(smallSide: 'server' | 'client'): Promise<{ server: Server; client: Client; peer: Peer }> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, engine: 'dedicated', disconnectIntervalMs: 5 })
  if (smallSide === 'server') useDedicatedEngine(server, () => dedicatedEngine(oneSlab))
  const { port } = await server.listen()
  const peerConnected = new Promise<Peer>((resolve) => server.once('connect', resolve))
  const client = new Client({ engine: 'dedicated', disconnectIntervalMs: 5 })
  if (smallSide === 'client') useDedicatedEngine(client, () => dedicatedEngine(oneSlab))
  const token = await generateConnectToken({ protocolId, privateKey, clientId: 77n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 60, timeoutSeconds: 1 })
  await client.connect(token)
  const peer = await peerConnected
  // Until the client's first keep-alive confirms it, the server sends a keep-alive before each payload.
  await new Promise((resolve) => setTimeout(resolve, 300))
  return { server, client, peer }
}

describe('a JavaScript stall with every receive slab full', () => {
  it("does not time out the client's server: its timeout waits while the engine does not read", async () => {
    const { server, client, peer } = await connectedPair('client')
    const ends: string[] = []
    client.on('disconnect', (reason) => ends.push(reason))
    let received = 0
    client.on('message', () => received++)
    try {
      // 2,000 payloads of 1,000 bytes: the slab takes about 250, the socket's buffer some more.
      const before = client.stats().packets.in
      for (let i = 0; i < 2000; i++) peer.send(payload)
      await new Promise(setImmediate) // the sends go to the engine at the end of the turn
      // The engine reads until the slab is full, then stops; the server's keep-alives wait in the kernel
      // (or are dropped there) for the rest of the stall.
      expect(blockUntil(() => false, stallMs)).toBe(false)
      const readDuringStall = client.stats().packets.in - before
      expect(readDuringStall).toBeGreaterThan(100) // the slab filled...
      expect(readDuringStall).toBeLessThan(1000) // ...and reading stopped
      // Before the fix the client's core timed the server out 1 s into the stall. What was read is
      // delivered (a keep-alive or two among it).
      await waitFor(() => received >= readDuringStall - 3, 2000, () => `the ${readDuringStall} payloads read during the stall (${received})`)
      await new Promise((resolve) => setTimeout(resolve, 300)) // keep-alives flow again
      expect(ends).toEqual([])
      expect(client.state).toBe('connected')
      expect(server.stats().connectedClients).toBe(1)
    } finally {
      await client.close()
      await server.close()
    }
  })

  it("does not time out the server's clients: their timeouts wait while the engine does not read", async () => {
    const { server, client } = await connectedPair('server')
    const ends: string[] = []
    server.on('disconnect', (_peer, reason) => ends.push(reason))
    let received = 0
    server.on('message', () => received++)
    try {
      const before = server.stats().packets.in
      for (let i = 0; i < 2000; i++) client.send(payload)
      await new Promise(setImmediate)
      expect(blockUntil(() => false, stallMs)).toBe(false)
      const readDuringStall = server.stats().packets.in - before
      expect(readDuringStall).toBeGreaterThan(100)
      expect(readDuringStall).toBeLessThan(1000)
      await waitFor(() => received >= readDuringStall - 3, 2000, () => `the ${readDuringStall} payloads read during the stall (${received})`)
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(ends).toEqual([])
      expect(server.stats().connectedClients).toBe(1)
      expect(client.state).toBe('connected')
    } finally {
      await client.close()
      await server.close()
    }
  })
})
