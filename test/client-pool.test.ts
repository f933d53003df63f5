import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { readdirSync } from 'node:fs'
import { once } from 'node:events'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { Client, ClientPool, Server, connectTokenFromBase64, connectTokenToBase64, generateConnectToken, readConnectToken } from '../src/index.ts'
import { engineThreadCount, waitFor } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(8)

describe('ClientPool (load generator)', () => {
  it('connects many clients on one engine thread, counts failures, broadcasts, and closes them', async () => {
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 150, disconnectIntervalMs: 2, engine: 'dedicated' })
    const { port } = await server.listen()
    let received = 0
    server.on('message', (peer, data) => {
      received++
      peer.send(data)
    })
    const tokens = await Promise.all(
      Array.from({ length: 160 }, (_, i) =>
        generateConnectToken({ protocolId: 5n, privateKey, clientId: BigInt(i + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 }),
      ),
    )
    const pool = new ClientPool({ disconnectIntervalMs: 2 })
    const result = await pool.connect(tokens, { concurrency: 40 })
    expect(result).toMatchObject({ connected: 150, failed: 10, skipped: 0 })
    expect(pool.stats().failed).toEqual({ ERR_CONNECTION_DENIED: 10 })
    expect(pool.stats().failureMessages).toEqual({ ERR_CONNECTION_DENIED: `The server denied the connection: it is full (at 127.0.0.1:${port}, the last address tried)` })
    expect(pool.broadcast(new Uint8Array([1, 2, 3]))).toBe(150)
    await waitFor(() => pool.stats().messagesReceived === 150, 5000, 'echoes')
    expect(received).toBe(150)
    expect(pool.stats()).toMatchObject({ clients: 150, connected: 150, ended: {}, drops: { receiveBufferFull: 0, sendBufferFull: 0 } })
    const closed = pool.close()
    await new Promise((resolve) => setImmediate(resolve)) // the clients are closing
    expect(pool.broadcast(new Uint8Array([4]))).toBe(0) // they send nothing, and it says so (and throws nothing)
    await closed
    expect(pool.stats().ended).toEqual({}) // no connection was lost: it counted the 150 the pool closed
    await server.close()
  })
})

describe('ClientPool edges', () => {
  it('refuses options that are not an options object with ERR_INVALID_ARG_TYPE, as Client does', () => {
    for (const options of [null, 5, [], 'udp4']) {
      expect(() => new ClientPool(options as never)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('The "options" argument must be an object') }),
      )
    }
    expect(() => new ClientPool({ keepAliveIntervalMs: 10, colour: 'red' } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('Unknown option "colour"') }),
    )
  })

  it('broadcast() checks its message with no client connected, as each client\'s send() would', async () => {
    const raw = new ClientPool()
    expect(() => raw.broadcast('text' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => raw.broadcast(new Uint8Array(1201))).toThrow(expect.objectContaining({ code: 'ERR_PAYLOAD_SIZE' }))
    expect(raw.broadcast(new Uint8Array(1200))).toBe(0)
    const reliable = new ClientPool({ channels: [{ mode: 'reliable' }], maxMessageBytes: 100 })
    expect(() => reliable.broadcast(new Uint8Array(101))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }))
    expect(reliable.broadcast(new Uint8Array(100))).toBe(0)
    await raw.close()
    await reliable.close()
    // Closed, it still says what was wrong with the message rather than nothing.
    expect(() => raw.broadcast(null as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })

  const tokens = (port: number, count: number, first = 1) =>
    Promise.all(
      Array.from({ length: count }, (_, i) =>
        generateConnectToken({ protocolId: 5n, privateKey, clientId: BigInt(first + i), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 }),
      ),
    )

  it('broadcast() skips a client closed on its own, where it threw ERR_CLIENT_CLOSED for the whole pool', async () => {
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 8, disconnectIntervalMs: 2 })
    const { port } = await server.listen()
    let received = 0
    server.on('message', () => received++)
    const pool = new ClientPool({ disconnectIntervalMs: 2 })
    expect(await pool.connect(await tokens(port, 3))).toMatchObject({ connected: 3 })
    const closing = (pool.clients[0] as (typeof pool.clients)[number]).close() // 'connected' until its disconnects are out
    expect(pool.broadcast(new Uint8Array([1]))).toBe(2)
    await waitFor(() => received === 2, 5000, 'the two messages')
    await closing
    await pool.close()
    await server.close()
  })

  it("broadcast() goes on past a client whose send() throws, counts it, and throws only when no client took the message", async () => {
    // Clients of two servers, one of which announced a smaller maximum: the first client's send() threw
    // out of broadcast(), the clients after it sent nothing, and the caller had no count of those before.
    const channels = [{ mode: 'reliable' as const }]
    const small = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 4, channels, maxMessageBytes: 100 })
    const large = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 4, channels })
    const [{ port: smallPort }, { port: largePort }] = [await small.listen(), await large.listen()]
    let received = 0
    large.on('message', () => received++)
    const pool = new ClientPool({ channels })
    const onlySmall = new ClientPool({ channels })
    try {
      // One at a time, so that the small server's client comes first in pool.clients.
      expect(await pool.connect([...(await tokens(smallPort, 1)), ...(await tokens(largePort, 2, 10))], { concurrency: 1 })).toMatchObject({ connected: 3 })
      expect(pool.broadcast(new Uint8Array(200))).toBe(2)
      expect(pool.stats().sendsFailed).toEqual({ ERR_MESSAGE_TOO_LARGE: 1 })
      await waitFor(() => received === 2, 5000, 'the two messages')
      expect(await onlySmall.connect(await tokens(smallPort, 1, 20))).toMatchObject({ connected: 1 })
      expect(() => onlySmall.broadcast(new Uint8Array(200))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }))
    } finally {
      await Promise.all([pool.close(), onlySmall.close()])
      await Promise.all([small.close(), large.close()])
    }
  })

  it('a client whose connection ended is closed and leaves the pool; its counts stay in stats()', async () => {
    // A load generator that replaces lost clients for weeks held every client it ever had, and its socket.
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 64, disconnectIntervalMs: 2 })
    const { port } = await server.listen()
    server.on('message', (peer, data) => peer.send(data))
    const pool = new ClientPool({ disconnectIntervalMs: 2 })
    const descriptors = () => readdirSync('/proc/self/fd').length
    let before = 0
    for (let round = 0; round < 4; round++) {
      expect(await pool.connect(await tokens(port, 20, 1 + round * 20))).toMatchObject({ connected: 20 })
      if (round === 0) before = descriptors()
      expect(pool.clients).toHaveLength(20)
      expect(pool.broadcast(new Uint8Array([round]))).toBe(20)
      await waitFor(() => pool.stats().messagesReceived === 20 * (round + 1), 5000, 'the echoes')
      for (const peer of server.peers.values()) peer.disconnect()
      await waitFor(() => pool.clients.length === 0, 5000, 'the ended clients to leave the pool')
    }
    expect(descriptors()).toBeLessThanOrEqual(before - 20 + 2) // their sockets went with them
    const stats = pool.stats()
    expect(stats).toMatchObject({ clients: 80, connected: 0, ended: { disconnected: 80 }, messagesReceived: 80 })
    expect(stats.packets.in).toBeGreaterThanOrEqual(80 * 2) // each client's challenge and echo at least
    await pool.close()
    await server.close()
  })

  it("an abort while a failed attempt's client closes resolves connect() at once; close() waits for that client", async () => {
    // A server without channels ends each attempt after its handshake, once the client has waited for the
    // server's channel settings (ERR_CHANNELS_MISMATCH, 2 s), and the client that failed then owes the
    // server its redundant disconnects: 10 at 100 ms, about a second.
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 8 })
    const { port } = await server.listen()
    const ended: string[] = []
    server.on('disconnect', (_peer, reason) => ended.push(reason))
    const pool = new ClientPool({ channels: [{ mode: 'reliable' }] })
    const abort = new AbortController()
    const run = pool.connect(await tokens(port, 3), { concurrency: 1, signal: abort.signal })
    await waitFor(() => (pool.stats().failed.ERR_CHANNELS_MISMATCH ?? 0) === 1, 5000, 'the first attempt to fail')
    abort.abort()
    expect(await run).toMatchObject({ connected: 0, failed: 1, skipped: 2 })
    const resolvedAt = performance.now()
    await pool.close()
    // connect() did not wait for the close (it did: it resolved with it, 770 to 920 ms after the failure)...
    expect(performance.now() - resolvedAt).toBeGreaterThan(300)
    // ...and the disconnects still went out: the server heard the client leave, not time out.
    await waitFor(() => ended.length === 1, 5000, "the server's 'disconnect'")
    expect(ended).toEqual(['disconnected'])
    await server.close()
  })

  it("takes an AbortSignal of another kind (a polyfill's, another realm's), and aborts with Node's code", async () => {
    // Refused as no AbortSignal (instanceof) before; and the pool's AbortSignal.any() took only the platform's own.
    class PolyfillSignal extends EventTarget {
      aborted = false
      reason: unknown = undefined
      abort(reason: unknown): void {
        this.aborted = true
        this.reason = reason
        this.dispatchEvent(new Event('abort'))
      }
    }
    const silent = createSocket('udp4') // a server that never answers: each attempt waits for the signal
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve))
    const pool = new ClientPool()
    try {
      const signal = new PolyfillSignal()
      const run = pool.connect(await tokens(silent.address().port, 3), { concurrency: 1, signal: signal as unknown as AbortSignal })
      await waitFor(() => pool.stats().packets.out > 0, 5000, 'the first request')
      signal.abort('enough')
      expect(await run).toMatchObject({ connected: 0, failed: 1, skipped: 2 })
      expect(pool.stats().failed).toEqual({ ABORT_ERR: 1 }) // Node's code for an aborted operation (was ERR_ABORTED)
      const client = new Client()
      const other = new PolyfillSignal()
      const attempt = client.connect((await tokens(silent.address().port, 1))[0]!, { signal: other as unknown as AbortSignal })
      other.abort('no more')
      await expect(attempt).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: 'no more' })
      await client.close()
    } finally {
      await pool.close()
      silent.close()
    }
  })

  it('counts the sends the kernel refused (stats().sendErrors), which are no error event', async () => {
    // Port 0 (generateConnectToken never writes it; the first address's port is at byte 1098): the kernel
    // refuses each request, and the attempts time out after the token's second.
    const refused = await Promise.all(
      [1n, 2n].map(async (clientId) => {
        const bytes = await generateConnectToken({ protocolId: 5n, privateKey, clientId, serverAddresses: ['127.0.0.1:9'], expireSeconds: 30, timeoutSeconds: 1 })
        bytes.set([0, 0], 1098)
        return bytes
      }),
    )
    const pool = new ClientPool({ requestIntervalMs: 100 })
    expect(await pool.connect(refused)).toMatchObject({ connected: 0, failed: 2 })
    const stats = pool.stats()
    expect(stats.failed).toEqual({ ERR_CONNECTION_REQUEST_TIMED_OUT: 2 })
    // The message says what the code alone does not: a silent server may have refused the token.
    expect(stats.failureMessages.ERR_CONNECTION_REQUEST_TIMED_OUT).toMatch(/^No server answered the connection request in time: .*a private key other than the server's/)
    expect(stats.sendErrors).toBeGreaterThanOrEqual(2 * 3) // 10 Hz over a second, each refused (a stalled I/O thread sends fewer)
    expect(pool.clients).toHaveLength(0) // failed clients leave the pool; their refused sends stay counted
    expect(stats.errors).toEqual({})
    await pool.close()
  })

  it("counts every client's datagrams: those of attempts under way and of attempts that failed, as the far end received them", async () => {
    // A silent "server": it counts what reaches it and answers nothing, so the attempts time out after the token's second.
    const silent = createSocket('udp4')
    let reached = 0
    silent.on('message', () => reached++)
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve))
    const { port } = silent.address()
    const pool = new ClientPool({ requestIntervalMs: 50 })
    const unanswered = await Promise.all(
      [1n, 2n, 3n].map((clientId) => generateConnectToken({ protocolId: 5n, privateKey, clientId, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 1 })),
    )
    const attempts = pool.connect(unanswered)
    await waitFor(() => reached >= 6, 5000, 'the first requests')
    // Under way: counted already (it read 0 out until an attempt ended).
    expect(pool.stats().packets.out).toBeGreaterThanOrEqual(6)
    expect(await attempts).toMatchObject({ connected: 0, failed: 3 })
    await waitFor(() => reached === pool.stats().packets.out, 2000, () => `${pool.stats().packets.out} requests counted, ${reached} reached`)
    // 20 Hz each for the token's second, less what a stalled I/O thread did not send (it read 0 out after they failed).
    expect(reached).toBeGreaterThanOrEqual(3 * 8)
    expect(pool.stats().bytes.out).toBe(reached * 1078) // a connection request is 1078 bytes
    expect(pool.stats().clients).toBe(0)
    await pool.close()
    silent.close()
  })

  it('counts the messages broadcast() could not queue (stats().sendsRefused)', async () => {
    const channels = [{ mode: 'reliable' }] as const
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 8, channels })
    const { port } = await server.listen()
    const pool = new ClientPool({ channels, sendQueueBytes: 200_000 })
    expect(await pool.connect(await tokens(port, 3))).toMatchObject({ connected: 3 })
    let refused = 0
    for (let i = 0; i < 10; i++) refused += 3 - pool.broadcast(new Uint8Array(50_000)) // queued in one turn: the queues fill
    expect(refused).toBeGreaterThan(0)
    expect(pool.stats().sendsRefused).toBe(refused)
    await pool.close()
    await server.close()
  })

  it('gives each client of a seeded pool a seed of its own, the same on every run, and copies its options', async () => {
    // One seed for all made every client lose the same packets at once: with loss 0.5, all or none.
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 16, disconnectIntervalMs: 2 })
    const { port } = await server.listen()
    const seedsOf = async (first: number): Promise<number[]> => {
      const networkSimulator = { loss: 0.2, seed: 42 }
      const pool = new ClientPool({ networkSimulator, requestIntervalMs: 20, disconnectIntervalMs: 2 })
      networkSimulator.loss = 1 // after the constructor: changes nothing
      expect(await pool.connect(await tokens(port, 6, first), { concurrency: 1 })).toMatchObject({ connected: 6 })
      const seeds = pool.clients.map((client) => client.stats().networkSimulator!.seed)
      await pool.close()
      return seeds
    }
    const seeds = await seedsOf(1)
    expect(seeds[0]).toBe(42) // the first takes the seed given, as a lone Client would
    expect(new Set(seeds).size).toBe(6)
    for (const seed of seeds) expect(Number.isSafeInteger(seed) && seed >= 0).toBe(true)
    expect(await seedsOf(101)).toEqual(seeds) // derived from the seed and the client's number: a run repeats
    await server.close()
  })

  it('refuses tokens of the wrong type before any attempt, and counts a token that does not parse as its failure', async () => {
    const pool = new ClientPool()
    const good = await tokens(9, 1)
    await expect(pool.connect([...good, 5 as never])).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('tokens[1] must be a connect token') })
    expect(pool.stats().failed).toEqual({}) // nothing was tried
    expect(await pool.connect([new Uint8Array(10)])).toMatchObject({ connected: 0, failed: 1 })
    expect(pool.stats().failed).toEqual({ ERR_INVALID_CONNECT_TOKEN: 1 })
    await pool.close()
  })

  it('takes a token source: each token made once, in order, only when a handshake slot is free for it', async () => {
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 40 })
    const { port } = await server.listen()
    const clientIds = new Set<bigint>()
    server.on('connect', (peer) => clientIds.add(peer.clientId))
    const pool = new ClientPool()
    const concurrency = 4
    const made: number[] = []
    const ahead: number[] = [] // tokens made and not yet through their attempt, as each is made
    const source = {
      count: 30,
      async make(index: number) {
        made.push(index)
        ahead.push(index - pool.stats().clients - Object.values(pool.stats().failed).reduce((sum: number, count = 0) => sum + count, 0))
        const [token] = await tokens(port, 1, index + 1)
        return index % 2 === 0 ? token! : connectTokenToBase64(token!) // either form
      },
    }
    expect(await pool.connect(source, { concurrency })).toMatchObject({ connected: 30, failed: 0, skipped: 0 })
    expect(made).toEqual(Array.from({ length: 30 }, (_, i) => i))
    expect(Math.max(...ahead)).toBeLessThan(concurrency) // at most one per free slot, never all 30 at once
    expect(clientIds).toEqual(new Set(Array.from({ length: 30 }, (_, i) => BigInt(i + 1)))) // each index's token, once
    await pool.close()
    await server.close()
  })

  it("counts a token a source failed to make as that attempt's failure, by the error's code, and goes on", async () => {
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 8 })
    const { port } = await server.listen()
    const pool = new ClientPool()
    const [good] = await tokens(port, 1)
    const source = {
      count: 5,
      make(index: number): Uint8Array | Promise<Uint8Array> {
        if (index === 1) throw Object.assign(new Error('no key for this one'), { code: 'ERR_NO_KEY' })
        if (index === 2) return Promise.reject(new Error('backend down')) // no code: 'unknown'
        if (index === 3) return 42 as never // no token at all
        return tokens(port, 1, index + 1).then(([token]) => token!)
      },
    }
    expect(good).toBeDefined()
    expect(await pool.connect(source, { concurrency: 2 })).toMatchObject({ connected: 2, failed: 3, skipped: 0 })
    expect(pool.stats().failed).toEqual({ ERR_NO_KEY: 1, unknown: 1, ERR_INVALID_ARG_TYPE: 1 })
    expect(pool.stats().failureMessages.ERR_INVALID_ARG_TYPE).toContain('tokens.make(3) must give a connect token')
    expect(pool.stats().failureMessages.ERR_NO_KEY).toContain('no key for this one')
    await pool.close()
    await server.close()
  })

  it('an abort while a source is still making a token resolves connect() at once, that token and the rest skipped', async () => {
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 8 })
    const { port } = await server.listen()
    const pool = new ClientPool()
    const abort = new AbortController()
    let calls = 0
    const source = {
      count: 10,
      make(index: number): Promise<Uint8Array> {
        calls++
        if (index < 2) return tokens(port, 1, index + 1).then(([token]) => token!)
        return new Promise<Uint8Array>(() => {}) // never made
      },
    }
    const run = pool.connect(source, { concurrency: 1, signal: abort.signal })
    await waitFor(() => calls === 3, 5000, 'the third token asked for')
    abort.abort()
    expect(await run).toMatchObject({ connected: 2, failed: 0, skipped: 8 })
    expect(calls).toBe(3)
    await pool.close()
    await server.close()
  })

  it('refuses a token source that is not one, with a code and what it expects', async () => {
    const pool = new ClientPool()
    const make = () => new Uint8Array(2048)
    for (const [tokensArgument, code, text] of [
      [null, 'ERR_INVALID_ARG_TYPE', 'must be an array of connect tokens, or a source of them ({ count, make(index) }). Received null'],
      [5, 'ERR_INVALID_ARG_TYPE', 'or a source of them ({ count, make(index) }). Received type number (5)'],
      [{ count: 3 }, 'ERR_INVALID_ARG_TYPE', 'The "tokens.make" property must be a function that gives the connect token for an index. Received type undefined'],
      [{ count: 3, make: 'x' }, 'ERR_INVALID_ARG_TYPE', 'The "tokens.make" property must be a function'],
      [{ count: -1, make }, 'ERR_OUT_OF_RANGE', 'The "tokens.count" property must be an integer from 0 to 4294967295: how many tokens make() gives. Received -1'],
      [{ count: 1.5, make }, 'ERR_OUT_OF_RANGE', 'Received 1.5'],
      [{ count: 2 ** 32, make }, 'ERR_OUT_OF_RANGE', 'Received 4294967296'],
      [{ count: '3', make }, 'ERR_INVALID_ARG_TYPE', `The "tokens.count" property must be of type number: how many tokens make() gives. Received type string ('3')`],
      [{ count: 3n, make }, 'ERR_INVALID_ARG_TYPE', 'Received type bigint'],
      [{ make }, 'ERR_INVALID_ARG_TYPE', 'The "tokens.count" property must be of type number'],
    ] as const) {
      await expect(pool.connect(tokensArgument as never)).rejects.toMatchObject({ code, message: expect.stringContaining(text) })
    }
    expect(await pool.connect({ count: 0, make })).toMatchObject({ connected: 0, failed: 0, skipped: 0 })
    expect(pool.stats().failed).toEqual({})
    await pool.close()
  })

  it("reads a source's make and count once, and calls make on the source", async () => {
    const pool = new ClientPool()
    let reads = 0
    const source = {
      get make() {
        reads++
        // a getter that gives a function once, then no function: read once, as an array's length is
        return reads === 1 ? function (this: unknown) { return this === source ? 'bad base64 !' : 5 } : undefined
      },
      count: 2,
    }
    expect(await pool.connect(source as never)).toMatchObject({ connected: 0, failed: 2, skipped: 0 })
    expect(reads).toBe(1)
    expect(pool.stats().failed).toEqual({ ERR_INVALID_CONNECT_TOKEN: 2 }) // `this` was the source: a string came, and did not parse
    await pool.close()
  })

  it('counts what a make() throws or rejects with that is no Error, or whose code is no string, as unknown, with a message; any string code is its own', async () => {
    const pool = new ClientPool()
    const coded = (code: unknown) => Object.assign(new Error(`code ${String(code)}`), { code })
    const failures: unknown[] = [null, undefined, 'text', coded(42), coded(''), coded('constructor'), coded('__proto__'), coded('toString')]
    const source = {
      count: failures.length,
      make(index: number): Promise<Uint8Array> {
        if (index % 2 === 0) throw failures[index] // thrown, or
        return Promise.reject(failures[index]) // rejected, as Promise.reject() with no reason does
      },
    }
    expect(await pool.connect(source, { concurrency: 3 })).toMatchObject({ connected: 0, failed: 8, skipped: 0 })
    const { failed, failureMessages } = pool.stats()
    expect(Object.entries(failed).sort()).toEqual([['__proto__', 1], ['constructor', 1], ['toString', 1], ['unknown', 5]])
    expect(Object.getPrototypeOf(failed)).toBe(Object.prototype) // a plain object to its reader, '__proto__' an own key
    expect(failureMessages.unknown).toBe('tokens.make(0) threw or rejected with null, not an Error')
    expect(failureMessages.constructor).toBe('code constructor')
    await pool.close()
  })

  it('a make() that aborts the run, or closes the pool, skips its token and leaves no rejection unhandled', async () => {
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 8 })
    const { port } = await server.listen()
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      for (const how of ['abort and reject', 'abort and throw', 'close and reject'] as const) {
        const pool = new ClientPool()
        const abort = new AbortController()
        const source = {
          count: 4,
          make(index: number): Promise<Uint8Array> {
            if (index === 0) return tokens(port, 1, 1).then(([token]) => token!)
            if (how === 'close and reject') void pool.close()
            else abort.abort()
            if (how === 'abort and throw') throw new Error('gone')
            return Promise.reject(new Error('gone'))
          },
        }
        expect(await pool.connect(source, { concurrency: 1, signal: abort.signal }), how).toMatchObject({ connected: 1, failed: 0, skipped: 3 })
        await pool.close()
      }
      await new Promise((resolve) => setTimeout(resolve, 50)) // a turn or two, for Node to report any
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await server.close()
    }
  })

  it('a source whose every token fails at once still lets the event loop turn: an abort ends it well before its count', async () => {
    const pool = new ClientPool()
    for (const fail of [
      (): never => {
        throw new Error('no')
      },
      () => Promise.reject(new Error('no')),
      () => 42, // no token
    ]) {
      const abort = new AbortController()
      setTimeout(() => abort.abort(), 20) // a timer: it fires only when the loop turns
      const count = 5_000_000 // seconds of failures, all at once, were the loop not to turn
      const result = await pool.connect({ count, make: fail as () => never }, { concurrency: 4, signal: abort.signal })
      expect(result.skipped).toBeGreaterThan(0)
      expect(result.failed + result.skipped).toBe(count)
    }
    await pool.close()
  })

  it('many workers whose tokens all fail at once share one turn of the event loop: an abort is heard as soon as with one', async () => {
    // Each of 512 workers ran its own 10 ms between turns, one after another: the loop stood still for
    // about 5 s, and the abort's timer with it.
    const pool = new ClientPool()
    const abort = new AbortController()
    const started = performance.now()
    setTimeout(() => abort.abort(), 20) // a timer: it fires only when the loop turns
    const count = 5_000_000
    const result = await pool.connect({ count, make: () => 'not a token' }, { concurrency: 512, signal: abort.signal })
    const tookMs = performance.now() - started
    expect(result.failed + result.skipped).toBe(count)
    expect(result.skipped).toBeGreaterThan(0)
    expect(tookMs).toBeLessThan(1000) // the abort's 20 ms and a turn or two; 5 s before the fix
    await pool.close()
  })

  it('copies a token make() gives at once before it makes the next, so a source may reuse one buffer', async () => {
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 8 })
    const { port } = await server.listen()
    const clientIds = new Set<bigint>()
    server.on('connect', (peer) => clientIds.add(peer.clientId))
    const made = await tokens(port, 4)
    const buffer = new Uint8Array(2048)
    const pool = new ClientPool()
    const source = { count: 4, make: (index: number) => (buffer.set(made[index]!), buffer) }
    expect(await pool.connect(source, { concurrency: 4 })).toMatchObject({ connected: 4, failed: 0 })
    expect(clientIds).toEqual(new Set([1n, 2n, 3n, 4n]))
    await pool.close()
    await server.close()
  })

  it("numbers a seeded pool's clients by their tokens' order, whatever order a source's promises settle in", async () => {
    const servers = [0, 1].map(() => new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 4 }))
    const ports = await Promise.all(servers.map(async (server) => (await server.listen()).port))
    // Token i for server i: a client's server says which token it had. Fresh ones for each run: a server
    // ignores a token it saw from another address.
    const tokensFor = (first: number) => Promise.all(ports.map((port, i) => tokens(port, 1, first + i).then(([token]) => token!)))
    const seedsByPort = async (tokensArgument: Parameters<ClientPool['connect']>[0]): Promise<Map<number, number>> => {
      const pool = new ClientPool({ networkSimulator: { seed: 42 } })
      expect(await pool.connect(tokensArgument, { concurrency: 2 })).toMatchObject({ connected: 2 })
      const seeds = new Map(pool.clients.map((client) => [client.serverAddress!.port, client.stats().networkSimulator!.seed]))
      await pool.close()
      return seeds
    }
    const fromArray = await seedsByPort(await tokensFor(1))
    expect(fromArray.get(ports[0]!)).toBe(42) // the first token's client takes the seed given
    // The first token comes last: its client is still the pool's first.
    const made = await tokensFor(3)
    const slowFirst = { count: 2, make: (index: number) => new Promise<Uint8Array>((resolve) => setTimeout(() => resolve(made[index]!), index === 0 ? 100 : 0)) }
    expect(await seedsByPort(slowFirst)).toEqual(fromArray)
    await Promise.all(servers.map((server) => server.close()))
  })

  it("with engine: 'dedicated' runs every client on one engine thread of the pool's, not a thread (and 2 MiB of slabs) each", async () => {
    const server = new Server({ protocolId: 5n, privateKey, address: '127.0.0.1:0', maxClients: 32, disconnectIntervalMs: 2 })
    const { port } = await server.listen()
    const before = engineThreadCount()
    const pool = new ClientPool({ engine: 'dedicated', disconnectIntervalMs: 2 })
    expect(await pool.connect(await tokens(port, 20), { concurrency: 5 })).toMatchObject({ connected: 20 })
    expect(engineThreadCount() - before).toBe(1)
    await pool.close()
    await waitFor(() => engineThreadCount() === before, 5000, 'the pool engine to stop')
    // Its engine stopped with its last socket: the next clients get a new one, again one for all.
    const again = new ClientPool({ engine: 'dedicated', disconnectIntervalMs: 2 })
    expect(await again.connect(await tokens(port, 4, 100))).toMatchObject({ connected: 4 })
    expect(engineThreadCount() - before).toBe(1)
    await again.close()
    await server.close()
  })
})

describe('ClientPool out of file descriptors', () => {
  for (const engine of ['native', 'fallback'] as const) {
    it(`says what EMFILE means for a pool, and what to do (${engine} engine)`, () => {
      const file = new URL('./fixtures/pool-out-of-descriptors.ts', import.meta.url).pathname
      const env = engine === 'fallback' ? { ...process.env, VOLLEY_ENGINE: 'fallback' } : process.env
      const run = spawnSync('prlimit', ['--nofile=64:64', process.execPath, '--import', 'tsx', file], { env, timeout: 30_000, killSignal: 'SIGKILL', encoding: 'utf8' })
      expect(run.status, run.stderr).toBe(0)
      const outcome = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { connected: number; failed: Record<string, number>; message: string }
      // Those that got a socket wait for a server that is not there.
      const { EMFILE = 0, ERR_CONNECTION_REQUEST_TIMED_OUT = 0, ...others } = outcome.failed
      expect(EMFILE).toBeGreaterThan(0)
      expect(EMFILE + ERR_CONNECTION_REQUEST_TIMED_OUT).toBe(100)
      expect(others).toEqual({})
      expect(outcome.message).toMatch(/^(socket|bind) EMFILE.*: this process is out of file descriptors: each client has a socket of its own; raise the limit \(ulimit -n/)
    })
  }
})

describe('volley CLI', () => {
  /** `volley <args>` in a child process, its output piped. */
  const volleyCli = (args: string[]) => spawn(process.execPath, ['--import', 'tsx', 'src/cli/volley.ts', ...args], { cwd: new URL('..', import.meta.url), stdio: ['ignore', 'pipe', 'pipe'] })

  /** A server the CLI's commands reach with --key `key` and the default --protocol-id. */
  const cliServer = (key: string, options: { maxClients: number; disconnectIntervalMs?: number }): Server =>
    new Server({ protocolId: 0x1234n, privateKey: Uint8Array.from(Buffer.from(key, 'hex')), address: '127.0.0.1:0', ...options })

  /** `volley load --json` with `clients` clients for `seconds`, once they have connected: its last report line and exit code. */
  async function connectedLoad(port: number, key: string, clients: string, seconds: string) {
    const child = volleyCli(['load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', clients, '--seconds', seconds, '--json'])
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    try {
      await waitFor(() => output.includes('"event":"connected"'), 15_000, 'the clients to connect')
    } catch (error) {
      child.kill()
      throw error
    }
    return {
      child,
      lastLine: (): unknown => JSON.parse(output.trim().split('\n').at(-1)!),
      // Bounded: the caller's finally kills the child (at vitest's own timeout no finally runs).
      exitCode: async (): Promise<number> => ((await once(child, 'exit', { signal: AbortSignal.timeout(12_000) })) as [number])[0],
    }
  }

  it('volley load --rate sends that many broadcasts a second, above 1,000 and at rates a timer period cannot express', async () => {
    const key = '07'.repeat(32)
    const servers = await Promise.all(
      [1500, 400].map(async (rate) => {
        const server = cliServer(key, { maxClients: 8 })
        const { port } = await server.listen()
        const counted = { server, rate, port, received: 0 }
        server.on('message', () => counted.received++)
        return counted
      }),
    )
    const load = promisify(execFile)
    const runs = await Promise.all(
      servers.map(({ port, rate }) =>
        load(process.execPath, ['--import', 'tsx', 'src/cli/volley.ts', 'load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '4', '--seconds', '1', '--rate', String(rate), '--json'], {
          cwd: new URL('..', import.meta.url),
          timeout: 20_000,
        }),
      ),
    )
    for (const [index, counted] of servers.entries()) {
      const { server, rate } = counted
      const finished = JSON.parse(runs[index]!.stdout.trim().split('\n').at(-1)!) as { event: string; broadcasts: number; messagesSent: number }
      // 1 s at `rate` broadcasts a second, however late the machine's timers fire: a timer every 1000 / rate ms
      // sent 851 of 1,500 a second (it fires about 930 times a second at most) and 472 of 400 (every 2.5 ms
      // fired every 2). Each broadcast is a message from each of the 4 clients.
      expect(finished, `--rate ${rate}`).toMatchObject({ event: 'finished', broadcasts: rate, messagesSent: 4 * rate })
      // Every message sent reached the server's handler, or was counted where the kernel dropped it.
      const accounted = () => counted.received + server.stats().drops.receiveBufferFull
      await waitFor(() => accounted() >= 4 * rate, 5000, () => `--rate ${rate}: ${4 * rate} messages (${accounted()} accounted for)`)
      expect(accounted()).toBe(4 * rate)
      await server.close()
    }
  }, 30_000)

  it('volley load ends at SIGINT (130) or SIGTERM (143) with its report, and its clients disconnect rather than time out', async () => {
    const key = '09'.repeat(32)
    const server = cliServer(key, { maxClients: 8 })
    const { port } = await server.listen()
    const reasons: string[] = []
    server.on('disconnect', (_peer, reason) => reasons.push(reason))
    try {
      for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
        reasons.length = 0
        const load = await connectedLoad(port, key, '4', '600')
        try {
          load.child.kill(signal)
          expect(await load.exitCode(), signal).toBe(status) // as a shell reports a command a signal ended (SIGTERM gave 130)
          expect(load.lastLine()).toMatchObject({ event: 'finished', interrupted: true, connected: 4 })
          await waitFor(() => reasons.length === 4, 5000, 'the disconnects')
          expect(reasons).toEqual(['disconnected', 'disconnected', 'disconnected', 'disconnected'])
        } finally {
          load.child.kill()
        }
      }
    } finally {
      await server.close()
    }
  }, 40_000)

  it("volley load with several servers and the longest --timeout makes tokens within a token's longest lifetime", async () => {
    const key = '11'.repeat(32)
    const server = cliServer(key, { maxClients: 4 })
    const { port } = await server.listen()
    // 600 + 2 × 2147483647 s is past the 2^32 s a token may live: every token was refused before any attempt.
    const child = volleyCli(['load', '--server', `127.0.0.1:${port}`, '--server', '127.0.0.1:9', '--key', key, '--clients', '2', '--seconds', '0', '--timeout', '2147483647', '--json'])
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    try {
      const [status] = (await once(child, 'exit', { signal: AbortSignal.timeout(15_000) })) as [number]
      expect(JSON.parse(output.trim().split('\n')[0]!)).toMatchObject({ event: 'connected', connect: { connected: 2, failed: 0 } })
      expect(status).toBe(0)
    } finally {
      child.kill()
      await server.close()
    }
  }, 20_000)

  it('volley load whose reader has gone (| true) runs to its end: no uncaught EPIPE', async () => {
    const key = '0f'.repeat(32)
    const server = cliServer(key, { maxClients: 4 })
    const { port } = await server.listen()
    const child = volleyCli(['load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '2', '--seconds', '1'])
    child.stdout.destroy() // the reader is gone before the first report
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    try {
      const [code] = (await once(child, 'exit', { signal: AbortSignal.timeout(20_000) })) as [number]
      expect(stderr).not.toMatch(/EPIPE|Unhandled/)
      expect(code).toBe(0) // it exited 1 with "Unhandled 'error' event ... write EPIPE"
    } finally {
      child.kill()
      await server.close()
    }
  }, 30_000)

  /** `volley serve` with `key` on a free port, a client connected to it: the child, its output so far, and the client's 'disconnect'. */
  async function servedClient(key: string) {
    const child = volleyCli(['serve', '--address', '127.0.0.1:0', '--key', key, '--seconds', '30'])
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const client = new Client()
    try {
      await waitFor(() => output.includes('"event":"listening"'), 15_000, 'the server to listen')
      const { port } = JSON.parse(output.split('\n')[0]!) as { port: number }
      const token = await generateConnectToken({ protocolId: 0x1234n, privateKey: Uint8Array.from(Buffer.from(key, 'hex')), clientId: 1n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
      const ended = once(client, 'disconnect')
      await client.connect(token)
      // Connected here is not yet known there: the server's JavaScript reports a client once its I/O thread's
      // record is read, which a signal sent now can precede (connectedAtStop 0, on a loaded machine). Its echo
      // says the server knows the client.
      const echoed = once(client, 'message', { signal: AbortSignal.timeout(10_000) })
      client.send(new Uint8Array([1]))
      await echoed
      // Bounded: the caller's finally kills the child (at vitest's own timeout no finally runs).
      const exited = once(child, 'exit', { signal: AbortSignal.timeout(12_000) }) as Promise<[number | null, NodeJS.Signals | null]>
      return { child, client, ended, exited, lastLine: (): unknown => JSON.parse(output.trim().split('\n').at(-1)!) }
    } catch (error) {
      child.kill()
      await client.close()
      throw error
    }
  }

  it('volley serve reports, as it stops, the clients connected then and the echoes it could not queue', async () => {
    // Stopped once the client is in (a fixed --seconds raced the handshake on a loaded machine).
    const { child, client, ended, exited, lastLine } = await servedClient('11'.repeat(32))
    try {
      child.kill('SIGTERM')
      const [code] = await exited
      expect(code).toBe(0)
      expect(lastLine()).toMatchObject({ event: 'stopped', connectedAtStop: 1, echoesRefused: 0, stats: { connectedClients: 0 } }) // it said 0: read after the close
      expect(await ended).toEqual(['disconnected'])
    } finally {
      child.kill()
      await client.close()
    }
  }, 30_000)

  it('volley serve stopped by a Ctrl-C that npm relays too (two SIGINTs 5 ms apart) still disconnects its clients and reports', async () => {
    const { child, client, ended, exited, lastLine } = await servedClient('15'.repeat(32))
    try {
      child.kill('SIGINT')
      await new Promise((resolve) => setTimeout(resolve, 5))
      child.kill('SIGINT') // while close() sends its disconnects (about a second with a client connected)
      const [code, signal] = await exited
      expect({ code, signal }).toEqual({ code: 0, signal: null }) // the second SIGINT killed it (signal 'SIGINT')
      expect(lastLine()).toMatchObject({ event: 'stopped', connectedAtStop: 1 })
      expect(await ended).toEqual(['disconnected'])
    } finally {
      child.kill()
      await client.close()
    }
  }, 30_000)

  it('volley load exits with status 1 when the connections are lost during its window', async () => {
    const key = '0b'.repeat(32)
    const server = cliServer(key, { maxClients: 8, disconnectIntervalMs: 5 })
    const { port } = await server.listen()
    const load = await connectedLoad(port, key, '3', '3')
    try {
      await server.close() // the server goes away: its disconnects end every connection
      const code = await load.exitCode()
      expect(load.lastLine()).toMatchObject({ event: 'finished', connect: { connected: 3 }, connected: 0, ended: { disconnected: 3 } })
      expect(code).toBe(1) // it exited 0: a smoke test against a server that died passed
    } finally {
      load.child.kill()
    }
  }, 30_000)

  it('volley load without --channels against a server with channels says why its clients were lost', async () => {
    const key = '13'.repeat(32)
    const server = new Server({ protocolId: 0x1234n, privateKey: Uint8Array.from(Buffer.from(key, 'hex')), address: '127.0.0.1:0', maxClients: 4, channels: [{ mode: 'reliable' }] })
    const { port } = await server.listen()
    const child = volleyCli(['load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '2', '--seconds', '1', '--rate', '5', '--json'])
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    try {
      const [code] = (await once(child, 'exit', { signal: AbortSignal.timeout(20_000) })) as [number]
      expect(code).toBe(1)
      // The server refuses each client at its first payload: a plain disconnect, which says nothing of why.
      expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toMatchObject({ event: 'finished', connected: 0, ended: { disconnected: 2 } })
      expect(stderr).toContain(`[VOLLEY_SERVER_HAS_CHANNELS] VolleyWarning: The server at 127.0.0.1:${port} runs channels (reliable; messages up to 1048576 bytes)`)
      expect(stderr).toContain("volley load: the server runs channels and these clients have none (see the warning): give load the server's --channels")
    } finally {
      child.kill()
      await server.close()
    }
  }, 30_000)

  it('prints keys and tokens', () => {
    const run = (...args: string[]): string =>
      execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/volley.ts', ...args], { cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim()
    const key = run('key')
    expect(key).toMatch(/^[0-9a-f]{64}$/)
    const token = readConnectToken(connectTokenFromBase64(run('token', '--server', '127.0.0.1:40000', '--key', key, '--protocol-id', '0x99')))
    expect(token.protocolId).toBe(0x99n)
    let failure: { status?: number; stderr?: string } = {}
    try {
      run('serve', '--key', 'nothex')
    } catch (error) {
      failure = error as typeof failure
    }
    expect(failure.status).toBe(2)
    expect(failure.stderr).toMatch(/--address is required/)
    const zeros = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/volley.ts', 'token', '--server', '127.0.0.1:40000', '--key', '0'.repeat(64)], {
      cwd: new URL('..', import.meta.url),
      encoding: 'utf8',
      timeout: 20_000,
    })
    expect(zeros.status).toBe(2)
    expect(zeros.stdout).toBe('')
    expect(zeros.stderr).toMatch(/^volley: --key is all zeros, which is no secret \(`volley key` makes a random one\)\n/)
    // No command: a mistake too, a line saying so and where the usage is, on stderr (it was on stdout, with status 2).
    const bare = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/volley.ts'], { cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 20_000 })
    expect(bare.status).toBe(2)
    expect(bare.stdout).toBe('')
    expect(bare.stderr).toBe("volley: a command is needed: serve, load, token, key, kme or build-addon\nRun 'volley --help' for the usage.\n")
  })
})
