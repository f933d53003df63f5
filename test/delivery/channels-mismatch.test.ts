// Server and client with channels that differ, through real sockets on loopback: each side learns the
// other's channels and largest message (remoteChannels), send() refuses what the peer would drop, and
// channels that cannot work together end the connection on both sides with 'channels-mismatch'.
import { execFileSync } from 'node:child_process'
import { afterAll, describe, expect, it } from 'vitest'
import { type ChannelOptions, Client, type ClientOptions, type ConnectError, type DisconnectReason, type Peer, Server, type ServerOptions, generateConnectToken, isVolleyError } from '../../src/index.ts'
import { waitFor, warningsDuringTests } from '../helpers.ts'

const privateKey = new Uint8Array(32).fill(5)
const protocolId = 0x5e77n
const fast = { disconnectIntervalMs: 5 }

async function pair(
  serverOptions: Partial<ServerOptions>,
  clientOptions: ClientOptions,
  onConnect?: (peer: Peer) => void,
  prepare?: (server: Server) => void,
  prepareClient?: (client: Client) => void,
) {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, ...fast, ...serverOptions })
  prepare?.(server)
  const { port } = await server.listen()
  const peers: Peer[] = []
  const serverSaw: DisconnectReason[] = []
  server.on('connect', (peer) => {
    peers.push(peer)
    onConnect?.(peer)
  })
  server.on('disconnect', (_peer, reason) => serverSaw.push(reason))
  const client = new Client({ ...fast, ...clientOptions })
  prepareClient?.(client)
  const clientSaw: string[] = []
  client.on('disconnect', (reason) => clientSaw.push(reason))
  const clientGot: number[] = []
  client.on('message', (_data, channel) => clientGot.push(channel))
  const token = await generateConnectToken({ protocolId, privateKey, clientId: 3n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
  // connect()'s outcome: undefined when it resolved, else its error as "code: message (state)".
  const refused = await client.connect(token).then(
    () => undefined,
    (error: ConnectError) => `${error.code}: ${error.message} (${error.state})`,
  )
  // A server with channels announces a peer once its client's channels are in and agree (none otherwise).
  const announced = serverOptions.channels === undefined || (clientOptions.channels !== undefined && refused === undefined)
  if (announced) await waitFor(() => peers.length === 1)
  const close = async () => {
    await client.close()
    await server.close()
  }
  return { server, client, peer: peers[0]!, peers, serverSaw, clientSaw, clientGot, refused, close }
}

function codeOf(action: () => unknown): string | undefined {
  try {
    action()
  } catch (error) {
    if (isVolleyError(error)) return `${error.code}: ${error.message}`
    throw error
  }
  return undefined
}

const modes = (...list: ChannelOptions['mode'][]): ChannelOptions[] => list.map((mode) => ({ mode }))

describe('channels that differ between server and client', () => {
  it('learns the peer\'s channels and largest message; send() refuses a channel or a size the peer would drop', async () => {
    const { client, peer, serverSaw, clientSaw, close } = await pair(
      { channels: modes('reliable', 'unreliable'), maxMessageBytes: 1 << 20 },
      { channels: modes('reliable'), maxMessageBytes: 1000 },
    )
    try {
      await waitFor(() => peer.remoteChannels !== null && client.remoteChannels !== null, 3000, 'both sides know the other\'s settings')
      expect(peer.remoteChannels).toEqual({ channels: modes('reliable'), maxMessageBytes: 1000 })
      expect(client.remoteChannels).toEqual({ channels: modes('reliable', 'unreliable'), maxMessageBytes: 1 << 20 })
      // The server has channel 1; the client does not.
      expect(codeOf(() => peer.send(new Uint8Array(10), { channel: 1 }))).toBe('ERR_NO_SUCH_CHANNEL: The client has 1 channel (channels 0 to 0): it would drop a message on channel 1')
      expect(codeOf(() => peer.send(new Uint8Array(1001)))).toBe('ERR_MESSAGE_TOO_LARGE: The client takes messages of at most 1000 bytes (its maxMessageBytes option). Received 1001')
      // What both take flows, both ways.
      const got: number[] = []
      client.on('message', (data) => got.push(data.byteLength))
      expect(peer.send(new Uint8Array(1000))).toBe(true)
      await waitFor(() => got.length === 1, 3000, 'the message of 1000 bytes')
      expect(got).toEqual([1000])
      // Compatible: nobody was disconnected.
      expect(peer.connected).toBe(true)
      expect(client.state).toBe('connected')
      expect([serverSaw, clientSaw]).toEqual([[], []])
    } finally {
      await close()
    }
  })

  it("a channel both have in two modes: connect() rejects, the server never announces the peer, and the errors say which", async () => {
    const { server, client, peers, serverSaw, clientSaw, clientGot, refused, close } = await pair(
      { channels: modes('reliable', 'unreliable') },
      { channels: modes('reliable', 'reliable') },
    )
    try {
      expect(refused).toMatch(
        /^ERR_CHANNELS_MISMATCH: The server's channels do not work with this client's: channel 1 is 'reliable' on this side and 'unreliable' on the server \(at 127\.0\.0\.1:\d+, the last address tried\) \(channels-mismatch\)$/,
      )
      expect(client.state).toBe('channels-mismatch')
      // The server disconnects the client unannounced: no 'connect', no 'disconnect'; counted.
      await waitFor(() => server.stats().channelsMismatch === 1, 3000, 'the server refused the client')
      expect(server.stats().connectedClients).toBe(0)
      expect([peers, serverSaw]).toEqual([[], []])
      // connect() rejected: the connection was never reported, nor its end.
      expect(clientSaw).toEqual([])
      expect(clientGot).toEqual([])
      expect(codeOf(() => client.send(new Uint8Array(1)))).toBe(
        "ERR_CLIENT_NOT_CONNECTED: The client is not connected: its channels do not work with the server's ('channels-mismatch': channel 1 is 'reliable' on this side and 'unreliable' on the server)",
      )
      // What the server announced stays readable after the end.
      expect(client.remoteChannels?.channels).toEqual(modes('reliable', 'unreliable'))
    } finally {
      await close()
    }
  })

  it("announces a peer only with its channels known: 'connect' has them, and send() checks against them from the first message", async () => {
    // The client's packets take 300 ms: its settings (with its first ping, sent as it connects) reach the
    // server that long after the handshake, and 'connect' waits for them.
    let atConnect: { remote: unknown; refused: string | undefined } | undefined
    const { client, peer, clientGot, close } = await pair(
      { channels: modes('reliable', 'unreliable') },
      { channels: modes('reliable'), maxMessageBytes: 1000, networkSimulator: { latencyMs: 300, seed: 1 } },
      (peer) => {
        atConnect = { remote: peer.remoteChannels, refused: codeOf(() => peer.send(new Uint8Array(1001))) }
        peer.send(new Uint8Array(10)) // a welcome
      },
    )
    try {
      expect(atConnect).toEqual({
        remote: { channels: modes('reliable'), maxMessageBytes: 1000 },
        refused: 'ERR_MESSAGE_TOO_LARGE: The client takes messages of at most 1000 bytes (its maxMessageBytes option). Received 1001',
      })
      await waitFor(() => clientGot.length === 1, 3000, 'the welcome')
      expect(peer.connected).toBe(true)
      expect(client.stats().dropped).toBe(0)
    } finally {
      await close()
    }
  })

  it("reports the client 'connected' once the server's channels are in: nothing is sent unchecked before", async () => {
    // The server's packets take 300 ms: its settings come that long after the handshake completed.
    const seen: { state: string; remote: unknown; sent: string | undefined }[] = []
    const { clientGot, close } = await pair(
      { channels: modes('reliable'), maxMessageBytes: 1000, networkSimulator: { latencyMs: 300, seed: 2 } },
      { channels: modes('reliable', 'unreliable') },
      undefined,
      undefined,
      (client) =>
        client.on('state', (state) => {
          seen.push({ state, remote: client.remoteChannels, sent: codeOf(() => client.send(new Uint8Array(10), { channel: 1 })) })
        }),
    )
    try {
      expect(seen.map((entry) => entry.state)).toEqual(['sending-connection-request', 'sending-connection-response', 'connected'])
      // In 'connected', the server's channels are known: the channel it lacks is refused, not lost.
      expect(seen.at(-1)).toEqual({
        state: 'connected',
        remote: { channels: modes('reliable'), maxMessageBytes: 1000 },
        sent: "ERR_NO_SUCH_CHANNEL: The server has 1 channel (channels 0 to 0): it would drop a message on channel 1",
      })
      expect(seen[1]!.sent).toBe('ERR_CLIENT_NOT_CONNECTED: The client is still connecting: send once connect() has resolved')
      expect(clientGot).toEqual([])
    } finally {
      await close()
    }
  })

  it('connect() rejects with ERR_CONNECTION_CLOSED when the server ends the connection while the client waits for its channels', async () => {
    // A server without channels announces the client at the handshake, and disconnects it there.
    const { refused, clientSaw, close } = await pair({}, { channels: modes('reliable') }, (peer) => peer.disconnect())
    try {
      expect(refused).toMatch(/^ERR_CONNECTION_CLOSED: The server ended the connection before it was ready: it disconnected the client, or closed, while the client waited for the server's channel settings \(at 127\.0\.0\.1:\d+, the last address tried\) \(disconnected\)$/)
      expect(clientSaw).toEqual([]) // never reported connected: no 'disconnect'
    } finally {
      await close()
    }
  })

  it("hands the server a client's messages only after its 'connect', even when they come in its first packet", async () => {
    // Half the clients' packets lost: for some of them the first to arrive carries messages with the
    // settings, and the engine reports the settings (on which the server announces the peer) first.
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 8, ...fast, channels: modes('reliable') })
    const { port } = await server.listen()
    const announced = new Set<Peer>()
    // Peers announced in the records JavaScript is reading now (a batch is read in one go, before any microtask).
    const announcing = new Set<Peer>()
    server.on('connect', (peer) => {
      announced.add(peer)
      announcing.add(peer)
      queueMicrotask(() => announcing.delete(peer))
    })
    const got = new Map<bigint, number[]>()
    let early = 0
    // Messages handed in the records that announced their peer: they came with its client's settings.
    let withSettings = 0
    server.on('message', (peer, data) => {
      if (!announced.has(peer)) early++
      if (announcing.has(peer)) withSettings++
      got.set(peer.clientId, [...(got.get(peer.clientId) ?? []), data[0]!])
    })
    const clients = Array.from({ length: 6 }, (_, i) => new Client({ ...fast, channels: modes('reliable'), networkSimulator: { loss: 0.5, seed: 11 + i } }))
    try {
      await Promise.all(
        clients.map(async (client, i) => {
          const token = await generateConnectToken({ protocolId, privateKey, clientId: BigInt(i + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
          await client.connect(token)
          for (let k = 0; k < 5; k++) client.send(Uint8Array.of(k))
        }),
      )
      await waitFor(() => clients.every((_, i) => got.get(BigInt(i + 1))?.length === 5), 8000, 'every message')
      expect(early).toBe(0)
      expect(withSettings, "messages that came with their client's settings, in the records that announced the peer").toBeGreaterThan(0)
      expect([...got.values()]).toEqual(clients.map(() => [0, 1, 2, 3, 4]))
    } finally {
      await Promise.all(clients.map((client) => client.close()))
      await server.close()
    }
  }, 20_000)

  it("waits for the client's settings on the engine's clock: a JavaScript thread busy past the wait does not cut it short", async () => {
    // The client's settings reach the server 200 ms after the handshake, while the JavaScript thread (the
    // server's as well as the client's) is blocked for 2.6 s, past the 2 s wait: a timer of its own would
    // fire first when it comes back, and end a peer whose settings were already in.
    const block = (state: string) => {
      if (state !== 'connected') return
      const until = performance.now() + 2600
      while (performance.now() < until) {} // a long GC pause, a busy handler
    }
    const { server, client, serverSaw, refused, close } = await pair(
      { channels: modes('reliable') },
      { channels: modes('reliable'), networkSimulator: { latencyMs: 200, seed: 1 } },
      undefined,
      undefined,
      (client) => client.on('state', block),
    )
    try {
      expect(refused).toBeUndefined()
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(client.state).toBe('connected')
      expect(serverSaw).toEqual([])
      expect(server.stats()).toMatchObject({ connectedClients: 1, channelsMismatch: 0, channelsUnannounced: 0 })
    } finally {
      await close()
    }
  }, 20_000)

  describe('a client without channels is never announced by a server with channels', () => {
    // Such a client is warned, once a process (the fixture server-has-channels.ts checks what the warning says).
    const warnings = warningsDuringTests()
    afterAll(() => {
      expect(warnings.map((warning) => (warning as NodeJS.ErrnoException).code)).toEqual(['VOLLEY_SERVER_HAS_CHANNELS'])
    })

    it('that sends: disconnected at its first payload', async () => {
      const { server, client, peers, serverSaw, refused, close } = await pair({ channels: modes('reliable') }, {})
      try {
        expect(refused).toBeUndefined() // it has no channels: nothing to wait for
        const sent = performance.now()
        client.send(new TextEncoder().encode('raw netcode payload'))
        await waitFor(() => server.stats().channelsMismatch === 1, 3000, 'the server refused it')
        expect(performance.now() - sent).toBeLessThan(1900) // at the payload, not at the end of the wait (2 s)
        expect(server.stats().channelsUnannounced).toBe(0)
        await waitFor(() => client.state !== 'connected', 3000, 'the client hears of it')
        expect(client.state).toBe('disconnected')
        expect([peers, serverSaw]).toEqual([[], []])
      } finally {
        await close()
      }
    })

    it('that stays silent: disconnected once the wait for its settings is over (2 s)', async () => {
      // Read before the handshake, whose end starts the server's wait: late news of it cannot shorten this.
      const started = performance.now()
      const { server, client, peers, serverSaw, refused, close } = await pair({ channels: modes('reliable') }, {})
      try {
        expect(refused).toBeUndefined()
        await waitFor(() => client.state !== 'connected', 4000, 'the server refused it')
        expect(performance.now() - started).toBeGreaterThanOrEqual(1900)
        expect(client.state).toBe('disconnected')
        expect(server.stats()).toMatchObject({ channelsMismatch: 0, channelsUnannounced: 1 })
        expect([peers, serverSaw]).toEqual([[], []])
      } finally {
        await close()
      }
    })
  })

  describe('a client with channels, a server without', () => {
    const noDeliveryLayer =
      "ERR_CHANNELS_MISMATCH: The server's channels do not work with this client's: the server does not run the delivery layer: it has no channels configured, " +
      "or runs an older volley (its payloads are not delivery packets that announce their channels, or are this side's own sent back)"

    it('that sends at once: connect() rejects as soon as a payload comes', async () => {
      const { client, serverSaw, refused, close } = await pair({}, { channels: modes('reliable') }, (peer) => peer.send(new TextEncoder().encode('welcome')))
      try {
        expect(refused?.startsWith(noDeliveryLayer)).toBe(true)
        expect(refused?.endsWith('(channels-mismatch)')).toBe(true)
        expect(client.remoteChannels).toBeNull()
        // It said goodbye with netcode's disconnect packets.
        await waitFor(() => serverSaw.length === 1, 3000, 'the server saw it leave')
        expect(serverSaw).toEqual(['disconnected'])
      } finally {
        await close()
      }
    })

    it("that echoes what it gets (as volley serve does): connect() rejects on the client's own settings sent back", async () => {
      const echo = (server: Server) => server.on('message', (peer, data) => peer.connected && peer.send(data))
      const { client, serverSaw, refused, close } = await pair({}, { channels: modes('reliable') }, undefined, echo)
      try {
        expect(refused?.startsWith(noDeliveryLayer)).toBe(true)
        expect(client.remoteChannels).toBeNull()
        await waitFor(() => serverSaw.length === 1, 3000, 'the server saw it leave')
      } finally {
        await close()
      }
    })

    it('that stays silent: connect() rejects once the wait for its settings is over (2 s)', async () => {
      const started = performance.now()
      const { client, serverSaw, refused, close } = await pair({}, { channels: modes('reliable') })
      try {
        expect(refused).toMatch(
          /^ERR_CHANNELS_MISMATCH: The server sent no delivery settings in the 2000 ms after connecting: it has no channels configured, which this client has \(or the network lost all it sent\) \(at 127\.0\.0\.1:\d+, the last address tried\) \(channels-mismatch\)$/,
        )
        expect(performance.now() - started).toBeGreaterThanOrEqual(1900)
        expect(client.state).toBe('channels-mismatch')
        await waitFor(() => serverSaw.length === 1, 3000, 'the server saw it leave')
        expect(serverSaw).toEqual(['disconnected'])
      } finally {
        await close()
      }
    })
  })
})

describe('a client without channels whose server has them', () => {
  for (const engine of ['native', 'fallback'] as const) {
    it(`is warned once, naming the server's channels, and not by a raw payload that starts with the marker (${engine} engine)`, () => {
      // In a process of its own: the warning is given once a process.
      const output = execFileSync(process.execPath, ['--import', 'tsx', 'test/fixtures/server-has-channels.ts'], {
        encoding: 'utf8',
        env: { ...process.env, VOLLEY_ENGINE: engine === 'fallback' ? 'fallback' : '' },
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 20_000,
      })
      const seen = JSON.parse(output) as {
        warnings: { phase: string; code?: string; message: string }[]
        raw: { port: number; firstBytes: number[]; reason: string }
        withChannels: { port: number; firstBytes: number[]; reason: string }
      }
      // Messages still arrive as they are: the warning changes nothing on the wire.
      expect(seen.raw).toMatchObject({ firstBytes: [0xd1], reason: 'still connected' })
      expect(seen.withChannels).toMatchObject({ firstBytes: [0xd1], reason: 'disconnected' })
      expect(seen.warnings.map(({ phase, code }) => `${phase} ${code}`)).toEqual(['channels VOLLEY_SERVER_HAS_CHANNELS'])
      expect(seen.warnings[0]!.message).toContain(`The server at 127.0.0.1:${seen.withChannels.port} runs channels (reliable, unreliable; messages up to 65536 bytes)`)
    }, 30_000)
  }
})
