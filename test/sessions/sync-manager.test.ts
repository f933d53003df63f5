// SyncManager on a fake clock against a hand-played agent: every rule of research §B.3 (StartAck Ok, Error
// and Offline, sizes, gaps and ReqRet, Processing, completion by data after End, ModuleCheck, the idle
// sweep), then agent and manager together over a lossy link.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../helpers.ts'
import { FakeClock } from '../../src/sessions/timers.ts'
import { MemoryTransport } from '../../src/sessions/transport.ts'
import { SyncManager, type SyncManagerOptions } from '../../src/sessions/sync/manager.ts'
import { SYNC_NO_SESSION } from '../../src/sessions/sync/settings.ts'
import { MemorySyncSink, documentHash, inventoryChecksum, type SyncSink } from '../../src/sessions/sync/sink.ts'
import { SqliteSyncSink } from '../../src/sessions/sync/sqlite-sink.ts'
import { SyncEncoder, type DataValueMessage, type StartMessage, type SyncMessage, type SyncMode } from '../../src/sessions/sync/wire.ts'
import { INDEX, OTHER_INDEX, SyncBench, settle, tap } from './sync-harness.ts'

const encoder = new SyncEncoder()

function startOf(mode: SyncMode, size: number, agentid = '007', index = [INDEX]): StartMessage {
  return {
    type: 'start', module: 'syscollector', mode, size, index, option: 'sync', architecture: '', hostname: '', osname: '', osplatform: '', ostype: '',
    osversion: '', agentversion: '', agentname: '', agentid, groups: ['default'], globalVersion: 0n, clusterName: '', clusterNode: '',
  }
}

/** A manager and an agent's connection to it, played by hand. */
class Played {
  readonly clock = new FakeClock(0)
  readonly manager: SyncManager
  readonly agent: MemoryTransport
  readonly replies: SyncMessage[]

  constructor(options: SyncManagerOptions = {}, manager?: SyncManager) {
    this.manager = manager ?? new SyncManager({ scheduler: this.clock, ...options })
    const [agent, managerSide] = MemoryTransport.pair({ maxMessageBytes: 65_536 })
    this.agent = agent
    this.replies = tap(agent)
    this.manager.accept(managerSide)
  }

  send(message: SyncMessage): void {
    this.agent.send(encoder.encode(message).slice())
  }

  /** Start, and the session id of its StartAck. */
  open(mode: SyncMode, size: number, agentid = '007'): bigint {
    this.send(startOf(mode, size, agentid))
    const ack = this.replies.at(-1)!
    expect(ack).toMatchObject({ type: 'start-ack', status: 'ok' })
    return (ack as Extract<SyncMessage, { type: 'start-ack' }>).session
  }

  values(session: bigint, seqs: number[], index = INDEX): void {
    const values: DataValueMessage[] = seqs.map((seq) => ({
      type: 'data-value', seq, session, operation: 'upsert', id: `doc-${seq}`, index, version: 0n, data: new TextEncoder().encode(`{"n":${seq}}`),
    }))
    this.send({ type: 'data-batch', values })
  }

  last(): SyncMessage | undefined {
    return this.replies.at(-1)
  }
}

describe('SyncManager: Start', () => {
  it('opens a session with a random u64 id, and refuses an invalid size with Error carrying a fresh id', () => {
    const played = new Played()
    const ids = new Set([played.open('module-delta', 3), played.open('module-delta', 3, '008'), played.open('module-check', 0, '009')])
    expect(ids.size).toBe(3)
    for (const id of ids) expect(id).not.toBe(SYNC_NO_SESSION)
    for (const mode of ['module-full', 'module-delta'] as const) {
      played.send(startOf(mode, 0, '010'))
      const ack = played.last() as Extract<SyncMessage, { type: 'start-ack' }>
      expect(ack.status).toBe('error')
      expect(ack.session).not.toBe(SYNC_NO_SESSION)
    }
    for (const mode of ['metadata-delta', 'metadata-check', 'group-delta', 'group-check'] as const) {
      played.send(startOf(mode, 0, '011'))
      expect(played.last()).toMatchObject({ type: 'start-ack', status: 'ok' })
    }
    expect(played.manager.stats().startAcks).toEqual({ ok: 7, error: 2, offline: 0 })
  })

  it('answers Offline (no session) at the session limit, past the items quota, and while the sink is unavailable', () => {
    const limited = new Played({ maxSessions: 1 })
    limited.open('module-delta', 1)
    limited.send(startOf('module-delta', 1, '008'))
    expect(limited.last()).toEqual({ type: 'start-ack', status: 'offline', session: SYNC_NO_SESSION })

    const quota = new Played({ maxPendingItems: 100 })
    quota.open('module-delta', 60)
    quota.send(startOf('module-delta', 41, '008'))
    expect(quota.last()).toMatchObject({ status: 'offline', session: SYNC_NO_SESSION })

    let available = false
    const sink = new MemorySyncSink()
    const down = new Played({ sink: Object.assign(sink, { available: () => available }) as SyncSink })
    down.send(startOf('module-delta', 1))
    expect(down.last()).toMatchObject({ status: 'offline', session: SYNC_NO_SESSION })
    available = true
    down.open('module-delta', 1)
  })

  it("drops an agent's stale session of the same module at a new Start, and is locked (Error, no session) while its copy is applied", async () => {
    let release = (): void => {}
    const sink = new MemorySyncSink()
    const slow: SyncSink = {
      stage: (session, item) => sink.stage(session, item),
      discard: (session) => sink.discard(session),
      checksum: (agentId, index) => sink.checksum(agentId, index),
      commit: (session) => new Promise<void>((resolve) => (release = () => resolve(sink.commit(session)))),
    }
    const played = new Played({ sink: slow })
    const stale = played.open('module-delta', 2)
    const fresh = played.open('module-delta', 1)
    played.values(stale, [0])
    expect(played.manager.stats().dropped['unknown-session']).toBe(1)
    played.values(fresh, [0])
    played.send({ type: 'end', session: fresh })
    expect(played.last()).toEqual({ type: 'end-ack', status: 'processing', session: fresh })
    played.send(startOf('module-delta', 1))
    expect(played.last()).toEqual({ type: 'start-ack', status: 'error', session: SYNC_NO_SESSION })
    release()
    await settle()
    expect(played.last()).toEqual({ type: 'end-ack', status: 'ok', session: fresh })
    played.open('module-delta', 1)
  })
})

describe('SyncManager: data, gaps and End', () => {
  it('answers End with the gaps as ReqRet ranges, and completes by itself when data fills the last gap', async () => {
    const played = new Played()
    const session = played.open('module-delta', 10)
    played.values(session, [0, 9, 4, 5])
    played.send({ type: 'end', session })
    expect(played.last()).toEqual({ type: 'req-ret', ranges: [{ begin: 1, end: 3 }, { begin: 6, end: 8 }], session })
    played.values(session, [1, 2, 3, 6, 7])
    expect(played.last()!.type).toBe('req-ret')
    played.values(session, [8])
    expect(played.last()).toEqual({ type: 'end-ack', status: 'processing', session })
    await settle()
    expect(played.last()).toEqual({ type: 'end-ack', status: 'ok', session })
    played.send({ type: 'end', session })
    expect(played.last()).toEqual({ type: 'end-ack', status: 'ok', session }) // the verdict again, for a lost EndAck
    expect(played.manager.stats()).toMatchObject({ completed: 1, sessions: 0, retransmitRequests: 1, retransmitRequestedItems: 6 })
  })

  it('answers End again with Processing while the session is applied', () => {
    const played = new Played({ sink: Object.assign(new MemorySyncSink(), { commit: () => new Promise<void>(() => {}) }) })
    const session = played.open('module-delta', 1)
    played.values(session, [0])
    played.send({ type: 'end', session })
    played.send({ type: 'end', session })
    expect(played.replies.slice(-2)).toEqual([{ type: 'end-ack', status: 'processing', session }, { type: 'end-ack', status: 'processing', session }])
  })

  it('drops seqs at or past the size, duplicates, unknown and foreign sessions, and malformed buffers, counting each and saying each once', () => {
    const played = new Played()
    const warnings: string[] = []
    played.manager.on('warning', (warning) => warnings.push(warning.reason))
    const session = played.open('module-delta', 2)
    played.values(session, [0, 0, 2, 5])
    played.values(session + 1n, [1])
    const other = new Played({}, played.manager)
    other.values(session, [1])
    played.agent.send(Uint8Array.of(9, 9, 9, 9, 9, 9, 9, 9))
    played.agent.send(Uint8Array.of(9, 9, 9, 9, 9, 9, 9, 9))
    played.send({ type: 'start-ack', status: 'ok', session })
    expect(played.manager.stats().dropped).toMatchObject({
      duplicate: 1, 'seq-out-of-range': 2, 'unknown-session': 1, 'foreign-session': 1, 'out-of-bounds': 2, 'unexpected-type': 1,
    })
    expect(warnings.sort()).toEqual(['duplicate', 'foreign-session', 'out-of-bounds', 'seq-out-of-range', 'unexpected-type', 'unknown-session'])
    // Nothing dropped reached the sink, and the session is whole once its one missing seq comes.
    played.values(session, [1])
    played.send({ type: 'end', session })
    expect(played.last()).toMatchObject({ type: 'end-ack', status: 'processing' })
  })

  it("counts a value for an index the Start did not name, or the manager does not accept, as received but stores it not", async () => {
    const sink = new MemorySyncSink()
    const played = new Played({ sink })
    played.send({ ...startOf('module-delta', 3), index: [INDEX, 'customer-secrets'] })
    const session = (played.last() as Extract<SyncMessage, { type: 'start-ack' }>).session
    played.values(session, [0])
    played.values(session, [1], OTHER_INDEX) // not in the Start
    played.values(session, [2], 'customer-secrets') // in the Start, not accepted
    played.send({ type: 'end', session })
    await settle()
    expect(played.last()).toEqual({ type: 'end-ack', status: 'ok', session })
    expect(played.manager.stats().dropped['filtered-index']).toBe(2)
    expect([...sink.documents('007').keys()]).toEqual([INDEX])
    expect([...sink.documents('007').get(INDEX)!.keys()]).toEqual(['doc-0'])
  })

  it('asks again for what is still missing after repairIntervalMs without a new item, a bounded number of times', () => {
    const played = new Played({ repairIntervalMs: 500 })
    const session = played.open('module-delta', 4)
    played.values(session, [0])
    played.send({ type: 'end', session })
    const requests = () => played.replies.filter((reply) => reply.type === 'req-ret').length
    expect(requests()).toBe(1)
    played.clock.advance(500)
    expect(requests()).toBe(2)
    played.values(session, [1]) // progress: the next round waits a whole interval again
    played.clock.advance(499)
    expect(requests()).toBe(2)
    played.clock.advance(1)
    expect(requests()).toBe(2) // items arrived during the interval: one more interval
    played.clock.advance(500)
    expect(requests()).toBe(3)
    expect(played.last()).toEqual({ type: 'req-ret', ranges: [{ begin: 2, end: 3 }], session })
    played.clock.advance(60_000)
    expect(requests()).toBe(12) // ten rounds without news (3 to 12), then it waits for the agent's End
    played.send({ type: 'end', session })
    expect(requests()).toBe(13)
  })

  it('splits the gaps over ReqRets that fit the connection, asking for the next ones as the first fill', () => {
    const played = new Played({ maxRangesPerRequest: 3 })
    const session = played.open('module-delta', 20)
    played.values(session, [1, 3, 5, 7, 9, 11])
    played.send({ type: 'end', session })
    expect(played.last()).toEqual({ type: 'req-ret', ranges: [{ begin: 0, end: 0 }, { begin: 2, end: 2 }, { begin: 4, end: 4 }], session })
    played.values(session, [0, 2])
    expect(played.replies.filter((reply) => reply.type === 'req-ret')).toHaveLength(1)
    played.values(session, [4])
    expect(played.last()).toEqual({ type: 'req-ret', ranges: [{ begin: 6, end: 6 }, { begin: 8, end: 8 }, { begin: 10, end: 10 }], session })
  })

  it('sweeps sessions idle for longer than idleTimeoutMs, every sweepIntervalMs, with their staged items', () => {
    const sink = new MemorySyncSink()
    const played = new Played({ sink })
    const expired: bigint[] = []
    played.manager.on('sessionExpired', ({ session }) => expired.push(session.id))
    const idle = played.open('module-delta', 2)
    played.values(idle, [0])
    played.clock.advance(600_000)
    const busy = played.open('module-delta', 2, '008')
    played.clock.advance(600_000) // idle for exactly 1,200 s: kept
    played.values(busy, [0])
    expect(expired).toEqual([])
    played.clock.advance(600_000)
    expect(expired).toEqual([idle])
    expect(sink.stagedSessions).toBe(1)
    played.values(idle, [1])
    expect(played.manager.stats()).toMatchObject({ expired: 1, sessions: 1, dropped: { 'unknown-session': 1 } })
  })
})

const sinks: [string, () => SyncSink][] = [
  ['MemorySyncSink', () => new MemorySyncSink()],
  ['SqliteSyncSink', () => new SqliteSyncSink(':memory:')],
]

describe.each(sinks)('SyncManager: what a session means to the sink (%s)', (_name, makeSink) => {
  it('applies a delta in seq order, a full sync as a replacement of its indices, and a DataClean as the removal of an index', async () => {
    const bench = new SyncBench({ agent: { syncEndDelayMs: 0 }, manager: { sink: makeSink() } })
    const { agent } = bench
    agent.persistDifference('keep', 'create', INDEX, 'k')
    agent.persistDifference('old', 'create', INDEX, 'o')
    agent.persistDifference('port', 'create', OTHER_INDEX, 'p')
    expect((await bench.run(agent.synchronizeModule('delta'))).success).toBe(true)
    agent.persistDifference('old', 'delete', INDEX, '')
    agent.persistDifference('keep', 'modify', INDEX, 'k2')
    expect((await bench.run(agent.synchronizeModule('delta'))).success).toBe(true)
    expect(bench.copy()).toEqual({ [INDEX]: { keep: 'k2' }, [OTHER_INDEX]: { port: 'p' } })
    agent.persistDifferenceInMemory('fresh', 'create', INDEX, 'f')
    expect((await bench.run(agent.synchronizeModule('full'))).success).toBe(true)
    expect(bench.copy()).toEqual({ [INDEX]: { fresh: 'f' }, [OTHER_INDEX]: { port: 'p' } })
    expect((await bench.run(agent.notifyDataClean([OTHER_INDEX]))).success).toBe(true)
    expect(bench.copy()).toEqual({ [INDEX]: { fresh: 'f' } })
    await agent.close()
  })

  it('ModuleCheck: Ok when the checksums match; ChecksumMismatch after checksumAttempts, checksumRetryMs apart; Error without a checksum', async () => {
    const bench = new SyncBench({ agent: { syncEndDelayMs: 0 }, manager: { sink: makeSink() } })
    const { agent } = bench
    agent.persistDifference('a', 'create', INDEX, 'alpha')
    agent.persistDifference('b', 'create', INDEX, 'beta')
    await bench.run(agent.synchronizeModule('delta'))
    const checksum = inventoryChecksum(['alpha', 'beta'].map((text) => documentHash(new TextEncoder().encode(text))))
    expect(await bench.run(agent.requiresFullSync(INDEX, checksum))).toBe(false)
    const t0 = bench.clock.now()
    expect(await bench.run(agent.requiresFullSync(INDEX, 'f'.repeat(40)))).toBe(true)
    expect(bench.clock.now() - t0).toBe(40_000) // five comparisons, 10 s apart
    await agent.close()

    const played = new Played({ sink: makeSink() })
    const session = played.open('module-check', 0)
    played.send({ type: 'end', session })
    await settle()
    expect(played.last()).toEqual({ type: 'end-ack', status: 'error', session })
  })
})

describe('agent and manager over a lossy link', () => {
  it('a 10,000-item delta over 5 % loss each way ends with the manager holding exactly the agent\'s documents', async () => {
    const random = seededRandom(5)
    const bench = new SyncBench({ filter: () => random() >= 0.05, agent: { syncEndDelayMs: 100, maxBatchBytes: 1200, responseTimeoutMs: 5000, retries: 10 } })
    const { agent, manager } = bench
    const expected: Record<string, string> = {}
    agent.persistDifferences(Array.from({ length: 10_000 }, (_, i) => {
      expected[`doc-${i}`] = `{"n":${i},"pad":"${'x'.repeat(100)}"}`
      return [`doc-${i}`, 'create', INDEX, expected[`doc-${i}`]!] as const
    }))
    let result = await bench.run(agent.synchronizeModule('delta'))
    // A Start or its StartAck may be lost more often than the retries allow; the next sync takes the rows again.
    for (let attempt = 0; !result.success && attempt < 5; attempt++) result = await bench.run(agent.synchronizeModule('delta'))
    expect(result.success).toBe(true)
    expect(bench.copy()).toEqual({ [INDEX]: expected })
    expect(agent.stats().itemsResent).toBeGreaterThan(0)
    expect(manager.stats().retransmitRequests).toBeGreaterThan(0)
    await agent.close()
  })
})

describe('SqliteSyncSink', () => {
  it('keeps the documents across a reopen; what was staged for a session that never completed is no document', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'volley-sync-sink-'))
    try {
      const path = join(dir, 'manager.db')
      const sink = new SqliteSyncSink(path)
      const bench = new SyncBench({ agent: { syncEndDelayMs: 0 }, manager: { sink } })
      bench.agent.persistDifferences(Array.from({ length: 300 }, (_, i) => [`doc-${i}`, 'create', INDEX, `{"n":${i}}`] as const))
      expect((await bench.run(bench.agent.synchronizeModule('delta'))).success).toBe(true)
      const played = new Played({ sink }, bench.manager)
      const session = played.open('module-delta', 5, '008')
      played.values(session, [0, 1])
      await settle()
      sink.close() // as a process ending would: the session open, its items staged
      await bench.agent.close()

      const reopened = new SqliteSyncSink(path)
      expect(reopened.counts('007')).toEqual(new Map([[INDEX, 300]]))
      expect(new TextDecoder().decode(reopened.documents('007').get(INDEX)!.get('doc-299')!.data)).toBe('{"n":299}')
      expect(reopened.counts('008')).toEqual(new Map())
      reopened.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
