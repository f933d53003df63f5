// The SessionStore contract on the in-memory store (Redis: test/sessions/session-store.redis.test.ts).
import { describe } from 'vitest'
import { MemorySessionStore } from '../../src/sessions/resumable/store.ts'
import { sessionStoreSuite } from './session-store-suite.ts'

describe('MemorySessionStore', () => {
  sessionStoreSuite(async () => ({ store: new MemorySessionStore(), cleanup: async () => {} }))
})
