// Server and client with channels that differ, through real sockets on loopback: each side learns the
// other's channels and largest message (remoteChannels), send() refuses what the peer would drop, and
// channels that cannot work together end the connection on both sides with 'channels-mismatch'.
import { describe, expect, it } from 'vitest'
import { type ChannelOptions, Client, type ClientOptions, type ConnectError, type DisconnectReason, type Peer, Server, type ServerOptions, generateConnectToken, isVolleyError } from '../../src/index.ts'
import { waitFor } from '../helpers.ts'

const privateKey = new Uint8Array(32).fill(5)
const protocolId = 0x5e77n
const fast = { disconnectIntervalMs: 5 }

async function pair(serverOptions: Partial<ServerOptions>, clientOptions: ClientOptions, onConnect?: (peer: Peer) => void, prepare?: (server: Server) => void) {
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
  const clientSaw: string[] = []
  client.on('disconnect', (state) => clientSaw.push(state))
  const clientGot: number[] = []
  client.on('message', (_data, channel) => clientGot.push(channel))
  const token = await generateConnectToken({ protocolId, privateKey, clientId: 3n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
  // connect()'s outcome: undefined when it resolved, else its error as "code: message (state)".
  const refused = await client.connect(token).then(
    () => undefined,
    (error: ConnectError) => `${error.code}: ${error.message} (${error.state})`,
  )
  await waitFor(() => peers.length === 1)
  const close = async () => {
    await client.close()
    await server.close()
  }
  return { server, client, peer: peers[0]!, serverSaw, clientSaw, clientGot, refused, close }
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

  it('a channel both have in two modes: connect() rejects, the server ends the peer, delivering nothing, and the errors say which', async () => {
    // The server sends on every channel at once. Those that reach the client in the batch where it finds
    // the mismatch (before it disconnects) are not delivered; later ones find it disconnected.
    // (settings.test.ts shows the same without the sockets' timing.)
    const sendAtConnect = (peer: Peer) => {
      for (let i = 0; i < 6; i++) peer.send(new Uint8Array(8).fill(i), { channel: i % 2 })
    }
    const { client, peer, serverSaw, clientSaw, clientGot, refused, close } = await pair(
      { channels: modes('reliable', 'unreliable') },
      { channels: modes('reliable', 'reliable') },
      sendAtConnect,
    )
    try {
      expect(refused).toMatch(
        /^ERR_CHANNELS_MISMATCH: The server's channels do not work with this client's: channel 1 is 'reliable' on this side and 'unreliable' on the server \(at 127\.0\.0\.1:\d+, the last address tried\) \(channels-mismatch\)$/,
      )
      expect(client.state).toBe('channels-mismatch')
      await waitFor(() => serverSaw.length === 1, 3000, 'the server disconnected the peer')
      expect(serverSaw).toEqual(['channels-mismatch'])
      // connect() rejected: the connection was never reported, nor its end.
      expect(clientSaw).toEqual([])
      expect(clientGot).toEqual([])
      expect(codeOf(() => peer.send(new Uint8Array(1)))).toBe(
        "ERR_PEER_DISCONNECTED: Peer 3 is not connected: its connection ended ('channels-mismatch': channel 1 is 'unreliable' on this side and 'reliable' on the client)",
      )
      expect(codeOf(() => client.send(new Uint8Array(1)))).toBe(
        "ERR_CLIENT_NOT_CONNECTED: The client is not connected: its channels do not work with the server's ('channels-mismatch': channel 1 is 'reliable' on this side and 'unreliable' on the server)",
      )
      // What the peer announced stays readable after the end.
      expect(peer.remoteChannels?.channels).toEqual(modes('reliable', 'reliable'))
      expect(client.remoteChannels?.channels).toEqual(modes('reliable', 'unreliable'))
    } finally {
      await close()
    }
  })

  it('a client without channels that sends is disconnected by a server with channels', async () => {
    const { client, peer, serverSaw, refused, close } = await pair({ channels: modes('reliable') }, {})
    try {
      expect(refused).toBeUndefined() // it has no channels: nothing to wait for
      client.send(new TextEncoder().encode('raw netcode payload'))
      await waitFor(() => serverSaw.length === 1, 3000, 'the server disconnected it')
      expect(serverSaw).toEqual(['channels-mismatch'])
      expect(peer.remoteChannels).toBeNull()
      expect(codeOf(() => peer.send(new Uint8Array(1)))).toBe(
        "ERR_PEER_DISCONNECTED: Peer 3 is not connected: its connection ended ('channels-mismatch': the client does not run the delivery layer: " +
          "it has no channels configured (its payloads are not delivery packets, or are this side's own sent back))",
      )
      await waitFor(() => client.state !== 'connected', 3000, 'the client hears of it')
      expect(client.state).toBe('disconnected')
    } finally {
      await close()
    }
  })

  describe('a client with channels, a server without', () => {
    const noDeliveryLayer =
      "ERR_CHANNELS_MISMATCH: The server's channels do not work with this client's: the server does not run the delivery layer: it has no channels configured " +
      "(its payloads are not delivery packets, or are this side's own sent back)"

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
        expect(refused).toBe(
          'ERR_CHANNELS_MISMATCH: The server sent no delivery settings in the 2000 ms after connecting: it has no channels configured, which this client has ' +
            '(or the network lost all it sent) (channels-mismatch)',
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
