// createDatagramSocket() on the fallback engine (node:dgram), as where the native addon cannot load: the
// same events, batches, counters and errors as on the native engine, over loopback.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type IpCodec, javascriptIp, parseIp } from '../src/util/ip.ts'
import { loadAddon } from '../src/engine/native/addon.ts'
import { dgramReusesPorts } from '../src/engine/choose.ts'
import { dgramBindAddress } from '../src/engine/fallback/sockets.ts'
import { type DatagramSocket, type DatagramSocketOptions, createDatagramSocket } from '../src/index.ts'
import { type EngineKind, seededRandom, waitFor, within } from './helpers.ts'

let before: string | undefined
beforeAll(() => {
  before = process.env.VOLLEY_ENGINE
  process.env.VOLLEY_ENGINE = 'fallback'
})
afterAll(() => {
  if (before === undefined) delete process.env.VOLLEY_ENGINE
  else process.env.VOLLEY_ENGINE = before
})

/** The environment of a process of its own on the given engine (native: the addon must load). */
function engineEnv(engine: EngineKind): NodeJS.ProcessEnv {
  return engine === 'fallback' ? { ...process.env, VOLLEY_ENGINE: 'fallback' } : { ...process.env, VOLLEY_ENGINE: '', VOLLEY_REQUIRE_ADDON: '1' }
}

/** Runs an ES module script (from the repository's root: it imports ./src/index.ts) in a process of its own. */
function runScript(script: string, engine: EngineKind = 'fallback') {
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
    cwd: join(import.meta.dirname, '..'),
    env: engineEnv(engine),
  })
}

const opened: DatagramSocket[] = []
function socket(options: DatagramSocketOptions = {}): DatagramSocket {
  const made = createDatagramSocket(options)
  opened.push(made)
  return made
}
async function closeAll(): Promise<void> {
  await Promise.all(opened.splice(0).map((each) => each.close()))
}

describe('datagram sockets on the fallback engine', () => {
  it('deliver batches of at most batchSize, the message event, IPv4 and IPv6, and count both ways', async () => {
    const receiver = socket({ batchSize: 8 })
    const { port } = await receiver.bind(0, '127.0.0.1')
    expect(receiver.address()).toEqual({ address: '127.0.0.1', family: 'IPv4', port })
    const batches: string[][] = []
    const each: string[] = []
    receiver.on('messages', (batch) => batches.push(batch.map((datagram) => `${Buffer.from(datagram.data)} ${datagram.address} ${datagram.family} ${datagram.truncated}`)))
    receiver.on('message', (data, rinfo) => each.push(`${data} ${rinfo.size}`))
    const sender = socket()
    for (let i = 0; i < 20; i++) expect(sender.send(`datagram ${i}`, port, '127.0.0.1')).toBe(true)
    await waitFor(() => each.length === 20, 3000, 'the datagrams')
    expect(batches.flat()).toEqual(Array.from({ length: 20 }, (_, i) => `datagram ${i} 127.0.0.1 IPv4 false`))
    expect(batches.every((batch) => batch.length <= 8)).toBe(true)
    expect(each[3]).toBe('datagram 3 10')
    const sent = sender.address()
    expect(sent).toMatchObject({ address: '0.0.0.0', family: 'IPv4' })
    expect(sent.port).toBeGreaterThan(0) // bound by the first send()
    const stats = receiver.stats()
    expect(stats).toMatchObject({ packetsIn: 20, bytesIn: 10 * 10 + 10 * 11, batchesIn: batches.length })
    expect(sender.stats()).toMatchObject({ packetsOut: 20, bytesOut: 210, queue: { depth: 0 }, errors: { send: 0 } })

    const six = socket({ type: 'udp6' })
    const { port: port6 } = await six.bind(0, '::1')
    const got = new Promise<string>((resolve) => six.once('message', (data, rinfo) => resolve(`${data} ${rinfo.address} ${rinfo.family}`)))
    socket({ type: 'udp6' }).send('over IPv6', port6, '::1')
    expect(await got).toBe('over IPv6 ::1 IPv6')
    // An IPv4 sender to a dual-stack socket, as the kernel and the native engine name it.
    const dual = socket({ type: 'udp6' })
    const { port: dualPort } = await dual.bind(0, '::')
    const mapped = new Promise<string>((resolve) => dual.once('messages', (batch) => resolve(`${batch[0]!.address} ${batch[0]!.family}`)))
    sender.send('to a dual-stack socket', dualPort, '127.0.0.1')
    expect(await mapped).toBe('::ffff:127.0.0.1 IPv6')
    await closeAll()
  })

  it('closes after what was sent is out, and refuses misuse with the codes of the native engine', async () => {
    const receiver = socket()
    const { port } = await receiver.bind(0, '127.0.0.1')
    let received = 0
    receiver.on('messages', (batch) => {
      received += batch.length
    })
    const sender = socket()
    await sender.bind(0, '127.0.0.1')
    for (let i = 0; i < 100; i++) sender.send(Buffer.alloc(32, i), port, '127.0.0.1')
    const closed = new Promise<void>((resolve) => sender.once('close', resolve))
    await sender.close()
    await closed
    expect(sender.stats().packetsOut).toBe(100) // the last counters, kept after the close
    await waitFor(() => received === 100, 3000, 'every datagram sent before close()')

    expect(() => sender.send('late', port, '127.0.0.1')).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_CLOSED' }))
    const fresh = socket()
    expect(() => fresh.send('x', 0, '127.0.0.1')).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_BAD_PORT' }))
    expect(() => fresh.send('x', port, 'not an address')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => fresh.send('x', port, '::1')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' })) // udp4
    expect(() => fresh.send(Buffer.alloc(65_508), port, '127.0.0.1')).toThrow(expect.objectContaining({ code: 'ERR_DATAGRAM_TOO_LARGE' }))
    await expect(socket().bind(port, '127.0.0.1')).rejects.toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', port })
    const twice = socket()
    const first = twice.bind(0, '127.0.0.1')
    await expect(twice.bind(0, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_SOCKET_ALREADY_BOUND' })
    await first
    // reusePort: where node:dgram has it, two sockets that both ask share a port (one without it keeps its own).
    if (dgramReusesPorts()) {
      await expect(socket({ reusePort: true }).bind(port, '127.0.0.1')).rejects.toMatchObject({ code: 'EADDRINUSE' })
      const { port: shared } = await socket({ reusePort: true }).bind(0, '127.0.0.1')
      await expect(socket({ reusePort: true }).bind(shared, '127.0.0.1')).resolves.toMatchObject({ port: shared })
    } else {
      await expect(socket({ reusePort: true }).bind(port, '127.0.0.1')).rejects.toMatchObject({ code: 'ERR_FALLBACK_UNSUPPORTED', message: expect.stringContaining('"reusePort"') })
    }
    await closeAll()
  })

  it('a send() while bind() binds goes out once bound; a close() then ends the bind with ERR_SOCKET_CLOSED', async () => {
    const receiver = socket()
    const { port } = await receiver.bind(0, '127.0.0.1')
    const got: string[] = []
    receiver.on('message', (data) => got.push(String(data)))
    const sender = socket()
    const binding = sender.bind(0, '127.0.0.1')
    expect(sender.send('sent while binding', port, '127.0.0.1')).toBe(true)
    await binding
    await waitFor(() => got.length === 1, 3000, 'the datagram')
    expect(got).toEqual(['sent while binding'])

    const closing = socket()
    const events: string[] = []
    closing.on('listening', () => events.push('listening'))
    closing.on('close', () => events.push('close'))
    const bound = closing.bind(0, '127.0.0.1')
    closing.send('sent before the close', port, '127.0.0.1') // goes out before the socket closes, as close() promises
    const closed = closing.close()
    expect(() => closing.send('after close()', port, '127.0.0.1')).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_CLOSED' }))
    await expect(closing.drained()).rejects.toMatchObject({ code: 'ERR_SOCKET_CLOSED' })
    // Resolved: it did bind (as on the native engine, whose bind is done before close() can come); then it closed.
    expect(await bound).toMatchObject({ address: '127.0.0.1', family: 'IPv4', port: expect.any(Number) })
    await closed
    await new Promise((resolve) => setImmediate(resolve))
    expect(events).toEqual(['close'])
    await waitFor(() => got.length === 2, 3000, 'the datagram sent before close()')
    expect(got[1]).toBe('sent before the close')
    await closeAll()
  })

  it('takes sends while bind() binds up to what it holds in flight, then refuses them until drained; all it took go out', async () => {
    const receiver = socket({ recvBufferSize: 4 << 20 })
    const { port } = await receiver.bind(0, '127.0.0.1')
    const sender = socket()
    const binding = sender.bind(0, '127.0.0.1')
    let accepted = 0
    for (let i = 0; i < 6000; i++) if (sender.send(Buffer.alloc(16), port, '127.0.0.1')) accepted++
    expect(accepted).toBe(4096)
    expect(sender.stats().drops.sendQueueFull).toBe(6000 - 4096)
    await binding
    await within(sender.drained(), 5000, "'drain' after the bind")
    await waitFor(() => sender.stats().packetsOut === accepted, 5000, 'every accepted send')
    await closeAll()
  })

  it("emits 'listening' before 'drain' when sends past what it holds in flight bind it", async () => {
    const receiver = socket({ recvBufferSize: 4 << 20 })
    const { port } = await receiver.bind(0, '127.0.0.1')
    const sender = socket()
    const events: string[] = []
    sender.on('listening', () => events.push('listening'))
    sender.on('drain', () => events.push('drain'))
    let accepted = 0
    while (accepted < 5000 && sender.send(Buffer.alloc(16), port, '127.0.0.1')) accepted++
    expect(accepted).toBe(4096)
    await within(sender.drained(), 5000, "'drain' after the bind")
    expect(events).toEqual(['listening', 'drain']) // node:dgram reported the sends before the bind resolved: drain came first
    await waitFor(() => sender.stats().packetsOut === accepted, 5000, 'every accepted send')
    await closeAll()
  })

  it('reports a send the kernel refuses as an error event, as the native engine does', async () => {
    const sender = socket()
    await sender.bind(0, '127.0.0.1')
    const error = new Promise<NodeJS.ErrnoException>((resolve) => sender.once('error', resolve))
    sender.send('x', 9, '255.255.255.255') // broadcast without SO_BROADCAST: EACCES
    expect(await within(error, 3000, "the 'error' event")).toMatchObject({ code: 'EACCES', syscall: 'sendmmsg' })
    expect(sender.stats().errors.send).toBe(1)
    await closeAll()
  })

  it('names the address a bind failed on, and reads the buffer sizes of a socket a send() bound', async () => {
    const taken = socket()
    const { port } = await taken.bind(0)
    await expect(socket().bind(port)).rejects.toMatchObject({ code: 'EADDRINUSE', address: '0.0.0.0', port })
    const implicit = socket({ recvBufferSize: 1 << 20 })
    const listening = new Promise<void>((resolve) => implicit.once('listening', () => resolve()))
    implicit.send('x', port, '127.0.0.1')
    await within(listening, 3000, 'the bind a send() makes')
    const stats = implicit.stats()
    expect(stats.recvBufferSize).toBeGreaterThan(0)
    expect(stats.recvBufferSize).not.toBe(1 << 20) // the kernel's size (doubled, or capped), as the native engine reports it
    expect(stats.sendBufferSize).toBeGreaterThan(0)
    await closeAll()
  })

  it('refuses sends past what it holds in flight, then drains', async () => {
    const receiver = socket()
    const { port } = await receiver.bind(0, '127.0.0.1')
    const sender = socket()
    await sender.bind(0, '127.0.0.1')
    let accepted = 0
    while (accepted < 20_000 && sender.send(Buffer.alloc(16), port, '127.0.0.1')) accepted++
    expect(accepted).toBeLessThan(20_000) // refused before that many
    expect(sender.stats().drops.sendQueueFull).toBe(1)
    await sender.drained()
    expect(sender.send(Buffer.alloc(16), port, '127.0.0.1')).toBe(true)
    await waitFor(() => sender.stats().packetsOut + sender.stats().errors.send === accepted + 1, 5000, 'every accepted send')
    await closeAll()
  })
})

describe('datagram sockets on the fallback engine and the life of the process', () => {
  it('a bound socket keeps it alive, one after another; an unref()ed one does not', () => {
    const script = `
      import { createDatagramSocket } from './src/index.ts'
      // Open throughout (unref()ed: it holds nothing), so that every socket below is on the same engine.
      await createDatagramSocket().unref().bind(0, '127.0.0.1')
      const first = createDatagramSocket()
      await first.bind(0, '127.0.0.1')
      await first.close()
      // The second holds the process as the first did: until its close, after the datagram sent to it 200 ms
      // on (the timers hold nothing).
      const second = createDatagramSocket()
      const { port } = await second.bind(0, '127.0.0.1')
      second.on('message', (data) => {
        console.log(String(data))
        second.close().then(() => console.log('closed'))
      })
      setTimeout(() => createDatagramSocket().unref().send('still alive', port, '127.0.0.1'), 200).unref()`
    const run = runScript(script)
    expect(run.status).toBe(0)
    expect(run.stdout.trim().split('\n')).toEqual(['still alive', 'closed'])
  }, 30_000)
})

describe('sockets bound for a connect() or a send(), when the bind fails', () => {
  it.each(['fallback', 'native'] as const)(
    'on the %s engine, a Client rejects connect() with the system error; a datagram socket reports it, counts what it took, and binds again on the next send()',
    (engine) => {
      // Out of file descriptors (ulimit), in a process of its own (test/fixtures/open-fails.ts). The fallback
      // engine binds in the background; the native one at once, where send() threw the system error.
      const run = spawnSync('bash', ['-c', 'ulimit -n 64 && exec "$0" --import tsx test/fixtures/open-fails.ts', process.execPath], {
        encoding: 'utf8',
        timeout: 20_000,
        cwd: join(import.meta.dirname, '..'),
        env: engineEnv(engine),
      })
      expect(run.status, run.stderr).toBe(0)
      const outcome = JSON.parse(run.stdout)
      // node:dgram's socket() cannot fail alone: the fallback's failure is its bind's.
      const syscall = engine === 'fallback' ? 'bind' : 'socket'
      // As the native engine's connect() rejects when it cannot open its socket; no 'error' event besides.
      expect(outcome.connect).toEqual({ code: 'EMFILE', syscall })
      expect(outcome.clientErrors).toEqual([])
      // As node:dgram: send() took both, and the bind failed: an 'error' (the fallback's second send waited
      // for the first one's bind; the native engine's tried again), no 'listening'.
      expect(outcome.accepted).toEqual([true, true])
      expect(outcome.socketErrors).toEqual(Array(engine === 'fallback' ? 1 : 2).fill({ code: 'EMFILE', syscall }))
      expect(outcome.afterFailure).toMatchObject({ bindFailed: 2, depth: 0, closed: 0, listening: 0 })
      // Unbound again, not closed: the next send() bound it, and went out.
      expect(outcome.sentAgain).toBe(true)
      expect(outcome.port).toBeGreaterThan(0)
      expect(outcome.afterRetry).toEqual({ packetsOut: 1, bindFailed: 2, depth: 0, listening: 1 })
    },
    30_000,
  )
})

describe('datagram sockets on the fallback engine, each case in a process of its own', () => {
  it('a throwing handler costs the batches after it nothing; a send from a late exit handler throws ERR_SOCKET_CLOSED', () => {
    const outcome = runScript(`
      import { Client, Server, createDatagramSocket, generateConnectToken, generateKey } from './src/index.ts'
      const receiver = createDatagramSocket({ batchSize: 1 })
      const { port } = await receiver.bind(0, '127.0.0.1')
      let calls = 0
      let caught = 0
      process.on('uncaughtException', () => caught++)
      receiver.on('messages', () => {
        if (calls++ === 0) throw new Error('boom from a handler')
      })
      const sender = createDatagramSocket()
      for (let i = 0; i < 5; i++) sender.send('x', port, '127.0.0.1')
      // Until all five were handled (5 s at most: one batch lost stops it short).
      for (let waited = 0; calls < 5 && waited < 5000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
      console.log(JSON.stringify({ calls, caught, packetsIn: receiver.stats().packetsIn }))
      const privateKey = await generateKey()
      const server = new Server({ protocolId: 3n, privateKey, address: '127.0.0.1:0' })
      const { port: serverPort } = await server.listen()
      const client = new Client()
      await client.connect(await generateConnectToken({ protocolId: 3n, privateKey, clientId: 1n, serverAddresses: ['127.0.0.1:' + serverPort], expireSeconds: 30, timeoutSeconds: 5 }))
      process.on('exit', () => {
        const code = (send) => { try { send(); return 'sent' } catch (error) { return error.code } }
        console.log(code(() => sender.send('x', port, '127.0.0.1')), code(() => client.send(new Uint8Array(8))))
      })
      receiver.unref(); sender.unref(); server.unref(); client.unref()`)
    expect(outcome.status).toBe(0)
    const [first, second] = outcome.stdout.trim().split('\n')
    expect(JSON.parse(first!)).toEqual({ calls: 5, caught: 1, packetsIn: 5 })
    expect(second).toBe('ERR_SOCKET_CLOSED ERR_SOCKET_CLOSED')
  }, 30_000)
})

describe('a datagram socket closed by its own error handler', () => {
  it.each(['fallback', 'native'] as const)("closes once on the %s engine: 'close' once, no uncaught exception", (engine) => {
    // A send the kernel refuses (EACCES: broadcast without SO_BROADCAST) reports 'error' from node:dgram's
    // send callback; closing there, then closing again on the callback's way out, threw
    // ERR_SOCKET_DGRAM_NOT_RUNNING out of node's callback, and the process ended.
    const outcome = runScript(
      `import { createDatagramSocket } from './src/index.ts'
        const socket = createDatagramSocket()
        await socket.bind(0, '0.0.0.0')
        let errors = 0
        let closes = 0
        socket.on('error', (error) => { errors++; if (error.code === 'EACCES') socket.close() })
        const closed = new Promise((resolve) => socket.on('close', () => { closes++; resolve() }))
        socket.send('x', 9, '255.255.255.255')
        // The close, however late a loaded machine makes it; then a while for a second 'close' or error.
        await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 10_000))])
        await new Promise((resolve) => setTimeout(resolve, 200))
        console.log(JSON.stringify({ errors, closes }))`,
      engine,
    )
    expect(outcome.status, outcome.stderr).toBe(0)
    expect(JSON.parse(outcome.stdout)).toEqual({ errors: 1, closes: 1 })
  }, 30_000)
})

describe("a throwing 'drain' handler on the fallback engine", () => {
  it('surfaces as an uncaught exception, as on the native engine, not as an unhandled rejection', () => {
    // 6,000 sends on a socket not bound yet: the first 4,096 are taken, and 'drain' comes once the bind the
    // first one made has ended, in a promise's callback: the throw became an unhandled rejection, which an
    // 'uncaughtException' hook does not see.
    const outcome = runScript(`import { createDatagramSocket } from './src/index.ts'
        const caught = { uncaught: 0, unhandled: 0 }
        process.on('uncaughtException', () => caught.uncaught++)
        process.on('unhandledRejection', () => caught.unhandled++)
        const receiver = createDatagramSocket()
        const { port } = await receiver.bind(0, '127.0.0.1')
        const socket = createDatagramSocket()
        let drains = 0
        let drained
        const first = new Promise((resolve) => (drained = resolve))
        socket.on('drain', () => { drains++; drained(); throw new Error('boom from drain') })
        let accepted = 0
        while (accepted < 6000 && socket.send('x', port, '127.0.0.1')) accepted++
        // The 'drain', however late a loaded machine makes it; then a while for a second one.
        await Promise.race([first, new Promise((resolve) => setTimeout(resolve, 10_000))])
        await new Promise((resolve) => setTimeout(resolve, 200))
        console.log(JSON.stringify({ ...caught, drains, accepted }))
        socket.close(); receiver.close()`)
    expect(outcome.status, outcome.stderr).toBe(0)
    expect(JSON.parse(outcome.stdout)).toEqual({ uncaught: 1, unhandled: 0, drains: 1, accepted: 4096 })
  }, 30_000)
})

describe("the fallback engine's bind address", () => {
  it('names a numbered scope, which node:dgram would have looked up as a name', () => {
    // Interface 1 is the loopback on Linux; a link-local bind to fe80::…%<number> failed with EINVAL.
    const loopback = readFileSync('/sys/class/net/lo/ifindex', 'utf8').trim()
    expect(dgramBindAddress(`fe80::1%${loopback}`)).toBe('fe80::1%lo')
    expect(dgramBindAddress('fe80::1%lo')).toBe('fe80::1%lo')
    expect(dgramBindAddress('::1')).toBe('::1')
    expect(dgramBindAddress('127.0.0.1')).toBe('127.0.0.1')
  })
})

describe("the fallback engine's IP text codec", () => {
  it('writes the bytes the addon does and reads them back as it does, on random IPv4 and IPv6 addresses', () => {
    const addon = loadAddon()
    const random = seededRandom(5)
    const byte = () => Math.floor(random() * 256)
    for (let i = 0; i < 2000; i++) {
      const v6 = random() < 0.6
      let text: string
      if (!v6) text = [byte(), byte(), byte(), byte()].join('.')
      else {
        // Runs of zero groups (compressed), mapped and embedded IPv4, and plain groups.
        const groups = Array.from({ length: 8 }, () => (random() < 0.4 ? 0 : Math.floor(random() * 0x10000)))
        if (random() < 0.2) groups.splice(0, 6, 0, 0, 0, 0, 0, 0xffff)
        text = groups.map((group) => group.toString(16)).join(':')
      }
      // Each codec itself, under parseIp()'s cache.
      const native = new Uint8Array(20)
      const ours = new Uint8Array(20).fill(0xee)
      const family = addon.parseIp(text, native)
      expect(family, text).toBe(v6 ? 6 : 4)
      expect(javascriptIp.parseIp(text, ours), text).toBe(family)
      expect(ours, text).toEqual(native)
      expect(javascriptIp.formatIp(ours.subarray(0, 16), family, 0), text).toBe(addon.formatIp(native.subarray(0, 16), family, 0))
    }
    // A scope is a number of digits only, or an interface's name ('+1', ' 1' and '-1' were scope 1, 1 and a
    // name to the addon's strtoul). A NUL ends no address (inet_pton stopped at it: 127.0.0.1 to the addon).
    for (const bad of ['1.2.3', '1.2.3.4%1', '::1%no-such-interface', 'fe80::1%', '12345::', 'host', '::1%+1', '::1% 1', '::1%-1', '::1%1 ', '::1%4294967296', '127.0.0.1\0junk', '::ffff:127.0.0.1\0x', '::1%lo\0x']) {
      expect(javascriptIp.parseIp(bad, new Uint8Array(20)), bad).toBe(0)
      expect(addon.parseIp(bad, new Uint8Array(20)), bad).toBe(0)
    }
    // Scopes by number and by name (every interface, loopback's included), and back to names, as the addon.
    for (const text of ['fe80::1%1', 'fe80::1%lo', '::1%lo', 'fe80::1%0', 'fe80::2%eth0', 'fe80::1%0001', 'fe80::1%4294967295']) {
      const native = new Uint8Array(20)
      const ours = new Uint8Array(20)
      const family = addon.parseIp(text, native)
      expect(javascriptIp.parseIp(text, ours), text).toBe(family)
      expect(ours, text).toEqual(native)
      if (family === 0) continue
      const scope = new DataView(native.buffer).getUint32(16, true)
      expect(javascriptIp.formatIp(ours.subarray(0, 16), 6, scope), text).toBe(addon.formatIp(native.subarray(0, 16), 6, scope))
    }
  })

  it('keeps a cache of parsed addresses per codec, and none for scope names', () => {
    // Two codecs that disagree on one text: each answer stands for its own codec only.
    let calls = 0
    const fourOnes: IpCodec = {
      parseIp: (_text, out) => (calls++, out.fill(0).set([1, 1, 1, 1]), 4),
      formatIp: () => '1.1.1.1',
    }
    const refusing: IpCodec = { parseIp: () => (calls++, 0), formatIp: () => '' }
    const text = `cache-test-${Date.now()}`
    expect(parseIp(fourOnes, text)?.bytes.subarray(0, 4)).toEqual(new Uint8Array([1, 1, 1, 1]))
    expect(parseIp(refusing, text)).toBeNull()
    expect(parseIp(fourOnes, text)?.family).toBe(4)
    expect(parseIp(refusing, text)).toBeNull()
    expect(calls).toBe(2)
    // A scope name is resolved at each call: the interface behind it can come and go.
    let scope = 7
    const scoped: IpCodec = {
      parseIp: (_text, out) => (out.fill(0), new DataView(out.buffer, out.byteOffset).setUint32(16, scope, true), 6),
      formatIp: () => '',
    }
    expect(parseIp(scoped, 'fe80::1%eth9')?.scopeId).toBe(7)
    scope = 9
    expect(parseIp(scoped, 'fe80::1%eth9')?.scopeId).toBe(9)
  })
})
