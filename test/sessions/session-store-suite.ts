// The SessionStore contract, one suite for every store: the in-memory one (npm test) and Redis
// (npm run test:redis, on a real redis-server).
import { expect, it } from 'vitest'
import type { SessionStore, StoreTick, StoredSession } from '../../src/sessions/resumable/store.ts'

export interface StoreUnderTest {
  store: SessionStore
  cleanup(): Promise<void>
}

const T = 1705680000000

function session(sessionId: string, overrides: Partial<StoredSession> = {}): StoredSession {
  return { sessionId, clientId: 7n, capabilities: new Map([['app', 'test']]), expiresAt: T + 90_000, evictedBelow: 0, ...overrides }
}

function tick(overrides: Partial<StoreTick> = {}): StoreTick {
  return { now: T, gatewayTtlMs: 5_000, expiries: [], expired: [], evictions: [], graceExpiresAt: T + 30_000, takeOverLimit: 10_000, ...overrides }
}

/** Waits for a condition that another connection (a Redis subscription) makes true, bounded. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; waited < 5_000; waited += 10) {
    if (condition()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export function sessionStoreSuite(make: () => Promise<StoreUnderTest>): void {
  const withStore = (test: (store: SessionStore) => Promise<void>) => async () => {
    const { store, cleanup } = await make()
    try {
      await test(store)
    } finally {
      await cleanup()
    }
  }

  it(
    'keeps what it was given: client id (none, and a full u64), capabilities in UTF-8, expiry, evictedBelow',
    withStore(async (store) => {
      const capabilities = new Map([
        ['région', 'Zürich 😀'],
        ['empty', ''],
      ])
      await store.create('A', session('s1', { clientId: 2n ** 64n - 1n, capabilities, evictedBelow: 5 }))
      await store.create('A', session('s2', { clientId: undefined }))
      const claimed = await store.claim('A', 's1', 2n ** 64n - 1n, T, T + 1_000)
      expect(claimed).toEqual({ sessionId: 's1', clientId: 2n ** 64n - 1n, capabilities, expiresAt: T + 1_000, evictedBelow: 5, previousGateway: 'A', responses: new Map() })
      expect(await store.claim('A', 's2', undefined, T, T + 1_000)).toMatchObject({ sessionId: 's2', clientId: undefined })
    }),
  )

  it(
    'refuses a claim of an unknown or expired session (not-found) and of another client’s (foreign-client), touching nothing',
    withStore(async (store) => {
      await store.create('A', session('s1'))
      expect(await store.claim('B', 'nope', 7n, T, T + 1)).toBe('not-found')
      expect(await store.claim('B', 's1', 8n, T, T + 1)).toBe('foreign-client')
      expect(await store.claim('B', 's1', undefined, T, T + 1)).toBe('foreign-client')
      expect(await store.claim('B', 's1', 7n, T + 90_001, T + 100_000)).toBe('not-found')
      // Still A's, with its expiry: the refusals moved nothing.
      expect(await store.expire('B', 's1')).toBe(false)
      expect(await store.claim('A', 's1', 7n, T + 90_000, T + 180_000)).toMatchObject({ previousGateway: 'A' })
    }),
  )

  it(
    'moves a claimed session to the claimer and tells the gateway that had it',
    withStore(async (store) => {
      const lostAtA: string[] = []
      const stop = store.onClaimedAway('A', (sessionId) => lostAtA.push(sessionId))
      try {
        // A subscription over a network is made asynchronously: a claim before it is live would go unheard.
        await new Promise((resolve) => setTimeout(resolve, 100))
        await store.create('A', session('s1'))
        expect(await store.claim('B', 's1', 7n, T, T + 5_000)).toMatchObject({ previousGateway: 'A', expiresAt: T + 5_000 })
        await until(() => lostAtA.length === 1, "A's notice")
        expect(lostAtA).toEqual(['s1'])
        // A's next tick lists it as lost too; A can no longer expire it, B can, once.
        expect((await store.tick('A', tick({ expiries: [['s1', T + 9]] }))).lost).toEqual(['s1'])
        expect(await store.expire('A', 's1')).toBe(false)
        expect(await store.expire('B', 's1')).toBe(true)
        expect(await store.expire('B', 's1')).toBe(false)
      } finally {
        stop()
      }
    }),
  )

  it(
    'records the first response to a request and returns it to every later writer, bytes intact',
    withStore(async (store) => {
      await store.create('A', session('s1'))
      const every = Uint8Array.from({ length: 256 }, (_, index) => index)
      expect(await store.recordResponse('s1', 1, every)).toEqual(every)
      expect(await store.recordResponse('s1', 1, Uint8Array.of(9))).toEqual(every)
      expect(await store.recordResponse('s1', 2, new Uint8Array(0))).toEqual(new Uint8Array(0))
      const claimed = await store.claim('B', 's1', 7n, T, T + 1)
      expect(claimed).toMatchObject({ responses: new Map([[1, every], [2, new Uint8Array(0)]]) })
      // A session that is gone keeps nothing, and the writer gets its own result back.
      expect(await store.recordResponse('gone', 1, Uint8Array.of(1))).toEqual(Uint8Array.of(1))
    }),
  )

  it(
    'batches a tick: expiries move, evictions drop responses below, expired sessions end once across gateways',
    withStore(async (store) => {
      await store.create('A', session('s1', { expiresAt: T + 10 }))
      await store.create('A', session('s2'))
      await store.recordResponse('s1', 1, Uint8Array.of(1))
      await store.recordResponse('s1', 2, Uint8Array.of(2))
      await store.recordResponse('s1', 3, Uint8Array.of(3))
      const result = await store.tick('A', tick({ expiries: [['s1', T + 60_000], ['unknown', T]], evictions: [['s1', 3]], expired: ['s2'] }))
      expect(result).toEqual({ lost: ['unknown'], ended: ['s2'], taken: [] })
      // The new expiry holds: a claim after the old one succeeds; the evicted responses are gone, and stay gone.
      const claimed = await store.claim('A', 's1', 7n, T + 1_000, T + 2_000)
      expect(claimed).toMatchObject({ evictedBelow: 3, responses: new Map([[3, Uint8Array.of(3)]]) })
      expect(await store.recordResponse('s1', 2, Uint8Array.of(22))).toEqual(Uint8Array.of(22))
      expect(await store.claim('A', 's1', 7n, T + 1_000, T + 2_000)).toMatchObject({ responses: new Map([[3, Uint8Array.of(3)]]) })
      // Expiring what is gone or another's ends nothing; racing gateways end a session once.
      await store.create('B', session('s3'))
      const raced = await Promise.all([store.tick('A', tick({ expired: ['s2', 's3'] })), store.expire('B', 's3'), store.expire('B', 's3')])
      expect([raced[0].ended, raced[1], raced[2]]).toEqual([[], true, false])
    }),
  )

  it(
    'hands a gone gateway’s sessions to the next gateway that ticks, with the grace expiry, a limited number a tick',
    withStore(async (store) => {
      await store.tick('A', tick())
      for (let index = 0; index < 5; index++) await store.create('A', session(`s${index}`, { evictedBelow: index }))
      await store.recordResponse('s0', 1, Uint8Array.of(1))
      // A is still fresh: nothing is taken.
      expect((await store.tick('B', tick({ now: T + 4_999 }))).taken).toEqual([])
      const first = await store.tick('B', tick({ now: T + 5_001, graceExpiresAt: T + 40_000, takeOverLimit: 3 }))
      const second = await store.tick('B', tick({ now: T + 6_000, graceExpiresAt: T + 41_000, takeOverLimit: 3 }))
      expect(first.taken).toHaveLength(3)
      expect(second.taken).toHaveLength(2)
      const taken = [...first.taken, ...second.taken].sort((x, y) => x.sessionId.localeCompare(y.sessionId))
      expect(taken.map((entry) => entry.sessionId)).toEqual(['s0', 's1', 's2', 's3', 's4'])
      expect(taken.map((entry) => entry.evictedBelow)).toEqual([0, 1, 2, 3, 4])
      expect(taken[0]).toMatchObject({ clientId: 7n, capabilities: new Map([['app', 'test']]) })
      expect(first.taken.every((entry) => entry.expiresAt === T + 40_000)).toBe(true)
      // They are B's now: their responses came along, A's late tick finds them lost, and a third gateway takes nothing.
      expect(await store.claim('B', 's0', 7n, T + 6_000, T + 7_000)).toMatchObject({ previousGateway: 'B', responses: new Map([[1, Uint8Array.of(1)]]) })
      expect((await store.tick('A', tick({ now: T + 7_000, expiries: [['s1', T + 97_000]] }))).lost).toEqual(['s1'])
      expect((await store.tick('C', tick({ now: T + 7_000 }))).taken).toEqual([])
    }),
  )
}
