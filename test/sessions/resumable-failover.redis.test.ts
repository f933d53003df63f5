// Failover between two gateway processes sharing a real Redis: gateway A applies a request, records its
// response in Redis and dies (SIGKILL) before answering. The client reconnects down its connect token's
// list to gateway B and continues its session there; B answers the request from A's record: applied once.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import { Client, generateConnectToken, generateKey } from '../../src/index.ts'
import { startRedisServer, type RedisServer } from '../../src/cli/redis-server.ts'
import { demoChannels, demoProtocolId } from '../../src/cli/sessions-gateway.ts'
import { ConnectionManager } from '../../src/sessions/connection-manager.ts'
import { SessionClient } from '../../src/sessions/resumable/client.ts'
import { ClientTransport } from '../../src/sessions/volley-transport.ts'
import { waitFor, within } from '../helpers.ts'

const fixture = join(import.meta.dirname, '../fixtures/resumable-gateway.ts')
const prefix = 'failover:{rs}:'
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function gatewayProcess(name: string, redis: RedisServer, key: Uint8Array): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, '--name', name, '--redis-port', String(redis.port), '--prefix', prefix, '--gateway-ttl-ms', '2000'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, VOLLEY_DEMO_KEY: Buffer.from(key).toString('hex') },
  })
  cleanups.push(() => void child.kill('SIGKILL'))
  const [line] = (await within(once(createInterface({ input: child.stdout! }), 'line'), 15_000, `gateway ${name} listening`)) as [string]
  return { port: (JSON.parse(line) as { port: number }).port, child }
}

describe('resumable sessions: failover between gateway processes through Redis', () => {
  it('answers a request that the dead gateway applied and recorded from its record, without applying it again', async () => {
    const redis = await startRedisServer()
    cleanups.push(() => redis.stop())
    const key = await generateKey()
    const [a, b] = await Promise.all([gatewayProcess('A', redis, key), gatewayProcess('B', redis, key)])
    const manager = new ConnectionManager<ClientTransport>({
      backoff: { initialMs: 100, maxMs: 500 },
      connect: async ({ signal }) => {
        const client = new Client({ channels: demoChannels })
        cleanups.push(() => client.close())
        const token = await generateConnectToken({
          protocolId: demoProtocolId,
          privateKey: key,
          clientId: 5n,
          serverAddresses: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
          expireSeconds: 60,
          timeoutSeconds: 1,
        })
        await client.connect(token, { signal })
        return new ClientTransport(client)
      },
    })
    cleanups.push(() => manager.close())
    const session = new SessionClient({ capabilities: { test: 'failover' }, connection: manager })
    manager.start()
    await waitFor(() => session.state === 'connected', 10_000, 'the session at A')
    const read = (data: Uint8Array): string => Buffer.from(data).toString()
    expect(read(await session.request(Buffer.from('first')))).toBe('first@A')

    const exited = once(a.child, 'exit')
    const answer = session.request(Buffer.from('die'))
    const [, signal] = (await within(exited, 10_000, 'gateway A to die')) as [number | null, string | null]
    expect(signal).toBe('SIGKILL')
    expect(read(await within(answer, 15_000, 'the answer from B'))).toBe('die@A')
    expect(read(await session.request(Buffer.from('after')))).toBe('after@B')
    expect(session.stats().connections).toBe(2)

    // The handler ran once for each request: A's run of "die" was recorded, and B did not run it again.
    const runs = await redis.client().hgetall(`${prefix}runs`)
    expect(Object.values(runs)).toEqual(['1', '1', '1'])
    await session.close()
  })
})
