import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, ClientPool, type DatagramSocket, type Peer, Server, createDatagramSocket, generateConnectToken, generateKey } from '../src/index.ts'

function expectError(fn: () => unknown, type: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string, message: RegExp): void {
  let thrown: unknown
  try {
    fn()
  } catch (error) {
    thrown = error
  }
  expect(thrown).toBeInstanceOf(type)
  expect(thrown).toMatchObject({ code })
  expect((thrown as Error).message).toMatch(message)
}

describe('invalid options', () => {
  it.each([
    [{ type: 'udp5' }, TypeError, 'ERR_INVALID_ARG_VALUE', /"type" option must be 'udp4' or 'udp6'/],
    [{ type: null }, TypeError, 'ERR_INVALID_ARG_VALUE', /"type" option must be 'udp4' or 'udp6'. Received null/],
    [{ batchSize: 0 }, RangeError, 'ERR_OUT_OF_RANGE', /"batchSize" option must be an integer from 1 to 1024. Received 0/],
    [{ batchSize: 1025 }, RangeError, 'ERR_OUT_OF_RANGE', /from 1 to 1024. Received 1025/],
    [{ batchSize: 1.5 }, RangeError, 'ERR_OUT_OF_RANGE', /batchSize/],
    [{ batchSize: '64' }, TypeError, 'ERR_INVALID_ARG_TYPE', /"batchSize" option must be of type number/],
    [{ recvBufferSize: -1 }, RangeError, 'ERR_OUT_OF_RANGE', /recvBufferSize/],
    [{ sendBufferSize: 2 ** 31 }, RangeError, 'ERR_OUT_OF_RANGE', /sendBufferSize/],
    [{ reusePort: 'yes' }, TypeError, 'ERR_INVALID_ARG_TYPE', /"reusePort" option must be of type boolean/],
    [{ coalesceUs: -1 }, RangeError, 'ERR_OUT_OF_RANGE', /"coalesceUs" option must be an integer from 0 to 1000000/],
    [{ engine: 'mine' }, TypeError, 'ERR_INVALID_ARG_VALUE', /"engine" option must be 'shared' or 'dedicated'/],
    [{ bacthSize: 64 }, TypeError, 'ERR_INVALID_ARG_VALUE', /Unknown option "bacthSize"/],
  ])('%j is refused', (options, type, code, message) => {
    expectError(() => createDatagramSocket(options as never), type, code, message)
  })

  it('refuses a non-object', () => {
    expectError(() => createDatagramSocket('udp4' as never), TypeError, 'ERR_INVALID_ARG_TYPE', /"options" argument must be an object/)
  })

  // Each has no option of a wrong name: taken, it would be the defaults without a word.
  it.each([
    ['a promise (an await missed)', Promise.resolve({ channels: [{ mode: 'reliable' }] }), /Received an instance of Promise \(missing an await\?\)/],
    ['bytes', new Uint8Array(0), /Received an instance of Uint8Array of 0 bytes/],
    ['a DataView', new DataView(new ArrayBuffer(4)), /Received an instance of DataView of 4 bytes/],
    ['an ArrayBuffer', new ArrayBuffer(4), /Received an instance of ArrayBuffer/],
  ])('refuses %s as an options object, everywhere options are taken', async (_what, options, received) => {
    const refused = (fn: () => unknown): void => expectError(fn, TypeError, 'ERR_INVALID_ARG_TYPE', received)
    refused(() => createDatagramSocket(options as never))
    refused(() => new Client(options as never))
    refused(() => new Client({ channels: [{ mode: 'reliable' }], networkSimulator: options as never }))
    refused(() => new ClientPool(options as never))
    await expect(generateConnectToken(options as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(received) })
    const privateKey = await generateKey()
    const server = new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0' })
    const { port } = await server.listen()
    const client = new Client()
    try {
      const connected = new Promise<Peer>((resolve) => server.once('connect', resolve))
      await client.connect(await generateConnectToken({ protocolId: 1n, privateKey, clientId: 1n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 }))
      const peer = await connected
      refused(() => client.send(new Uint8Array(8), options as never))
      refused(() => peer.send(new Uint8Array(8), options as never))
    } finally {
      await client.close()
      await server.close()
    }
  })
})

describe('invalid bind', () => {
  it.each([[-1], [65536], [1.5], ['80'], [Number.NaN]])('port %j is refused with ERR_SOCKET_BAD_PORT', async (port) => {
    const s = createDatagramSocket()
    await expect(s.bind(port as number)).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_SOCKET_BAD_PORT' })
    await s.close()
  })

  it('an address that is neither an IP literal nor a resolvable name is refused', async () => {
    const s = createDatagramSocket()
    await expect(s.bind(0, 'no-such-host.invalid')).rejects.toMatchObject({ code: expect.stringMatching(/ENOTFOUND|EAI_AGAIN/) })
    await s.close()
  })

  it('an IPv6 address for a udp4 socket, and an IPv4 one for udp6, are refused', async () => {
    const v4 = createDatagramSocket()
    await expect(v4.bind(0, '::1')).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
    const v6 = createDatagramSocket({ type: 'udp6' })
    await expect(v6.bind(0, '127.0.0.1')).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
    await Promise.all([v4.close(), v6.close()])
  })

  it('an IPv6 scope that names no interface is refused before anything is opened', async () => {
    const v6 = createDatagramSocket({ type: 'udp6' })
    await expect(v6.bind(0, 'fe80::1%no-such-interface')).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
    await v6.close()
  })

  it('an address not on this host rejects with EADDRNOTAVAIL', async () => {
    const s = createDatagramSocket()
    await expect(s.bind(0, '192.0.2.1')).rejects.toMatchObject({ code: 'EADDRNOTAVAIL', syscall: 'bind' })
    await s.close()
  })

  it('a privileged port without privilege rejects with EACCES (as root: in a child without CAP_NET_BIND_SERVICE)', async () => {
    // The bind tried in a process without the privilege. As root this one has it, so the child runs without
    // the capability (setpriv, util-linux): still root for reading files wherever the checkout lies.
    const script = `
      import { createDatagramSocket } from './src/index.ts'
      const p = createDatagramSocket()
      const outcome = await p.bind(1, '127.0.0.1').then(() => ({ bound: true }), (error) => ({ code: error.code, syscall: error.syscall, port: error.port }))
      await p.close()
      console.log(JSON.stringify(outcome))
    `
    const node = [process.execPath, '--import', 'tsx', '--input-type=module', '-e', script]
    const command = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-net_bind_service', '--inh-caps=-net_bind_service', ...node] : node
    const run = spawnSync(command[0]!, command.slice(1), { cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL' })
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' })
    expect(JSON.parse(run.stdout)).toEqual({ code: 'EACCES', syscall: 'bind', port: 1 })
  }, 20_000)

  it('binding twice is refused', async () => {
    const s = createDatagramSocket()
    await s.bind(0, '127.0.0.1')
    await expect(s.bind(0, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_SOCKET_ALREADY_BOUND' })
    await s.close()
  })
})

describe('invalid send', () => {
  let s: DatagramSocket
  beforeAll(async () => {
    s = createDatagramSocket()
    await s.bind(0, '127.0.0.1')
  })
  afterAll(() => s.close())

  it('a datagram over 65507 bytes (to IPv4) or 65527 (to IPv6) is refused with a RangeError', async () => {
    // A udp4 socket states its own family's limit, whatever the size.
    expectError(() => s.send(Buffer.alloc(65508), 9, '127.0.0.1'), RangeError, 'ERR_DATAGRAM_TOO_LARGE', /from a udp4 socket carries at most 65507 bytes. Received 65508/)
    expectError(() => s.send(Buffer.alloc(65528), 9, '127.0.0.1'), RangeError, 'ERR_DATAGRAM_TOO_LARGE', /from a udp4 socket carries at most 65507 bytes. Received 65528/)
    const v6 = createDatagramSocket({ type: 'udp6' })
    try {
      await v6.bind(0, '::')
      expectError(() => v6.send(Buffer.alloc(65528), 9, '::1'), RangeError, 'ERR_DATAGRAM_TOO_LARGE', /from a udp6 socket carries at most 65527 bytes \(65507 to an IPv4 address\). Received 65528/)
      v6.send(Buffer.alloc(65527), 9, '::1') // the largest a udp6 socket sends to an IPv6 address is taken
      // An IPv4-mapped destination goes out as IPv4.
      expectError(() => v6.send(Buffer.alloc(65508), 9, '::ffff:127.0.0.1'), RangeError, 'ERR_DATAGRAM_TOO_LARGE', /to an IPv4 address carries at most 65507/)
    } finally {
      await v6.close()
    }
  })

  it.each([[0], [65536], [-5], [2.5], ['53'], [undefined]])('port %j is refused', (port) => {
    expectError(() => s.send('x', port as number, '127.0.0.1'), RangeError, 'ERR_SOCKET_BAD_PORT', /Port should be an integer from 1 to 65535/)
  })

  it.each([['localhost'], ['256.1.1.1'], [''], ['1.2.3'], ['::zz']])('address %j is refused', (address) => {
    expectError(() => s.send('x', 9, address), TypeError, 'ERR_INVALID_ARG_VALUE', /must be an IP address literal/)
  })

  it('a non-string address is refused', () => {
    expectError(() => s.send('x', 9, 127 as never), TypeError, 'ERR_INVALID_ARG_TYPE', /"address" argument must be of type string/)
  })

  it('an IPv6 destination on a udp4 socket is refused', () => {
    expectError(() => s.send('x', 9, '::1'), TypeError, 'ERR_INVALID_ARG_VALUE', /udp4 socket cannot send to the IPv6 address/)
  })

  it.each([[123], [null], [{}], [[1, 2]]])('data %j is refused', (data) => {
    expectError(() => s.send(data as never, 9, '127.0.0.1'), TypeError, 'ERR_INVALID_ARG_TYPE', /"data" argument must be/)
  })

  it('nothing is queued by refused calls', () => {
    // Its own refused calls, so that it proves something whatever else ran before it.
    const before = s.stats()
    for (const call of [() => s.send('x', 0, '127.0.0.1'), () => s.send('x', 9, 'localhost'), () => s.send(123 as never, 9, '127.0.0.1')]) expect(call).toThrow()
    expect(s.stats().queue.depth).toBe(before.queue.depth)
    expect(s.stats().packetsOut).toBe(before.packetsOut)
    expect(before.queue.depth).toBe(0)
  })

  it('a send refused for its address does not bind an unbound socket', async () => {
    const t = createDatagramSocket()
    expectError(() => t.send('x', 9, 'localhost'), TypeError, 'ERR_INVALID_ARG_VALUE', /must be an IP address literal/)
    expectError(() => t.send('x', 9, '::1'), TypeError, 'ERR_INVALID_ARG_VALUE', /udp4 socket cannot send to the IPv6 address/)
    // Still unbound: it may bind where its owner asks.
    const { port } = await t.bind(0, '127.0.0.1')
    expect(t.address()).toMatchObject({ address: '127.0.0.1', port })
    await t.close()
  })

  it('send after close throws ERR_SOCKET_CLOSED, and drained() rejects with it', async () => {
    const t = createDatagramSocket()
    await t.bind(0, '127.0.0.1')
    await t.drained() // nothing refused: at once
    await expect(t.drained({ signal: 'no' as unknown as AbortSignal })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' })
    await t.close()
    expectError(() => t.send('x', 9, '127.0.0.1'), Error, 'ERR_SOCKET_CLOSED', /send\(\) after close\(\)/)
    await expect(t.drained()).rejects.toMatchObject({ code: 'ERR_SOCKET_CLOSED' })
  })
})

describe('new Peer()', () => {
  it('is refused with ERR_ILLEGAL_CONSTRUCTOR: a server makes its peers', async () => {
    // Its constructor was public, with the server's internals as parameters: a "peer" of no server passed
    // instanceof Peer. (Its first parameter is now a symbol the package does not export.)
    const { Peer } = await import('../src/index.ts')
    const MadeByHand = Peer as unknown as new (...args: unknown[]) => unknown
    expect(() => new MadeByHand(Symbol('volley.Peer'), {}, 0, 1n, '127.0.0.1', 1, new Uint8Array(256), 0)).toThrow(
      expect.objectContaining({ name: 'TypeError', code: 'ERR_ILLEGAL_CONSTRUCTOR' }),
    )
  })
})

describe('isVolleyError', () => {
  it("tells volley's errors, of any of their three classes, from system errors", async () => {
    const { isVolleyError, VolleyError, VolleyRangeError, VolleyTypeError } = await import('../src/index.ts')
    const first = createDatagramSocket()
    const { port } = await first.bind(0, '127.0.0.1')
    const second = createDatagramSocket()
    const inUse = await second.bind(port, '127.0.0.1').catch((error: unknown) => error)
    expect(inUse).toMatchObject({ code: 'EADDRINUSE' })
    expect(isVolleyError(inUse)).toBe(false)
    const badPort = await createDatagramSocket().bind(-1).catch((error: unknown) => error)
    expect(badPort).toBeInstanceOf(VolleyRangeError)
    expect(badPort).not.toBeInstanceOf(VolleyError)
    expect(isVolleyError(badPort)).toBe(true)
    await first.close()
    let closed: unknown
    try {
      first.send(new Uint8Array(1), port, '127.0.0.1')
    } catch (error) {
      closed = error
    }
    expect(closed).toBeInstanceOf(VolleyError)
    expect(isVolleyError(closed)).toBe(true)
    expect(isVolleyError(new VolleyTypeError('ERR_INVALID_ARG_TYPE', 'x'))).toBe(true)
    expect(isVolleyError(new TypeError('x'))).toBe(false)
    expect(isVolleyError(Object.assign(new Error('x'), { code: 'ABORT_ERR' }))).toBe(false)
    // Each class's code is typed as the codes it takes: asking a VolleyError for a range error's code does
    // not compile (a compile-time check, which CI's type-check step runs; nothing to check at run time).
    const wrongClass = (error: InstanceType<typeof VolleyError>): boolean =>
      // @ts-expect-error ERR_NO_SUCH_CHANNEL is a VolleyRangeError's
      error.code === 'ERR_NO_SUCH_CHANNEL'
    void wrongClass
    if (isVolleyError(badPort)) expect(['ERR_SOCKET_BAD_PORT'].includes(badPort.code)).toBe(true)
    await second.close()
  })
})
