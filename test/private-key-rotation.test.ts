// server.rotatePrivateKey() over loopback, on both engines: clients whose tokens were minted under the old key
// and under the new one, around a rotation, all connect; once the old key's grace is over, its tokens are
// refused. Then rotations before listen() and while the fallback engine opens its socket, and bad input.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Client, Server, generateConnectToken, isVolleyError } from '../src/index.ts'
import { type EngineKind, onEngine, waitFor, within } from './helpers.ts'

const protocolId = 0x4077n
const oldKey = new Uint8Array(32).fill(0x0a)
const newKey = new Uint8Array(32).fill(0x0b)
const fast = { disconnectIntervalMs: 5 }

const opened: { close(): Promise<void> }[] = []
afterEach(async () => {
  for (const each of opened.splice(0).reverse()) await each.close()
})

function newServer(privateKey = oldKey): Server {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 64, ...fast })
  opened.push(server)
  return server
}

let nextClientId = 1n
function token(address: string, privateKey: Uint8Array, timeoutSeconds = 5): Promise<Uint8Array> {
  return generateConnectToken({ protocolId, privateKey, clientId: nextClientId++, serverAddresses: [address], expireSeconds: 30, timeoutSeconds })
}

async function connect(engine: EngineKind, bytes: Uint8Array): Promise<Client> {
  const client = new Client(fast)
  opened.push(client)
  await onEngine(engine, () => client.connect(bytes))
  return client
}

/** How a connect() with a token the server refuses ends: the server never answers, and the request times out. */
async function refused(engine: EngineKind, bytes: Uint8Array): Promise<unknown> {
  const client = new Client(fast)
  opened.push(client)
  return onEngine(engine, () => client.connect(bytes)).then(
    () => 'connected',
    (error: unknown) => error,
  )
}

describe.each(['native', 'fallback'] as const)('rotatePrivateKey() on the %s engine', (engine) => {
  it('refuses no client across a rotation while listening, and refuses the old key once its grace is over', async () => {
    const server = newServer()
    const { port } = await onEngine(engine, () => server.listen())
    const address = `127.0.0.1:${port}`
    const connected: bigint[] = []
    server.on('connect', (peer) => connected.push(peer.clientId))
    expect(server.privateKeyCount).toBe(1)

    // Tokens minted under the old key just before the backend switches, and one client already connected.
    const before = await Promise.all(Array.from({ length: 6 }, () => token(address, oldKey)))
    await connect(engine, before[0]!)
    // Half of them are connecting as the server rotates; the rest come after, beside tokens under the new key.
    const early = before.slice(1, 4).map((bytes) => connect(engine, bytes))
    server.rotatePrivateKey(newKey, { graceMs: 1500 })
    expect(server.privateKeyCount).toBe(2)
    const after = await Promise.all(Array.from({ length: 6 }, () => token(address, newKey)))
    const clients = await within(Promise.all([...early, ...before.slice(4).map((bytes) => connect(engine, bytes)), ...after.map((bytes) => connect(engine, bytes))]), 5000, 'every client to connect')
    expect(clients.every((client) => client.state === 'connected')).toBe(true)
    await waitFor(() => connected.length === 12, 3000, () => `12 connect events (${connected.length})`)
    const stats = server.stats()
    expect(stats.drops.tokenRefused).toBe(0)
    expect(stats.privateKeys.accepted).toBe(2)
    expect(stats.privateKeys.previousKeyRequests).toBeGreaterThanOrEqual(2) // the old key's tokens that came after the rotation

    // Its grace over, the old key is dropped: a token under it is refused (the client hears nothing and gives up).
    await waitFor(() => server.privateKeyCount === 1, 4000, 'the old key to leave')
    const failed = await refused(engine, await token(address, oldKey, 1))
    expect(isVolleyError(failed) && failed.code).toBe('ERR_CONNECTION_REQUEST_TIMED_OUT')
    expect(server.stats().drops.tokenRefused).toBeGreaterThanOrEqual(1)
    expect(server.stats().privateKeys.accepted).toBe(1)
    // The new key's tokens still connect.
    await connect(engine, await token(address, newKey))
  }, 20_000)

  it('takes a rotation made before listen(), and one made as listen() begins, with what is left of their grace', async () => {
    const server = newServer()
    server.rotatePrivateKey(newKey, { graceMs: 10_000 }) // before: the old key in its grace at listen()
    const third = new Uint8Array(32).fill(0x0c)
    const listening = onEngine(engine, () => server.listen())
    server.rotatePrivateKey(third) // as it begins (the fallback engine is still opening its socket)
    const { port } = await listening
    const address = `127.0.0.1:${port}`
    expect(server.privateKeyCount).toBe(3)
    for (const key of [oldKey, newKey, third]) {
      const client = await connect(engine, await token(address, key))
      expect(client.state).toBe('connected')
    }
    expect(server.stats().privateKeys.accepted).toBe(3)
    expect(server.stats().privateKeys.previousKeyRequests).toBeGreaterThanOrEqual(2) // (a request resent before its answer counts again)
  }, 20_000)

  it('with graceMs 0, refuses the old key at once', async () => {
    const server = newServer()
    const { port } = await onEngine(engine, () => server.listen())
    const address = `127.0.0.1:${port}`
    server.rotatePrivateKey(newKey, { graceMs: 0 })
    expect(server.privateKeyCount).toBe(1)
    const failed = await refused(engine, await token(address, oldKey, 1))
    expect(isVolleyError(failed) && failed.code).toBe('ERR_CONNECTION_REQUEST_TIMED_OUT')
    await connect(engine, await token(address, newKey))
    expect(server.stats().drops.tokenRefused).toBeGreaterThanOrEqual(1)
  }, 20_000)
})

describe('rotatePrivateKey(): bad input and a closed server', () => {
  it('refuses a key that is no 32-byte Uint8Array, or all zeros, with a typed error, and changes nothing', () => {
    const server = newServer()
    const cases: [unknown, string, RegExp][] = [
      ['0b'.repeat(32), 'ERR_INVALID_ARG_TYPE', /The "privateKey" argument must be a Uint8Array of 32 bytes\. Received type string of 64 characters/],
      [undefined, 'ERR_INVALID_ARG_TYPE', /The "privateKey" argument must be a Uint8Array of 32 bytes/],
      [new Uint8Array(16).fill(1), 'ERR_OUT_OF_RANGE', /The "privateKey" argument must be 32 bytes\. Received 16 bytes/],
      [new Uint8Array(33).fill(1), 'ERR_OUT_OF_RANGE', /must be 32 bytes\. Received 33 bytes/],
      [new Uint8Array(32), 'ERR_INVALID_ARG_VALUE', /The "privateKey" argument is all zeros, which is no secret/],
    ]
    for (const [key, code, message] of cases) {
      const error = (() => {
        try {
          server.rotatePrivateKey(key as Uint8Array)
        } catch (caught) {
          return caught
        }
      })()
      expect(error).toMatchObject({ code, message: expect.stringMatching(message) })
    }
    expect(server.privateKeyCount).toBe(1)
  })

  it('refuses options it does not know and a grace out of range', () => {
    const server = newServer()
    expect(() => server.rotatePrivateKey(newKey, { graceMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: 'The "graceMs" option must be from 0 to 2147483647 ms. Received -1' }))
    expect(() => server.rotatePrivateKey(newKey, { graceMs: Number.NaN })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => server.rotatePrivateKey(newKey, { graceMs: '5' as unknown as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => server.rotatePrivateKey(newKey, { grace: 5 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/Unknown option "grace"/) }))
    expect(() => server.rotatePrivateKey(newKey, null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(server.privateKeyCount).toBe(1)
  })

  it("wipes its copy of a replaced key when the grace ends, whether or not anything reads the keys", async () => {
    const server = newServer()
    const replaced = new Uint8Array(32).fill(0x0d)
    server.rotatePrivateKey(replaced, { graceMs: 0 })
    const wiped: Uint8Array[] = []
    const original = Uint8Array.prototype.fill
    const fill = vi.spyOn(Uint8Array.prototype, 'fill').mockImplementation(function (this: Uint8Array, ...args: Parameters<Uint8Array['fill']>) {
      if (args[0] === 0 && this.length === 32 && this.every((byte) => byte === 0x0d)) wiped.push(this)
      return original.apply(this, args)
    })
    try {
      server.rotatePrivateKey(newKey, { graceMs: 30 })
      expect(wiped).toEqual([])
      await waitFor(() => wiped.length > 0, 2000, 'the replaced key wiped by its timer')
    } finally {
      fill.mockRestore()
      await server.close()
    }
  })

  it('copies the key: the caller may wipe its own at once', async () => {
    const server = newServer()
    const mine = newKey.slice()
    server.rotatePrivateKey(mine, { graceMs: 0 })
    mine.fill(0)
    const { port } = await server.listen()
    const client = await connect('native', await token(`127.0.0.1:${port}`, newKey))
    expect(client.state).toBe('connected')
  })

  it('throws ERR_SERVER_CLOSED once the server is closed (its keys are wiped), listening or not', async () => {
    for (const listen of [false, true]) {
      const server = newServer()
      if (listen) await server.listen()
      const closing = server.close()
      expect(() => server.rotatePrivateKey(newKey)).toThrow(expect.objectContaining({ code: 'ERR_SERVER_CLOSED' }))
      await closing
      expect(() => server.rotatePrivateKey(newKey)).toThrow(expect.objectContaining({ code: 'ERR_SERVER_CLOSED' }))
      expect(server.privateKeyCount).toBe(0)
    }
  })
})
