// Server and Client on the fallback engine (node:dgram and the native cores built as WebAssembly), over loopback:
// alone, and against the native engine on the other side (the same bytes on the wire). VOLLEY_ENGINE=fallback
// picks the fallback for the listen() or connect() it is set around; a process without the addon picks it by
// itself (prebuild-loader.test.ts).
import { spawnSync } from 'node:child_process'
import dgram from 'node:dgram'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { dgramReusesPorts, lastingAddonFailure } from '../src/engine/choose.ts'
import { VolleyError } from '../src/util/errors.ts'
import { Client, type ConnectError, type Peer, Server, connectTokenToBase64, generateConnectToken } from '../src/index.ts'
import { type EngineKind, freeUdpPort, onEngine, waitFor, warningsDuringTests, within } from './helpers.ts'

const privateKey = new Uint8Array(32).fill(7)
const protocolId = 0xfa11n

const opened: { close(): Promise<void> }[] = []
afterEach(async () => {
  for (const each of opened.splice(0).reverse()) await each.close()
})

async function startServer(engine: EngineKind, options: Partial<ConstructorParameters<typeof Server>[0]> = {}) {
  const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0', maxClients: 4, disconnectIntervalMs: 5, ...options })
  opened.push(server)
  const { port } = await onEngine(engine, () => server.listen())
  return { server, address: `127.0.0.1:${port}` }
}

function token(address: string, clientId: bigint, timeoutSeconds = 5) {
  return generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [address], expireSeconds: 30, timeoutSeconds, userData: new Uint8Array([1, 2, 3]) })
}

async function connectClient(engine: EngineKind, address: string, clientId: bigint, timeoutSeconds = 5): Promise<Client> {
  const client = new Client({ disconnectIntervalMs: 5 })
  opened.push(client)
  const bytes = await token(address, clientId, timeoutSeconds)
  await onEngine(engine, () => client.connect(bytes))
  return client
}

const pairings: [string, EngineKind, EngineKind][] = [
  ['fallback server, fallback client', 'fallback', 'fallback'],
  ['native server, fallback client', 'native', 'fallback'],
  ['fallback server, native client', 'fallback', 'native'],
]

describe.each(pairings)('%s', (_name, serverEngine, clientEngine) => {
  it('connect with the token (client id, user data, address), payloads both ways, counters, and the client leaving', async () => {
    const { server, address } = await startServer(serverEngine)
    const connected = new Promise<Peer>((resolve) => server.once('connect', resolve))
    server.on('message', (peer, data) => peer.send(data.slice().reverse()))
    const client = await connectClient(clientEngine, address, 77n)
    const peer = await within(connected, 2000, 'the connect event')
    expect(peer.clientId).toBe(77n)
    expect([...peer.userData.subarray(0, 4)]).toEqual([1, 2, 3, 0])
    expect(peer.address).toBe('127.0.0.1')
    expect(client.state).toBe('connected')
    expect(client.stats()).toMatchObject({ clientIndex: peer.index, maxClients: 4 })

    const echoes: number[][] = []
    client.on('message', (data) => echoes.push([...data]))
    for (let i = 0; i < 50; i++) client.send(new Uint8Array([i, 200]))
    await waitFor(() => echoes.length === 50, 3000, 'the echoes')
    expect(echoes.map((echo) => echo.join())).toEqual(Array.from({ length: 50 }, (_, i) => `200,${i}`)) // on loopback, in order
    const stats = server.stats()
    expect(stats.connectedClients).toBe(1)
    expect(stats.packets.in).toBeGreaterThanOrEqual(52) // request, response, 50 payloads (and keep-alives)
    expect(peer.stats()?.packets.in).toBeGreaterThanOrEqual(50)
    expect(Object.values(stats.drops).every((count) => count === 0)).toBe(true)

    const left = new Promise<string>((resolve) => server.once('disconnect', (_peer, reason) => resolve(reason)))
    await client.close()
    expect(await within(left, 2000, "the server's disconnect event")).toBe('disconnected')
    expect(server.stats().connectedClients).toBe(0)
  })

  it("peer.disconnect() and server.close() end the client's connection: its redundant disconnects arrive", async () => {
    const { server, address } = await startServer(serverEngine)
    const peers: Peer[] = []
    server.on('connect', (peer) => peers.push(peer))
    const first = await connectClient(clientEngine, address, 1n)
    const second = await connectClient(clientEngine, address, 2n)
    await waitFor(() => peers.length === 2, 2000, 'both connects')
    const reasons: string[] = []
    server.on('disconnect', (_peer, reason) => reasons.push(reason))
    const firstLeft = new Promise<string>((resolve) => first.once('disconnect', resolve))
    peers[0]!.disconnect()
    expect(await within(firstLeft, 2000, "the first client's disconnect")).toBe('disconnected')
    const secondLeft = new Promise<string>((resolve) => second.once('disconnect', resolve))
    await within(server.close(), 3000, 'server.close()')
    expect(await within(secondLeft, 2000, "the second client's disconnect")).toBe('disconnected')
    expect(reasons).toEqual(['server-disconnect', 'server-closed'])
    expect(server.state).toBe('stopped')
  })
})

describe('fallback engine', () => {
  // Asserted by the test whose handler detaches a message's buffer.
  const detachWarnings = warningsDuringTests()

  it('keeps an idle connection alive past the token timeout (keep-alives both ways), and times out a silent server', async () => {
    const { server, address } = await startServer('fallback')
    // Both ends on the JavaScript thread: a stall of most of a 1 s timeout could let the timer run before the
    // keep-alives waiting to be read. 2 s, and held past it.
    const client = await connectClient('fallback', address, 5n, 2)
    await new Promise((resolve) => setTimeout(resolve, 2500))
    expect(client.state).toBe('connected')
    expect(server.stats().connectedClients).toBe(1)
    // A server that stops answering (no redundant disconnects: there are none to send) times the client out.
    const silent = await startServer('fallback', { disconnectPackets: 0 })
    const lonely = await connectClient('fallback', silent.address, 6n, 1)
    const gone = new Promise<string>((resolve) => lonely.once('disconnect', resolve))
    silent.server.close()
    expect(await within(gone, 3000, 'the timeout')).toBe('connection-timed-out')
  })

  it('rejects connect() with the state it ended in: request timed out, denied (a full server)', async () => {
    const nobody = await connectClient('fallback', '127.0.0.1:9', 1n, 1).catch((error: ConnectError) => error)
    expect(nobody).toMatchObject({ code: 'ERR_CONNECTION_REQUEST_TIMED_OUT' })
    const { address } = await startServer('fallback', { maxClients: 1 })
    await connectClient('fallback', address, 1n)
    const late = await connectClient('fallback', address, 2n).catch((error: ConnectError) => error)
    expect(late).toMatchObject({ code: 'ERR_CONNECTION_DENIED' })
  })

  it('drops and counts a malformed datagram, answering nothing', async () => {
    const { server, address } = await startServer('fallback')
    const socket = dgram.createSocket('udp4')
    const replies: Buffer[] = []
    socket.on('message', (data) => replies.push(data))
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
    try {
      socket.send(Buffer.alloc(40, 0x5f), Number(address.split(':')[1]), '127.0.0.1')
      await waitFor(() => server.stats().packets.in === 1, 2000, 'the datagram')
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(server.stats().drops.unknownAddress + server.stats().drops.malformed).toBe(1)
      expect(replies).toEqual([])
    } finally {
      socket.close()
    }
  })

  it.each(['native', 'fallback'] as const)('drops a datagram larger than any protocol packet as malformed, whatever its bytes say (%s engine)', async (engine) => {
    // The fallback engine handed such a datagram to the server whole: counted by what its first bytes
    // looked like (an unknown address here), where the native engine counts it malformed. Both count its
    // bytes in bytes.in (the native engine counted them nowhere).
    const { server, address } = await startServer(engine)
    const socket = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
    try {
      for (const size of [3000, 100]) socket.send(Buffer.alloc(size, 0x05), Number(address.split(':')[1]), '127.0.0.1')
      await waitFor(() => server.stats().packets.in === 2, 2000, 'the datagrams')
      expect(server.stats()).toMatchObject({ bytes: { in: 3100 }, drops: { malformed: 1, unknownAddress: 1 } })
    } finally {
      socket.close()
    }
  })

  it('a token address with port 0 is tried and fails as on the native engine: counted as send errors, and the client connects again after', async () => {
    for (const engine of ['native', 'fallback'] as const) {
      const client = new Client()
      opened.push(client)
      // As another token server may write it (generateConnectToken refuses port 0): the second address's port patched to 0.
      const bytes = await generateConnectToken({ protocolId, privateKey, clientId: 9n, serverAddresses: ['127.0.0.1:9', '127.0.0.1:10'], expireSeconds: 30, timeoutSeconds: 1 })
      const secondPort = 13 + 8 + 8 + 8 + 24 + 1024 + 4 + 4 + 7 + 1 + 4 // version, protocol id, times, nonce, private part, timeout, count, first address, type, IPv4
      expect(bytes[secondPort]).toBe(10)
      bytes.fill(0, secondPort, secondPort + 2)
      const failed = await onEngine(engine, () => client.connect(bytes)).catch((error: ConnectError) => error)
      expect(failed, engine).toMatchObject({ code: 'ERR_CONNECTION_REQUEST_TIMED_OUT' })
      expect(client.stats().errors.send, engine).toBeGreaterThan(0)
      const { address } = await startServer(engine)
      const again = await token(address, 10n)
      await onEngine(engine, () => client.connect(again)) // (connect() chooses its engine as it begins, if it opens a socket)
      expect(client.state, engine).toBe('connected')
    }
  }, 15_000)

  it("keeps a socket's last counters when it closes, and names IPv4 clients of a dual-stack server as IPv4", async () => {
    for (const clientEngine of ['fallback', 'native'] as const) {
      const server = new Server({ protocolId, privateKey, address: '[::]:0', publicAddress: '127.0.0.1:0', disconnectIntervalMs: 5 })
      opened.push(server)
      const { port } = await onEngine('fallback', () => server.listen())
      const connected = new Promise<Peer>((resolve) => server.once('connect', resolve))
      const client = await connectClient(clientEngine, `127.0.0.1:${port}`, 3n)
      expect((await connected).address, clientEngine).toBe('127.0.0.1')
      client.send(new Uint8Array([1]))
      await waitFor(() => server.stats().packets.in >= 3, 2000, 'the payload')
      await client.close()
      await server.close()
      expect(server.stats().packets.in, clientEngine).toBeGreaterThanOrEqual(3)
      expect(client.stats().packets.out, clientEngine).toBeGreaterThanOrEqual(3)
    }
  })

  it('a dual-stack server serves an IPv6 and an IPv4 client at once, each by its own address, their datagrams taking turns', async () => {
    const server = new Server({ protocolId, privateKey, address: '[::]:0', publicAddress: '127.0.0.1:0' })
    opened.push(server)
    const { port } = await onEngine('fallback', () => server.listen())
    const bytesFrom = new Map<string, number>()
    server.on('message', (peer, data) => bytesFrom.set(peer.address, (bytesFrom.get(peer.address) ?? 0) + data.byteLength))
    const clients: Client[] = []
    for (const [clientId, addresses] of [[21n, [`[::1]:${port}`, `127.0.0.1:${port}`]], [22n, [`127.0.0.1:${port}`]]] as const) {
      const client = new Client()
      opened.push(client)
      const token = await generateConnectToken({ protocolId, privateKey, clientId, serverAddresses: [...addresses], expireSeconds: 30, timeoutSeconds: 5 })
      await onEngine('fallback', () => client.connect(token))
      clients.push(client)
    }
    // One datagram a turn, from each in turn: each lands in the receive area where the other's did.
    for (let i = 0; i < 40; i++) {
      for (const client of clients) {
        client.send(new Uint8Array(10))
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    await waitFor(() => (bytesFrom.get('::1') ?? 0) + (bytesFrom.get('127.0.0.1') ?? 0) === 800, 3000, 'the messages')
    expect(Object.fromEntries(bytesFrom)).toEqual({ '::1': 400, '127.0.0.1': 400 })
    expect(server.stats().drops.unknownAddress).toBe(0)
  })

  it("goes on with a batch whose buffer a handler detached (transfer()): every message arrives", async () => {
    const { server, address } = await startServer('fallback')
    const got: number[] = []
    server.on('message', (_peer, data) => {
      got.push(data[0]!)
      structuredClone(data.buffer, { transfer: [data.buffer as ArrayBuffer] }) // the handler takes the memory away
    })
    const client = await connectClient('fallback', address, 4n)
    for (let i = 0; i < 20; i++) client.send(new Uint8Array([i]))
    await waitFor(() => got.length === 20, 3000, 'the messages')
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i))
    // The application is told, once a process, that it took memory the engine reuses.
    await waitFor(() => detachWarnings.length > 0, 1000, 'the warning')
    expect(detachWarnings.map((warning) => (warning as NodeJS.ErrnoException).code)).toEqual(['VOLLEY_MESSAGE_BUFFER_DETACHED'])
  })

  it('shares a port between servers with reusePort where node:dgram can (Node 22.12, 23.1 on), else refuses it with ERR_FALLBACK_UNSUPPORTED', async () => {
    // Room for every client on either (the kernel may give all of them to one).
    const first = startServer('fallback', { address: `127.0.0.1:${await freeUdpPort()}`, reusePort: true, maxClients: 16 })
    if (!dgramReusesPorts()) {
      await expect(first).rejects.toMatchObject({ code: 'ERR_FALLBACK_UNSUPPORTED', message: expect.stringContaining('"reusePort" option needs volley\'s native engine on Node') })
      return
    }
    const { address } = await first
    const { server: second } = await startServer('fallback', { address, reusePort: true, maxClients: 16 })
    // Both take clients: the kernel gives each client's datagrams to one of them.
    const clients = await Promise.all([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n].map((id) => connectClient('fallback', address, id)))
    expect(clients.every((client) => client.state === 'connected')).toBe(true)
    expect((await first).server.stats().connectedClients + second.stats().connectedClients).toBe(8)
    expect(dgramReusesPorts('22.11.0')).toBe(false)
  })

  it("a client's close() resolves when another socket's timer puts its last held datagram on the wire (both engines)", async () => {
    // Found in review: the other socket's timer sent the stopping client's last simulated datagram, then only
    // re-armed that client's timer (none was due any more), and nothing closed it: close() never resolved.
    const busy = (ms: number) => {
      const end = Date.now() + ms
      while (Date.now() < end);
    }
    for (const engine of ['native', 'fallback'] as const) {
      // (A server of the default timers: one whose own timer comes first closes the client anyway.)
      const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0' })
      opened.push(server)
      const address = `127.0.0.1:${(await onEngine(engine, () => server.listen())).port}`
      // a: closes; its one disconnect packet spends 300 ms in its simulated network. b: another socket of the
      // same engine, whose keep-alive timer (10 ms) comes due first.
      const a = new Client({ disconnectPackets: 1, keepAliveIntervalMs: 10_000, networkSimulator: { latencyMs: 300, seed: 1 } })
      const b = new Client({ keepAliveIntervalMs: 10 })
      opened.push(b)
      const [first, second] = [await token(address, 1n), await token(address, 2n)]
      await onEngine(engine, () => a.connect(first)) // (connect() chooses its engine as it begins)
      await onEngine(engine, () => b.connect(second))
      const closed = a.close()
      await new Promise((resolve) => setImmediate(resolve))
      busy(500) // a GC pause, a long handler: past a's release time and b's timer
      await within(closed, 3000, `close() on the ${engine} engine`)
    }
  })

  it('a bind that fails rejects listen() with the system error, as on the native engine', async () => {
    const { address } = await startServer('fallback')
    const taken = startServer('fallback', { address })
    await expect(taken).rejects.toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', address: '127.0.0.1', port: Number(address.split(':')[1]) })
  })

  it('where WebAssembly does not run (node --jitless: neither the cores nor libsodium-wrappers load), listen() and connect() reject with ERR_CRYPTO_UNAVAILABLE', async () => {
    const base64 = connectTokenToBase64(await token('127.0.0.1:9', 1n))
    const script = `
      import { Client, Server } from './src/index.ts'
      const code = (error) => error.code
      const listen = await new Server({ protocolId: 1n, privateKey: new Uint8Array(32).fill(7), address: '127.0.0.1:0' }).listen().then(() => 'listening', code)
      const client = new Client()
      const connect = await client.connect('${base64}').then(() => 'connected', code)
      await client.close()
      console.log(listen, connect)`
    const run = spawnSync(process.execPath, ['--jitless', '--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
      cwd: join(import.meta.dirname, '..'),
      env: { ...process.env, VOLLEY_ENGINE: 'fallback' },
    })
    expect(run.stdout.trim()).toBe('ERR_CRYPTO_UNAVAILABLE ERR_CRYPTO_UNAVAILABLE')
  }, 30_000)

  it('a program that imports volley under node --jitless and needs no TypeScript crypto runs on (the native engine)', () => {
    // An echo on the native engine: its crypto is the addon's. libsodium-wrappers' failed load was an
    // unhandled rejection that ended the process, whatever it did.
    const script = `
      import { createDatagramSocket } from './src/index.ts'
      const socket = createDatagramSocket()
      const { port } = await socket.bind(0, '127.0.0.1')
      const got = new Promise((resolve) => socket.on('message', (data) => resolve(String(data))))
      socket.send('still here', port, '127.0.0.1')
      const echoed = await got
      await new Promise((resolve) => setTimeout(resolve, 300))
      await socket.close()
      console.log(echoed)`
    const run = spawnSync(process.execPath, ['--jitless', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, cwd: join(import.meta.dirname, '..') })
    expect(run.stderr).not.toMatch(/WebAssembly is not defined/)
    expect(run.status).toBe(0)
    expect(run.stdout.trim()).toBe('still here')
  })

  it("a close() from a 'running' handler stops the server once, and listen() resolves (both engines)", async () => {
    for (const engine of ['native', 'fallback'] as const) {
      const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0' })
      const states: string[] = []
      let closed: Promise<void> | undefined
      server.on('state', (state) => {
        states.push(state)
        if (state === 'running') closed = server.close()
      })
      const local = await onEngine(engine, () => server.listen())
      expect(local.port, engine).toBeGreaterThan(0)
      await within(closed!, 3000, 'close()')
      expect(states, engine).toEqual(['running', 'stopping', 'stopped'])
    }
  })

  it('takes for good only an addon failure that will last: not one of a process out of file descriptors or memory', () => {
    const failure = (code: 'ERR_ADDON_NOT_FOUND' | 'ERR_ADDON_MISMATCH', cause?: object) => new VolleyError(code, 'the addon', { cause })
    expect(lastingAddonFailure(failure('ERR_ADDON_MISMATCH'))).toBe(true)
    expect(lastingAddonFailure(failure('ERR_ADDON_NOT_FOUND', Object.assign(new Error("Cannot find module 'x'"), { code: 'MODULE_NOT_FOUND' })))).toBe(true)
    expect(lastingAddonFailure(failure('ERR_ADDON_NOT_FOUND', new Error('No native build was found for platform=darwin arch=arm64')))).toBe(true)
    expect(lastingAddonFailure(failure('ERR_ADDON_NOT_FOUND', Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })))).toBe(false)
    expect(lastingAddonFailure(failure('ERR_ADDON_NOT_FOUND', Object.assign(new Error('volley.node: cannot open shared object file: Too many open files'), { code: 'ERR_DLOPEN_FAILED' })))).toBe(false)
    expect(lastingAddonFailure(failure('ERR_ADDON_NOT_FOUND', new Error('volley.node: failed to map segment from shared object: Cannot allocate memory')))).toBe(false)
  })

  it('a close() while listen() binds: listen() resolves (as on the native engine, which binds before close() can come), then the server stops; a second listen() meanwhile is refused', async () => {
    const server = new Server({ protocolId, privateKey, address: '127.0.0.1:0' })
    const states: string[] = []
    server.on('state', (state) => states.push(state))
    const listening = onEngine('fallback', () => server.listen())
    await expect(onEngine('fallback', () => server.listen())).rejects.toMatchObject({ code: 'ERR_SERVER_RUNNING', message: expect.stringContaining('starting') })
    const closed = server.close()
    const address = await listening
    expect(address).toMatchObject({ address: '127.0.0.1', family: 'IPv4' })
    expect(address.port).toBeGreaterThan(0)
    await within(closed, 3000, 'close()')
    expect(server.address()).toBeNull()
    expect(states).toEqual(['running', 'stopping', 'stopped'])
    expect(server.state).toBe('stopped')
  })

  it('a close() while a listen() binds that then fails: closed for good, and its copy of the private key wiped', async () => {
    // Only close() of a stopped server and the socket's closing wiped it: neither came on this path.
    const taken = await startServer('native')
    const key = new Uint8Array(32).fill(9)
    const wiped: Uint8Array[] = []
    const original = Uint8Array.prototype.fill
    const fill = vi.spyOn(Uint8Array.prototype, 'fill').mockImplementation(function (this: Uint8Array, ...args: Parameters<Uint8Array['fill']>) {
      if (args[0] === 0 && this.length === 32 && this.every((byte) => byte === 9)) wiped.push(this)
      return original.apply(this, args)
    })
    try {
      const server = new Server({ protocolId, privateKey: key, address: taken.address })
      const listening = onEngine('fallback', () => server.listen())
      const closed = server.close()
      await expect(listening).rejects.toMatchObject({ code: 'EADDRINUSE' })
      await within(closed, 3000, 'close()')
      await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_SERVER_CLOSED' })
      // Its copies (the one it keeps, and those it made for the engine and for listen()), each wiped.
      expect(wiped.length).toBeGreaterThanOrEqual(1)
      expect(server.privateKeyCount).toBe(0) // the keys it kept: none left
      expect(key.every((byte) => byte === 9)).toBe(true) // the caller's own key is left alone
    } finally {
      fill.mockRestore()
    }
  })
})

describe.each(['native', 'fallback'] as const)('without channels, on the %s engine', (engine) => {
  it("binds any free port for port 0 written with more zeros ('00'), and lists that port for a public address of '000'", async () => {
    for (const [address, publicAddress] of [['127.0.0.1:00', undefined], ['[::]:0', '127.0.0.1:000']] as const) {
      const { server } = await startServer(engine, { address, publicAddress })
      const { port } = server.address()!
      expect(port).toBeGreaterThan(0)
      const client = await connectClient(engine, `127.0.0.1:${port}`, 6n)
      expect(client.state).toBe('connected')
    }
  })

  it("a sender faster than its socket meets the engine's queue: send() returns false, 'drain' follows, and sending goes on", async () => {
    const { server, address } = await startServer(engine)
    const connected = new Promise<Peer>((resolve) => server.once('connect', resolve))
    const client = await connectClient(engine, address, 5n)
    const peer = await within(connected, 2000, 'the connect event')
    const payload = new Uint8Array(1200)
    const senders: [string, () => boolean, () => Promise<unknown>][] = [
      ['peer', () => peer.send(payload), () => new Promise((resolve) => server.once('drain', () => resolve(undefined)))],
      ['client', () => client.send(payload), () => new Promise((resolve) => client.once('drain', () => resolve(undefined)))],
    ]
    for (const [name, send, drain] of senders) {
      const drained = drain()
      let accepted = 0
      while (accepted < 100_000 && send()) accepted++ // one turn: nothing is sent meanwhile
      expect(accepted, name).toBeLessThan(100_000)
      // The 8 MiB of the native engine's send slabs (its I/O thread may free some meanwhile).
      if (engine === 'fallback') expect(accepted, name).toBeLessThanOrEqual(Math.ceil((8 << 20) / 1200))
      await within(drained, 5000, `'drain' for the ${name}`)
      expect(send(), name).toBe(true)
    }
  })
})

describe("the fallback engine's WebAssembly cores", () => {
  it('load in a process of their own without taking over its uncaught-exception and rejection handling, and carry the sources they were built from', () => {
    // Emscripten's Node glue installs process handlers that rethrow by default: an application's own
    // 'unhandledRejection' handler would then not keep the process alive.
    const script = `
      const before = ['uncaughtException', 'unhandledRejection', 'exit'].map((name) => process.listenerCount(name))
      const { loadCores } = await import('./src/engine/fallback/wasm-cores.ts')
      const { wasmSourceHash } = await import('./scripts/source-hash.mjs')
      const cores = loadCores()
      const after = ['uncaughtException', 'unhandledRejection', 'exit'].map((name) => process.listenerCount(name))
      process.on('unhandledRejection', () => console.log('handled'))
      Promise.reject(new Error('left unhandled'))
      setTimeout(() => console.log(JSON.stringify({ before, after, hash: cores.sourceHash === wasmSourceHash() })), 50)`
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
      cwd: join(import.meta.dirname, '..'),
    })
    expect(run.status, run.stderr).toBe(0)
    const [handled, outcome] = run.stdout.trim().split('\n')
    expect(handled).toBe('handled')
    const { before, after, hash } = JSON.parse(outcome!)
    expect(after).toEqual(before)
    expect(hash).toBe(true)
  })
})

describe("the fallback engine's memory", () => {
  it("holds about ten KiB of the cores' memory for each end of an idle connection (their 512 MiB hold tens of thousands)", () => {
    const script = `
      import { Client, Server, generateConnectToken } from './src/index.ts'
      import { loadCores } from './src/engine/fallback/wasm-cores.ts'
      const used = () => loadCores().exports._vp_heap_used()
      const key = new Uint8Array(32).fill(3)
      const server = new Server({ protocolId: 1n, privateKey: key, address: '127.0.0.1:0', maxClients: 64, channels: [{ mode: 'reliable' }] })
      await server.listen()
      const before = used()
      const clients = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        const client = new Client({ channels: [{ mode: 'reliable' }] })
        await client.connect(await generateConnectToken({ protocolId: 1n, privateKey: key, clientId: BigInt(i + 1), serverAddresses: ['127.0.0.1:' + server.address().port], expireSeconds: 60, timeoutSeconds: 10 }))
        client.send(new Uint8Array(100))
        return client
      }))
      await new Promise((resolve) => setTimeout(resolve, 300))
      console.log(JSON.stringify({ perConnection: (used() - before) / clients.length }))
      process.exit(0)`
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
      cwd: join(import.meta.dirname, '..'),
      env: { ...process.env, VOLLEY_ENGINE: 'fallback' },
    })
    expect(run.status, run.stderr).toBe(0)
    const { perConnection } = JSON.parse(run.stdout.trim().split('\n').at(-1)!)
    // Both ends are in this process: a client's socket and the server's peer. A client's receive area once
    // took 256 KiB of them by itself.
    expect(perConnection).toBeGreaterThan(1024)
    expect(perConnection).toBeLessThan(40 * 1024)
  }, 60_000)
})
