// One gateway's session core under 100,000 sessions (bench:resumable, part A), in a process of its own
// (node --expose-gc): a SessionServer on a FakeClock, each session created over an in-memory connection.
// Heartbeats come as a 30 s interval spreads them, 1/30 of the sessions each second, and each second's
// cleanup tick runs after them. Prints one JSON line: create rate, CPU per heartbeat, the tick's cost, and
// the memory a session holds once its connection is gone.
//   node --expose-gc --import tsx bench/lib/resumable-core.ts --sessions 100000 --store remote|memory
import { parseArgs } from 'node:util'
import { FakeClock } from '../../src/sessions/timers.ts'
import { MemoryTransport } from '../../src/sessions/transport.ts'
import { SessionServer } from '../../src/sessions/resumable/server.ts'
import { MemorySessionStore, type SessionStore, type StoreTickResult } from '../../src/sessions/resumable/store.ts'
import { encodeClientMessage } from '../../src/sessions/resumable/wire.ts'

const { values } = parseArgs({ options: { sessions: { type: 'string', default: '100000' }, store: { type: 'string', default: 'remote' } } })
const count = Number(values.sessions)
const EPOCH = 1_800_000_000_000
const INTERVAL_S = 30

/**
 * A store whose data lives elsewhere (as Redis's does): every operation answers at once and keeps nothing in
 * this process, so the figures are the gateway's own.
 */
const remoteStore: SessionStore = {
  create: async () => {},
  claim: async () => 'not-found',
  expire: async () => true,
  recordResponse: async (_session, _request, result) => result,
  tick: async (): Promise<StoreTickResult> => ({ ended: [], taken: [], lost: [] }),
  onClaimedAway: () => () => {},
}

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')
function memory(): { rss: number; heap: number } {
  for (let round = 0; round < 3; round++) gc!()
  const usage = process.memoryUsage()
  return { rss: usage.rss, heap: usage.heapUsed + usage.external + usage.arrayBuffers }
}
const settle = async (): Promise<void> => {
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve))
}
const cpuUs = (): number => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

// Fractional, as performance.now() is.
const clock = new FakeClock(1_234.567)
const server = new SessionServer({
  scheduler: clock,
  wallClock: () => EPOCH + Math.floor(clock.now()),
  store: values.store === 'memory' ? new MemorySessionStore() : remoteStore,
  onRequest: (payload) => payload,
})
await settle()

// The connections first (the client side is the bench's, sending pre-encoded bytes), then a session on each:
// what a session costs beyond its connection is the difference.
const clientSides: MemoryTransport[] = []
for (let index = 0; index < count; index++) {
  const [clientSide, serverSide] = MemoryTransport.pair()
  server.accept(serverSide, { clientId: BigInt(index + 1) })
  clientSides.push(clientSide)
}
const connectionsOnly = memory()
const create = encodeClientMessage({ type: 'create-session', capabilities: new Map([['app', 'bench']]), nonce: 1n })
const createStarted = performance.now()
for (let index = 0; index < count; index++) {
  clientSides[index]!.send(create)
  if (index % 1000 === 999) await settle()
}
await settle()
const createMs = performance.now() - createStarted
const withSessions = memory()
if (server.size !== count) throw new Error(`${server.size} sessions of ${count} were created`)

// 30 s of heartbeats: each second 1/30 of the sessions, then the second's tick.
const heartbeatTimes: number[] = []
const tickTimes: number[] = []
let heartbeats = 0
for (let second = 1; second <= INTERVAL_S; second++) {
  const keepAlive = encodeClientMessage({ type: 'keep-alive', timestamp: EPOCH + Math.floor(clock.now()) })
  const from = Math.floor(((second - 1) * count) / INTERVAL_S)
  const to = Math.floor((second * count) / INTERVAL_S)
  const heartbeatStarted = cpuUs()
  for (let index = from; index < to; index++) clientSides[index]!.send(keepAlive)
  heartbeatTimes.push(cpuUs() - heartbeatStarted)
  heartbeats += to - from
  // The tick's own work (its store round trip is the store's: the 'remote' store answers at once).
  const tickStarted = cpuUs()
  clock.advance(1_000)
  tickTimes.push((cpuUs() - tickStarted) / 1000)
  await settle()
}
const steady = memory()
const answered = server.health().heartbeats.answered
if (answered !== heartbeats) throw new Error(`${answered} heartbeats answered of ${heartbeats}`)
// The connections go: what stays is the sessions, waiting for their clients to continue them.
for (const side of clientSides) side.close()
clientSides.length = 0
await settle()
if (server.size !== count) throw new Error(`${server.size} sessions of ${count} outlived their connections`)

// The sessions expire, 1/30 of them a tick as their heartbeats came: each tick's cost again.
const expiryTicks: number[] = []
while (server.size > 0 && expiryTicks.length < 200) {
  const tickStarted = cpuUs()
  clock.advance(1_000)
  expiryTicks.push((cpuUs() - tickStarted) / 1000)
  await settle()
}
const expired = count - server.size
const expiring = expiryTicks.filter((ms, index) => index >= 0 && ms > 0)

const sorted = [...tickTimes].sort((x, y) => x - y)
console.log(
  JSON.stringify({
    sessions: count,
    store: values.store,
    createPerSecond: (count / createMs) * 1000,
    heartbeatUs: heartbeatTimes.reduce((sum, value) => sum + value, 0) / heartbeats,
    heartbeatsPerTick: Math.round(heartbeats / INTERVAL_S),
    tickMedianMs: sorted[Math.floor(sorted.length / 2)],
    tickMaxMs: sorted.at(-1),
    expired,
    expiryTickMaxMs: Math.max(...expiring),
    expiryUsPerSession: (expiryTicks.reduce((sum, value) => sum + value, 0) * 1000) / expired,
    bytesPerSessionRss: (withSessions.rss - connectionsOnly.rss) / count,
    bytesPerSessionHeap: (withSessions.heap - connectionsOnly.heap) / count,
    // After every session's first heartbeat: what a heartbeating session holds.
    bytesPerSessionRssSteady: (steady.rss - connectionsOnly.rss) / count,
    bytesPerSessionHeapSteady: (steady.heap - connectionsOnly.heap) / count,
  }),
)
process.exit(0)
