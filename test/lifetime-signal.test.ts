// The "signal" option of DatagramSocket, Server and Client: the object closes when the signal aborts, as a
// node:dgram socket or a net.Socket does; a signal aborted already makes it closed from the start; and a
// long-lived signal does not keep the objects it was given to once they have closed.
import { getEventListeners, once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { Client, ClientPool, Server, createDatagramSocket, generateConnectToken } from '../src/index.ts'
import { type EngineKind, onEngine, waitFor, within } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(9)
const protocolId = 0x5151n
const fast = { disconnectIntervalMs: 5, disconnectPackets: 3 }

function token(port: number, clientId: bigint): Promise<Uint8Array> {
  return generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
}

function abortListeners(signal: AbortSignal): number {
  return getEventListeners(signal, 'abort').length
}

describe('the "signal" option', () => {
  it('rejects what is not an AbortSignal, for each class', () => {
    for (const make of [
      () => createDatagramSocket({ signal: 'stop' as unknown as AbortSignal }),
      () => new Server({ protocolId, privateKey, address: '127.0.0.1:0', signal: {} as AbortSignal }),
      () => new Client({ signal: 42 as unknown as AbortSignal }),
      () => new ClientPool({ signal: null as unknown as AbortSignal }),
    ]) {
      expect(make).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"signal" option must be an AbortSignal') }))
    }
  })

  describe.each<EngineKind>(['native', 'fallback'])('on the %s engine', (engine) => {
    it('closes a bound socket when it aborts; bind() and send() then say why', async () => {
      const abort = new AbortController()
      const socket = createDatagramSocket({ signal: abort.signal })
      await onEngine(engine, () => socket.bind(0, '127.0.0.1'))
      expect(abortListeners(abort.signal)).toBe(1)
      const closed = once(socket, 'close')
      const reason = new Error('shutting down')
      abort.abort(reason)
      await within(closed, 5000, "the socket's 'close'")
      expect(abortListeners(abort.signal)).toBe(0)
      expect(() => socket.send(new Uint8Array(4), 9, '127.0.0.1')).toThrow(
        expect.objectContaining({ code: 'ERR_SOCKET_CLOSED', message: expect.stringContaining('"signal" option aborted'), cause: reason }),
      )
      await expect(socket.bind(0, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_SOCKET_CLOSED', cause: reason })
    })

    it('closes a listening server when it aborts: its clients are disconnected, and listen() says why', async () => {
      const abort = new AbortController()
      const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', ...fast, signal: abort.signal })
      const { port } = await onEngine(engine, () => server.listen())
      const client = new Client(fast)
      try {
        const bytes = await token(port, 1n)
        await within(
          onEngine(engine, () => client.connect(bytes)),
          5000,
          'the connection',
        )
        const stopped = new Promise<void>((resolve) => server.on('state', (state) => state === 'stopped' && resolve()))
        const left = once(client, 'disconnect')
        const reason = new Error('maintenance')
        abort.abort(reason)
        expect(server.state).toBe('stopping')
        await within(stopped, 5000, 'the server to stop')
        // The redundant disconnects reach the client: it leaves at once, not after its timeout.
        expect(await within(left, 5000, "the client's 'disconnect'")).toEqual(['disconnected'])
        expect(abortListeners(abort.signal)).toBe(0)
        await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_SERVER_CLOSED', message: expect.stringContaining('"signal" option'), cause: reason })
      } finally {
        await client.close()
        await server.close()
      }
    })

    it('closes a connected client when it aborts: the server hears it leave', async () => {
      const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', ...fast })
      const { port } = await onEngine(engine, () => server.listen())
      const abort = new AbortController()
      const client = new Client({ ...fast, signal: abort.signal })
      try {
        const bytes = await token(port, 2n)
        const joined = once(server, 'connect')
        await within(
          onEngine(engine, () => client.connect(bytes)),
          5000,
          'the connection',
        )
        await within(joined, 5000, "the server's 'connect'")
        const left = once(server, 'disconnect')
        const reason = new Error('user logged out')
        abort.abort(reason)
        const [peer, why] = await within(left, 5000, "the server's 'disconnect'")
        expect((peer as { clientId: bigint }).clientId).toBe(2n)
        expect(why).toBe('disconnected')
        expect(() => client.send(new Uint8Array(8))).toThrow(expect.objectContaining({ code: 'ERR_CLIENT_CLOSED', message: expect.stringContaining('"signal" option'), cause: reason }))
        await expect(client.connect(bytes)).rejects.toMatchObject({ code: 'ERR_CLIENT_CLOSED', cause: reason })
        expect(abortListeners(abort.signal)).toBe(0)
      } finally {
        await client.close()
        await server.close()
      }
    })
  })

  it("closes a ClientPool and its clients when it aborts (the clients do not hold the pool's signal)", async () => {
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 8, ...fast })
    const { port } = await server.listen()
    const abort = new AbortController()
    const pool = new ClientPool({ ...fast, signal: abort.signal })
    try {
      const tokens = await Promise.all([10n, 11n, 12n, 13n].map((id) => token(port, id)))
      expect(await within(pool.connect(tokens), 5000, 'the pool to connect')).toMatchObject({ connected: 4, failed: 0 })
      expect(abortListeners(abort.signal)).toBe(1) // the pool's, not one per client
      let left = 0
      server.on('disconnect', () => left++)
      abort.abort(new Error('test over'))
      await waitFor(() => left === 4, 5000, () => `4 disconnects (${left})`)
      expect(pool.stats().connected).toBe(0)
      await expect(pool.connect(tokens)).rejects.toMatchObject({ code: 'ERR_CLIENT_CLOSED', cause: abort.signal.reason })
      expect(abortListeners(abort.signal)).toBe(0)
    } finally {
      await pool.close()
      await server.close()
    }
  })

  it("ends a client's pending connect() with ABORT_ERR, the signal's reason the cause", async () => {
    const abort = new AbortController()
    const client = new Client({ ...fast, signal: abort.signal })
    // Nobody listens on port 9: the attempt waits until the signal ends it.
    const attempt = client.connect(await token(9, 3n))
    await waitFor(() => client.state === 'sending-connection-request', 5000, 'the attempt to start')
    const reason = new Error('cancelled by the user')
    abort.abort(reason)
    await expect(attempt).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError', message: expect.stringContaining('"signal" option'), cause: reason })
    expect(client.state).toBe('disconnected')
    await client.close()
  })

  it('a signal aborted already: each object starts closed, and says why', async () => {
    const reason = new Error('too late')
    const signal = AbortSignal.abort(reason)
    const socket = createDatagramSocket({ signal })
    await within(once(socket, 'close'), 5000, "the socket's 'close'")
    await expect(socket.bind(0, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_SOCKET_CLOSED', cause: reason })
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', signal })
    await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_SERVER_CLOSED', cause: reason })
    expect(server.state).toBe('stopped')
    const client = new Client({ signal })
    await expect(client.connect(await token(9, 4n))).rejects.toMatchObject({ code: 'ERR_CLIENT_CLOSED', cause: reason })
    expect(abortListeners(signal)).toBe(0)
  })

  it('stops listening when the objects close otherwise; one listener however many share the signal', async () => {
    const warnings: Error[] = []
    const onWarning = (warning: Error): void => void warnings.push(warning)
    process.on('warning', onWarning)
    try {
      const appLifetime = new AbortController()
      const sockets = Array.from({ length: 20 }, () => createDatagramSocket({ signal: appLifetime.signal }))
      const servers = Array.from({ length: 3 }, () => new Server({ protocolId, privateKey, address: '127.0.0.1:0', signal: appLifetime.signal }))
      const clients = Array.from({ length: 20 }, () => new Client({ signal: appLifetime.signal }))
      const pools = Array.from({ length: 2 }, () => new ClientPool({ signal: appLifetime.signal }))
      expect(abortListeners(appLifetime.signal)).toBe(1)
      await Promise.all(sockets.map((socket) => socket.bind(0, '127.0.0.1')))
      await servers[0]!.listen()
      await Promise.all([...sockets.slice(1), ...servers, ...clients, ...pools].map((closable) => closable.close()))
      expect(abortListeners(appLifetime.signal)).toBe(1) // the socket still open
      await sockets[0]!.close()
      expect(abortListeners(appLifetime.signal)).toBe(0)
      await new Promise((resolve) => setImmediate(resolve)) // process warnings are emitted on a later tick
      expect(warnings.map((warning) => warning.name)).not.toContain('MaxListenersExceededWarning')
      // A second round on the same signal listens again, and its abort closes that round's objects only.
      const later = createDatagramSocket({ signal: appLifetime.signal })
      await later.bind(0, '127.0.0.1')
      expect(abortListeners(appLifetime.signal)).toBe(1)
      const closed = once(later, 'close')
      appLifetime.abort()
      await within(closed, 5000, "the later socket's 'close'")
    } finally {
      process.off('warning', onWarning)
    }
  })
})
