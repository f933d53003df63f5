// What a call takes is the bytes as they were at the call: a caller may reuse or wipe its Buffer (or key,
// or token) as soon as the call returns. (The fallback engine kept views of Buffers: Buffer's slice() is
// a view, not a copy, and a reliable channel delivered, and resent, the caller's later bytes.)
import { describe, expect, it } from 'vitest'
import { runInNewContext } from 'node:vm'
import { type ChannelMode, Client, ClientPool, type Peer, Server, formatServerAddress, generateConnectToken, generateKey, readConnectToken } from '../src/index.ts'
import { type EngineKind, onEngine, socketsClosedAfterEach, waitFor, within } from './helpers.ts'

const protocolId = 0x42n
const createDatagramSocket = socketsClosedAfterEach()

function tokenFor(privateKey: Uint8Array, port: number, clientId: bigint): Promise<Uint8Array> {
  return generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
}

/** The number a message carries in its last 4 bytes. */
const numberOf = (data: Uint8Array): number => new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(data.byteLength - 4)

describe.each<EngineKind>(['native', 'fallback'])('bytes the caller changes after the call (%s engine)', (engine) => {
  it.each<[ChannelMode | 'none', number]>([
    ['reliable', 100],
    ['reliable', 5000], // fragments
    ['unreliable', 100],
    ['sequenced', 5000],
    ['none', 100],
  ])('send() from one Buffer, rewritten between sends, both ways: each message as it was sent (%s, %d B)', async (mode, size) => {
    const privateKey = await generateKey()
    const delivery = mode === 'none' ? {} : { channels: [{ mode }] }
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', disconnectIntervalMs: 5, ...delivery })
    const { port } = await onEngine(engine, () => server.listen())
    const client = new Client({ disconnectIntervalMs: 5, ...delivery })
    try {
      const atServer: number[] = []
      const atClient: number[] = []
      server.on('message', (_peer, data) => atServer.push(numberOf(data)))
      client.on('message', (data) => atClient.push(numberOf(data)))
      const connected = new Promise<Peer>((resolve) => server.once('connect', resolve))
      const token = await tokenFor(privateKey, port, 1n)
      await onEngine(engine, () => client.connect(token))
      const peer = await within(connected, 5000, "the server's 'connect'")
      const buffer = Buffer.alloc(size)
      for (let i = 0; i < 5; i++) {
        buffer.writeUInt32BE(i, size - 4)
        expect(client.send(buffer)).toBe(true)
        expect(peer.send(buffer)).toBe(true)
      }
      buffer.fill(0xff) // and once more after the last
      await waitFor(() => atServer.length === 5 && atClient.length === 5, 5000, 'the 5 messages each way')
      expect({ atServer, atClient }).toEqual({ atServer: [0, 1, 2, 3, 4], atClient: [0, 1, 2, 3, 4] })
    } finally {
      await client.close()
      await server.close()
    }
  })

  it("a server's key, a token's key and a token, wiped as soon as the calls return: the connection is made all the same", async () => {
    const privateKey = await generateKey()
    const serverKey = Buffer.from(privateKey)
    const server = new Server({ protocolId, privateKey: serverKey, address: '127.0.0.1:0', disconnectIntervalMs: 5 })
    serverKey.fill(0) // before listen(), which hands the key to the engine
    const { port } = await onEngine(engine, () => server.listen())
    const backendKey = Buffer.from(privateKey)
    const made = tokenFor(backendKey, port, 2n)
    backendKey.fill(0) // before generateConnectToken() has sealed the token (it awaits libsodium first)
    const token = Buffer.from(await made)
    const client = new Client({ disconnectIntervalMs: 5 })
    try {
      const connecting = onEngine(engine, () => client.connect(token))
      token.fill(0) // the attempt reads it on (the fallback engine once its crypto has loaded and its socket is open)
      await connecting
      expect(client.state).toBe('connected')
    } finally {
      await client.close()
      await server.close()
    }
  })

  it("ClientPool.connect()'s tokens, wiped as soon as the call returns: each attempt reads its token as it was", async () => {
    const privateKey = await generateKey()
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', disconnectIntervalMs: 5 })
    const { port } = await onEngine(engine, () => server.listen())
    const pool = new ClientPool({ disconnectIntervalMs: 5 })
    try {
      const tokens = await Promise.all([3n, 4n, 5n].map(async (id) => Buffer.from(await tokenFor(privateKey, port, id))))
      const result = onEngine(engine, () => pool.connect(tokens, { concurrency: 1 })) // one after another
      for (const token of tokens) token.fill(0)
      expect(await result).toMatchObject({ connected: 3, failed: 0 })
    } finally {
      await pool.close()
      await server.close()
    }
  })

  it('a datagram socket sending while its bind resolves a host name: each datagram as it was sent', async () => {
    const receiver = createDatagramSocket()
    const { port } = await onEngine(engine, () => receiver.bind(0, '127.0.0.1'))
    const got: number[] = []
    receiver.on('message', (data) => got.push(numberOf(data)))
    const sender = createDatagramSocket()
    const bound = onEngine(engine, () => sender.bind(0, 'localhost')) // sends wait for it
    const buffer = Buffer.alloc(8)
    for (let i = 0; i < 3; i++) {
      buffer.writeUInt32BE(i, 4)
      expect(sender.send(buffer, port, '127.0.0.1')).toBe(true)
    }
    buffer.fill(0xff)
    await bound
    await waitFor(() => got.length === 3, 5000, 'the 3 datagrams')
    expect(got).toEqual([0, 1, 2])
  })

  it.each<ChannelMode | 'none'>(['reliable', 'none'])(
    'a view whose buffer was transferred away (detached) or resized to end before it: send() throws ERR_INVALID_ARG_VALUE and counts nothing, so the queue still empties (%s)',
    async (mode) => {
      const privateKey = await generateKey()
      const delivery = mode === 'none' ? {} : { channels: [{ mode }], sendQueueBytes: 10_000 }
      const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', disconnectIntervalMs: 5, ...delivery })
      const { port } = await onEngine(engine, () => server.listen())
      const client = new Client({ disconnectIntervalMs: 5, ...delivery })
      try {
        const connected = new Promise<Peer>((resolve) => server.once('connect', resolve))
        await onEngine(engine, async () => client.connect(await tokenFor(privateKey, port, 1n)))
        const peer = await within(connected, 5000, "the server's 'connect'")
        const detached = (): Uint8Array => {
          const view = new Uint8Array(new ArrayBuffer(100), 10, 50)
          structuredClone(view.buffer, { transfer: [view.buffer] })
          return view
        }
        // A view past the end of its resizable buffer reads as empty, as a detached one does; a DataView of a
        // detached buffer throws when its length is read.
        const shrunk = (): Uint8Array => {
          // (ES2024's resizable ArrayBuffer: in Node 20, not in the project's TypeScript lib)
          const Resizable = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ArrayBuffer & { resize(length: number): void }
          const buffer = new Resizable(500, { maxByteLength: 1000 })
          const view = new Uint8Array(buffer, 100, 300)
          buffer.resize(10)
          return view
        }
        const detachedDataView = (): DataView => {
          const view = new DataView(new ArrayBuffer(8))
          structuredClone(view.buffer, { transfer: [view.buffer] })
          return view
        }
        const refused = { code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/detached ArrayBuffer/) }
        for (const gone of [detached, shrunk]) {
          expect(() => client.send(gone())).toThrow(expect.objectContaining(refused))
          expect(() => peer.send(gone())).toThrow(expect.objectContaining(refused))
        }
        const socket = createDatagramSocket()
        await onEngine(engine, () => socket.bind(0, '127.0.0.1'))
        for (const gone of [detached, shrunk, detachedDataView]) {
          expect(() => socket.send(gone(), port, '127.0.0.1')).toThrow(expect.objectContaining(refused))
        }
        expect(socket.stats().queue.depth).toBe(0)
        // An empty view of a live buffer is no detached one, of whatever element type.
        expect(socket.send(new Uint8Array(0), port, '127.0.0.1')).toBe(true)
        expect(socket.send(new BigInt64Array(0), port, '127.0.0.1')).toBe(true)
        if (mode !== 'none') {
          expect(client.send(new Uint8Array(0))).toBe(true)
          // Nothing was counted against the queue for the detached views: it empties, and then takes a
          // message larger than its bound (a lone message always fits).
          await within(Promise.all([client.flushed(), peer.flushed()]), 3000, 'flushed() on both sides')
          expect([client.bufferedAmount, peer.bufferedAmount]).toEqual([0, 0])
          expect(client.send(new Uint8Array(20_000))).toBe(true)
        }
      } finally {
        await client.close()
        await server.close()
      }
    },
  )
})

describe('a connect token that is no Uint8Array', () => {
  it.each([undefined, null, {}, 5, new ArrayBuffer(2048), new DataView(new ArrayBuffer(2048)), Array.from({ length: 2048 }, () => 0)])(
    'connect(%o) rejects with ERR_INVALID_ARG_TYPE before any copy or attempt',
    async (token) => {
      const client = new Client()
      await expect(client.connect(token as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/^A connect token must be a Uint8Array of 2048 bytes/) })
      await client.close()
    },
  )
})

describe('bytes whose buffer was transferred away (detached), given as a token, a key or user data', () => {
  const detached = (length: number): Uint8Array => {
    const view = new Uint8Array(length)
    structuredClone(view.buffer, { transfer: [view.buffer] })
    return view
  }
  const gone = { code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/is a view of a detached ArrayBuffer/) }

  it('generateConnectToken() and readConnectToken() refuse them with ERR_INVALID_ARG_VALUE, naming what they were given as', async () => {
    const options = { protocolId, privateKey: await generateKey(), clientId: 1n, serverAddresses: ['127.0.0.1:40000'], expireSeconds: 30, timeoutSeconds: 5 }
    await expect(generateConnectToken({ ...options, userData: detached(8) })).rejects.toMatchObject({ ...gone, message: expect.stringMatching(/^The "userData" option is a view of a detached/) })
    await expect(generateConnectToken({ ...options, privateKey: detached(32) })).rejects.toMatchObject({ ...gone, message: expect.stringMatching(/^The "privateKey" option is a view of a detached/) })
    expect(() => readConnectToken(detached(2048))).toThrow(expect.objectContaining({ ...gone, message: expect.stringMatching(/^The connect token is a view/) }))
    // One from another realm (a vm context) too, which is viewed anew where its bytes are there.
    const foreign = runInNewContext('new Uint8Array(2048)') as Uint8Array
    structuredClone(foreign.buffer, { transfer: [foreign.buffer as ArrayBuffer] })
    expect(() => readConnectToken(foreign)).toThrow(expect.objectContaining({ ...gone, message: expect.stringMatching(/^The connect token is a view/) }))
    expect(() => formatServerAddress({ family: 4, bytes: detached(4), port: 1 })).toThrow(
      expect.objectContaining({ ...gone, message: expect.stringMatching(/^The "bytes" field of the server address is a view/) }),
    )
    // A DataView is no token: refused for its type, though its length cannot be read.
    const view = new DataView(new ArrayBuffer(2048))
    structuredClone(view.buffer, { transfer: [view.buffer] })
    expect(() => readConnectToken(view as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/Received an instance of DataView whose bytes are gone/) }))
  })

  it("a ClientPool's attempt with one fails alone, counted under its code; the other tokens connect", async () => {
    const privateKey = await generateKey()
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0' })
    const { port } = await server.listen()
    const pool = new ClientPool()
    try {
      const good = await tokenFor(privateKey, port, 1n)
      const result = await pool.connect([detached(2048), good])
      expect(result).toMatchObject({ connected: 1, failed: 1 })
      expect(pool.stats().failed).toEqual({ ERR_INVALID_ARG_VALUE: 1 })
      const made = await pool.connect({ count: 1, make: () => detached(2048) })
      expect(made).toMatchObject({ connected: 0, failed: 1 })
      expect(pool.stats().failed).toEqual({ ERR_INVALID_ARG_VALUE: 2 })
    } finally {
      await pool.close()
      await server.close()
    }
  })
})
