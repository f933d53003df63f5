// The SessionStore contract on Redis: a real redis-server of the suite's own, a fresh key prefix per test.
import { afterAll, beforeAll, describe } from 'vitest'
import { RedisSessionStore } from '../../src/sessions/resumable/redis-store.ts'
import { startRedisServer, type RedisServer } from '../../src/cli/redis-server.ts'
import { sessionStoreSuite } from './session-store-suite.ts'

let redis: RedisServer
beforeAll(async () => {
  redis = await startRedisServer()
})
afterAll(async () => {
  await redis?.stop()
})

let run = 0
describe('RedisSessionStore', () => {
  sessionStoreSuite(async () => {
    const client = redis.client()
    const store = new RedisSessionStore(client, { prefix: `test${++run}:{rs}:` })
    return { store, cleanup: async () => void (await client.quit()) }
  })
})
