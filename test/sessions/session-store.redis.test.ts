// The SessionStore contract on Redis: a real redis-server of the suite's own, a fresh key prefix per test.
import { afterAll, beforeAll, describe } from 'vitest'
import { RedisSessionStore } from '../../src/sessions/resumable/redis-store.ts'
import { startRedis, type RedisUnderTest } from './redis-server.ts'
import { sessionStoreSuite } from './session-store-suite.ts'

let redis: RedisUnderTest
beforeAll(async () => {
  redis = await startRedis()
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
