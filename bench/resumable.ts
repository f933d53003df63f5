// `npm run bench:resumable`: what resumable sessions (issue 58) cost a gateway.
//   A. The session core, 100,000 sessions (bench/lib/resumable-core.ts, a process each): heartbeats at a
//      30 s interval, the cleanup tick each second, CPU per heartbeat, the memory a session holds beyond its
//      connection; with a store whose data is elsewhere (as Redis's is) and with the memory store.
//   B. 10,000 sessions over real Volley connections on loopback (bench/lib/resumable-gateway.ts in a process
//      of its own, the clients here): the gateway's RSS per session beyond its connection, its CPU per
//      heartbeat (against the same window with the connections and no sessions), and with Redis the store
//      commands per heartbeat (redis-server's own count).
//   C. Failover of 10,000 sessions: the sessions demo with Redis, gateway A killed; the time from the kill
//      until each of its sessions continued on B.
// Parts B (Redis) and C need redis-server on PATH; without it they are skipped, and the run says so.
// Tables to stdout; the full record to bench/results/latest-resumable.json and a line to
// bench/results/resumable-history.jsonl (not with --quick).
//   npm run bench:resumable               full run (~3 min)
//   npm run bench:resumable -- --quick    smoke run: 5,000 / 1,000 / 1,000 sessions, no files written
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { appendFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { ClientPool, generateConnectToken } from '../src/index.ts'
import { redisServerAvailable, startRedisServer, type RedisServer } from '../src/cli/redis-server.ts'
import { demoChannels, demoProtocolId, demoVolleyTimers } from '../src/cli/sessions-gateway.ts'
import { SessionClient } from '../src/sessions/resumable/client.ts'
import { encodeClientMessage } from '../src/sessions/resumable/wire.ts'
import type { SessionServerHealth } from '../src/sessions/resumable/server.ts'
import { ClientTransport } from '../src/sessions/volley-transport.ts'
import { benchDir, root, runMain, settle } from './lib/runner.ts'
import { systemInfo } from './lib/system.ts'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, parts: { type: 'string', default: 'ABC' } } })
const quick = values.quick
/** Which parts run (--parts AB): a run of all three is the one recorded. */
const parts = new Set(values.parts.toUpperCase())
const sizes = quick ? { core: 5_000, volley: 1_000, failover: 1_000 } : { core: 100_000, volley: 10_000, failover: 10_000 }
/**
 * Part B's heartbeats a second per session, during its measured window: each session's own every 10 s (the
 * contract's shortest interval), and the bench sends KeepAlives on its connection to make up one a second,
 * the most the server's rate limit lets through steadily: the gateway's work stands well above its noise.
 */
const HEARTBEATS_PER_SECOND_PER_SESSION = 1
const WINDOW_MS = quick ? 5_000 : 20_000
const log = (line: string): void => void process.stderr.write(`${line}\n`)

interface Line {
  [key: string]: unknown
}

/** Runs a child to its end; its last stdout line, parsed. */
async function childResult(args: readonly string[]): Promise<Line> {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  let last = ''
  createInterface({ input: child.stdout }).on('line', (line) => (last = line))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`${args.join(' ')} exited with ${code}`)
  return JSON.parse(last) as Line
}

/** A child that answers a line on stdin with a JSON line on stdout. */
class Conversation {
  readonly #child: ChildProcess
  readonly #waiting: Array<(line: string) => void> = []
  constructor(args: readonly string[]) {
    this.#child = spawn(process.execPath, args, { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })
    createInterface({ input: this.#child.stdout! }).on('line', (line) => this.#waiting.shift()?.(line))
    process.once('exit', () => this.#child.kill('SIGKILL'))
  }
  next(): Promise<Line> {
    return new Promise((resolve) => this.#waiting.push((line) => resolve(JSON.parse(line) as Line)))
  }
  async ask(command: string): Promise<Line> {
    const answer = this.next()
    this.#child.stdin!.write(`${command}\n`)
    return answer
  }
  async end(): Promise<void> {
    this.#child.stdin!.end()
    await new Promise((resolve) => this.#child.once('exit', resolve))
  }
}

async function core(store: 'remote' | 'memory'): Promise<Line> {
  log(`A. session core: ${sizes.core.toLocaleString('en-US')} sessions, store ${store}`)
  return childResult(['--expose-gc', '--import', 'tsx', 'bench/lib/resumable-core.ts', '--sessions', String(sizes.core), '--store', store])
}

/**
 * What Redis ran (INFO commandstats): the commands clients sent (the gateway sends only scripts: EVALSHA,
 * EVAL), and every command including those the scripts ran inside.
 */
async function redisCommands(redis: RedisServer): Promise<{ sent: number; all: number }> {
  const client = redis.client()
  const info = await client.info('commandstats')
  client.disconnect()
  let sent = 0
  let all = 0
  for (const match of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    if (match[1] === 'info') continue
    all += Number(match[2])
    if (match[1] === 'evalsha' || match[1] === 'eval') sent += Number(match[2])
  }
  return { sent, all }
}

async function overVolley(redis: RedisServer | undefined): Promise<Line> {
  const count = sizes.volley
  log(`B. ${count.toLocaleString('en-US')} sessions over Volley, store ${redis === undefined ? 'memory' : 'redis'}`)
  const key = randomBytes(32)
  const gateway = new Conversation([
    '--expose-gc',
    '--import',
    'tsx',
    'bench/lib/resumable-gateway.ts',
    '--clients',
    String(count),
    '--key',
    key.toString('hex'),
    ...(redis === undefined ? [] : ['--redis-port', String(redis.port)]),
  ])
  const { port } = await gateway.next()
  const pool = new ClientPool({ channels: demoChannels, ...demoVolleyTimers })
  const connected = await pool.connect(
    {
      count,
      make: (index) =>
        generateConnectToken({ protocolId: demoProtocolId, privateKey: key, clientId: BigInt(index + 1), serverAddresses: [`127.0.0.1:${port as number}`], expireSeconds: 120, timeoutSeconds: 10 }),
    },
    { concurrency: 200 },
  )
  if (connected.connected !== count) throw new Error(`${connected.connected} of ${count} clients connected`)
  await settle(1_000)
  // The connections alone: memory, and CPU over a window (Volley's keep-alives).
  const bare = await gateway.ask('measure')
  await settle(WINDOW_MS)
  const bareEnd = await gateway.ask('measure')
  const transports = pool.clients.map((client) => new ClientTransport(client))
  const sessions = transports.map((transport) => {
    const session = new SessionClient({ capabilities: { bench: 'resumable' }, keepAliveIntervalMs: 10_000 })
    session.attach(transport)
    return session
  })
  for (let waited = 0; waited < 30_000 && sessions.some((session) => session.state !== 'connected'); waited += 100) await settle(100)
  const created = sessions.filter((session) => session.state === 'connected').length
  await settle(1_000)
  const start = await gateway.ask('measure')
  const commandsBefore = redis === undefined ? { sent: 0, all: 0 } : await redisCommands(redis)
  // Every 100 ms a tenth of the sessions send a KeepAlive: one a second each (the clients take the answers
  // as unexpected, and drop them).
  let turn = 0
  const injector = setInterval(() => {
    const timestamp = encodeClientMessage({ type: 'keep-alive', timestamp: Date.now() })
    for (let index = turn % 10; index < transports.length; index += 10) transports[index]!.send(timestamp)
    turn++
  }, 100 / HEARTBEATS_PER_SECOND_PER_SESSION)
  await settle(WINDOW_MS)
  clearInterval(injector)
  const end = await gateway.ask('measure')
  const commandsAfter = redis === undefined ? { sent: 0, all: 0 } : await redisCommands(redis)
  const heartbeats = (end.health as SessionServerHealth).heartbeats.answered - (start.health as SessionServerHealth).heartbeats.answered
  const bareCpuPerMs = ((bareEnd.cpuUs as number) - (bare.cpuUs as number)) / WINDOW_MS
  const sessionCpuUs = (end.cpuUs as number) - (start.cpuUs as number) - bareCpuPerMs * WINDOW_MS
  await Promise.all(sessions.map((session) => session.close()))
  await pool.close()
  await gateway.end()
  return {
    store: redis === undefined ? 'memory' : 'redis',
    sessions: created,
    heartbeats,
    heartbeatsPerSecond: (heartbeats / WINDOW_MS) * 1000,
    cpuPerHeartbeatUs: sessionCpuUs / heartbeats,
    gatewayCpuPercent: ((end.cpuUs as number) - (start.cpuUs as number)) / WINDOW_MS / 10,
    bareCpuPercent: bareCpuPerMs / 10,
    rssPerSessionBytes: ((start.rss as number) - (bare.rss as number)) / created,
    heapPerSessionBytes: ((start.heap as number) - (bare.heap as number)) / created,
    ...(redis === undefined
      ? {}
      : {
          commandsSent: commandsAfter.sent - commandsBefore.sent,
          commandsPerHeartbeat: (commandsAfter.sent - commandsBefore.sent) / heartbeats,
          commandsInsideScriptsPerHeartbeat: (commandsAfter.all - commandsBefore.all - (commandsAfter.sent - commandsBefore.sent)) / heartbeats,
        }),
  }
}

async function failover(): Promise<Line> {
  log(`C. failover of ${sizes.failover.toLocaleString('en-US')} sessions (the sessions demo with Redis)`)
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/sessions-demo.ts', '--clients', String(sizes.failover), '--seconds', '9', '--rate', '0.2', '--store', 'redis'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  const ms = (label: string): number | undefined => {
    const found = new RegExp(`${label} (\\d+) ms`).exec(output)
    return found === null ? undefined : Number(found[1])
  }
  const moved = /; ([\d,]+) of the ([\d,]+) on gateway A continued on B/.exec(output)
  const ranAgain = /([\d,]+) of them run again at B/.exec(output)
  return {
    sessions: sizes.failover,
    demoStatus: code,
    continued: moved === null ? undefined : Number(moved[1]!.replaceAll(',', '')),
    onA: moved === null ? undefined : Number(moved[2]!.replaceAll(',', '')),
    medianMs: ms('median'),
    p99Ms: ms('99th percentile'),
    maxMs: ms('max'),
    ranAgainAtB: ranAgain === null ? undefined : Number(ranAgain[1]!.replaceAll(',', '')),
  }
}

const f = (value: unknown, digits = 0): string => (typeof value === 'number' && Number.isFinite(value) ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–')

async function main(): Promise<number> {
  const system = systemInfo(root)
  const redisHere = redisServerAvailable()
  const notes: string[] = []
  if (!redisHere) notes.push('redis-server is not on PATH: the Redis parts were skipped')
  const empty: Line = {}
  const coreRemote = parts.has('A') ? await core('remote') : empty
  const coreMemory = parts.has('A') ? await core('memory') : empty
  const volleyMemory = parts.has('B') ? await overVolley(undefined) : empty
  let volleyRedis: Line | undefined
  let failoverResult: Line | undefined
  if (redisHere && parts.has('B')) {
    const redis = await startRedisServer()
    try {
      volleyRedis = await overVolley(redis)
    } finally {
      await redis.stop()
    }
  }
  if (redisHere && parts.has('C')) failoverResult = await failover()
  const date = new Date().toISOString()
  const record = { date, quick, system: { node: system.node, cpu: system.cpuModel, kernel: system.kernel }, core: { remote: coreRemote, memory: coreMemory }, volley: { memory: volleyMemory, redis: volleyRedis }, failover: failoverResult, notes }

  const lines = [
    `| session core, ${f(coreRemote.sessions)} sessions | store elsewhere (Redis) | memory store | target |`,
    '|---|---|---|---|',
    `| cleanup tick, median (max), ${f(coreRemote.heartbeatsPerTick)} heartbeats a tick | ${f(coreRemote.tickMedianMs, 2)} ms (${f(coreRemote.tickMaxMs, 1)}) | ${f(coreMemory.tickMedianMs, 2)} ms (${f(coreMemory.tickMaxMs, 1)}) | < 1 ms |`,
    `| CPU per heartbeat (in-memory connection included) | ${f(coreRemote.heartbeatUs, 1)} µs | ${f(coreMemory.heartbeatUs, 1)} µs | |`,
    `| heap per session beyond its connection | ${f(coreRemote.bytesPerSessionHeapSteady)} B | ${f(coreMemory.bytesPerSessionHeapSteady)} B | |`,
    `| RSS per session beyond its connection | ${f(coreRemote.bytesPerSessionRssSteady)} B | ${f(coreMemory.bytesPerSessionRssSteady)} B | < 512 B |`,
    `| expiry: worst tick (all due in 30 ticks), per session | ${f(coreRemote.expiryTickMaxMs, 1)} ms, ${f(coreRemote.expiryUsPerSession, 1)} µs | ${f(coreMemory.expiryTickMaxMs, 1)} ms, ${f(coreMemory.expiryUsPerSession, 1)} µs | |`,
    '',
    `| over Volley, ${f(volleyMemory.sessions)} sessions, ${f(volleyMemory.heartbeatsPerSecond)} heartbeats/s | memory store | Redis | target |`,
    '|---|---|---|---|',
    `| gateway CPU per heartbeat (beyond the connections' own) | ${f(volleyMemory.cpuPerHeartbeatUs, 1)} µs | ${f(volleyRedis?.cpuPerHeartbeatUs, 1)} µs | |`,
    `| gateway CPU, heartbeating (connections alone) | ${f(volleyMemory.gatewayCpuPercent, 1)} % (${f(volleyMemory.bareCpuPercent, 1)} %) | ${f(volleyRedis?.gatewayCpuPercent, 1)} % (${f(volleyRedis?.bareCpuPercent, 1)} %) | |`,
    `| gateway heap (RSS) per session beyond its connection | ${f(volleyMemory.heapPerSessionBytes)} B (${f(volleyMemory.rssPerSessionBytes)} B) | ${f(volleyRedis?.heapPerSessionBytes)} B (${f(volleyRedis?.rssPerSessionBytes)} B) | < 512 B |`,
    `| Redis commands sent per heartbeat (run inside the scripts) | – | ${f(volleyRedis?.commandsPerHeartbeat, 4)} (${f(volleyRedis?.commandsInsideScriptsPerHeartbeat, 2)}) | ≤ 0.01 |`,
  ]
  if (failoverResult !== undefined) {
    lines.push(
      '',
      `| failover, ${f(failoverResult.sessions)} sessions, gateway A killed | median | 99th percentile | max |`,
      '|---|---|---|---|',
      `| kill → session continued on B (${f(failoverResult.continued)} of ${f(failoverResult.onA)}) | ${f(failoverResult.medianMs)} ms | ${f(failoverResult.p99Ms)} ms | ${f(failoverResult.maxMs)} ms |`,
    )
  }
  console.log(lines.join('\n'))
  for (const note of notes) console.log(`\nnote: ${note}`)
  if (!quick && parts.size === 3) {
    const results = join(benchDir, 'results')
    writeFileSync(join(results, 'latest-resumable.json'), `${JSON.stringify(record, null, 2)}\n`)
    const history = {
      date: date.slice(0, 16),
      sessions: coreRemote.sessions,
      tickMedianMs: coreRemote.tickMedianMs,
      heartbeatUs: coreRemote.heartbeatUs,
      rssPerSession: coreRemote.bytesPerSessionRssSteady,
      heapPerSession: coreRemote.bytesPerSessionHeapSteady,
      volleyCpuPerHeartbeatUs: volleyMemory.cpuPerHeartbeatUs,
      volleyRssPerSession: volleyMemory.rssPerSessionBytes,
      commandsPerHeartbeat: volleyRedis?.commandsPerHeartbeat,
      failoverMedianMs: failoverResult?.medianMs,
      failoverMaxMs: failoverResult?.maxMs,
    }
    appendFileSync(join(results, 'resumable-history.jsonl'), `${JSON.stringify(history)}\n`)
    log('results: bench/results/latest-resumable.json, bench/results/resumable-history.jsonl')
  }
  const failed = failoverResult !== undefined && (failoverResult.demoStatus !== 0 || failoverResult.continued !== failoverResult.onA)
  return failed ? 1 : 0
}

runMain('bench:resumable', main)
