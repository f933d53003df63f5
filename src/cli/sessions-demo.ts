// The resumable sessions demo (npm run demo:sessions): two gateways share their sessions through a store;
// 1,000 clients hold a session each, with requests flowing. Gateway A is killed partway: its clients'
// connections drop, they reconnect down their connect token's address list, and continue their sessions on
// gateway B, the requests in flight answered there, none lost, each answered with its one recorded result.
// A request that A applied but died before recording runs again at B: the summary counts those.
// With redis-server on PATH the gateways are processes of their own sharing a Redis, and A gets SIGKILL;
// otherwise they share a memory store in this process, and A is closed.
//   npm run demo:sessions -- --clients 1000 --seconds 6 --rate 2
import { spawn, type ChildProcess } from 'node:child_process'
import { setMaxListeners } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Client, generateConnectToken, generateKey } from '../index.ts'
import { fallbackReason } from '../engine/choose.ts'
import { ConnectionManager } from '../sessions/connection-manager.ts'
import { SessionClient } from '../sessions/resumable/client.ts'
import type { SessionServerHealth } from '../sessions/resumable/server.ts'
import { MemorySessionStore } from '../sessions/resumable/store.ts'
import { ClientTransport } from '../sessions/volley-transport.ts'
import { UsageError, exitOnCommandError, exitWithHelp, interruptedStatus, interruption, maxTimerSeconds, numberArgument, parseCommandLine, pause, seeHelp, tolerateClosedOutput } from './arguments.ts'
import { redisServerAvailable, startRedisServer, type RedisServer } from './redis-server.ts'
import { demoChannels, demoProtocolId, demoVolleyTimers, startGateway } from './sessions-gateway.ts'

const usage = 'usage: npm run demo:sessions -- [--clients 1000] [--seconds 6] [--rate 2] [--store auto|redis|memory]'
const seeUsage = seeHelp('npm run demo:sessions -- --help')
const help = `${usage}

Two gateways share their sessions through a store; each client holds a session and sends requests. A third
of the way in, gateway A is killed: its clients reconnect (their connect tokens list both gateways) and
continue their sessions on gateway B. The summary says how long that took, and that every request was
answered once.
  --clients   how many clients, a session each (1 to 10,000; default 1,000)
  --seconds   how long the requests flow (default 6); A is killed after a third of it
  --rate      requests a second from each client (default 2)
  --store     redis: the gateways are processes sharing a redis-server of the demo's own, and A gets SIGKILL;
              memory: both in this process sharing a memory store, and A is closed;
              auto (the default): redis when redis-server is on PATH
Ctrl-C ends it early, with the summary so far; a second Ctrl-C ends it at once.`

function settings(): { clientCount: number; seconds: number; rate: number; store: 'auto' | 'redis' | 'memory' } {
  const { values } = parseCommandLine({
    options: {
      clients: { type: 'string' },
      seconds: { type: 'string' },
      rate: { type: 'string' },
      store: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) exitWithHelp(help)
  const store = values.store ?? 'auto'
  if (store !== 'auto' && store !== 'redis' && store !== 'memory') throw new UsageError(`--store must be auto, redis or memory. Received '${store}'`)
  return {
    clientCount: numberArgument('clients', values.clients, 1000, { integer: true, min: 1, max: 10_000 }),
    seconds: numberArgument('seconds', values.seconds, 6, { min: 0.5, max: maxTimerSeconds }),
    rate: numberArgument('rate', values.rate, 2, { max: 1_000 }),
    store,
  }
}

let demo: ReturnType<typeof settings>
try {
  demo = settings()
} catch (error) {
  exitOnCommandError('volley demo:sessions', seeUsage, error)
}
const { clientCount, seconds, rate } = demo
const useRedis = demo.store === 'redis' || (demo.store === 'auto' && redisServerAvailable())
if (demo.store === 'redis' && !redisServerAvailable()) exitOnCommandError('volley demo:sessions', seeUsage, new UsageError('--store redis needs redis-server on PATH (apt-get install redis-server)'))
/** A gateway silent this long is gone: B takes over what A's clients do not continue themselves. */
const GATEWAY_TTL_MS = 2_000
/** How long a connect attempt waits for one gateway before the token's next: the failover's main part. */
const TOKEN_TIMEOUT_SECONDS = 2

/** A gateway as the demo drives it, in this process or another. */
interface GatewayHandle {
  readonly name: string
  readonly port: number
  kill(): Promise<void>
  health(): Promise<SessionServerHealth>
  close(): Promise<void>
}

const privateKey = await generateKey()
const runs = new Map<string, number>()
let redis: RedisServer | undefined
const prefix = 'volley-demo:{rs}:'

async function gatewayInProcess(name: string, store: MemorySessionStore): Promise<GatewayHandle> {
  const gateway = await startGateway({ name, store, privateKey, maxClients: clientCount, gatewayTtlMs: GATEWAY_TTL_MS, runs: { add: (key) => runs.set(key, (runs.get(key) ?? 0) + 1) } })
  return { name, port: gateway.port, kill: () => gateway.close(), close: () => gateway.close(), health: async () => gateway.sessions.health() }
}

async function gatewayProcess(name: string, redisPort: number): Promise<GatewayHandle> {
  const script = fileURLToPath(new URL(`./sessions-gateway${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url))
  const child: ChildProcess = spawn(
    process.execPath,
    [...process.execArgv, script, '--name', name, '--redis-port', String(redisPort), '--prefix', prefix, '--max-clients', String(clientCount), '--gateway-ttl-ms', String(GATEWAY_TTL_MS)],
    { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, VOLLEY_DEMO_KEY: Buffer.from(privateKey).toString('hex') } },
  )
  process.once('exit', () => child.kill('SIGKILL'))
  const lines = createInterface({ input: child.stdout! })
  const waiting: Array<(line: string) => void> = []
  lines.on('line', (line) => waiting.shift()?.(line))
  const nextLine = (): Promise<string> => new Promise((resolve, reject) => {
    waiting.push(resolve)
    child.once('exit', (code) => reject(new Error(`gateway ${name} exited (${code})`)))
  })
  const { port } = JSON.parse(await nextLine()) as { port: number }
  return {
    name,
    port,
    async kill() {
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
    },
    async health() {
      const line = nextLine()
      child.stdin!.write('health\n')
      return (JSON.parse(await line) as { health: SessionServerHealth }).health
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.stdin!.end()
      await new Promise((resolve) => child.once('exit', resolve))
    },
  }
}

let a: GatewayHandle
let b: GatewayHandle
try {
  if (useRedis) {
    redis = await startRedisServer()
    ;[a, b] = await Promise.all([gatewayProcess('A', redis.port), gatewayProcess('B', redis.port)])
  } else {
    const store = new MemorySessionStore()
    a = await gatewayInProcess('A', store)
    b = await gatewayInProcess('B', store)
  }
} catch (error) {
  await redis?.stop()
  exitOnCommandError('volley demo:sessions', seeUsage, error)
}

tolerateClosedOutput()
const interrupted = interruption()
setMaxListeners(clientCount + 10, interrupted)
const fallback = fallbackReason()
const thousands = (n: number): string => Math.round(n).toLocaleString('en-US')
console.log(
  `volley demo:sessions: gateways A (127.0.0.1:${a.port}) and B (127.0.0.1:${b.port}) sharing ` +
    `${useRedis ? `a Redis (redis-server on 127.0.0.1:${redis!.port}), each in a process of its own` : 'a memory store in this process'}; ` +
    `${thousands(clientCount)} clients, ${rate} requests/s each, ${seconds} s; ${fallback === undefined ? 'native engine' : `fallback engine (${fallback})`}`,
)

/** Each client: its session, and which gateway its connection is on. */
interface DemoClient {
  readonly index: number
  readonly session: SessionClient
  readonly manager: ConnectionManager<ClientTransport>
  port: number | undefined
  sent: number
}

const totals = { sent: 0, answered: 0, wrongAnswer: 0, failures: new Map<string, number>(), answeredBy: { A: 0, B: 0 } as Record<string, number> }
/** When A was killed (performance.now()), and how long each of its sessions took to continue on B, ms. */
let killedAt: number | undefined
const failovers: number[] = []
const onAAtKill = new Set<DemoClient>()
const inFlight = new Set<Promise<void>>()

function makeClient(index: number): DemoClient {
  const demoClient: DemoClient = { index, port: undefined, sent: 0 } as DemoClient
  const manager = new ConnectionManager<ClientTransport>({
    backoff: { initialMs: 200, maxMs: 2_000 },
    attemptTimeoutMs: 10_000,
    signal: interrupted,
    connect: async ({ signal }) => {
      const client = new Client({ channels: demoChannels, ...demoVolleyTimers })
      // The gateway it was on goes last: after a loss, the other one is tried first.
      const ports = demoClient.port === a.port ? [b.port, a.port] : [a.port, b.port]
      const token = await generateConnectToken({
        protocolId: demoProtocolId,
        privateKey,
        clientId: BigInt(index + 1),
        serverAddresses: ports.map((port) => `127.0.0.1:${port}`),
        expireSeconds: 120,
        timeoutSeconds: TOKEN_TIMEOUT_SECONDS,
      })
      try {
        await client.connect(token, { signal })
      } catch (error) {
        await client.close()
        throw error
      }
      demoClient.port = client.serverAddress?.port
      const transport = new ClientTransport(client)
      // A lost connection's client is done with: its socket goes (the next attempt makes a new client).
      transport.once('close', () => void client.close())
      return transport
    },
  })
  const session = new SessionClient({ capabilities: { demo: 'sessions' }, connection: manager, keepAliveIntervalMs: 10_000 })
  session.on('session', (_id, continued) => {
    if (continued && killedAt !== undefined && onAAtKill.delete(demoClient)) failovers.push(performance.now() - killedAt)
  })
  Object.assign(demoClient, { manager, session })
  return demoClient
}

// The clients connect in waves of 100, each wave's sessions made before the next starts.
const clients: DemoClient[] = []
const connectStarted = performance.now()
for (let from = 0; from < clientCount && !interrupted.aborted; from += 100) {
  const wave = Array.from({ length: Math.min(100, clientCount - from) }, (_, offset) => makeClient(from + offset))
  clients.push(...wave)
  for (const client of wave) client.manager.start()
  for (let waited = 0; waited < 15_000 && !interrupted.aborted && wave.some((client) => client.session.state !== 'connected'); waited += 20) await pause(20, interrupted)
}
const created = clients.filter((client) => client.session.state === 'connected').length
console.log(`  ${thousands(created)} sessions created in ${(performance.now() - connectStarted).toFixed(0)} ms`)

function request(client: DemoClient): void {
  const payload = `c${client.index}-${++client.sent}`
  totals.sent++
  const settled = client.session.request(Buffer.from(payload)).then(
    (answer) => {
      const text = Buffer.from(answer).toString()
      if (!text.startsWith(`${payload}@`)) totals.wrongAnswer++
      totals.answered++
      const by = text.slice(payload.length + 1)
      totals.answeredBy[by] = (totals.answeredBy[by] ?? 0) + 1
    },
    (error: unknown) => {
      const code = String((error as { code?: unknown }).code ?? error)
      totals.failures.set(code, (totals.failures.get(code) ?? 0) + 1)
    },
  )
  inFlight.add(settled)
  void settled.finally(() => inFlight.delete(settled))
}

// Requests at random, `rate` a second per client on average, in 50 ms steps.
const started = performance.now()
const requester = setInterval(() => {
  for (const client of clients) if (Math.random() < rate / 20) request(client)
}, 50)
const ticker = setInterval(() => {
  const connected = clients.filter((client) => client.session.state === 'connected').length
  const onA = clients.filter((client) => client.session.state === 'connected' && client.port === a.port).length
  console.log(`  ${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s   sessions connected ${String(connected).padStart(5)} (on A ${String(onA).padStart(5)})   requests answered ${thousands(totals.answered).padStart(8)}   in flight ${String(inFlight.size).padStart(5)}`)
}, 500)

await pause((seconds * 1000) / 3, interrupted)
let movedCount = 0
if (!interrupted.aborted) {
  for (const client of clients) if (client.port === a.port && client.session.state === 'connected') onAAtKill.add(client)
  movedCount = onAAtKill.size
  // A request from each of A's clients, and the kill right behind them: some reach A and are applied
  // there, their answers lost with it; the rest never arrive. Either way each is answered once, by B.
  for (const client of onAAtKill) request(client)
  const requestsInFlight = inFlight.size
  killedAt = performance.now()
  await a.kill()
  console.log(`  gateway A ${useRedis ? 'killed (SIGKILL)' : 'closed'} with ${thousands(movedCount)} sessions on it and ${thousands(requestsInFlight)} requests in flight`)
}
await pause((seconds * 2000) / 3, interrupted)
clearInterval(requester)
// The last answers, and the last continues (bounded: 30 s, or 1 s after a Ctrl-C).
const settleBy = performance.now() + (interrupted.aborted ? 1_000 : 30_000)
while (performance.now() < settleBy && (inFlight.size > 0 || onAAtKill.size > 0)) await new Promise((resolve) => setTimeout(resolve, 50))
clearInterval(ticker)
const healthB = await b.health().catch(() => undefined)
const lost = totals.sent - totals.answered - sum(totals.failures)
const runCounts = useRedis ? await redisRuns() : runs
/** Requests the handler ran for, and those it ran again (A applied them, and died before recording the answer). */
const applied = runCounts.size
const ranAgain = [...runCounts.values()].filter((count) => count > 1).length

// The clients end their sessions (CloseSession), then the gateway and the store go.
await Promise.race([Promise.all(clients.map((client) => client.session.close())), new Promise((resolve) => setTimeout(resolve, 5_000).unref())])
for (const client of clients) client.manager.close()
await b.close()
await a.close()
await redis?.stop()

failovers.sort((x, y) => x - y)
const percentile = (q: number): string => (failovers.length === 0 ? '–' : `${failovers[Math.min(failovers.length - 1, Math.ceil(q * failovers.length) - 1)]!.toFixed(0)} ms`)
console.log('\nsummary')
console.log(`  sessions   ${thousands(created)} created; ${thousands(movedCount - onAAtKill.size)} of the ${thousands(movedCount)} on gateway A continued on B`)
console.log(`  failover   from the kill to the session continued: median ${percentile(0.5)}, 99th percentile ${percentile(0.99)}, max ${percentile(1)}`)
console.log(
  `  requests   ${thousands(totals.sent)} sent, ${thousands(totals.answered)} answered (A ${thousands(totals.answeredBy['A'] ?? 0)}, B ${thousands(totals.answeredBy['B'] ?? 0)}), ` +
    `${thousands(Math.max(0, lost))} lost; ${thousands(applied)} applied, ${thousands(ranAgain)} of them run again at B` +
    (totals.failures.size === 0 ? '' : `; failed: ${[...totals.failures].map(([code, n]) => `${n} ${code}`).join(', ')}`),
)
if (healthB !== undefined) {
  console.log(`  gateway B  ${thousands(healthB.sessionsTakenOver)} sessions claimed from A by their clients' continues, ${thousands(healthB.sessionsAdopted)} adopted after A went silent`)
}
if (ranAgain > 0) {
  console.log(
    `             (A ran those and was killed before it recorded their answers: an effect that must happen once is keyed by the request, ` +
      `its session and request id, as docs/resumable-sessions.md says)`,
  )
}
const failed = lost !== 0 || applied !== totals.answered || totals.wrongAnswer !== 0 || totals.failures.size > 0 || onAAtKill.size > 0 || created !== clientCount
if (interrupted.aborted) process.exitCode = interruptedStatus(interrupted)
else if (failed) process.exitCode = 1
process.exit()

async function redisRuns(): Promise<Map<string, number>> {
  const client = redis!.client()
  const counts = await client.hgetall(`${prefix}runs`)
  return new Map(Object.entries(counts).map(([key, count]) => [key, Number(count)]))
}

function sum(counts: ReadonlyMap<string, number>): number {
  let total = 0
  for (const n of counts.values()) total += n
  return total
}
