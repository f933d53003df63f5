// An option given as undefined means its default, as if it were absent: code built with
// exactOptionalPropertyTypes passes `{ signal: maybeSignal }` and the like. The objects below are typed with
// the public option types, so the type-check (tsconfig.json has exactOptionalPropertyTypes on) fails if one
// of them stops accepting undefined; the runs check that each undefined behaves as the default.
import { describe, expect, it } from 'vitest'
import {
  type ClientOptions,
  type ConnectTokenOptions,
  type DatagramSocketOptions,
  type NetworkSimulatorOptions,
  type SendOptions,
  type ServerOptions,
  Client,
  ClientPool,
  Server,
  generateConnectToken,
  readConnectToken,
} from '../src/index.ts'
import { type EngineKind, onEngine, socketsClosedAfterEach, waitFor } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(21)
const protocolId = 0x21n
const createDatagramSocket = socketsClosedAfterEach()

const simulatorUndefined: NetworkSimulatorOptions = {
  loss: undefined,
  latencyMs: undefined,
  jitterMs: undefined,
  duplicate: undefined,
  reorder: undefined,
  bandwidthBytesPerSec: undefined,
  queueBytes: undefined,
  seed: undefined,
  clockOffsetMs: undefined,
  clockDriftPpm: undefined,
}

const deliveryUndefined = { maxMessageBytes: undefined, sendQueueBytes: undefined, pingIntervalMs: undefined }

function serverOptions(): ServerOptions {
  return {
    protocolId,
    privateKey,
    address: '127.0.0.1:0',
    publicAddress: undefined,
    maxClients: undefined,
    keepAliveIntervalMs: undefined,
    disconnectPackets: undefined,
    disconnectIntervalMs: undefined,
    reusePort: undefined,
    recvBufferSize: undefined,
    sendBufferSize: undefined,
    batchSize: undefined,
    coalesceUs: undefined,
    engine: undefined,
    channels: [{ mode: 'reliable' }],
    ...deliveryUndefined,
    networkSimulator: undefined,
  }
}

const clientOptions: ClientOptions = {
  requestIntervalMs: undefined,
  keepAliveIntervalMs: undefined,
  disconnectPackets: undefined,
  // Not the default: the close() below need not send its disconnects 100 ms apart.
  disconnectIntervalMs: 2,
  recvBufferSize: undefined,
  sendBufferSize: undefined,
  coalesceUs: undefined,
  engine: undefined,
  channels: [{ mode: 'reliable' }],
  ...deliveryUndefined,
  networkSimulator: simulatorUndefined,
}

function tokenOptions(port: number, clientId: bigint): ConnectTokenOptions {
  return {
    protocolId,
    privateKey,
    clientId,
    serverAddresses: [`127.0.0.1:${port}`],
    expireSeconds: 30,
    timeoutSeconds: 5,
    userData: undefined,
    clientToServerKey: undefined,
    serverToClientKey: undefined,
    nowSeconds: undefined,
    nonce: undefined,
  }
}

describe.each<EngineKind>(['native', 'fallback'])('options given as undefined take their defaults (%s engine)', (engine) => {
  it('Server, Client, connect tokens, send and the waits', async () => {
    const server = new Server(serverOptions())
    const { port } = await onEngine(engine, () => server.listen())
    const received: [Uint8Array, number][] = []
    server.on('message', (peer, data, channel) => {
      received.push([data.slice(), channel])
      const options: SendOptions = { channel: undefined }
      peer.send(data, options)
    })
    const token = await generateConnectToken(tokenOptions(port, 7n))
    const read = readConnectToken(token)
    expect(read.expireTimestamp - read.createTimestamp).toBe(30n) // nowSeconds undefined: now
    const client = new Client(clientOptions)
    try {
      await onEngine(engine, () => client.connect(token, { signal: undefined }))
      // The server's defaults, as it announced them: a 1 MiB message maximum.
      expect(client.remoteChannels).toEqual({ channels: [{ mode: 'reliable' }], maxMessageBytes: 1 << 20 })
      await waitFor(() => server.peers.size === 1, 5000, "the server's 'connect'")
      const peer = [...server.peers.values()][0]!
      expect(peer.userData).toEqual(new Uint8Array(256)) // userData undefined: zeros
      const echoes: [Uint8Array, number][] = []
      client.on('message', (data, channel) => echoes.push([data.slice(), channel]))
      expect(client.send(new Uint8Array([1, 2, 3]), { channel: undefined })).toBe(true)
      await client.flushed({ signal: undefined })
      await client.drained({ signal: undefined })
      await waitFor(() => echoes.length === 1, 5000, 'the echo')
      expect(received).toEqual([[new Uint8Array([1, 2, 3]), 0]])
      expect(echoes).toEqual([[new Uint8Array([1, 2, 3]), 0]])
      await peer.drained({ signal: undefined })
      await peer.flushed({ signal: undefined })
      // networkSimulator with every field undefined: a simulator that drops, delays and duplicates nothing.
      expect(client.stats().networkSimulator).toMatchObject({ lost: 0, duplicated: 0, reordered: 0, overflowed: 0 })
    } finally {
      await client.close()
      await server.close()
    }
  })

  it('ClientPool.connect() and createDatagramSocket()', async () => {
    const server = new Server({ ...serverOptions(), channels: undefined })
    const { port } = await onEngine(engine, () => server.listen())
    const pool = new ClientPool({ ...clientOptions, channels: undefined, networkSimulator: undefined })
    try {
      const tokens = await Promise.all([1n, 2n, 3n].map((id) => generateConnectToken(tokenOptions(port, id))))
      const result = await onEngine(engine, () => pool.connect(tokens, { concurrency: undefined, signal: undefined }))
      expect(result).toMatchObject({ connected: 3, failed: 0, skipped: 0 })
    } finally {
      await pool.close()
      await server.close()
    }

    const options: DatagramSocketOptions = {
      type: undefined,
      batchSize: undefined,
      recvBufferSize: undefined,
      sendBufferSize: undefined,
      reusePort: undefined,
      reuseAddr: undefined,
      ipv6Only: undefined,
      engine: undefined,
      coalesceUs: undefined,
    }
    const socket = createDatagramSocket(options)
    expect(socket.type).toBe('udp4')
    const bound = await onEngine(engine, () => socket.bind(0, undefined))
    expect(bound).toMatchObject({ address: '0.0.0.0', family: 'IPv4' })
    const heard = new Promise<Uint8Array>((resolve) => socket.once('message', (data) => resolve(Uint8Array.from(data))))
    socket.send(new Uint8Array([9]), bound.port, '127.0.0.1')
    expect(await heard).toEqual(new Uint8Array([9]))
    await socket.drained({ signal: undefined })
  })
})
