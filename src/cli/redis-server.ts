// A redis-server of its own on a free loopback port (Debian's redis-server on PATH), without persistence:
// for the sessions demo and the Redis suites. Stopped by stop(), and with the process that started it.
import { spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import type { Redis } from 'ioredis'

export interface RedisServer {
  readonly port: number
  /** A new ioredis client of this server (disconnected by stop()). */
  client(): Redis
  stop(): Promise<void>
}

/** Whether a redis-server can be started here. */
export function redisServerAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Starts a redis-server and waits until it answers PING (5 s at most). Needs the ioredis package. */
export async function startRedisServer(): Promise<RedisServer> {
  const { Redis } = await import('ioredis')
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stopWithUs = (): void => void child.kill('SIGKILL')
  process.once('exit', stopWithUs)
  const clients: Redis[] = []
  const client = (): Redis => {
    const redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 2 })
    clients.push(redis)
    return redis
  }
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  let ready = false
  for (let waited = 0; waited < 5_000 && !ready; waited += 50) {
    try {
      await probe.connect()
      ready = (await probe.ping()) === 'PONG'
    } catch {
      probe.disconnect()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  probe.disconnect()
  if (!ready) {
    child.kill('SIGKILL')
    throw new Error(`redis-server did not answer on 127.0.0.1:${port} within 5 s`)
  }
  return {
    port,
    client,
    async stop() {
      for (const redis of clients) redis.disconnect()
      process.off('exit', stopWithUs)
      child.kill('SIGTERM')
      await exited
    },
  }
}
