// The gateway of bench:resumable part B, a process of its own (node --expose-gc): a Volley Server with a
// SessionServer on it, its store in memory or on a Redis. Prints {"port":…} once it listens; then each
// "measure" line on stdin is answered with one JSON line: memory after a full GC, CPU used so far, and the
// SessionServer's health. It ends when stdin does.
//   node --expose-gc --import tsx bench/lib/resumable-gateway.ts --clients 10000 --key <hex> [--redis-port N]
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Server } from '../../src/index.ts'
import { SessionServer } from '../../src/sessions/resumable/server.ts'
import { MemorySessionStore, type SessionStore } from '../../src/sessions/resumable/store.ts'
import { demoChannels, demoProtocolId, demoVolleyTimers } from '../../src/cli/sessions-gateway.ts'

const { values } = parseArgs({ options: { clients: { type: 'string' }, key: { type: 'string' }, 'redis-port': { type: 'string' } } })
let store: SessionStore = new MemorySessionStore()
let quit = async (): Promise<void> => {}
if (values['redis-port'] !== undefined) {
  const { Redis } = await import('ioredis')
  const { RedisSessionStore } = await import('../../src/sessions/resumable/redis-store.ts')
  const redis = new Redis({ port: Number(values['redis-port']), host: '127.0.0.1' })
  store = new RedisSessionStore(redis, { prefix: 'bench:{rs}:' })
  quit = async () => void redis.disconnect()
}
const server = new Server({
  protocolId: demoProtocolId,
  privateKey: Buffer.from(values.key ?? '', 'hex'),
  address: '127.0.0.1:0',
  maxClients: Number(values.clients),
  engine: 'dedicated',
  channels: demoChannels,
  ...demoVolleyTimers,
})
const sessions = new SessionServer({ store, onRequest: (payload) => payload })
sessions.listen(server)
const { port } = await server.listen()
console.log(JSON.stringify({ port }))

const gc = (globalThis as { gc?: () => void }).gc!
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line.trim() !== 'measure') return
    for (let round = 0; round < 3; round++) gc()
    const memory = process.memoryUsage()
    const cpu = process.cpuUsage()
    console.log(JSON.stringify({ rss: memory.rss, heap: memory.heapUsed + memory.external + memory.arrayBuffers, cpuUs: cpu.user + cpu.system, health: sessions.health() }))
  })
  .on('close', () => {
    void sessions
      .close()
      .then(() => server.close())
      .then(quit)
      .finally(() => process.exit(0))
  })
