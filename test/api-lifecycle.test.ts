// What a user meets at the edges of Server, Client and ClientPool: attempts aborted and replaced, close()
// in the middle of things, throwing handlers, options that are wrong, and processes that must be free to
// exit. Each case comes from a review that saw it fail.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { Client, ClientPool, ConnectError, type Peer, Server, generateConnectToken, readConnectToken } from '../src/index.ts'
import { blockUntil, freeUdpPort, onEngine, waitFor } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(7)
const protocolId = 0x4321n
const fast = { disconnectIntervalMs: 5 }
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** Keeps the JS thread busy (nothing is delivered meanwhile) until condition() holds; false after timeoutMs. */
const codeOf = (promise: Promise<unknown>) => promise.then(() => 'resolved', (error: unknown) => (error as { code?: unknown }).code)
// A port nobody listens on (a request there is never answered).
const silentAddress = '127.0.0.1:9'

async function startServer(options: Partial<ConstructorParameters<typeof Server>[0]> = {}): Promise<{ server: Server; address: string }> {
  const host = options.address ?? '127.0.0.1:0'
  const server = new Server({ protocolId, privateKey, maxClients: 32, ...fast, ...options, address: host })
  const { port } = await server.listen()
  return { server, address: host.startsWith('[') ? `[::1]:${port}` : `127.0.0.1:${port}` }
}

function token(address: string, clientId: bigint, timeoutSeconds = 5) {
  return generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [address], expireSeconds: 30, timeoutSeconds })
}

describe('connect() attempts', () => {
  it("drained() and flushed() check a signal aborted already first, as Node's APIs do", async () => {
    const client = new Client()
    const signal = AbortSignal.abort(new Error('gone'))
    for (const wait of [client.drained({ signal }), client.flushed({ signal })]) {
      await expect(wait).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError', cause: signal.reason })
    }
    await expect(client.drained()).rejects.toMatchObject({ code: 'ERR_CLIENT_NOT_CONNECTED' })
    await client.close()
  })

  it('a connect() right after an aborted one follows its own attempt, not the end of the aborted one', async () => {
    const { server, address } = await startServer()
    const client = new Client(fast)
    const abort = new AbortController()
    const first = client.connect(await token(silentAddress, 1n), { signal: abort.signal })
    await sleep(20)
    const reason = new Error('the user went away')
    abort.abort(reason)
    // A ConnectError like every other end of an attempt (the documented `instanceof ConnectError` sees it).
    await expect(first).rejects.toSatisfy((error) => error instanceof ConnectError && error.code === 'ABORT_ERR' && error.name === 'AbortError' && error.state === 'disconnected' && error.cause === reason)
    // The engine reports the aborted attempt's end after this connect is under way.
    expect(await codeOf(client.connect(await token(address, 2n)))).toBe('resolved')
    expect(client.state).toBe('connected')
    await client.close()
    await server.close()
  })

  it('close() while connecting rejects the attempt with ABORT_ERR, and a closed client cannot connect', async () => {
    const client = new Client(fast)
    const pending = client.connect(await token(silentAddress, 3n))
    await sleep(20)
    const closed = client.close()
    await expect(pending).rejects.toSatisfy((error) => error instanceof ConnectError && error.code === 'ABORT_ERR' && error.state === 'disconnected')
    await closed
    expect(await codeOf(client.connect(await token(silentAddress, 4n)))).toBe('ERR_CLIENT_CLOSED')
  })

  it('a second connect() while the first is under way is ERR_CLIENT_BUSY, and says the client is connecting', async () => {
    const client = new Client(fast)
    const first = codeOf(client.connect(await token(silentAddress, 6n))) // handled at once: close() rejects it
    // Before the engine's first state record the client still says 'disconnected': the message must not.
    const busy = client.connect(await token(silentAddress, 7n))
    await expect(busy).rejects.toMatchObject({ code: 'ERR_CLIENT_BUSY', message: expect.stringMatching(/it is connecting/) })
    await sleep(20)
    await expect(client.connect(await token(silentAddress, 8n))).rejects.toMatchObject({ code: 'ERR_CLIENT_BUSY', message: expect.not.stringMatching(/it is disconnected/) })
    await client.close()
    expect(await first).toBe('ABORT_ERR')
  })

  it('an already aborted signal, a signal that is not one, and options that are not an object are typed errors', async () => {
    const aborted = AbortSignal.abort()
    const client = new Client()
    const tokenBytes = await token(silentAddress, 5n)
    expect(await codeOf(client.connect(tokenBytes, { signal: aborted }))).toBe('ABORT_ERR')
    expect(await codeOf(client.connect(tokenBytes, { signal: 'stop' as never }))).toBe('ERR_INVALID_ARG_TYPE')
    expect(await codeOf(client.connect(tokenBytes, null as never))).toBe('ERR_INVALID_ARG_TYPE')
    expect(await codeOf(client.connect(tokenBytes, { timeout: 5 } as never))).toBe('ERR_INVALID_ARG_VALUE')
    // The aborted signal first, as Node's APIs and drained() check it: a busy or closed client said so instead.
    const busy = codeOf(client.connect(tokenBytes)) // handled from the start: close() rejects it
    expect(await codeOf(client.connect(tokenBytes, { signal: aborted }))).toBe('ABORT_ERR')
    await client.close()
    expect(await busy).toBe('ABORT_ERR')
    expect(await codeOf(client.connect(tokenBytes, { signal: aborted }))).toBe('ABORT_ERR')
  })

  it('an attempt aborted after its handshake completed unseen reports nothing more: no connected state, no disconnect', async () => {
    const { server, address } = await startServer()
    const client = new Client(fast)
    const events: string[] = []
    client.on('state', (state) => events.push(state))
    client.on('disconnect', (reason) => events.push(`disconnect ${reason}`))
    const serverConnects: bigint[] = []
    server.on('connect', (peer) => serverConnects.push(peer.clientId))
    const abort = new AbortController()
    const attempt = client.connect(await token(address, 11n), { signal: abort.signal })
    // The JS thread is blocked while the I/O threads complete the handshake (the client's engine has
    // its keep-alive: it knows the server's maxClients); the abort comes first.
    expect(blockUntil(() => client.stats().maxClients > 0, 10_000)).toBe(true)
    abort.abort()
    expect(await codeOf(attempt)).toBe('ABORT_ERR')
    // The handshake did complete: the server reports the connect (its records came after the abort too).
    await waitFor(() => serverConnects.length === 1, 5000, "the server's connect event")
    await sleep(100)
    // Its records (requesting, connected) arrived after the abort: none is news any more.
    expect(events).toEqual([])
    expect(client.state).toBe('disconnected')
    await client.close()
    await server.close()
  })

  it('a state handler that throws leaves no promise unsettled (connect, close of client and server)', async () => {
    const errors: unknown[] = []
    const swallow = (error: unknown) => errors.push(error)
    process.on('uncaughtException', swallow)
    try {
      const { server, address } = await startServer()
      server.on('state', (state) => {
        throw new Error(`server ${state}`)
      })
      const client = new Client(fast)
      client.on('state', (state) => {
        throw new Error(`client ${state}`)
      })
      expect(await codeOf(client.connect(await token(address, 12n)))).toBe('resolved')
      await client.close()
      const failing = new Client(fast)
      failing.on('state', () => {
        throw new Error('failing state')
      })
      expect(await codeOf(failing.connect(await token(silentAddress, 13n, 1)))).toBe('ERR_CONNECTION_REQUEST_TIMED_OUT')
      await failing.close()
      // close() while connecting ends the attempt ('disconnected' from it): a promise still, never a throw.
      const closing = new Client(fast)
      closing.on('state', (state) => {
        if (state === 'disconnected') throw new Error('closing state')
      })
      const attempt = codeOf(closing.connect(await token(silentAddress, 14n, 5)))
      let closed: Promise<void> | undefined
      expect(() => {
        closed = closing.close()
      }).not.toThrow()
      expect(await attempt).toBe('ABORT_ERR')
      await closed
      await server.close()
      expect(server.state).toBe('stopped')
      await waitFor(() => errors.some((error) => (error as Error).message === 'server stopped'), 1000, 'the handler errors to surface')
      // The handlers' own errors, and nothing else (an error of volley's would hide among them).
      const unexpected = errors.filter((error) => !(error instanceof Error && /^(server [a-z-]+|client [a-z-]+|failing state|closing state)$/.test(error.message)))
      expect(unexpected).toEqual([])
    } finally {
      process.off('uncaughtException', swallow)
    }
  })

  it("a 'state' handler and a 'disconnect' handler that both throw: each error surfaces", async () => {
    const errors: string[] = []
    const swallow = (error: unknown) => errors.push((error as Error).message)
    process.on('uncaughtException', swallow)
    try {
      const { server, address } = await startServer()
      for (const how of ['kicked', 'closed'] as const) {
        const client = new Client(fast)
        await client.connect(await token(address, how === 'kicked' ? 21n : 22n))
        client.on('state', (state) => {
          throw new Error(`${how}: state ${state}`)
        })
        client.on('disconnect', (reason) => {
          throw new Error(`${how}: disconnect ${reason}`)
        })
        if (how === 'kicked') [...server.peers.values()].find((peer) => peer.clientId === 21n)!.disconnect()
        else await client.close()
        await waitFor(() => errors.filter((message) => message.startsWith(how)).length === 2, 2000, `both errors of the ${how} client`)
        await client.close()
      }
      expect(errors.sort()).toEqual(['closed: disconnect disconnected', 'closed: state disconnected', 'kicked: disconnect disconnected', 'kicked: state disconnected'])
      await server.close()
    } finally {
      process.off('uncaughtException', swallow)
    }
  })

  it('a client whose first token listed IPv4 servers reconnects with a token that lists only an IPv6 one', async () => {
    const v4 = await startServer()
    const v6 = await startServer({ address: '[::1]:0' })
    const again = new Client(fast)
    await again.connect(await token(v4.address, 7n))
    // Ended by the server: the same Client connects again, to an address its IPv4 socket cannot reach.
    const [peer] = [...v4.server.peers.values()] as [Peer]
    peer.disconnect()
    await waitFor(() => again.state === 'disconnected', 5000, 'the server to end the connection')
    expect(await codeOf(again.connect(await token(v6.address, 8n)))).toBe('resolved')
    expect(again.serverAddress).toEqual(v6.server.address())
    expect(again.serverAddress).toMatchObject({ address: '::1', family: 'IPv6' })
    await waitFor(() => v6.server.peers.size === 1, 5000, 'the IPv6 server to see the client')
    await again.close()
    await Promise.all([v4.server.close(), v6.server.close()])
  })
})

describe('connect() while the socket reopens for an IPv6 server', () => {
  // An attempt aborted after its handshake completed unseen leaves the IPv4 socket owing the server its 30
  // disconnects, 100 ms apart: reopening it takes about 3 s, far from what "at once" allows a loaded machine.
  async function owingDisconnects(): Promise<{ client: Client; v6: string; close: () => Promise<void> }> {
    const v4 = await startServer()
    const v6 = await startServer({ address: '[::1]:0' })
    const client = new Client({ disconnectPackets: 30 }) // at the default 100 ms
    const abort = new AbortController()
    const attempt = client.connect(await token(v4.address, 21n), { signal: abort.signal })
    // The JS thread blocked until the handshake completed unseen (the client's engine knows the server's
    // maxClients from its keep-alive): the socket owes the server its disconnects.
    expect(blockUntil(() => client.stats().maxClients > 0, 10_000)).toBe(true)
    abort.abort()
    expect(await codeOf(attempt)).toBe('ABORT_ERR')
    return { client, v6: v6.address, close: async () => void (await Promise.all([v4.server.close(), v6.server.close()])) }
  }

  it('an abort rejects at once, not once the old socket has sent its disconnects; the next connect() waits for it', async () => {
    const { client, v6, close } = await owingDisconnects()
    const abort = new AbortController()
    const attempt = client.connect(await token(v6, 22n), { signal: abort.signal })
    await sleep(20)
    const abortedAt = performance.now()
    abort.abort()
    expect(await codeOf(attempt)).toBe('ABORT_ERR')
    expect(performance.now() - abortedAt).toBeLessThan(1500)
    // Not busy: this attempt takes over the reopen, and connects on the new socket.
    expect(await codeOf(client.connect(await token(v6, 23n)))).toBe('resolved')
    expect(client.state).toBe('connected')
    await client.close()
    await close()
  })

  it('close() rejects the waiting connect() at once, as it does an attempt under way', async () => {
    const { client, v6, close } = await owingDisconnects()
    const attempt = client.connect(await token(v6, 24n))
    await sleep(20)
    const closedAt = performance.now()
    const closed = client.close()
    expect(await codeOf(attempt)).toBe('ABORT_ERR')
    expect(performance.now() - closedAt).toBeLessThan(1500)
    await closed
    expect(await codeOf(client.connect(await token(v6, 25n)))).toBe('ERR_CLIENT_CLOSED')
    await close()
  })
})

describe('handlers that throw', () => {
  it('a throwing message handler costs no other message of the batch', async () => {
    const { server, address } = await startServer()
    const seen: number[] = []
    const errors: unknown[] = []
    const swallow = (error: unknown) => errors.push(error)
    process.on('uncaughtException', swallow)
    try {
      server.on('message', (_peer, data) => {
        seen.push(data[0]!)
        if (data[0]! % 3 === 0) throw new Error(`handler failure ${data[0]}`)
      })
      const client = new Client(fast)
      await client.connect(await token(address, 10n))
      for (let i = 0; i < 10; i++) client.send(new Uint8Array([i]))
      await waitFor(() => seen.length === 10, 5000, 'every message')
      expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      // Each error surfaces, not only the first of its batch.
      await waitFor(() => errors.length === 4, 1000, 'the errors to surface')
      expect(errors.map((error) => (error as Error).message)).toEqual(['handler failure 0', 'handler failure 3', 'handler failure 6', 'handler failure 9'])
      await client.close()
    } finally {
      process.off('uncaughtException', swallow)
      await server.close()
    }
  })

  it('a connect handler that throws every time loses no peer: each connect is emitted and its messages arrive', async () => {
    const { server, address } = await startServer()
    const errors: unknown[] = []
    const swallow = (error: unknown) => errors.push(error)
    process.on('uncaughtException', swallow)
    const connects: number[] = []
    server.on('connect', (peer) => {
      connects.push(peer.index)
      throw new Error('connect handler failure')
    })
    const messages = new Set<number>()
    server.on('message', (peer) => messages.add(peer.index))
    const pool = new ClientPool(fast)
    try {
      const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => token(address, 100n + BigInt(i))))
      expect((await pool.connect(tokens)).connected).toBe(20)
      await waitFor(() => connects.length === 20, 5000, 'every connect event')
      expect(server.peers.size).toBe(20)
      pool.broadcast(new Uint8Array([1]))
      await waitFor(() => messages.size === 20, 5000, 'a message from every peer')
      // The handler's own errors, and nothing else (an error of volley's would hide among them).
      expect(errors.length).toBeGreaterThan(0)
      expect(errors.filter((error) => (error as Error).message !== 'connect handler failure')).toEqual([])
    } finally {
      process.off('uncaughtException', swallow)
      await pool.close()
      await server.close()
    }
  })
})

describe('close()', () => {
  it('a closing server: its peers are no longer connected and send() says so; it cannot listen again', async () => {
    const { server, address } = await startServer()
    const client = new Client(fast)
    await client.connect(await token(address, 20n))
    await waitFor(() => server.peers.size === 1)
    const [peer] = [...server.peers.values()] as [Peer]
    const closed = server.close()
    expect(peer.connected).toBe(false)
    // The message says why, and what a 'disconnect' handler that sends to other peers should do.
    expect(() => peer.send(new Uint8Array([1]))).toThrow(
      expect.objectContaining({ code: 'ERR_PEER_DISCONNECTED', message: expect.stringMatching(/not connected: the server is closing .* checks peer\.connected first\)$/) }),
    )
    await closed
    await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_SERVER_CLOSED' })
    await client.close()
  })

  it("a closing server emits no more 'message' events: the README's echo handler does not throw while it stops", async () => {
    const { server, address } = await startServer()
    const errors: string[] = []
    let afterClose = 0
    let beforeClose = 0
    let closing = false
    server.on('message', (peer, data) => {
      if (closing) afterClose++
      else beforeClose++
      try {
        peer.send(data) // the README's echo
      } catch (error) {
        errors.push((error as { code: string }).code)
      }
    })
    const clients = await Promise.all(
      [31n, 32n, 33n, 34n].map(async (id) => {
        const client = new Client(fast)
        await client.connect(await token(address, id))
        return client
      }),
    )
    const flood = setInterval(() => {
      for (const client of clients) if (client.state === 'connected') for (let i = 0; i < 50; i++) client.send(new Uint8Array(100))
    }, 1)
    await waitFor(() => beforeClose >= 400, 5000, 'the flood to reach the server')
    closing = true
    await server.close()
    clearInterval(flood)
    expect({ afterClose, errors }).toEqual({ afterClose: 0, errors: [] })
    await Promise.all(clients.map((client) => client.close()))
  })

  it("a client whose handshake completed just before close() is not reported: no 'connect' whose welcome would throw, no 'disconnect'", async () => {
    const { server, address } = await startServer()
    const seen: { connected: boolean; send: string }[] = []
    server.on('connect', (peer) => {
      let send = 'sent'
      try {
        peer.send(new Uint8Array([1]))
      } catch (error) {
        send = (error as { code: string }).code
      }
      seen.push({ connected: peer.connected, send })
    })
    const disconnects: string[] = []
    server.on('disconnect', (_peer, reason) => disconnects.push(reason))
    const client = new Client(fast)
    const connecting = client.connect(await token(address, 35n))
    // The handshake completes on the I/O threads (the client has its keep-alive); its connect record waits
    // for JavaScript.
    expect(blockUntil(() => client.stats().maxClients > 0, 10_000)).toBe(true)
    const clientEnded = new Promise<string>((resolve) => client.once('disconnect', resolve))
    await server.close()
    await connecting // its client was connected, and is disconnected by the server's redundant disconnects
    expect(await clientEnded).toBe('disconnected')
    expect({ seen, disconnects, peers: server.peers.size }).toEqual({ seen: [], disconnects: [], peers: 0 })
    await client.close()
  })

  it('a closing client refuses send() (ERR_CLIENT_CLOSED) instead of accepting a message it will never send', async () => {
    const { server, address } = await startServer()
    const received: number[] = []
    server.on('message', (_peer, data) => received.push(data[0]!))
    const client = new Client(fast)
    await client.connect(await token(address, 21n))
    client.send(new Uint8Array([1]))
    const closed = client.close()
    expect(() => client.send(new Uint8Array([2]))).toThrow(expect.objectContaining({ code: 'ERR_CLIENT_CLOSED' }))
    await closed
    await waitFor(() => server.peers.size === 0)
    expect(received).toEqual([1])
    await server.close()
  })

  it("a closing client emits no more 'message' events (an echo handler would throw)", async () => {
    const { server, address } = await startServer()
    const client = new Client(fast)
    await client.connect(await token(address, 22n))
    await waitFor(() => server.peers.size === 1)
    const [peer] = [...server.peers.values()] as [Peer]
    let closing = false
    let afterClose = 0
    let beforeClose = 0
    client.on('message', () => {
      if (closing) afterClose++
      else beforeClose++
    })
    const before = client.stats().packets.in
    for (let i = 0; i < 200; i++) peer.send(new Uint8Array(100))
    await Promise.resolve() // the send slabs go to the I/O thread (no event is delivered in a microtask)
    // All 200 land in the client's engine and wait for JavaScript, which has not run since.
    expect(blockUntil(() => client.stats().packets.in - before >= 200, 10_000)).toBe(true)
    closing = true
    await client.close()
    expect({ beforeClose, afterClose }).toEqual({ beforeClose: 0, afterClose: 0 })
    await server.close()
  })

  it("ClientPool.connect() stops starting clients once the caller's signal aborts", async () => {
    const pool = new ClientPool(fast)
    const silent = await Promise.all(Array.from({ length: 40 }, (_, i) => token(silentAddress, 500n + BigInt(i))))
    const abort = new AbortController()
    const connecting = pool.connect(silent, { concurrency: 4, signal: abort.signal })
    await sleep(30)
    abort.abort()
    expect(await connecting).toMatchObject({ connected: 0, failed: 4, skipped: 36 })
    expect(pool.stats().failed).toEqual({ ABORT_ERR: 4 })
    // A signal aborted already: nothing is tried.
    await expect(pool.connect(silent, { signal: abort.signal })).rejects.toMatchObject({ code: 'ABORT_ERR' })
    expect(pool.clients).toHaveLength(0)
    await pool.close()
  })

  it('ClientPool.close() during connect() ends the attempts in flight and starts no more', async () => {
    const { server, address } = await startServer()
    const pool = new ClientPool(fast)
    const silent = await Promise.all([1n, 2n].map((id) => token(silentAddress, 300n + id)))
    const good = await Promise.all([1n, 2n, 3n].map((id) => token(address, 400n + id)))
    const connecting = pool.connect([...silent, ...good], { concurrency: 2 })
    await sleep(30)
    await pool.close()
    expect(await connecting).toMatchObject({ connected: 0, failed: 2 })
    expect(pool.stats().failed).toEqual({ ABORT_ERR: 2 })
    await sleep(100)
    expect(server.peers.size).toBe(0)
    await expect(pool.connect(good)).rejects.toMatchObject({ code: 'ERR_CLIENT_CLOSED' })
    await server.close()
  })
})

describe('options', () => {
  const base = { protocolId, privateKey, address: '127.0.0.1:0' }
  it.each([
    [{ maxclients: 5 }, 'ERR_INVALID_ARG_VALUE', /Unknown option "maxclients"/],
    [{ recvBufferSize: 'big' }, 'ERR_INVALID_ARG_TYPE', /"recvBufferSize" option must be of type number/],
    [{ sendBufferSize: Number.NaN }, 'ERR_OUT_OF_RANGE', /"sendBufferSize"/],
    [{ batchSize: 0 }, 'ERR_OUT_OF_RANGE', /"batchSize" option must be an integer from 1 to 1024/],
    [{ coalesceUs: -5 }, 'ERR_OUT_OF_RANGE', /"coalesceUs"/],
    [{ engine: 'foo' }, 'ERR_INVALID_ARG_VALUE', /"engine" option must be 'shared' or 'dedicated'/],
    [{ keepAliveIntervalMs: '100' }, 'ERR_INVALID_ARG_TYPE', /"keepAliveIntervalMs"/],
    [{ networkSimulator: { lossPct: 0.5 } }, 'ERR_INVALID_ARG_VALUE', /Unknown option "lossPct" in the "networkSimulator" option/],
    // The address options: a message that names the option (the address alone does not say which was wrong).
    [{ address: '127.0.0.1' }, 'ERR_INVALID_ARG_VALUE', /"address" option.*Received '127\.0\.0\.1'/],
    [{ address: 'nowhere:0' }, 'ERR_INVALID_ARG_VALUE', /"address" option.*Received 'nowhere:0'/],
    [{ address: 40000 }, 'ERR_INVALID_ARG_TYPE', /"address" option must be a string/],
    [{ address: '[fe80::1%lo]:0' }, 'ERR_INVALID_ARG_VALUE', /"address" option must be .* with no zone \('%eth0': netcode's addresses carry none\)/],
    [{ publicAddress: '10.0.0.1' }, 'ERR_INVALID_ARG_VALUE', /"publicAddress" option.*Received '10\.0\.0\.1'/],
    // What tokens list must be an address clients can send to: a wildcard bind needs publicAddress.
    [{ address: '0.0.0.0:0' }, 'ERR_INVALID_ARG_VALUE', /^The "address" option '0\.0\.0\.0:0' is the unspecified address, which clients cannot send to: give the "publicAddress" option too/],
    [{ address: '[::]:40000' }, 'ERR_INVALID_ARG_VALUE', /^The "address" option '\[::\]:40000' is the unspecified address/],
    [{ address: '0.0.0.0:0', publicAddress: '255.255.255.255:9' }, 'ERR_INVALID_ARG_VALUE', /^The "publicAddress" option must be an address clients can send to; '255\.255\.255\.255:9' is the broadcast address$/],
    [{ publicAddress: '[ff02::1]:9' }, 'ERR_INVALID_ARG_VALUE', /'\[ff02::1\]:9' is a multicast address$/],
  ])('Server refuses %o', (change, code, message) => {
    expect(() => new Server({ ...base, ...(change as object) })).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }))
  })

  it.each([
    [{ disconnectPackets: -1 }, 'ERR_OUT_OF_RANGE', /"disconnectPackets" option must be an integer from 0 to 100/],
    [{ disconnectPackets: 2.5 }, 'ERR_OUT_OF_RANGE', /"disconnectPackets"/],
    [{ reqInterval: 5 }, 'ERR_INVALID_ARG_VALUE', /Unknown option "reqInterval"/],
    [{ recvBufferSize: 'x' }, 'ERR_INVALID_ARG_TYPE', /"recvBufferSize"/],
    [{ sendBufferSize: 1e30 }, 'ERR_OUT_OF_RANGE', /"sendBufferSize"/],
    [{ coalesceUs: 2_000_000 }, 'ERR_OUT_OF_RANGE', /"coalesceUs" option must be an integer from 0 to 1000000/],
    [{ engine: 'x' }, 'ERR_INVALID_ARG_VALUE', /"engine"/],
  ])('Client and ClientPool refuse %o', (change, code, message) => {
    const expected = expect.objectContaining({ code, message: expect.stringMatching(message) })
    expect(() => new Client(change as never)).toThrow(expected)
    expect(() => new ClientPool(change as never)).toThrow(expected)
  })

  it('a Server bound to the wildcard address takes the clients of tokens that list its publicAddress', async () => {
    const server = new Server({ protocolId, privateKey, address: '0.0.0.0:0', publicAddress: '127.0.0.1:0', ...fast })
    expect(server.publicAddress).toBeNull()
    const { address, port } = await server.listen()
    expect(address).toBe('0.0.0.0')
    expect(server.publicAddress).toBe(`127.0.0.1:${port}`)
    const client = new Client(fast)
    await client.connect(await token(server.publicAddress as string, 9n))
    expect(client.state).toBe('connected')
    await client.close()
    await server.close()
  })

  // 127.0.0.2 stands for a host's second address (a floating or secondary one): the kernel's route to a client
  // on 127.0.0.1 picks 127.0.0.1 as the source, and the client drops what does not come from its token's address.
  it('server.publicAddress is what tokens list, as serverAddresses takes it', async () => {
    const cases: [{ address: string; publicAddress?: string }, (port: number) => string][] = [
      [{ address: '[::1]:0' }, (port) => `[::1]:${port}`], // address() gives '::1': tokens need the brackets
      [{ address: '[0:0:0:0:0:0:0:1]:0' }, (port) => `[::1]:${port}`],
      [{ address: '[::]:0', publicAddress: '[2001:db8::7]:40000' }, () => '[2001:db8::7]:40000'], // NAT: the port given stands
    ]
    for (const [options, expected] of cases) {
      const server = new Server({ protocolId, privateKey, ...fast, ...options })
      const { port } = await server.listen()
      expect(server.publicAddress).toBe(expected(port))
      await server.close()
      expect(server.publicAddress).toBeNull()
    }
  })

  for (const bound of ['0.0.0.0:0', '[::]:0']) {
    it(`a Server bound to ${bound} whose publicAddress is another address of the host answers from that address`, async () => {
      // With channels, so that a large message's fragments leave in UDP GSO runs, which name the source too.
      const channels = [{ mode: 'reliable' as const }]
      const server = new Server({ protocolId, privateKey, address: bound, publicAddress: '127.0.0.2:0', channels, ...fast })
      const { port } = await server.listen()
      const received: number[] = []
      server.on('message', (peer, data) => {
        received.push(data.byteLength)
        peer.send(data)
      })
      const client = new Client({ channels, ...fast })
      const echoed = new Promise<Uint8Array>((resolve) => client.once('message', (data) => resolve(data.slice())))
      await client.connect(await token(`127.0.0.2:${port}`, 10n, 2))
      const message = new Uint8Array(200_000).map((_, i) => i * 7)
      client.send(message)
      expect(await echoed).toEqual(message)
      expect(received).toEqual([200_000])
      expect(client.stats().drops.unknownAddress).toBe(0)
      await client.close()
      await server.close()
    })
  }

  it('a Server bound to 0.0.0.0 behind NAT (its publicAddress not the host\'s) leaves the source to the route', async () => {
    // The token lists the NAT's inside address (here 127.0.0.1) first, which the client sends to, then the
    // public one, which the server checks for: answers from the public address would fail, or be dropped.
    const server = new Server({ protocolId, privateKey, address: '0.0.0.0:0', publicAddress: '203.0.113.7:0', ...fast })
    const { port } = await server.listen()
    const client = new Client(fast)
    await client.connect(await generateConnectToken({ protocolId, privateKey, clientId: 13n, serverAddresses: [`127.0.0.1:${port}`, `203.0.113.7:${port}`], expireSeconds: 30, timeoutSeconds: 2 }))
    expect(client.state).toBe('connected')
    expect(server.stats().errors.send).toBe(0)
    await client.close()
    await server.close()
  })

  it('on the fallback engine, which cannot name its source, the timeout says what came from elsewhere', async () => {
    const server = new Server({ protocolId, privateKey, address: '0.0.0.0:0', publicAddress: '127.0.0.2:0', ...fast })
    const { port } = await onEngine('fallback', () => server.listen())
    const client = new Client(fast)
    const error = await client.connect(await token(`127.0.0.2:${port}`, 11n, 1)).catch((caught: unknown) => caught)
    expect(error).toMatchObject({ code: 'ERR_CONNECTION_REQUEST_TIMED_OUT' })
    const stray = client.stats().drops.unknownAddress
    expect(stray).toBeGreaterThan(0)
    expect((error as Error).message).toContain(`; meanwhile ${stray} datagrams came from addresses other than the server's and were dropped (stats().drops.unknownAddress)`)
    // A timeout with nothing from elsewhere says nothing of it.
    const silent = await client.connect(await token(silentAddress, 12n, 1)).catch((caught: unknown) => caught)
    expect(silent).toMatchObject({ code: 'ERR_CONNECTION_REQUEST_TIMED_OUT' })
    expect((silent as Error).message).not.toContain('meanwhile')
    await client.close()
    await server.close()
  })

  it('ClientPool.connect refuses tokens that are not an array', async () => {
    await expect(new ClientPool().connect('xyz' as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' })
  })
})

describe('the process is free to exit', () => {
  const directory = mkdtempSync(join(tmpdir(), 'volley-exit-'))
  const index = join(import.meta.dirname, '../src/index.ts')
  // Runs a script in a child node; it must end by itself (status 0) well within the time allowed.
  function exits(name: string, body: string): { status: number | null; signal: string | null; stdout: string; stderr: string } {
    const file = join(directory, `${name}.mts`) // .mts: an ES module wherever it lies
    writeFileSync(
      file,
      `import { Client, Server, createDatagramSocket, generateConnectToken } from ${JSON.stringify(index)}\n` +
        `const privateKey = new Uint8Array(32).fill(7)\n` +
        `const token = (address: string, clientId: bigint) => generateConnectToken({ protocolId: 1n, privateKey, clientId, serverAddresses: [address], expireSeconds: 30, timeoutSeconds: 1 })\n` +
        body,
    )
    const run = spawnSync(process.execPath, ['--import', 'tsx', file], { timeout: 15_000, killSignal: 'SIGKILL', encoding: 'utf8' })
    return { status: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr }
  }

  it('after a server and a client closed, beside an unref()ed socket on the same engine', () => {
    const run = exits(
      'closed',
      `const socket = createDatagramSocket(); await socket.bind(0, '127.0.0.1'); socket.unref()
       const server = new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0', disconnectIntervalMs: 5 })
       const { port } = await server.listen()
       const client = new Client({ disconnectIntervalMs: 5 })
       await client.connect(await token('127.0.0.1:' + port, 1n))
       await client.close(); await server.close()`,
    )
    expect(run).toMatchObject({ status: 0, signal: null })
  }, 20_000)

  it('after a connect() that failed, without close()', () => {
    const run = exits(
      'failed',
      `const client = new Client()
       const outcome = await client.connect(await token('127.0.0.1:9', 1n)).then(() => 'connected', (error) => error.code)
       if (outcome !== 'ERR_CONNECTION_REQUEST_TIMED_OUT') throw new Error('unexpected outcome ' + outcome)`,
    )
    expect(run).toMatchObject({ status: 0, signal: null })
  }, 20_000)

  it('after server.unref() before listen()', () => {
    const run = exits(
      'unref-before-listen',
      `const server = new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0' })
       server.unref()
       await server.listen()`,
    )
    expect(run).toMatchObject({ status: 0, signal: null })
  }, 20_000)

  it('not while a client reopens its socket for an IPv6 server: the connect completes first', () => {
    const run = exits(
      'reopen',
      `const v4 = new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0', disconnectIntervalMs: 5 })
       const v6 = new Server({ protocolId: 1n, privateKey, address: '[::1]:0' })
       const port4 = (await v4.listen()).port
       const port6 = (await v6.listen()).port
       v4.unref(); v6.unref() // as if they were elsewhere: only the client may keep this process alive
       const client = new Client()
       await client.connect(await token('127.0.0.1:' + port4, 1n))
       const ended = new Promise((resolve) => client.once('disconnect', resolve))
       for (const peer of v4.peers.values()) peer.disconnect()
       await ended
       await client.connect(await token('[::1]:' + port6, 2n))
       console.log('connected over IPv6')
       client.unref()`,
    )
    expect(run).toMatchObject({ status: 0, signal: null })
  }, 20_000)

  it('only once close() has finished, unref() or not (as node:net and node:dgram handles)', () => {
    const run = exits(
      'close-after-unref',
      `const server = new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0', disconnectPackets: 3 })
       const { port } = await server.listen()
       const client = new Client({ disconnectPackets: 3 })
       await client.connect(await token('127.0.0.1:' + port, 1n))
       const socket = createDatagramSocket(); await socket.bind(0, '127.0.0.1')
       server.unref(); client.unref(); socket.unref()
       socket.send('x', port, '127.0.0.1')
       await client.close(); console.log('client closed', client.state)
       await server.close(); console.log('server closed', server.state)
       await socket.close(); console.log('socket closed', socket.stats().packetsOut)`,
    )
    expect(run).toMatchObject({ status: 0, signal: null, stdout: 'client closed disconnected\nserver closed stopped\nsocket closed 1\n' })
  }, 20_000)

  it('with a server and a connected client both unref()ed', () => {
    const run = exits(
      'unref',
      `const server = new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0' })
       const { port } = await server.listen()
       server.unref()
       const client = new Client()
       await client.connect(await token('127.0.0.1:' + port, 1n))
       client.unref()`,
    )
    expect(run).toMatchObject({ status: 0, signal: null })
  }, 20_000)
})

describe('the volley command line', () => {
  const cli = join(import.meta.dirname, '../src/cli/volley.ts')
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { timeout: 15_000, killSignal: 'SIGKILL', encoding: 'utf8' })

  it.each([
    [['--protocol-id', 'xyz', 'token', '--server', '127.0.0.1:4', '--key', '07'.repeat(32)], /--protocol-id must be an integer/, true],
    [['--bogus'], /^volley: unknown flag '--bogus'$/m, true],
    [['serve', '--adress', '127.0.0.1:4', '--key', '07'.repeat(32)], /^volley: unknown flag '--adress' \(did you mean --address\?\)$/m, true],
    [['token', '--clientid', '4'], /^volley: unknown flag '--clientid' \(did you mean --client-id\?\)$/m, true],
    // Only a flag the command takes is suggested: load has no --address.
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--adress', 'x'], /^volley: unknown flag '--adress'$/m, true],
    [['token', ...Array.from({ length: 33 }, (_, i) => ['--server', `127.0.0.1:${i + 1}`]).flat(), '--key', '07'.repeat(32)], /--server is given 33 times: a connect token lists 1 to 32 servers/, true],
    [['token', '--server', 'nope', '--key', '07'.repeat(32)], /Server address 'nope' \(the "--server" option\) does not parse/, false],
    [['token', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--timeout', '5.5'], /--timeout must be -1 \(no timeout\) or a whole number of seconds from 1 to 2147483647, not '5.5'/, true],
    // 0 is no timeout the library takes: the flag's own message, not the library's "timeoutSeconds" option.
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--timeout', '0'], /--timeout must be -1 \(no timeout\) or a whole number of seconds from 1 to 2147483647, not '0'/, true],
    // Decimal or 0x hex only: BigInt('') was 0 and Number(' 0x3 ') was 3.
    [['token', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--protocol-id', ''], /--protocol-id must be an integer from 0 to 2\^64 - 1/, true],
    [['token', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--client-id', ' 0x10 '], /--client-id must be an integer/, true],
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--clients', ' 0x3 '], /--clients must be an integer from 1 to 1000000, not ' 0x3 '/, true],
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--clients', '1e3'], /--clients must be an integer/, true],
    // The library's ranges, checked by the command line: the flag is named, and where the usage is.
    [['serve', '--address', '127.0.0.1:0', '--key', '07'.repeat(32), '--keep-alive-ms', '0'], /--keep-alive-ms must be a number from 1 to 60000, not '0'/, true],
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--concurrency', '0'], /--concurrency must be an integer from 1 to 1000000/, true],
    [['serve', '--address', '127.0.0.1:0', '--key', '07'.repeat(32), '--max-clients', '1e9'], /--max-clients must be an integer/, true],
    // A flag of another command, or a word more, was ignored: load used client ids 1..N whatever --client-id said.
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--client-id', '500'], /load takes no --client-id/, true],
    [['serve', '--address', '127.0.0.1:0', '--key', '07'.repeat(32), '--timeout', '-1'], /serve takes no --timeout/, true],
    [['key', '--server', 'nonsense'], /key takes no --server/, true],
    [['token', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), 'extra'], /unexpected argument 'extra' after token/, true],
    [['launch'], /unknown command 'launch'/, true],
    // parseArgs takes the last of a flag given twice: load ran 7 clients for "--clients 5 --clients 7".
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--clients', '5', '--clients', '7'], /^volley: --clients is given twice: give it once$/m, true],
    [[], /^volley: a command is needed: serve, load, token, key, kme or build-addon$/m, true],
    // A flag missing its value before another flag: parseArgs's three lines about an ambiguous argument.
    [['token', '--server', '--key', '07'.repeat(32)], /^volley: --server needs a value$/m, true],
    // --address is checked as --server is: the flag named, not the Server option it fills.
    [['serve', '--address', 'bogus', '--key', '07'.repeat(32)], /Server address 'bogus' \(the "--address" option\) does not parse/, false],
    // What tokens list must be an address clients can send to.
    [['token', '--server', '0.0.0.0:4', '--key', '07'.repeat(32)], /Server address '0.0.0.0:4' \(the "--server" option\) is the unspecified address, which a client cannot send to/, false],
    [['serve', '--address', '0.0.0.0:0', '--key', '07'.repeat(32)], /--address 0.0.0.0:0 is the unspecified address, which clients cannot send to: give --public-address too/, true],
    [['serve', '--address', '0.0.0.0:0', '--public-address', '[ff02::1]:0', '--key', '07'.repeat(32)], /--public-address \[ff02::1\]:0 is a multicast address, which clients cannot send to/, true],
    [['serve', '--address', '0.0.0.0:0', '--public-address', 'here', '--key', '07'.repeat(32)], /Server address 'here' \(the "--public-address" option\) does not parse/, false],
    [['serve', '--address', '127.0.0.1:99999', '--key', '07'.repeat(32)], /'127.0.0.1:99999' \(the "--address" option\) does not parse: expected 'a.b.c.d:port' or '\[ipv6\]:port' with a port from 0 to 65535/, false],
    [['serve', '--address', '127.0.0.1:0', '--key', '07'.repeat(32), '--reuse-port'], /--reuse-port needs a fixed port in --address, not port 0/, true],
    // Port 0 however written (it crashed on '00' with a stack trace).
    [['serve', '--address', '127.0.0.1:00', '--key', '07'.repeat(32), '--reuse-port'], /--reuse-port needs a fixed port in --address, not port 0/, true],
    [['serve', '--address', '127.0.0.1:0', '--key', '07'.repeat(32), '--channels', 'reliable,fast'], /--channels must be modes separated by commas \(reliable, unreliable, sequenced\), not 'reliable,fast'/, true],
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--max-message-bytes', '100'], /--max-message-bytes needs --channels/, true],
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--channels', 'reliable', '--max-message-bytes', '0'], /--max-message-bytes must be an integer from 1 to 1073741824, not '0'/, true],
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--channels', 'reliable', '--max-message-bytes', '10', '--rate', '5'], /--max-message-bytes must be at least 64 while load broadcasts \(--rate, default 10; --rate 0 sends none\): each broadcast is a 64-byte message/, true],
    // Longer than a timer can wait: it would fire at once and stop the server as soon as it listens.
    [['serve', '--address', '127.0.0.1:0', '--key', '07'.repeat(32), '--seconds', '3000000'], /--seconds must be/, true],
    // Keep-alives further apart than the timeout: every connection timed out, and the run exited 1.
    [['load', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--keep-alive-ms', '20000'], /--keep-alive-ms must be below the --timeout of 10 s \(10000 ms\)/, true],
  ])('refuses %j with one line and status 2, no stack trace', (args, message, pointsToHelp) => {
    const { status, stderr } = run(...args)
    expect(status).toBe(2)
    expect(stderr).toMatch(/^volley: /m)
    expect(stderr).toMatch(message)
    // A mistake in the flags says where the usage is; a value the library refuses (an address) is one line.
    // The usage itself is not printed: 30 lines of it buried the mistake above them.
    expect(stderr.split('\n').filter((line) => line !== '')).toHaveLength(pointsToHelp ? 2 : 1)
    expect(/^Run 'volley --help' for the usage\.$/m.test(stderr)).toBe(pointsToHelp)
    expect(stderr).not.toMatch(/^usage:/m)
    expect(stderr).not.toMatch(/^\s+at /m)
  }, 20_000)

  it('takes the key from VOLLEY_KEY without --key (a flag is in the command line, which other users can read)', () => {
    const withEnvironment = (env: Record<string, string>, ...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { timeout: 15_000, killSignal: 'SIGKILL', encoding: 'utf8', env: { ...process.env, ...env } })
    const made = withEnvironment({ VOLLEY_KEY: '07'.repeat(32) }, 'token', '--server', '127.0.0.1:4')
    expect(made.status).toBe(0)
    expect(Buffer.from(made.stdout.trim(), 'base64').byteLength).toBe(2048)
    const { VOLLEY_KEY: _unset, ...without } = process.env
    const missing = spawnSync(process.execPath, ['--import', 'tsx', cli, 'token', '--server', '127.0.0.1:4'], { timeout: 15_000, encoding: 'utf8', env: without })
    expect(missing.status).toBe(2)
    expect(missing.stderr).toMatch(/--key is required \(64 hex digits; `volley key` makes one\), or VOLLEY_KEY in the environment/)
    expect(withEnvironment({ VOLLEY_KEY: 'xyz' }, 'token', '--server', '127.0.0.1:4').stderr).toMatch(/^volley: VOLLEY_KEY must be 64 hex digits$/m)
  }, 20_000)

  it('takes a negative value after a space (--timeout -1), and -h and --version', () => {
    const token = run('token', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--timeout', '-1')
    expect(token.status).toBe(0)
    const bytes = Buffer.from(token.stdout.trim(), 'base64')
    expect(bytes.byteLength).toBe(2048)
    expect(readConnectToken(bytes).timeoutSeconds).toBe(-1)
    expect(run('token', '--server', '127.0.0.1:4', '--key', '07'.repeat(32), '--timeout', '-2').stderr).toMatch(/--timeout must be -1 \(no timeout\) or a whole number of seconds from 1 to 2147483647, not '-2'/)
    // --server again: the token lists each, in order (a client tries them in turn).
    const two = run('token', '--server', '127.0.0.1:4', '--server', '[::1]:5', '--key', '07'.repeat(32))
    expect(two.status).toBe(0)
    expect(readConnectToken(Buffer.from(two.stdout.trim(), 'base64')).serverAddresses.map((a) => [a.family, a.port])).toEqual([
      [4, 4],
      [6, 5],
    ])
    expect(run('-h')).toMatchObject({ status: 0, stdout: expect.stringMatching(/^usage:/) })
    const version = JSON.parse(readFileSync(join(import.meta.dirname, '../package.json'), 'utf8')).version as string
    expect(run('--version')).toMatchObject({ status: 0, stdout: `${version}\n` })
  }, 20_000)

  it('volley serve --reuse-port: two servers on one port share the clients of volley load', async () => {
    const key = '07'.repeat(32)
    /** A server process (it stops by itself after 25 s); its JSON lines (listening, then stopped) as they come. */
    const serve = (address: string) => {
      const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', '--address', address, '--key', key, '--reuse-port', '--seconds', '25'])
      const lines: { event: string; port?: number; stats?: { packets: { in: number } } }[] = []
      let text = ''
      child.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString()
        for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n')) {
          const line = text.slice(0, end)
          text = text.slice(end + 1)
          if (line.startsWith('{')) lines.push(JSON.parse(line))
        }
      })
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
      return { lines, exited, stop: () => child.kill('SIGTERM') }
    }
    const port = await freeUdpPort()
    const servers = [serve(`127.0.0.1:${port}`), serve(`127.0.0.1:${port}`)]
    try {
      await waitFor(() => servers.every((server) => server.lines.length > 0), 10_000, 'both servers to listen')
      for (const server of servers) expect(server.lines[0]).toMatchObject({ event: 'listening', port, publicAddress: `127.0.0.1:${port}` })
      const load = spawnSync(process.execPath, ['--import', 'tsx', cli, 'load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '20', '--seconds', '0.2', '--json'], {
        timeout: 15_000,
        killSignal: 'SIGKILL',
        encoding: 'utf8',
      })
      expect(load.status).toBe(0)
      expect(JSON.parse(load.stdout.trim().split('\n')[0]!)).toMatchObject({ event: 'connected', connect: { connected: 20, failed: 0 } })
    } finally {
      for (const server of servers) server.stop()
    }
    expect(await Promise.all(servers.map((server) => server.exited))).toEqual([0, 0])
    // Each server took some of the 20 clients (their ports hashed: all on one has odds of 2^-19).
    // The last line: a status line may come before it (every 10 s).
    for (const server of servers) expect(server.lines.at(-1)).toMatchObject({ event: 'stopped', stats: { packets: { in: expect.any(Number) } } })
    expect(Math.min(...servers.map((server) => server.lines.at(-1)!.stats!.packets.in))).toBeGreaterThan(0)
  }, 30_000)

  it('volley serve and load --channels: echoes on the channels; load with other channels cannot connect, and says why', async () => {
    const key = '07'.repeat(32)
    const port = await freeUdpPort()
    const server = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', '--address', `127.0.0.1:${port}`, '--key', key, '--channels', 'reliable,unreliable', '--seconds', '20'])
    let out = ''
    server.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => server.once('exit', resolve))
    try {
      await waitFor(() => out.includes('"listening"'), 10_000, 'the server to listen')
      const load = (...channels: string[]) =>
        spawnSync(process.execPath, ['--import', 'tsx', cli, 'load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '10', '--seconds', '0.5', '--rate', '20', '--json', ...channels], {
          timeout: 15_000,
          killSignal: 'SIGKILL',
          encoding: 'utf8',
        })
      type Line = { event: string; connect: { connected: number }; failed: Record<string, number>; messagesSent: number; messagesReceived: number }
      const same = load('--channels', 'reliable,unreliable')
      expect(same.status).toBe(0)
      const finished = JSON.parse(same.stdout.trim().split('\n')[1]!) as Line
      expect(finished).toMatchObject({ event: 'finished', connect: { connected: 10 } })
      // Reliable both ways: every broadcast message comes back.
      expect(finished.messagesSent).toBe(100)
      expect(finished.messagesReceived).toBe(100)
      const other = load('--channels', 'reliable,sequenced')
      expect(other.status).toBe(1)
      expect(JSON.parse(other.stdout.trim().split('\n')[0]!)).toMatchObject({ event: 'connected', connect: { connected: 0 }, failed: { ERR_CHANNELS_MISMATCH: 10 } })
    } finally {
      server.kill('SIGTERM')
    }
    expect(await exited).toBe(0)
  }, 40_000)

  it("volley load against a server whose largest message is under its broadcasts: it stops them, reports, disconnects its clients and exits 1", async () => {
    const key = '07'.repeat(32)
    const port = await freeUdpPort()
    const server = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', '--address', `127.0.0.1:${port}`, '--key', key, '--channels', 'reliable', '--max-message-bytes', '10', '--seconds', '20'])
    let out = ''
    server.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => server.once('exit', resolve))
    try {
      await waitFor(() => out.includes('"listening"'), 10_000, 'the server to listen')
      const load = (rate: string) =>
        spawnSync(process.execPath, ['--import', 'tsx', cli, 'load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '3', '--seconds', '2', '--rate', rate, '--json', '--channels', 'reliable'], {
          timeout: 15_000,
          killSignal: 'SIGKILL',
          encoding: 'utf8',
        })
      const refused = load('20')
      expect(refused.status).toBe(1)
      expect(refused.stderr).toMatch(/^volley load: the broadcasts stopped: .* \(ERR_MESSAGE_TOO_LARGE\)$/m)
      expect(refused.stderr).not.toMatch(/^\s+at /m)
      const lines = refused.stdout.trim().split('\n').map((line) => JSON.parse(line) as { event: string; connect: { connected: number }; broadcasts: number })
      expect(lines.map((line) => line.event)).toEqual(['connected', 'finished'])
      expect(lines[1]).toMatchObject({ connect: { connected: 3 }, broadcasts: 0 })
      // Its clients said goodbye: the same client ids connect again at once (not refused as connected still).
      const again = load('0')
      expect(again.status).toBe(0)
      expect(JSON.parse(again.stdout.trim().split('\n')[0]!)).toMatchObject({ event: 'connected', connect: { connected: 3 } })
    } finally {
      server.kill('SIGTERM')
    }
    expect(await exited).toBe(0)
  }, 40_000)

  it('volley load exits with status 1 when its clients could not connect, after its report', () => {
    // No server on the port: each request times out after the token's 1 s.
    const { status, stdout } = run('load', '--server', '127.0.0.1:9', '--key', '07'.repeat(32), '--clients', '2', '--timeout', '1', '--seconds', '0.1', '--json')
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as { event: string; connect: { connected: number; failed: number } })
    expect(lines.map((line) => line.event)).toEqual(['connected', 'finished'])
    expect(lines[1]!.connect).toMatchObject({ connected: 0, failed: 2 })
    expect(status).toBe(1)
    // Without --json, the same reports as text (src/cli/load-report.ts).
    const text = run('load', '--server', '127.0.0.1:9', '--key', '07'.repeat(32), '--clients', '2', '--timeout', '1', '--seconds', '0.1')
    // The code, then what it may mean (no server there, or one that refused the key without a word).
    expect(text.stdout).toMatch(
      /^connected 0 of 2 clients in \d+\.\d\d s; failed: ERR_CONNECTION_REQUEST_TIMED_OUT 2\n {2}ERR_CONNECTION_REQUEST_TIMED_OUT: No server answered the connection request in time: it may be down, .*a private key other than the server's.*\nfinished: 0 clients connected\n/,
    )
    expect(text.status).toBe(1)
  }, 20_000)

  it.each([
    ['demo.ts', ['--clients', 'abc'], /^volley demo: --clients must be an integer from 1 to 65536, not 'abc'$/m],
    ['demo.ts', ['--loss', '2'], /^volley demo: --loss must be a non-negative number up to 1, not '2'$/m],
    ['demo.ts', ['--bogus'], /^volley demo: unknown flag '--bogus'$/m],
    ['demo.ts', ['--chanels'], /^volley demo: unknown flag '--chanels' \(did you mean --channels\?\)$/m],
    ['datagram-demo.ts', ['--size', '0'], /^volley demo:datagrams: --size must be an integer from 1 to 65507, not '0'$/m],
  ])('the demo %s refuses %j with one line, where its usage is and status 2', (file, args, message) => {
    const demo = join(import.meta.dirname, '../src/cli', file)
    const { status, stderr } = spawnSync(process.execPath, ['--import', 'tsx', demo, ...args], { timeout: 15_000, killSignal: 'SIGKILL', encoding: 'utf8' })
    expect(status).toBe(2)
    expect(stderr).toMatch(message)
    expect(stderr).toMatch(new RegExp(`^Run 'npm run ${file === 'demo.ts' ? 'demo' : 'demo:datagrams'} -- --help' for the usage\\.$`, 'm'))
    expect(stderr).not.toMatch(/^usage:/m)
    expect(stderr).not.toMatch(/^\s+at /m)
  }, 20_000)
})

describe('the demos at --help', () => {
  it.each([
    ['demo.ts', /^ {2}--loss +every socket sends through a simulated network/m],
    ['datagram-demo.ts', /^ {2}--batch +datagrams a recvmmsg call reads at most/m],
  ])('%s says what each flag does, on stdout, with status 0', (file, flagLine) => {
    for (const flag of ['--help', '-h']) {
      const { status, stdout, stderr } = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../src/cli', file), flag], { timeout: 15_000, killSignal: 'SIGKILL', encoding: 'utf8' })
      expect(stderr).toBe('')
      expect(stdout).toMatch(/^usage: npm run demo/)
      expect(stdout).toMatch(flagLine)
      expect(status).toBe(0)
    }
  }, 30_000)
})

describe('the demo (npm run demo)', () => {
  const demo = join(import.meta.dirname, '../src/cli/demo.ts')
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', demo, ...args], { timeout: 30_000, killSignal: 'SIGKILL', encoding: 'utf8' })

  it.each([
    [['--clients', '3', '--rate', '2', '--seconds', '1'], 6],
    // --rate 0 used to send 20 a second (one message per 50 ms tick at least), whatever the clients.
    [['--clients', '2', '--rate', '0', '--seconds', '0.5'], 0],
  ])('%j sends --rate messages a second from each client, no more, no fewer', (args, sent) => {
    const { status, stdout } = run(...args)
    expect(stdout).toMatch(new RegExp(`^ {2}messages +${sent} sent by clients, ${sent} received by the server, ${sent} echoes back`, 'm'))
    expect(status).toBe(0)
  }, 40_000)

  it('reports clients that could not connect, and exits with status 1 instead of a stack trace', () => {
    // Every datagram lost: each request times out after the token's 10 s.
    const { status, stdout, stderr } = run('--clients', '2', '--seconds', '0.2', '--loss', '1')
    expect(stdout).toMatch(/^ {2}handshakes +0 in \d+ ms; 2 ERR_CONNECTION_REQUEST_TIMED_OUT failed$/m)
    expect(stderr).not.toMatch(/^\s+at /m)
    expect(status).toBe(1)
  }, 40_000)
})

/**
 * Runs a demo, sends it `signal` once its output matches `when`, and gives back its output and status. The
 * demo is killed (status null) if it has not ended 15 s after the signal. throughNpm: `npm run <script>`
 * instead, in a process group of its own that gets the signal as a whole, as a terminal's Ctrl-C does.
 * twice: the signal again 5 ms later, as a relay that forwards the terminal's Ctrl-C does.
 */
async function interruptDemo(
  file: string,
  args: string[],
  when: RegExp,
  signal: NodeJS.Signals,
  throughNpm?: string,
  twice = false,
): Promise<{ stdout: string; stderr: string; status: number | null }> {
  const child =
    throughNpm === undefined
      ? spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../src/cli', file), ...args])
      : spawn('npm', ['run', '-s', throughNpm, '--', ...args], { cwd: join(import.meta.dirname, '..'), detached: true })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  let signalled = false
  let killer: NodeJS.Timeout | undefined
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    if (!signalled && when.test(stdout)) {
      signalled = true
      const send = (what: NodeJS.Signals) => (throughNpm === undefined ? child.kill(what) : process.kill(-child.pid!, what))
      send(signal)
      if (twice) setTimeout(() => send(signal), 5)
      killer = setTimeout(() => send('SIGKILL'), 15_000)
    }
  })
  const [status] = (await once(child, 'exit')) as [number | null]
  clearTimeout(killer)
  return { stdout, stderr, status }
}

describe('the demos end at Ctrl-C with the summary so far', () => {
  it("says when the Ctrl-C came, not when the summary was printed after closing (the datagram demo's said the latter)", () => {
    const file = fileURLToPath(new URL('./fixtures/interrupted-at.ts', import.meta.url))
    const run = spawnSync(process.execPath, ['--import', 'tsx', file], { timeout: 30_000, killSignal: 'SIGKILL', encoding: 'utf8' })
    expect(run.status, run.stderr).toBe(0)
    const { interruptedAfterMs, summaryAfterMs } = JSON.parse(run.stdout) as { interruptedAfterMs: number; summaryAfterMs: number }
    expect(interruptedAfterMs).toBeGreaterThanOrEqual(50) // the signal went 50 ms after the start
    expect(summaryAfterMs - interruptedAfterMs).toBeGreaterThanOrEqual(300) // then 300 ms of closing, not counted
  })

  it('in the message window: the clients disconnect, every message sent was echoed, status 130', async () => {
    const { stdout, stderr, status } = await interruptDemo('demo.ts', ['--clients', '20', '--seconds', '60'], /^ {2}connected +20 /m, 'SIGINT')
    expect(stderr).toBe('') // no warning either (20 attempts listened to one signal: MaxListenersExceededWarning)
    expect(stdout).toMatch(/^summary \(interrupted after \d+\.\d s\)$/m)
    const [, sent, received, echoed] = /^ {2}messages +(\d+) sent by clients, (\d+) received by the server, (\d+) echoes back/m.exec(stdout) ?? []
    expect(Number(sent)).toBeGreaterThan(0)
    expect([Number(received), Number(echoed)]).toEqual([Number(sent), Number(sent)])
    expect(stdout).toMatch(/^ {2}CPU +\d+ % of one core/m)
    expect(status).toBe(130)
  }, 40_000)

  it('while the clients connect: the attempts end, not counted as failures', async () => {
    // Every datagram lost: the attempts would wait for the token's 10 s timeout.
    const { stdout, status } = await interruptDemo('demo.ts', ['--clients', '3', '--loss', '1', '--seconds', '60'], /^volley demo: /m, 'SIGINT')
    expect(stdout).toMatch(/^ {2}handshakes +0 in \d+ ms$/m)
    expect(stdout).toMatch(/^summary \(interrupted after \d+\.\d s\)$/m)
    expect(stdout).not.toMatch(/^ {2}CPU/m) // the message window never began
    expect(status).toBe(130)
  }, 40_000)

  it('through npm run, where Ctrl-C reaches npm and the demo at once: the summary still comes', async () => {
    // Run by tsx's command, which relays a signal to its child and kills it 30 ms later, the demo took the
    // relayed signal for a second Ctrl-C and ended without its summary, most times.
    for (let run = 0; run < 3; run++) {
      const { stdout } = await interruptDemo('', ['--seconds', '60'], /^ {2}received +[\d,]+ +\d/m, 'SIGINT', 'demo:datagrams')
      expect(stdout).toMatch(/^summary \(interrupted after \d+\.\d s\)$/m)
    }
  }, 60_000)

  it('a Ctrl-C relayed as well as sent (two signals 5 ms apart) is one: the summary still comes', async () => {
    const { stdout, status } = await interruptDemo('datagram-demo.ts', ['--seconds', '60'], /^ {2}received +[\d,]+ +\d/m, 'SIGINT', undefined, true)
    expect(stdout).toMatch(/^summary \(interrupted after \d+\.\d s\)$/m)
    expect(status).toBe(130)
  }, 40_000)

  it('the datagram demo at SIGTERM: every datagram received was handed over', async () => {
    const { stdout, status } = await interruptDemo('datagram-demo.ts', ['--seconds', '60'], /^ {2}received +[\d,]+ +\d/m, 'SIGTERM')
    expect(stdout).toMatch(/^summary \(interrupted after \d+\.\d s\)$/m)
    // A summary line missing fails here, not as NaN against NaN (which toBe() takes for equal).
    const count = (line: RegExp): number => {
      const digits = line.exec(stdout)?.[1]
      if (digits === undefined) throw new Error(`no line ${line} in the demo's output:\n${stdout}`)
      return Number(digits.replaceAll(',', ''))
    }
    const received = count(/^ {2}received +([\d,]+) datagrams/m)
    expect(received).toBeGreaterThan(0)
    expect(count(/^ {2}delivered +([\d,]+) to the handler/m)).toBe(received)
    expect(status).toBe(143) // 128 + SIGTERM, as a shell reports it
  }, 40_000)
})

describe('the datagram demo (npm run demo:datagrams)', () => {
  it('hands every datagram it received to its handler and exits with status 0', () => {
    const demo = join(import.meta.dirname, '../src/cli/datagram-demo.ts')
    const run = spawnSync(process.execPath, ['--import', 'tsx', demo, '--seconds', '1'], { timeout: 20_000, killSignal: 'SIGKILL', encoding: 'utf8' })
    // Nothing on stderr but, on a machine whose kernel caps the demo's 8 MiB buffers, the warning that says so.
    expect(run.stderr.replace(/^\(node:\d+\) \[VOLLEY_SOCKET_BUFFER_CAPPED\].*\n(\(Use `node --trace-warnings.*\n)?/m, '')).toBe('')
    // The summary's lines (the live counter lines above it also say "received").
    const count = (line: RegExp): number => Number(line.exec(run.stdout)?.[1]?.replaceAll(',', ''))
    const received = count(/^ {2}received +([\d,]+) datagrams/m)
    expect(received).toBeGreaterThan(1000)
    expect(count(/^ {2}delivered +([\d,]+) to the handler/m)).toBe(received)
    expect(run.stdout).toMatch(/, 0 corrupt/)
    expect(run.status).toBe(0)
  }, 30_000)
})

describe('an engine that cannot start', () => {
  it('rejects listen(), connect() and bind() with the system error and its code, a reopening connect() too', () => {
    // Out of file descriptors (256 at most), in a child process of its own.
    const file = fileURLToPath(new URL('./fixtures/engine-start-failure.ts', import.meta.url))
    const run = spawnSync('prlimit', ['--nofile=256:256', process.execPath, '--import', 'tsx', file], { timeout: 30_000, killSignal: 'SIGKILL', encoding: 'utf8' })
    expect(run.status, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout.trim().split('\n').at(-1)!)).toEqual({
      dedicatedListen: 'rejected EMFILE',
      dedicatedConnect: 'rejected EMFILE',
      dedicatedBind: 'rejected EMFILE',
      reopen: 'rejected EMFILE',
      uncaught: [],
    })
  })
})
