// One gateway of the sessions demo: a Volley Server on loopback with a SessionServer on it. Imported by the
// demo (gateways in its own process, sharing a memory store), or run as a process of its own with a Redis
// store: `sessions-gateway.ts --name A --redis-port 6379` prints {"port":…} when it listens, answers a
// "health" line on stdin with its SessionServer's health as JSON, and closes when stdin ends.
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { Server } from '../index.ts'
import { SessionServer, type SessionServerHealth } from '../sessions/resumable/server.ts'
import type { SessionStore } from '../sessions/resumable/store.ts'
import { exitOnCommandError, numberArgument, parseCommandLine } from './arguments.ts'

export const demoProtocolId = 0x766f6c6c6579n // "volley"
export const demoChannels = [{ mode: 'reliable' as const }]
/** Volley's keep-alives once a second: the sessions heartbeat for themselves. */
export const demoVolleyTimers = { keepAliveIntervalMs: 1_000, pingIntervalMs: 1_000 }

/** Counts the runs of the request handler, by request key: a key run twice is a request applied twice. */
export interface RunCounter {
  add(key: string): void
}

export interface GatewayOptions {
  name: string
  store: SessionStore
  privateKey: Uint8Array
  maxClients: number
  runs: RunCounter
  /** A gateway not heard from in the store for this long is gone: ms. */
  gatewayTtlMs?: number | undefined
}

export interface Gateway {
  readonly name: string
  readonly port: number
  readonly server: Server
  readonly sessions: SessionServer
  close(): Promise<void>
}

/**
 * Starts a gateway. Its application: a request "payload" is answered "payload@name", and each run of the
 * handler is counted under the request's key (session id and request id).
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { name, runs } = options
  const server = new Server({
    protocolId: demoProtocolId,
    privateKey: options.privateKey,
    address: '127.0.0.1:0',
    maxClients: options.maxClients,
    engine: 'dedicated',
    channels: demoChannels,
    ...demoVolleyTimers,
  })
  const sessions = new SessionServer({
    gatewayId: name,
    store: options.store,
    gatewayTtlMs: options.gatewayTtlMs,
    onRequest: (payload, { session, requestId }) => {
      runs.add(`${session.id}#${requestId}`)
      return Buffer.concat([payload, Buffer.from(`@${name}`)])
    },
  })
  sessions.listen(server)
  const { port } = await server.listen()
  return {
    name,
    port,
    server,
    sessions,
    async close() {
      await sessions.close()
      await server.close()
    },
  }
}

/** The settings of a gateway process, from its command line. */
function childSettings(): { name: string; redisPort: number; prefix: string; maxClients: number; gatewayTtlMs: number } {
  const { values } = parseCommandLine({
    options: {
      name: { type: 'string' },
      'redis-port': { type: 'string' },
      prefix: { type: 'string' },
      'max-clients': { type: 'string' },
      'gateway-ttl-ms': { type: 'string' },
    },
  })
  if (values.name === undefined || values.name === '') throw new Error('--name is required')
  return {
    name: values.name,
    redisPort: numberArgument('redis-port', values['redis-port'], 6379, { integer: true, min: 1, max: 65_535 }),
    prefix: values.prefix ?? 'volley-demo:{rs}:',
    maxClients: numberArgument('max-clients', values['max-clients'], 1_000, { integer: true, min: 1, max: 65_536 }),
    gatewayTtlMs: numberArgument('gateway-ttl-ms', values['gateway-ttl-ms'], 5_000, { integer: true, min: 2_000, max: 3_600_000 }),
  }
}

/**
 * Runs this module as a gateway process with a Redis store. The private key comes in VOLLEY_DEMO_KEY (hex):
 * the demo's clients make their connect tokens with it. wrapStore lets a test change the store's behaviour.
 */
export async function runGatewayProcess(wrapStore: (store: SessionStore) => SessionStore = (store) => store): Promise<void> {
  const usage = 'usage: sessions-gateway.ts --name A [--redis-port 6379] [--prefix volley-demo:{rs}:] [--max-clients 1000] [--gateway-ttl-ms 5000]'
  let settings: ReturnType<typeof childSettings>
  try {
    settings = childSettings()
  } catch (error) {
    exitOnCommandError('sessions-gateway', usage, error)
  }
  const key = process.env['VOLLEY_DEMO_KEY'] ?? ''
  if (!/^[0-9a-f]{64}$/.test(key)) exitOnCommandError('sessions-gateway', usage, new Error('VOLLEY_DEMO_KEY must hold the 32-byte private key in hex'))
  const { Redis } = await import('ioredis')
  const { RedisSessionStore } = await import('../sessions/resumable/redis-store.ts')
  const redis = new Redis({ port: settings.redisPort, host: '127.0.0.1', maxRetriesPerRequest: 2 })
  const prefix = settings.prefix
  const gateway = await startGateway({
    name: settings.name,
    store: wrapStore(new RedisSessionStore(redis, { prefix })),
    privateKey: Buffer.from(key, 'hex'),
    maxClients: settings.maxClients,
    gatewayTtlMs: settings.gatewayTtlMs,
    runs: { add: (runKey) => void redis.hincrby(`${prefix}runs`, runKey, 1).catch(() => {}) },
  })
  console.log(JSON.stringify({ port: gateway.port }))
  const lines = createInterface({ input: process.stdin })
  lines.on('line', (line) => {
    if (line.trim() === 'health') console.log(JSON.stringify({ health: gateway.sessions.health() satisfies SessionServerHealth }))
  })
  lines.on('close', () => {
    void gateway.close().finally(() => {
      redis.disconnect()
      process.exit(0)
    })
  })
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await runGatewayProcess()
