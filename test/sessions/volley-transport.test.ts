// The Volley adapters of SessionTransport: ClientTransport over a Client, PeerTransports over a Server, on a
// real Server and Client over loopback, on both engines (the native addon and the fallback engine).
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { Client, type ClientOptions, type Peer, Server, type ServerOptions, generateConnectToken } from '../../src/index.ts'
import { ClientTransport, PeerTransport, PeerTransports, serveSessions } from '../../src/sessions/volley-transport.ts'
import { type EngineKind, onEngine, waitFor, within } from '../helpers.ts'
import { watch } from './watch.ts'

const privateKey = new Uint8Array(32).fill(11)
const protocolId = 0x5e55n
const channels = [{ mode: 'reliable' as const }, { mode: 'unreliable' as const }]

const opened: { close(): Promise<void> }[] = []
afterEach(async () => {
  for (const each of opened.splice(0).reverse()) await each.close()
})

async function startServer(engine: EngineKind, options: Partial<ServerOptions> = {}): Promise<{ server: Server; port: number }> {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 16, channels, disconnectIntervalMs: 5, ...options })
  opened.push(server)
  const { port } = await onEngine(engine, () => server.listen())
  return { server, port }
}

async function connectClient(engine: EngineKind, port: number, clientId: bigint, options: ClientOptions = {}, timeoutSeconds = 5): Promise<Client> {
  const client = new Client({ channels, disconnectIntervalMs: 5, ...options })
  opened.push(client)
  const token = await generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds })
  await within(
    onEngine(engine, () => client.connect(token)),
    5000,
    'the connection',
  )
  return client
}

const text = (value: string): Uint8Array => new TextEncoder().encode(value)
const read = (data: Uint8Array): string => new TextDecoder().decode(data)

/** A message of `size` bytes that starts with its number. */
function numbered(index: number, size = 16): Uint8Array {
  const bytes = new Uint8Array(size)
  new DataView(bytes.buffer).setUint32(0, index)
  bytes.fill(index & 0xff, 4)
  return bytes
}
const numberOf = (data: Uint8Array): number => new DataView(data.buffer, data.byteOffset).getUint32(0)

/**
 * Sends numbered 1000-byte messages in one go (no drain can come between the sends) until the transport
 * ends it, at most 100: how many went, and the first one it had to hold.
 */
function sendUntilClosed(transport: ClientTransport | PeerTransport): { firstHeld: number; sent: number } {
  let firstHeld = -1
  let sent = 0
  while (sent < 100 && !transport.closed) {
    transport.send(numbered(sent, 1000))
    if (firstHeld < 0 && transport.heldMessages === 1) firstHeld = sent
    sent++
  }
  return { firstHeld, sent }
}

/** A server serving sessions: the transports it made, by client id. */
async function serving(engine: EngineKind, options: Partial<ServerOptions> = {}) {
  const { server, port } = await startServer(engine, options)
  const transports = new Map<bigint, PeerTransport>()
  const stop = serveSessions(server, {}, (transport, peer) => {
    expect(transport.peer).toBe(peer)
    transports.set(peer.clientId, transport)
  })
  return { server, port, transports, stop }
}

describe.each([['native'], ['fallback']] as [EngineKind][])('on the %s engine', (engine) => {
  it('carries messages both ways on the reliable channel', async () => {
    const { port, transports } = await serving(engine)
    const client = await connectClient(engine, port, 1n)
    const transport = new ClientTransport(client)
    const atClient = watch(transport)
    await waitFor(() => transports.has(1n), 5000, 'the peer transport')
    const peerTransport = transports.get(1n)!
    // An echo that answers in upper case.
    peerTransport.on('message', (data) => peerTransport.send(text(read(data).toUpperCase())))
    expect(transport.send(text('hello'))).toBe(true)
    await waitFor(() => atClient.messages.length === 1, 5000, 'the echo')
    expect(read(atClient.messages[0]!)).toBe('HELLO')
    expect(transport.channel).toBe(0)
    expect(transport.maxMessageBytes).toBe(1 << 20)
    expect(atClient.closes).toEqual([])
  })

  it('carries 200 messages each way, in order', async () => {
    const { port, transports } = await serving(engine)
    const client = await connectClient(engine, port, 2n)
    const transport = new ClientTransport(client)
    const atClient = watch(transport)
    await waitFor(() => transports.has(2n), 5000, 'the peer transport')
    const peerTransport = transports.get(2n)!
    const atServer = watch(peerTransport)
    for (let i = 0; i < 200; i++) {
      transport.send(numbered(i, 4 + (i % 50) * 40))
      peerTransport.send(numbered(1000 + i, 4 + (i % 7) * 300))
    }
    await waitFor(() => atServer.messages.length === 200 && atClient.messages.length === 200, 10_000, () => `200 each way (${atServer.messages.length}, ${atClient.messages.length})`)
    expect(atServer.messages.map(numberOf)).toEqual(Array.from({ length: 200 }, (_, i) => i))
    expect(atServer.messages.map((m) => m.byteLength)).toEqual(Array.from({ length: 200 }, (_, i) => 4 + (i % 50) * 40))
    expect(atClient.messages.map(numberOf)).toEqual(Array.from({ length: 200 }, (_, i) => 1000 + i))
  })

  it('closes both transports when the server side closes its transport (the peer disconnected)', async () => {
    const { server, port, transports } = await serving(engine)
    const client = await connectClient(engine, port, 3n)
    const transport = new ClientTransport(client)
    const atClient = watch(transport)
    await waitFor(() => transports.has(3n), 5000, 'the peer transport')
    const peerTransport = transports.get(3n)!
    const atServer = watch(peerTransport)
    const disconnected = once(server, 'disconnect')
    peerTransport.close()
    expect(atServer.closes).toEqual([undefined])
    expect(peerTransport.peer.connected).toBe(false)
    expect(peerTransport.send(text('late'))).toBe(false)
    await within(disconnected, 5000, "the server's disconnect")
    await waitFor(() => atClient.closes.length === 1, 5000, "the client transport's close")
    expect(atClient.closes).toEqual([undefined]) // an orderly end: the server disconnected the client
    expect(transport.closed).toBe(true)
    expect(atServer.closes).toHaveLength(1)
  })

  it('closes the client with close(), and the peer transport hears of it', async () => {
    const { port, transports } = await serving(engine)
    const client = await connectClient(engine, port, 4n)
    const transport = new ClientTransport(client)
    const atClient = watch(transport)
    await waitFor(() => transports.has(4n), 5000, 'the peer transport')
    const atServer = watch(transports.get(4n)!)
    transport.close()
    expect(atClient.closes).toEqual([undefined])
    await waitFor(() => atServer.closes.length === 1, 5000, "the peer transport's close")
    expect(atServer.closes).toEqual([undefined]) // the client disconnected: an orderly end
    expect(client.state).toBe('disconnected')
    expect(() => client.send(text('x'))).toThrow(expect.objectContaining({ code: 'ERR_CLIENT_CLOSED' }))
    expect(atClient.closes).toHaveLength(1)
  })

  it('closes the client transport when client.close() is called on the client itself', async () => {
    const { port } = await serving(engine)
    const client = await connectClient(engine, port, 5n)
    const transport = new ClientTransport(client)
    const atClient = watch(transport)
    const closed = client.close()
    // Between the close() and its 'disconnect': taken, and lost with the connection (no throw).
    expect(transport.send(text('lost'))).toBe(true)
    await closed
    await waitFor(() => atClient.closes.length === 1, 5000, 'the close')
    expect(atClient.closes).toEqual([undefined])
  })

  it('ignores messages on the other channels, both ways', async () => {
    const { server, port, transports } = await serving(engine)
    const client = await connectClient(engine, port, 6n)
    const transport = new ClientTransport(client)
    const atClient = watch(transport)
    const rawAtClient: string[] = []
    client.on('message', (data, channel) => rawAtClient.push(`${channel}:${read(data)}`))
    const rawAtServer: string[] = []
    server.on('message', (_peer, data, channel) => rawAtServer.push(`${channel}:${read(data)}`))
    await waitFor(() => transports.has(6n), 5000, 'the peer transport')
    const peerTransport = transports.get(6n)!
    const atServer = watch(peerTransport)
    client.send(text('other'), { channel: 1 })
    peerTransport.peer.send(text('other'), { channel: 1 })
    // Then one on the session channel each way, after the others: when it is in, so are they (loopback loses nothing).
    transport.send(text('session'))
    peerTransport.send(text('session'))
    await waitFor(() => rawAtClient.length === 2 && rawAtServer.length === 2, 5000, 'all four messages')
    expect(rawAtClient.sort()).toEqual(['0:session', '1:other'])
    expect(rawAtServer.sort()).toEqual(['0:session', '1:other'])
    expect(atClient.messages.map(read)).toEqual(['session'])
    expect(atServer.messages.map(read)).toEqual(['session'])
  })

  it("holds messages while the client's queue is full, and sends them in order at its drain", async () => {
    const { port, transports } = await serving(engine)
    const client = await connectClient(engine, port, 7n, { sendQueueBytes: 4096 })
    const transport = new ClientTransport(client)
    const atClient = watch(transport)
    await waitFor(() => transports.has(7n), 5000, 'the peer transport')
    const atServer = watch(transports.get(7n)!)
    let refusedAt = -1
    for (let i = 0; i < 40; i++) {
      const taken = transport.send(numbered(i, 1000))
      if (!taken && refusedAt < 0) refusedAt = i
    }
    // 4096 bytes hold three of these (each counted 64 bytes more): the fourth is held by the transport.
    expect(refusedAt).toBeGreaterThan(0)
    expect(refusedAt).toBeLessThan(10)
    expect(transport.writable).toBe(false)
    expect(transport.heldMessages).toBeGreaterThan(0)
    await waitFor(() => atClient.drains === 1, 10_000, 'the drain')
    expect(transport.writable).toBe(true)
    expect(transport.heldMessages).toBe(0)
    await waitFor(() => atServer.messages.length === 40, 10_000, 'every message')
    expect(atServer.messages.map(numberOf)).toEqual(Array.from({ length: 40 }, (_, i) => i))
  })

  it("holds messages while a peer's queue is full, and sends them in order at the server's drain", async () => {
    const { port, transports } = await serving(engine, { sendQueueBytes: 4096 })
    const client = await connectClient(engine, port, 8n)
    const transport = new ClientTransport(client)
    const atClient = watch(transport)
    await waitFor(() => transports.has(8n), 5000, 'the peer transport')
    const peerTransport = transports.get(8n)!
    const atServer = watch(peerTransport)
    let refused = 0
    for (let i = 0; i < 40; i++) if (!peerTransport.send(numbered(i, 1000))) refused++
    expect(refused).toBeGreaterThan(30)
    expect(peerTransport.writable).toBe(false)
    await waitFor(() => atServer.drains === 1, 10_000, 'the drain')
    expect(peerTransport.heldMessages).toBe(0)
    await waitFor(() => atClient.messages.length === 40, 10_000, 'every message')
    expect(atClient.messages.map(numberOf)).toEqual(Array.from({ length: 40 }, (_, i) => i))
  })

  it("ends the client's connection with ERR_SEND_BACKLOG_FULL past maxHeldBytes while the client's queue is full", async () => {
    const { port, transports } = await serving(engine)
    const client = await connectClient(engine, port, 61n, { sendQueueBytes: 4096 })
    const transport = new ClientTransport(client, { maxHeldBytes: 5000 })
    expect(transport.maxHeldBytes).toBe(5000)
    const atClient = watch(transport)
    await waitFor(() => transports.has(61n), 5000, 'the peer transport')
    const atServer = watch(transports.get(61n)!)
    const { firstHeld, sent } = sendUntilClosed(transport)
    // The client's queue took a few; then five of 1000 bytes were held (5000, the bound), and the sixth ended it.
    expect(firstHeld).toBeGreaterThan(0)
    expect(sent).toBe(firstHeld + 6)
    expect(atClient.closes).toEqual([
      expect.objectContaining({ code: 'ERR_SEND_BACKLOG_FULL', message: expect.stringContaining('6000 bytes (6 messages) were waiting') }),
    ])
    expect(transport.heldMessages).toBe(0)
    expect(transport.send(numbered(sent, 1000))).toBe(false)
    // The client was closed: the server sees it go, and nothing held reached it.
    await waitFor(() => atServer.closes.length === 1, 5000, "the peer transport's close")
    expect(client.state).toBe('disconnected')
    expect(atServer.messages.map(numberOf)).toEqual(Array.from({ length: atServer.messages.length }, (_, i) => i))
    expect(atServer.messages.length).toBeLessThanOrEqual(firstHeld)
  })

  it("ends a peer's connection with ERR_SEND_BACKLOG_FULL past maxHeldBytes while its queue is full", async () => {
    const { server, port } = await startServer(engine, { sendQueueBytes: 4096 })
    const transports = new Map<bigint, PeerTransport>()
    const stop = serveSessions(server, { maxHeldBytes: 3000 }, (transport, peer) => transports.set(peer.clientId, transport))
    opened.push({ close: async () => stop() })
    const client = await connectClient(engine, port, 62n)
    const atClient = watch(new ClientTransport(client))
    await waitFor(() => transports.has(62n), 5000, 'the peer transport')
    const peerTransport = transports.get(62n)!
    expect(peerTransport.maxHeldBytes).toBe(3000)
    const atServer = watch(peerTransport)
    const { firstHeld, sent } = sendUntilClosed(peerTransport)
    expect(firstHeld).toBeGreaterThan(0)
    expect(sent).toBe(firstHeld + 4)
    expect(atServer.closes).toEqual([
      expect.objectContaining({ code: 'ERR_SEND_BACKLOG_FULL', message: expect.stringContaining('4000 bytes (4 messages) were waiting') }),
    ])
    expect(peerTransport.peer.connected).toBe(false)
    expect(transports.size).toBe(1)
    await waitFor(() => atClient.closes.length === 1, 5000, "the client transport's close")
    expect(atClient.messages.length).toBeLessThanOrEqual(firstHeld)
  })

  it("sends a held message it cannot send at the drain nowhere: the transport closes with the client's error", async () => {
    const { port, transports } = await serving(engine)
    // The client's own largest message is below the server's: the transport checks against the server's only.
    const client = await connectClient(engine, port, 9n, { sendQueueBytes: 4096, maxMessageBytes: 2000 })
    const transport = new ClientTransport(client)
    const atClient = watch(transport)
    await waitFor(() => transports.has(9n), 5000, 'the peer transport')
    const atServer = watch(transports.get(9n)!)
    // Sent at once, the client's own error reaches the caller.
    expect(() => transport.send(new Uint8Array(3000))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }))
    let sent = 0
    while (transport.send(numbered(sent, 1000))) sent++
    transport.send(new Uint8Array(3000)) // held behind the one refused
    await waitFor(() => atClient.closes.length === 1, 10_000, 'the close')
    expect(atClient.closes).toEqual([expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' })])
    expect(atClient.drains).toBe(0)
    await waitFor(() => atServer.closes.length === 1, 5000, "the peer's close")
    // What went before it arrived, in order.
    expect(atServer.messages.map(numberOf)).toEqual(Array.from({ length: sent + 1 }, (_, i) => i))
  })

  it("a message handler that throws: its error surfaces, and the messages after it still come", async () => {
    const { port, transports } = await serving(engine)
    const client = await connectClient(engine, port, 10n)
    const transport = new ClientTransport(client)
    await waitFor(() => transports.has(10n), 5000, 'the peer transport')
    const peerTransport = transports.get(10n)!
    const heard: number[] = []
    peerTransport.on('message', (data) => {
      heard.push(numberOf(data))
      if (numberOf(data) % 2 === 0) throw new Error(`handler ${numberOf(data)}`)
    })
    const errors: unknown[] = []
    const swallow = (error: unknown) => errors.push(error)
    process.on('uncaughtException', swallow)
    try {
      for (let i = 0; i < 10; i++) transport.send(numbered(i))
      await waitFor(() => heard.length === 10 && errors.length === 5, 5000, 'every message and the errors')
    } finally {
      process.off('uncaughtException', swallow)
    }
    expect(heard).toEqual(Array.from({ length: 10 }, (_, i) => i))
    expect(errors.map((error) => (error as Error).message)).toEqual(['handler 0', 'handler 2', 'handler 4', 'handler 6', 'handler 8'])
  })

  it('has one listener per server event, whatever the number of peers, and routes each peer its own messages', async () => {
    const { server, port, transports } = await serving(engine)
    const clients = await Promise.all([11n, 12n, 13n, 14n, 15n].map((id) => connectClient(engine, port, id)))
    await waitFor(() => transports.size === 5, 5000, 'five peer transports')
    for (const event of ['connect', 'message', 'disconnect', 'drain', 'state'] as const) expect(server.listenerCount(event)).toBe(1)
    const byClient = clients.map((client) => new ClientTransport(client))
    const heard = new Map<bigint, string[]>()
    for (const [id, transport] of transports) {
      heard.set(id, [])
      transport.on('message', (data) => heard.get(id)!.push(read(data)))
    }
    byClient.forEach((transport, i) => transport.send(text(`from ${11 + i}`)))
    await waitFor(() => [...heard.values()].every((messages) => messages.length === 1), 5000, 'a message at each peer')
    for (const [id, messages] of heard) expect(messages).toEqual([`from ${id}`])
  })

  it('closes the transports when the server closes', async () => {
    const { server, port, transports } = await serving(engine)
    await connectClient(engine, port, 21n)
    await connectClient(engine, port, 22n)
    await waitFor(() => transports.size === 2, 5000, 'two peer transports')
    const seen = [...transports.values()].map(watch)
    await within(server.close(), 5000, "the server's close")
    expect(seen.map((each) => each.closes)).toEqual([[undefined], [undefined]])
  })

  it("closes a peer's transport with ERR_CONNECTION_TIMED_OUT when its client goes silent", async () => {
    const { port, transports } = await serving(engine)
    // No disconnect packets: the server learns of the end only by the silence (the token's 1 s timeout).
    const client = await connectClient(engine, port, 23n, { disconnectPackets: 0 }, 1)
    await waitFor(() => transports.has(23n), 5000, 'the peer transport')
    const seen = watch(transports.get(23n)!)
    await client.close()
    await waitFor(() => seen.closes.length === 1, 5000, 'the timeout')
    expect(seen.closes).toEqual([expect.objectContaining({ code: 'ERR_CONNECTION_TIMED_OUT' })])
  })

  it('stops serving: listeners removed, the transports closed and their peers disconnected', async () => {
    const { server, port, transports, stop } = await serving(engine)
    const client = await connectClient(engine, port, 24n)
    const atClient = watch(new ClientTransport(client))
    await waitFor(() => transports.has(24n), 5000, 'the peer transport')
    const seen = watch(transports.get(24n)!)
    stop()
    for (const event of ['connect', 'message', 'disconnect', 'drain', 'state'] as const) expect(server.listenerCount(event)).toBe(0)
    expect(seen.closes).toEqual([undefined])
    await waitFor(() => atClient.closes.length === 1, 5000, "the client transport's close")
  })

  it('serves the peers connected before it started, and leaves alone a client without its channel', async () => {
    const { server, port } = await startServer(engine)
    await connectClient(engine, port, 31n)
    // A client with one channel only: it speaks another protocol on channel 0, and has no channel 1.
    const other = new Client({ channels: [{ mode: 'reliable' }], disconnectIntervalMs: 5 })
    opened.push(other)
    const token = await generateConnectToken({ protocolId, privateKey, clientId: 32n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
    await within(
      onEngine(engine, () => other.connect(token)),
      5000,
      'the other connection',
    )
    await waitFor(() => server.peers.size === 2, 5000, 'both peers')
    const served: bigint[] = []
    const transports = new PeerTransports(server, { channel: 0 }, (_transport, peer) => served.push(peer.clientId))
    expect(served.sort()).toEqual([31n, 32n])
    expect(transports.size).toBe(2)
    // Channel 1 is 'unreliable' on this server: a mistake, found at the first peer that has it (here, at once).
    const errors: unknown[] = []
    const swallow = (error: unknown) => errors.push(error)
    process.on('uncaughtException', swallow)
    const onChannelOne: bigint[] = []
    let late: PeerTransports | undefined
    try {
      late = new PeerTransports(server, { channel: 1 }, (_transport, peer) => onChannelOne.push(peer.clientId))
      await waitFor(() => errors.length === 1, 2000, 'the error to surface')
    } finally {
      process.off('uncaughtException', swallow)
    }
    expect(errors).toEqual([expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining("Channel 1 of the server is 'unreliable'") })])
    expect(onChannelOne).toEqual([])
    expect(late.size).toBe(0)
    expect(server.listenerCount('message')).toBe(1) // the first one's: the second stopped serving
    transports.close()
    expect(server.listenerCount('message')).toBe(0) // it stopped serving
  })

  it('refuses what cannot carry sessions with typed errors', async () => {
    const { server, port } = await startServer(engine)
    expect(() => new ClientTransport(new Client({ channels }))).toThrow(expect.objectContaining({ code: 'ERR_CLIENT_NOT_CONNECTED' }))
    const client = await connectClient(engine, port, 41n, { maxMessageBytes: 1 << 20 })
    expect(() => new ClientTransport(client, { channel: 1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining("'unreliable'") }))
    // channelMode 'unreliable' takes the unreliable channel (for protocols that resend by themselves), and only it.
    const lossy = new ClientTransport(client, { channel: 1, channelMode: 'unreliable' })
    expect([lossy.channel, lossy.reliable, new ClientTransport(client).reliable]).toEqual([1, false, true])
    expect(() => new ClientTransport(client, { channel: 0, channelMode: 'unreliable' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining("Channel 0 of the client is 'reliable': sessions need an 'unreliable' channel") }))
    expect(() => new ClientTransport(client, { channelMode: 'sequenced' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('"channelMode"') }))
    expect(() => new ClientTransport(client, { channel: 2 })).toThrow(expect.objectContaining({ code: 'ERR_NO_SUCH_CHANNEL', name: 'RangeError' }))
    expect(() => new ClientTransport(client, { channel: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new ClientTransport(client, { chanel: 0 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => new ClientTransport(client, { maxHeldBytes: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"maxHeldBytes"') }))
    expect(() => serveSessions(server, { maxHeldBytes: '1' as unknown as number }, () => {})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(new ClientTransport(client, { maxHeldBytes: 7 }).maxHeldBytes).toBe(7)
    expect(() => new ClientTransport({} as Client)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    const transport = new ClientTransport(client)
    expect(() => transport.send(new Uint8Array((1 << 20) + 1))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE', name: 'RangeError' }))
    expect(() => transport.send('text' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => serveSessions({} as Server, {}, () => {})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => serveSessions(server, {}, 'no' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    const peer = [...server.peers.values()][0] as Peer
    expect(() => new PeerTransport(Symbol('volley.PeerTransport') as never, { blocked() {}, forget() {} }, peer, 0, true, 10, 1 << 20)).toThrow(expect.objectContaining({ code: 'ERR_ILLEGAL_CONSTRUCTOR' }))
  })

  it('a server without channels: the mistake surfaces at the first peer', async () => {
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, disconnectIntervalMs: 5 })
    opened.push(server)
    const { port } = await onEngine(engine, () => server.listen())
    const errors: unknown[] = []
    const swallow = (error: unknown) => errors.push(error)
    process.on('uncaughtException', swallow)
    try {
      serveSessions(server, {}, () => {
        throw new Error('no transport expected')
      })
      await connectClient(engine, port, 51n, { channels: undefined })
      await waitFor(() => errors.length === 1, 2000, 'the error to surface')
    } finally {
      process.off('uncaughtException', swallow)
    }
    expect(errors).toEqual([expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('no channels configured') })])
  })
})
