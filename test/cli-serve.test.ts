// The volley command line as a gateway's operator runs it: host names, a port in use, `volley serve` from a
// config file, its HTTP endpoint (/metrics, /healthz), its status lines and worker threads, and `volley
// load`'s rate, latency and exit status. Each runs the CLI in a child process on loopback, its output piped.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { once } from 'node:events'
import { lookup } from 'node:dns/promises'
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, Server, generateConnectToken, readConnectToken } from '../src/index.ts'
import { dgramReusesPorts } from '../src/engine/choose.ts'
import { freeUdpPort, waitFor } from './helpers.ts'

const cli = join(import.meta.dirname, '../src/cli/volley.ts')
const key = '07'.repeat(32)

/** `volley <args>` run to its end (killed after timeoutMs): its status and output. imports: more --import modules. */
async function volley(args: readonly string[], { env = {}, timeoutMs = 15_000, imports = [] }: { env?: Record<string, string | undefined>; timeoutMs?: number; imports?: string[] } = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', ...imports.flatMap((module) => ['--import', module]), cli, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  try {
    const [status] = (await once(child, 'exit')) as [number | null]
    return { status, stdout, stderr }
  } finally {
    clearTimeout(killer)
  }
}

/** The JSON lines of a `volley load --json` run. */
function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .trim()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

/** A `volley serve` child process: its JSON lines of stdout as they come, its stderr, and its exit. */
function serve(args: readonly string[], env: Record<string, string | undefined> = {}) {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
  const lines: Record<string, unknown>[] = []
  let text = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString()
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n')) {
      const line = text.slice(0, end)
      text = text.slice(end + 1)
      if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>)
    }
  })
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  return {
    child,
    lines,
    stderr: () => stderr,
    /** The first line of this event, once it has come (within timeoutMs). */
    async event(name: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
      await waitFor(() => lines.some((line) => line.event === name) || child.exitCode !== null, timeoutMs, () => `serve's '${name}' line (stderr: ${stderr})`)
      const line = lines.find((each) => each.event === name)
      if (line === undefined) throw new Error(`serve exited with status ${child.exitCode} before its '${name}' line: ${stderr}`)
      return line
    },
    /** SIGTERM (unless the test sent it: a second one, once serve listens to signals no more, would kill it), then its status (SIGKILL after 10 s). */
    async stop(): Promise<number | null> {
      if (child.exitCode !== null) return child.exitCode
      if (!child.killed) child.kill('SIGTERM')
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      try {
        return (await exited)[0]
      } finally {
        clearTimeout(killer)
      }
    },
  }
}

describe('volley addresses', () => {
  it('takes host names: serve --address localhost:PORT and load --server localhost:PORT connect, token lists the address', async () => {
    const port = await freeUdpPort()
    const { address: localhost, family } = await lookup('localhost')
    const resolved = family === 6 ? `[${localhost}]:${port}` : `${localhost}:${port}`
    const server = serve(['--address', `localhost:${port}`, '--key', key, '--seconds', '20'])
    try {
      expect(await server.event('listening')).toMatchObject({ port, publicAddress: resolved })
      const load = await volley(['load', '--server', `localhost:${port}`, '--key', key, '--clients', '3', '--seconds', '0.2', '--json'])
      expect(load.status, load.stderr).toBe(0)
      expect(jsonLines(load.stdout)[0]).toMatchObject({ event: 'connected', connect: { connected: 3, failed: 0 } })
      const token = await volley(['token', '--server', `localhost:${port}`, '--key', key])
      expect(token.status, token.stderr).toBe(0)
      expect(readConnectToken(Buffer.from(token.stdout.trim(), 'base64')).serverAddresses.map((each) => [each.family, each.port])).toEqual([[family, port]])
    } finally {
      expect(await server.stop()).toBe(0)
    }
  }, 30_000)

  it.each([
    ['token --server', ['token', '--server', 'nohost.invalid:40000', '--key', key], '--server nohost.invalid:40000'],
    ['serve --address', ['serve', '--address', 'nohost.invalid:40000', '--key', key], '--address nohost.invalid:40000'],
  ])('refuses a host name that does not resolve, naming the flag (%s)', async (_, args, named) => {
    const { status, stdout, stderr } = await volley(args)
    expect(status).toBe(2)
    expect(stdout).toBe('')
    expect(stderr).toMatch(new RegExp(`^volley: ${named.replaceAll('.', '\\.')}: the host name 'nohost\\.invalid' does not resolve \\((ENOTFOUND|EAI_AGAIN)\\)\\nRun 'volley --help' for the usage\\.\\n$`))
  }, 20_000)

  it('says, for a port in use, that another process holds it and what --reuse-port is for: one line, status 1', async () => {
    const holder = new Server({ protocolId: 0x1234n, privateKey: Uint8Array.from(Buffer.from(key, 'hex')), address: '127.0.0.1:0' })
    const { port } = await holder.listen()
    try {
      const { status, stdout, stderr } = await volley(['serve', '--address', `127.0.0.1:${port}`, '--key', key, '--seconds', '5'])
      expect(stdout).toBe('')
      expect(stderr).toMatch(new RegExp(`^volley: .*EADDRINUSE 127\\.0\\.0\\.1:${port}: another process holds this port; stop it or give another --address \\(--reuse-port shares a port on purpose, among servers that all give it\\) \\(EADDRINUSE\\)\\n$`))
      expect(status).toBe(1)
    } finally {
      await holder.close()
    }
  }, 20_000)
})

describe('volley load', () => {
  /** An echo server (volley serve), for the whole block. */
  let echo: ReturnType<typeof serve>
  let port: number
  beforeAll(async () => {
    echo = serve(['--address', '127.0.0.1:0', '--key', key, '--seconds', '60'])
    ;({ port } = (await echo.event('listening')) as { port: number })
  }, 20_000)
  afterAll(async () => {
    expect(await echo.stop()).toBe(0)
  }, 20_000)

  it("broadcasts 10 times a second without --rate, and reports the echoes' round trips: p50, p99, max", async () => {
    const { status, stdout, stderr } = await volley(['load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '4', '--seconds', '1', '--json'])
    expect(status, stderr).toBe(0)
    expect(stderr).toBe('') // no progress line with --json when stderr is no terminal
    const finished = jsonLines(stdout)[1] as { latency: { echoes: number; p50Ms: number; p99Ms: number; maxMs: number } }
    // 1 s at 10 a second from each of 4 clients, every one echoed (no loss on loopback at this rate).
    expect(finished).toMatchObject({ event: 'finished', rate: 10, broadcasts: 10, messagesSent: 40, messagesReceived: 40, latency: { echoes: 40 } })
    const { p50Ms, p99Ms, maxMs } = finished.latency
    expect(p50Ms).toBeGreaterThan(0)
    expect(p50Ms).toBeLessThanOrEqual(p99Ms)
    expect(p99Ms).toBeLessThanOrEqual(maxMs)
    expect(maxMs).toBeLessThan(1000) // loopback: well under a second, even on a loaded machine
    // --rate 0 still sends nothing: no echo, no latency.
    const none = await volley(['load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '2', '--seconds', '0.2', '--rate', '0', '--json'])
    expect(none.status, none.stderr).toBe(0)
    expect(jsonLines(none.stdout)[1]).toMatchObject({ event: 'finished', rate: 0, broadcasts: 0, messagesSent: 0 })
    expect(jsonLines(none.stdout)[1]).not.toHaveProperty('latency')
  }, 30_000)

  it('writes a progress line on stderr every 5 s when it is no terminal, and the round trips in its text report', async () => {
    const { status, stdout, stderr } = await volley(['load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '3', '--seconds', '5.5'])
    expect(status, stderr).toBe(0)
    // One line, at 5 s: the clients, about 30 messages a second each way (the connecting counts in the first
    // line's time), and their round trips.
    const line = /^volley load: 3 connected, (\d+) sent\/s, (\d+) received\/s, RTT p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.,]+ ms\n$/.exec(stderr)
    expect(line, stderr).not.toBeNull()
    for (const perSecond of line!.slice(1).map(Number)) {
      expect(perSecond).toBeGreaterThanOrEqual(24)
      expect(perSecond).toBeLessThanOrEqual(31)
    }
    expect(stdout).toMatch(/^ {2}messages: 55 broadcasts, 165 sent, 165 received$/m)
    expect(stdout).toMatch(/^ {2}round trips \(165 echoes\): p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.,]+ ms$/m)
  }, 30_000)

  it('exits with status 1, however short the run, when the server has channels and load none', async () => {
    const withChannels = serve(['--address', '127.0.0.1:0', '--key', key, '--channels', 'reliable', '--seconds', '30'])
    try {
      const { port: channelsPort } = (await withChannels.event('listening')) as { port: number }
      // No broadcast and a window of 0.2 s: the server has not yet dropped the clients, which it does at their
      // first payload or after about 2 s. It exited 0.
      const { status, stdout, stderr } = await volley(['load', '--server', `127.0.0.1:${channelsPort}`, '--key', key, '--clients', '2', '--seconds', '0.2', '--rate', '0', '--json'])
      expect(jsonLines(stdout)[1]).toMatchObject({ event: 'finished', connected: 2 })
      expect(stderr).toContain('[VOLLEY_SERVER_HAS_CHANNELS]')
      expect(stderr).toMatch(/^volley load: the server runs channels and these clients have none \(see the warning\): give load the server's --channels$/m)
      expect(status).toBe(1)
      // The other way round, load's channels and none on the server: its clients fail to connect.
      const other = await volley(['load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '2', '--seconds', '0', '--channels', 'reliable', '--json'])
      expect(jsonLines(other.stdout)[0]).toMatchObject({ event: 'connected', connect: { connected: 0 }, failed: { ERR_CHANNELS_MISMATCH: 2 } })
      expect(other.status).toBe(1)
    } finally {
      expect(await withChannels.stop()).toBe(0)
    }
  }, 30_000)
})

/** A directory of this run's own for config and key files. */
const directory = mkdtempSync(join(tmpdir(), 'volley-serve-'))

/** Writes a file in `directory` (text as it is, anything else as JSON) and gives its path. */
function file(name: string, content: unknown, mode = 0o600): string {
  const path = join(directory, name)
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2))
  chmodSync(path, mode)
  return path
}

/** GET http://address/path: its status, content type and body. */
async function get(address: string, path: string): Promise<{ status: number; type: string | null; body: string }> {
  const response = await fetch(`http://${address}${path}`, { signal: AbortSignal.timeout(10_000) })
  return { status: response.status, type: response.headers.get('content-type'), body: await response.text() }
}

/** A series' value in Prometheus text (its line 'name{labels} value'). */
function series(text: string, name: string): number {
  const line = text.split('\n').find((each) => each.startsWith(`${name} `))
  if (line === undefined) throw new Error(`no series ${name} in:\n${text}`)
  return Number(line.slice(name.length + 1))
}

/** `clients` clients connected to a serve at 127.0.0.1:port with `key`, each once the server has echoed it (the server knows it). */
async function connectClients(port: number, clients: number): Promise<Client[]> {
  return Promise.all(
    Array.from({ length: clients }, async (_, index) => {
      const client = new Client()
      const token = await generateConnectToken({ protocolId: 0x1234n, privateKey: Uint8Array.from(Buffer.from(key, 'hex')), clientId: BigInt(index + 1), serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
      await client.connect(token)
      const echoed = once(client, 'message', { signal: AbortSignal.timeout(10_000) })
      client.send(new Uint8Array([1]))
      await echoed
      return client
    }),
  )
}

describe('volley serve --config', () => {
  const keyFile = file('volley.key', `${key}\n`)

  it.each([
    ['an unknown field', { address: '127.0.0.1:0', chanels: ['reliable'] }, /^volley: --config \S+: unknown field "chanels" \(did you mean "channels"\?\); the fields are address, publicAddress, /],
    ['an unknown field in metrics', { address: '127.0.0.1:0', metrics: { adress: '127.0.0.1:9464' } }, /: unknown field "metrics\.adress" \(did you mean "metrics\.address"\?\); the fields of "metrics" are address$/m],
    ['a wrong type', { address: '127.0.0.1:0', maxClients: '100' }, /: "maxClients" must be an integer from 1 to \d+, not "100"$/m],
    ['a number out of range', { address: '127.0.0.1:0', workers: 0 }, /: "workers" must be an integer from 1 to 256, not 0$/m],
    ['a bad channel mode', { address: '127.0.0.1:0', channels: ['reliable', 'fast'] }, /: "channels\[1\]" must be one of reliable, unreliable, sequenced, not "fast"$/m],
    ['a string for channels', { address: '127.0.0.1:0', channels: 'reliable' }, /: "channels" must be a list of 1 to 255 modes \(reliable, unreliable, sequenced\), not "reliable"$/m],
    ['a string for reusePort', { address: '127.0.0.1:0', reusePort: 'yes' }, /: "reusePort" must be true or false, not "yes"$/m],
    ['the key itself', { address: '127.0.0.1:0', key }, /: "key" is not taken: a config file is copied and read more widely than a key should be; give "keyFile" /],
    ['an array for the file', [1, 2], /: the file must be a JSON object \(\{ "field": value, \.\.\. \}\), not an array$/m],
    ['an address that does not parse', { address: 'bogus' }, /: Server address 'bogus' \(the "address" option\) does not parse/],
  ])('refuses %s, naming the field, with status 2', async (_, content, message) => {
    const { status, stdout, stderr } = await volley(['serve', '--config', file('bad.json', content), '--key', key])
    expect(stderr).toMatch(message)
    expect(stderr).toMatch(/^volley: --config .*bad\.json: /)
    expect(stdout).toBe('')
    expect(status).toBe(2)
  }, 20_000)

  it('refuses a file that is not JSON, saying where: line and column', async () => {
    // A comma after the last field: V8 gives the position; a bare word: it gives none (it quotes the text).
    const comma = await volley(['serve', '--config', file('comma.json', '{\n  "address": "127.0.0.1:0",\n  "seconds": 1,\n}\n'), '--key', key])
    expect(comma.stderr).toMatch(/^volley: --config \S+comma\.json: not valid JSON at line 4, column 1: Expected double-quoted property name\n/)
    expect(comma.status).toBe(2)
    const word = await volley(['serve', '--config', file('word.json', '{\n  "address": "127.0.0.1:0",\n  "seconds": oops\n}\n'), '--key', key])
    expect(word.stderr).toMatch(/^volley: --config \S+word\.json: not valid JSON at line 3, column 14: Unexpected token 'o'\n/)
    expect(word.status).toBe(2)
  }, 20_000)

  it('refuses a file it cannot read, and a key file other users may read', async () => {
    const missing = await volley(['serve', '--config', join(directory, 'missing.json'), '--key', key])
    expect(missing.stderr).toMatch(/^volley: --config \S+missing\.json: cannot be read \(ENOENT: no such file or directory\)\n/)
    expect(missing.status).toBe(2)
    const readable = file('readable.key', key, 0o644)
    const shared = await volley(['serve', '--config', file('shared.json', { address: '127.0.0.1:0', keyFile: 'readable.key' })], { env: { VOLLEY_KEY: undefined } })
    expect(shared.stderr).toContain(`volley: "keyFile" (${join(directory, 'shared.json')}): ${readable} may be read by other users (mode 0644): make it readable by its owner only (chmod 600; 640 for a group of its own)`)
    expect(shared.status).toBe(2)
    // VOLLEY_KEY and keyFile both: which one to take would be a guess.
    const both = await volley(['serve', '--config', file('both.json', { address: '127.0.0.1:0', keyFile })], { env: { VOLLEY_KEY: key } })
    expect(both.stderr).toMatch(/^volley: VOLLEY_KEY and "keyFile" \(\S+both\.json\) both give a key: keep one/)
    expect(both.status).toBe(2)
  }, 20_000)

  it('serves from a file: its key file, channels and protocol id; the flags given override it', async () => {
    const config = file('volley.json', { address: '127.0.0.1:0', protocolId: '0x99', channels: ['reliable'], keyFile: 'volley.key', seconds: 30 })
    const fromFile = serve(['--config', config], { VOLLEY_KEY: undefined })
    try {
      const { port } = (await fromFile.event('listening')) as { port: number }
      expect(fromFile.lines[0]).toMatchObject({ event: 'listening', protocolId: '0x99' })
      // Its key, protocol id and channels: clients with the same connect.
      const load = await volley(['load', '--server', `127.0.0.1:${port}`, '--key', key, '--protocol-id', '0x99', '--channels', 'reliable', '--clients', '2', '--seconds', '0.2', '--json'])
      expect(load.status, load.stderr).toBe(0)
      expect(jsonLines(load.stdout)[1]).toMatchObject({ event: 'finished', connect: { connected: 2 }, messagesSent: 4, messagesReceived: 4 })
    } finally {
      expect(await fromFile.stop()).toBe(0)
    }
    // --protocol-id and --seconds over the file's: it stops by itself, at once.
    const overridden = serve(['--config', config, '--protocol-id', '0x55', '--seconds', '0.2'], { VOLLEY_KEY: undefined })
    expect(await overridden.event('listening')).toMatchObject({ protocolId: '0x55' })
    await overridden.event('stopped')
    expect(await overridden.stop()).toBe(0)
  }, 30_000)
})

describe('volley serve: status lines, /metrics and /healthz', () => {
  it('answers /healthz and /metrics where asked, 404 elsewhere, prints status lines, and says 503 while stopping', async () => {
    const server = serve(['--address', '127.0.0.1:0', '--key', key, '--metrics-address', '127.0.0.1:0', '--status-interval', '0.5', '--seconds', '30'])
    let clients: Client[] = []
    try {
      const { port, metricsAddress } = (await server.event('listening')) as { port: number; metricsAddress: string }
      expect(metricsAddress).toMatch(/^127\.0\.0\.1:\d+$/)
      clients = await connectClients(port, 3)
      const health = await get(metricsAddress, '/healthz')
      expect(health).toMatchObject({ status: 200, type: 'application/json' })
      expect(JSON.parse(health.body)).toEqual({ status: 'listening', engine: expect.stringMatching(/^(native|fallback)$/), workers: 1, connectedClients: 3 })
      const metrics = await get(metricsAddress, '/metrics')
      expect(metrics.status).toBe(200)
      expect(metrics.type).toMatch(/^text\/plain/)
      expect(series(metrics.body, 'volley_connected_peers')).toBe(3)
      expect(series(metrics.body, 'volley_connections_accepted_total')).toBe(3)
      expect((await get(metricsAddress, '/')).status).toBe(404)
      // The status lines: the clients connected, and datagrams a second (their echoes, their keep-alives).
      await waitFor(() => server.lines.some((line) => line.event === 'status' && line.connected === 3), 10_000, 'a status line with the 3 clients')
      const status = server.lines.find((line) => line.event === 'status' && line.connected === 3)!
      expect(status).toMatchObject({ connected: 3, packetsPerSecond: { in: expect.any(Number), out: expect.any(Number) }, drops: 0, engine: health.body.includes('native') ? 'native' : 'fallback' })
      // Stopping, it tells its 3 clients (about a second of redundant disconnects): /healthz says 503 meanwhile.
      server.child.kill('SIGTERM')
      let stopping: { status: number; body: string } | undefined
      while (stopping === undefined && server.child.exitCode === null) {
        const answer = await get(metricsAddress, '/healthz').catch(() => undefined) // refused once it has closed
        if (answer?.status === 503) stopping = answer
      }
      expect(stopping?.status).toBe(503)
      expect(JSON.parse(stopping!.body)).toMatchObject({ status: 'stopping', workers: 1, connectedClients: 3 })
      expect(await server.event('stopped')).toMatchObject({ connectedAtStop: 3 })
    } finally {
      expect(await server.stop()).toBe(0)
      await Promise.all(clients.map((client) => client.close()))
    }
  }, 30_000)

  it('fails as it starts, saying what to install, where prom-client is not installed', async () => {
    const withoutPromClient = new URL('./fixtures/without-prom-client.mjs', import.meta.url).href
    const { status, stdout, stderr } = await volley(['serve', '--address', '127.0.0.1:0', '--key', key, '--metrics-address', '127.0.0.1:0'], { imports: [withoutPromClient] })
    expect(stdout).toBe('') // no socket opened: no 'listening'
    expect(stderr).toBe('volley: --metrics-address needs prom-client, which is not installed: npm install prom-client (ERR_MODULE_NOT_FOUND)\n')
    expect(status).toBe(1)
  }, 20_000)
})

describe('volley serve --workers', () => {
  it('runs 2 workers on one port: load connects to both, and /metrics sums them', async () => {
    const port = await freeUdpPort()
    const server = serve(['--address', `127.0.0.1:${port}`, '--key', key, '--workers', '2', '--metrics-address', '127.0.0.1:0', '--status-interval', '0', '--seconds', '30'])
    let load: ReturnType<typeof volley> | undefined
    try {
      const listening = (await server.event('listening', 20_000)) as { metricsAddress: string }
      expect(listening).toMatchObject({ port, workers: 2, publicAddress: `127.0.0.1:${port}` })
      const { metricsAddress } = listening
      // 20 clients for 2 s; meanwhile /metrics and /healthz count the 20 across the two workers.
      load = volley(['load', '--server', `127.0.0.1:${port}`, '--key', key, '--clients', '20', '--seconds', '2', '--json'])
      let connected = 0
      const connectedNow = async (): Promise<number> => series((await get(metricsAddress, '/metrics')).body, 'volley_connected_peers')
      for (const deadline = Date.now() + 10_000; connected < 20 && Date.now() < deadline; ) connected = await connectedNow()
      expect(connected).toBe(20)
      expect(JSON.parse((await get(metricsAddress, '/healthz')).body)).toMatchObject({ status: 'listening', workers: 2, connectedClients: 20 })
      const loaded = await load
      expect(loaded.status, loaded.stderr).toBe(0)
      expect(jsonLines(loaded.stdout)[0]).toMatchObject({ event: 'connected', connect: { connected: 20, failed: 0 } })
      // The clients gone (each told the server): the totals stand still, and each is the sum of the workers'.
      let metrics = ''
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
        metrics = (await get(metricsAddress, '/metrics')).body
        if (series(metrics, 'volley_connected_peers') === 0) break
      }
      expect(series(metrics, 'volley_connected_peers')).toBe(0)
      expect(series(metrics, 'volley_connections_accepted_total')).toBe(20)
      expect(series(metrics, 'volley_disconnects_total{reason="disconnected"}')).toBe(20)
      const received = series(metrics, 'volley_received_packets_total')
      const stopped = (await (async () => {
        server.child.kill('SIGTERM')
        return server.event('stopped')
      })()) as { workers: { stats: { packets: { in: number } } }[] }
      expect(stopped.workers).toHaveLength(2)
      const perWorker = stopped.workers.map((worker) => worker.stats.packets.in)
      // Each worker took some of the 20 clients (their ports hashed: all on one has odds of 2^-19).
      expect(Math.min(...perWorker)).toBeGreaterThan(0)
      expect(perWorker[0]! + perWorker[1]!).toBe(received)
    } finally {
      expect(await server.stop()).toBe(0)
      await load
    }
  }, 40_000)

  it('runs --workers 2 on the fallback engine where node:dgram shares a port (Node 22.12, 23.1 on), and refuses it elsewhere', async () => {
    const port = await freeUdpPort()
    const args = ['--address', `127.0.0.1:${port}`, '--key', key, '--workers', '2', '--status-interval', '0', '--seconds', '20']
    if (!dgramReusesPorts()) {
      const { status, stderr } = await volley(['serve', ...args], { env: { VOLLEY_ENGINE: 'fallback' } })
      expect(stderr).toMatch(/^volley: --workers 2 needs the native engine on Node [\d.]+: this process runs the fallback engine \(VOLLEY_ENGINE=fallback\), which shares a port among workers from Node 22\.12 and 23\.1 on only/)
      expect(status).toBe(2)
      return
    }
    const server = serve(args, { VOLLEY_ENGINE: 'fallback' })
    try {
      expect(await server.event('listening', 20_000)).toMatchObject({ port, workers: 2 })
    } finally {
      expect(await server.stop()).toBe(0)
    }
  }, 20_000)
})
