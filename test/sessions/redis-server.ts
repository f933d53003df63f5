// A redis-server of the test's own on a loopback port (Debian's redis-server on PATH), no persistence,
// stopped by the test's cleanup.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'

export interface RedisUnderTest {
  readonly port: number
  /** A new client of this server (closed by stop()). */
  client(): Redis
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

export async function startRedis(): Promise<RedisUnderTest> {
  const port = await freePort()
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const clients: Redis[] = []
  const client = (): Redis => {
    const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => null })
    clients.push(redis)
    return redis
  }
  // Ready when it answers a PING (bounded: 5 s).
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
    throw new Error(`redis-server did not start on port ${port} within 5 s`)
  }
  return {
    port,
    client,
    async stop() {
      for (const redis of clients) redis.disconnect()
      child.kill('SIGTERM')
      await exited
    },
  }
}
