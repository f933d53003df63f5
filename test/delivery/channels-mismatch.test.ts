// Server and client with channels that differ, through real sockets on loopback: each side learns the
// other's channels and largest message (remoteChannels), send() refuses what the peer would drop, and
// channels that cannot work together end the connection on both sides with 'channels-mismatch'.
import { describe, expect, it } from 'vitest'
import { type ChannelOptions, Client, type ClientOptions, type DisconnectReason, type Peer, Server, type ServerOptions, generateConnectToken, isVolleyError } from '../../src/index.ts'
import { waitFor } from '../helpers.ts'

const privateKey = new Uint8Array(32).fill(5)
const protocolId = 0x5e77n
const fast = { disconnectIntervalMs: 5 }

async function pair(serverOptions: Partial<ServerOptions>, clientOptions: ClientOptions, onConnect?: (peer: Peer) => void) {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, ...fast, ...serverOptions })
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
  await client.connect(
    await generateConnectToken({ protocolId, privateKey, clientId: 3n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 }),
  )
  await waitFor(() => peers.length === 1)
  const close = async () => {
    await client.close()
    await server.close()
  }
  return { server, client, peer: peers[0]!, serverSaw, clientSaw, clientGot, close }
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

  it('a channel both have in two modes ends the connection on both sides, delivering nothing, and the errors say which', async () => {
    // The server sends on every channel at once. Those that reach the client in the batch where it finds
    // the mismatch (before it disconnects) are not delivered; later ones find it disconnected.
    // (settings.test.ts shows the same without the sockets' timing.)
    const sendAtConnect = (peer: Peer) => {
      for (let i = 0; i < 6; i++) peer.send(new Uint8Array(8).fill(i), { channel: i % 2 })
    }
    const { client, peer, serverSaw, clientSaw, clientGot, close } = await pair({ channels: modes('reliable', 'unreliable') }, { channels: modes('reliable', 'reliable') }, sendAtConnect)
    try {
      await waitFor(() => serverSaw.length === 1 && clientSaw.length === 1, 3000, 'both sides disconnected')
      expect(clientGot).toEqual([])
      expect(serverSaw).toEqual(['channels-mismatch'])
      expect(clientSaw).toEqual(['channels-mismatch'])
      expect(client.state).toBe('channels-mismatch')
      expect(codeOf(() => peer.send(new Uint8Array(1)))).toBe(
        "ERR_PEER_DISCONNECTED: Peer 3 is not connected: its connection ended ('channels-mismatch': channel 1 is 'unreliable' on this side and 'reliable' on the client)",
      )
      expect(codeOf(() => client.send(new Uint8Array(1)))).toBe(
        "ERR_CLIENT_NOT_CONNECTED: The client is channels-mismatch (channel 1 is 'reliable' on this side and 'unreliable' on the server), not connected",
      )
      // What the peer announced stays readable after the end.
      expect(peer.remoteChannels?.channels).toEqual(modes('reliable', 'reliable'))
    } finally {
      await close()
    }
  })

  it('a client without channels that sends is disconnected by a server with channels', async () => {
    const { client, peer, serverSaw, close } = await pair({ channels: modes('reliable') }, {})
    try {
      client.send(new TextEncoder().encode('raw netcode payload'))
      await waitFor(() => serverSaw.length === 1, 3000, 'the server disconnected it')
      expect(serverSaw).toEqual(['channels-mismatch'])
      expect(peer.remoteChannels).toBeNull()
      expect(codeOf(() => peer.send(new Uint8Array(1)))).toBe(
        "ERR_PEER_DISCONNECTED: Peer 3 is not connected: its connection ended ('channels-mismatch': the client sent a payload without the delivery layer: it has no channels configured)",
      )
      await waitFor(() => client.state !== 'connected', 3000, 'the client hears of it')
      expect(client.state).toBe('disconnected')
    } finally {
      await close()
    }
  })

  it('a client with channels ends its connection to a server without them that sends', async () => {
    const { client, peer, clientSaw, serverSaw, close } = await pair({}, { channels: modes('reliable') })
    try {
      peer.send(new TextEncoder().encode('raw netcode payload'))
      await waitFor(() => clientSaw.length === 1, 3000, 'the client disconnected')
      expect(clientSaw).toEqual(['channels-mismatch'])
      expect(client.remoteChannels).toBeNull()
      expect(codeOf(() => client.send(new Uint8Array(1)))).toBe(
        'ERR_CLIENT_NOT_CONNECTED: The client is channels-mismatch (the server sent a payload without the delivery layer: it has no channels configured), not connected',
      )
      // It said goodbye with netcode's disconnect packets.
      await waitFor(() => serverSaw.length === 1, 3000, 'the server saw it leave')
      expect(serverSaw).toEqual(['disconnected'])
    } finally {
      await close()
    }
  })
})
