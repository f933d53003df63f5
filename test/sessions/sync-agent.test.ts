// SyncAgent on a fake clock against a hand-played manager: every rule of research §B.2 (numbering, Start,
// retries and timeouts, Processing, ReqRet, batches, maxEps, phases, results) and the durable queue's
// coalescing across a restart.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { SyncAgent, type SyncResult } from '../../src/sessions/sync/agent.ts'
import { SYNC_NO_SESSION } from '../../src/sessions/sync/settings.ts'
import { estimatedValueBytes, type DataBatchMessage, type SyncMessage } from '../../src/sessions/sync/wire.ts'
import { HandPlayed, INDEX, OTHER_INDEX, metadata } from './sync-harness.ts'

const session = 0x1234_5678_9abc_def0n
const work = mkdtempSync(join(tmpdir(), 'volley-sync-agent-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

/** A manager that opens the session and takes it: StartAck Ok, then EndAck Ok for End. */
function cooperative(message: SyncMessage): SyncMessage[] {
  if (message.type === 'start') return [{ type: 'start-ack', status: 'ok', session }]
  if (message.type === 'end') return [{ type: 'end-ack', status: 'ok', session }]
  return []
}

const seqsOf = (messages: SyncMessage[]): number[] =>
  messages.flatMap((message) => (message.type === 'data-batch' ? message.values.map((value) => value.seq) : 'seq' in message ? [message.seq] : []))

describe('SyncAgent: a delta sync', () => {
  it('numbers the items from 0 in the order recorded (a context between two batches), sends Start.size and the sorted indices, and clears the queue on EndAck Ok', async () => {
    const bench = new HandPlayed()
    bench.answer = cooperative
    const { agent } = bench
    agent.persistDifference('b', 'create', OTHER_INDEX, '{"b":1}')
    agent.persistDifference('ctx', 'create', INDEX, 'context', 0n, true)
    agent.persistDifference('a', 'modify', INDEX, '{"a":1}', 4n)
    const result = await bench.run(agent.synchronizeModule('delta'))
    expect(result).toEqual({ success: true, failureReason: null, message: 'Synced', stopped: false, managerNotReady: false, consecutiveFailures: 0 })
    expect(bench.types()).toEqual(['start', 'data-batch', 'data-context', 'data-batch', 'end'])
    const [start, first, context, second] = bench.received as [Extract<SyncMessage, { type: 'start' }>, DataBatchMessage, Extract<SyncMessage, { type: 'data-context' }>, DataBatchMessage]
    expect(start).toMatchObject({ module: 'syscollector', mode: 'module-delta', size: 3, index: [INDEX, OTHER_INDEX], agentid: '007', groups: ['default'] })
    expect(first.values.map((value) => [value.seq, value.id, value.session])).toEqual([[0, 'b', session]])
    expect(context).toMatchObject({ seq: 1, id: 'ctx', session })
    expect(second.values).toEqual([expect.objectContaining({ seq: 2, id: 'a', session, operation: 'upsert', version: 4n, index: INDEX })])
    expect(agent.queue.counts()).toEqual({ pending: 0, syncing: 0, syncingUpdated: 0 })
    await agent.close()
  })

  it('succeeds without traffic when there is nothing to send, and skips a call made while a sync runs', async () => {
    const bench = new HandPlayed()
    bench.answer = cooperative
    expect((await bench.run(bench.agent.synchronizeModule('delta'))).success).toBe(true)
    expect(bench.received).toEqual([])
    bench.agent.persistDifference('a', 'create', INDEX, 'x')
    const first = bench.agent.synchronizeModule('delta')
    const second = await bench.agent.synchronizeModule('delta')
    expect(second).toMatchObject({ success: false, failureReason: 'busy', consecutiveFailures: 0 })
    expect((await bench.run(first)).success).toBe(true)
    await bench.agent.close()
  })

  it('builds batches of at most maxBatchBytes by the estimate (80 B + strings and data per item, 128 B per batch)', async () => {
    const bench = new HandPlayed({ maxBatchBytes: 4096 })
    bench.answer = cooperative
    const data = 'x'.repeat(300)
    bench.agent.persistDifferences(Array.from({ length: 100 }, (_, i) => [`doc-${String(i).padStart(3, '0')}`, 'create', INDEX, data] as const))
    await bench.run(bench.agent.synchronizeModule('delta'))
    const batches = bench.received.filter((message): message is DataBatchMessage => message.type === 'data-batch')
    expect(batches.length).toBeGreaterThan(5)
    for (const batch of batches) expect(128 + batch.values.reduce((sum, value) => sum + estimatedValueBytes(value), 0)).toBeLessThanOrEqual(4096)
    // Each batch is as full as the bound allows: one more item would not have fit.
    const perItem = estimatedValueBytes(batches[0]!.values[0]!)
    expect(batches[0]!.values.length).toBe(Math.floor((4096 - 128) / perItem))
    expect(seqsOf(bench.received)).toEqual(Array.from({ length: 100 }, (_, i) => i))
    await bench.agent.close()
  })

  it('pauses 1 s after every maxEps messages', async () => {
    const bench = new HandPlayed({ maxEps: 3, maxBatchBytes: 256 })
    const sentAt: number[] = []
    bench.answer = (message) => {
      sentAt.push(bench.clock.now())
      return cooperative(message)
    }
    bench.agent.persistDifferences(Array.from({ length: 6 }, (_, i) => [`d${i}`, 'create', INDEX, 'y'.repeat(100)] as const))
    const t0 = bench.clock.now()
    await bench.run(bench.agent.synchronizeModule('delta'))
    // Start, six one-item batches, End: eight messages, three a second.
    expect(bench.types()).toEqual(['start', ...Array(6).fill('data-batch'), 'end'])
    expect(sentAt.map((at) => at - t0)).toEqual([0, 0, 0, 1000, 1000, 1000, 2000, 2000])
    await bench.agent.close()
  })
})

describe('SyncAgent: Start', () => {
  it('sends Start retries + 1 times, responseTimeoutMs apart, then fails START_TIMEOUT with managerNotReady, and the rows wait for the next sync', async () => {
    const bench = new HandPlayed()
    bench.agent.persistDifference('a', 'create', INDEX, 'x')
    const t0 = bench.clock.now()
    const startsAt: number[] = []
    bench.answer = (message) => {
      startsAt.push(bench.clock.now() - t0)
      return []
    }
    const result = await bench.run(bench.agent.synchronizeModule('delta'))
    expect(startsAt).toEqual([0, 30_000, 60_000, 90_000])
    expect(bench.clock.now() - t0).toBe(120_000)
    expect(result).toMatchObject({
      success: false, failureReason: 'start-timeout', managerNotReady: true, consecutiveFailures: 1,
      message: 'Timed out waiting for manager response to Start message.',
    })
    expect(bench.agent.queue.counts()).toEqual({ pending: 1, syncing: 0, syncingUpdated: 0 })
    await bench.agent.close()
  })

  it('fails PROTOCOL_ERROR on StartAck Error, COMMUNICATION_ERROR and managerNotReady on Offline', async () => {
    for (const [status, reason, notReady] of [['error', 'protocol-error', false], ['offline', 'communication-error', true]] as const) {
      const bench = new HandPlayed()
      bench.answer = (message) => (message.type === 'start' ? [{ type: 'start-ack', status, session: SYNC_NO_SESSION }] : [])
      bench.agent.persistDifference('a', 'create', INDEX, 'x')
      expect(await bench.run(bench.agent.synchronizeModule('delta'))).toMatchObject({ success: false, failureReason: reason, managerNotReady: notReady })
      expect(bench.types()).toEqual(['start'])
      await bench.agent.close()
    }
  })

  it('fails NO_GROUPS when the agent is in no group, and waits (1 s polls) for metadata not known yet', async () => {
    const lonely = new HandPlayed({ metadata: { agentid: '1', groups: [] } })
    lonely.agent.persistDifference('a', 'create', INDEX, 'x')
    expect(await lonely.run(lonely.agent.synchronizeModule('delta'))).toMatchObject({ failureReason: 'no-groups' })
    expect(lonely.received).toEqual([])
    await lonely.agent.close()

    let asked = 0
    const late = new HandPlayed({ metadata: () => (++asked < 3 ? null : metadata) })
    late.answer = cooperative
    late.agent.persistDifference('a', 'create', INDEX, 'x')
    const t0 = late.clock.now()
    expect((await late.run(late.agent.synchronizeModule('delta'))).success).toBe(true)
    expect(asked).toBe(3)
    expect(late.clock.now() - t0).toBe(2000)
    await late.agent.close()
  })
})

describe('SyncAgent: End', () => {
  it('resends End on a timeout, using a retry each time, and fails END_TIMEOUT once they are spent', async () => {
    const bench = new HandPlayed()
    bench.agent.persistDifference('a', 'create', INDEX, 'x')
    bench.answer = (message) => (message.type === 'start' ? [{ type: 'start-ack', status: 'ok', session }] : [])
    const result = await bench.run(bench.agent.synchronizeModule('delta'))
    expect(bench.types()).toEqual(['start', 'data-batch', 'end', 'end', 'end', 'end'])
    expect(result).toMatchObject({ failureReason: 'end-timeout', managerNotReady: true, message: 'Timed out waiting for manager response to End message.' })
    expect(bench.agent.stats().retries).toBe(3)
    await bench.agent.close()
  })

  it('on a transport that loses messages, sends End again each second without an answer, using no retry', async () => {
    const bench = new HandPlayed({ retries: 0 }, true)
    bench.agent.persistDifference('a', 'create', INDEX, 'x')
    const endsAt: number[] = []
    bench.answer = (message) => {
      if (message.type === 'start') return [{ type: 'start-ack', status: 'ok', session }]
      if (message.type !== 'end') return []
      endsAt.push(bench.clock.now())
      // The first two Ends are lost; the third is answered.
      return endsAt.length < 3 ? [] : [{ type: 'end-ack', status: 'ok', session }]
    }
    const result = await bench.run(bench.agent.synchronizeModule('delta'))
    expect(result.success).toBe(true)
    expect(endsAt.map((at) => at - endsAt[0]!)).toEqual([0, 1000, 2000])
    expect(bench.agent.stats()).toMatchObject({ endRepeats: 2, retries: 0 })
    await bench.agent.close()
  })

  it('keeps waiting on EndAck Processing without resending End or using a retry', async () => {
    const bench = new HandPlayed({ retries: 1 })
    bench.agent.persistDifference('a', 'create', INDEX, 'x')
    bench.answer = (message) => {
      if (message.type === 'start') return [{ type: 'start-ack', status: 'ok', session }]
      if (message.type === 'end') {
        // Processing now and every 20 s (under the 30 s timeout) for two minutes, then Ok.
        for (let at = 20_000; at <= 120_000; at += 20_000) {
          const status = at === 120_000 ? 'ok' : 'processing'
          setTimeoutOnClock(bench, at, () => bench.send({ type: 'end-ack', status, session }))
        }
        return [{ type: 'end-ack', status: 'processing', session }]
      }
      return []
    }
    const result = await bench.run(bench.agent.synchronizeModule('delta'))
    expect(result.success).toBe(true)
    expect(bench.types().filter((type) => type === 'end')).toHaveLength(1)
    expect(bench.agent.stats().retries).toBe(0)
    await bench.agent.close()
  })

  it('answers a ReqRet with only its ranges, as DataBatch (contexts as DataValues), without End and without a retry', async () => {
    const bench = new HandPlayed({ retries: 0 })
    bench.agent.persistDifferences([
      ...Array.from({ length: 8 }, (_, i) => [`v${i}`, 'create', INDEX, `value ${i}`] as const),
      ['c0', 'create', INDEX, 'context 0', 0n, true] as const,
      ['c1', 'create', INDEX, 'context 1', 0n, true] as const,
    ])
    let asked = false
    bench.answer = (message) => {
      if (message.type === 'start') return [{ type: 'start-ack', status: 'ok', session }]
      if (message.type === 'end' && !asked) {
        asked = true
        return [{ type: 'req-ret', ranges: [{ begin: 1, end: 2 }, { begin: 7, end: 8 }], session }]
      }
      return []
    }
    const pending = bench.agent.synchronizeModule('delta')
    await bench.run(waitFor(() => bench.received.length >= 6))
    expect(bench.types()).toEqual(['start', 'data-batch', 'data-context', 'data-context', 'end', 'data-batch'])
    const resent = bench.received[5] as DataBatchMessage
    expect(resent.values.map((value) => [value.seq, value.id])).toEqual([[1, 'v1'], [2, 'v2'], [7, 'v7'], [8, 'c0']])
    bench.send({ type: 'end-ack', status: 'ok', session })
    expect((await bench.run(pending)).success).toBe(true)
    expect(bench.agent.stats()).toMatchObject({ retransmitRequests: 1, itemsResent: 4, retries: 0 })
    await bench.agent.close()
  })

  it('aborts with PROTOCOL_ERROR on a ReqRet that is empty, reversed, or names nothing the session has', async () => {
    for (const ranges of [[], [{ begin: 3, end: 1 }], [{ begin: 50, end: 60 }]]) {
      const bench = new HandPlayed()
      bench.agent.persistDifferences(Array.from({ length: 5 }, (_, i) => [`v${i}`, 'create', INDEX, 'x'] as const))
      bench.answer = (message) => {
        if (message.type === 'start') return [{ type: 'start-ack', status: 'ok', session }]
        if (message.type === 'end') return [{ type: 'req-ret', ranges, session }]
        return []
      }
      const result = await bench.run(bench.agent.synchronizeModule('delta'))
      expect(result).toMatchObject({ success: false, failureReason: 'protocol-error' })
      expect(bench.types()).toEqual(['start', 'data-batch', 'end'])
      expect(bench.agent.queue.counts().pending).toBe(5)
      await bench.agent.close()
    }
  })

  it('maps EndAck Error, Offline and ChecksumMismatch to their failures', async () => {
    for (const [status, reason, notReady] of [['error', 'protocol-error', false], ['offline', 'communication-error', true], ['checksum-mismatch', 'checksum-error', false]] as const) {
      const bench = new HandPlayed()
      bench.agent.persistDifference('a', 'create', INDEX, 'x')
      bench.answer = (message) => {
        if (message.type === 'start') return [{ type: 'start-ack', status: 'ok', session }]
        if (message.type === 'end') return [{ type: 'end-ack', status, session }]
        return []
      }
      expect(await bench.run(bench.agent.synchronizeModule('delta'))).toMatchObject({ success: false, failureReason: reason, managerNotReady: notReady })
      await bench.agent.close()
    }
  })

  it('drops replies out of phase or for another session, says so once, and keeps its phase', async () => {
    const bench = new HandPlayed()
    const warnings: string[] = []
    bench.agent.on('warning', (warning) => warnings.push(warning.reason))
    bench.agent.persistDifference('a', 'create', INDEX, 'x')
    bench.answer = (message) => {
      if (message.type === 'start') return [{ type: 'end-ack', status: 'ok', session }, { type: 'start-ack', status: 'ok', session }]
      if (message.type === 'end') {
        return [
          { type: 'end-ack', status: 'ok', session: session + 1n },
          { type: 'req-ret', ranges: [{ begin: 0, end: 0 }], session: 99n },
          { type: 'start-ack', status: 'ok', session },
          { type: 'end', session },
          { type: 'end-ack', status: 'ok', session },
        ]
      }
      return []
    }
    bench.far.send(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    expect((await bench.run(bench.agent.synchronizeModule('delta'))).success).toBe(true)
    expect(bench.agent.stats().dropped).toMatchObject({ 'out-of-phase': 2, 'wrong-session': 2, 'unexpected-type': 1, 'out-of-bounds': 1 })
    expect(warnings.sort()).toEqual(['out-of-bounds', 'out-of-phase', 'unexpected-type', 'wrong-session'])
    await bench.agent.close()
  })
})

describe('SyncAgent: results and the other entry points', () => {
  it('counts consecutive failures (not when stopped), resets them on success, and says warning from the third', async () => {
    const bench = new HandPlayed({ retries: 0, responseTimeoutMs: 1000 })
    const levels: string[] = []
    bench.agent.on('syncFailed', (_result, level) => levels.push(level))
    const results: SyncResult[] = []
    for (let i = 0; i < 4; i++) {
      bench.agent.persistDifference(`a${i}`, 'create', INDEX, 'x')
      results.push(await bench.run(bench.agent.synchronizeModule('delta')))
    }
    expect(results.map((result) => result.consecutiveFailures)).toEqual([1, 2, 3, 4])
    expect(levels).toEqual(['info', 'info', 'warning', 'warning'])
    const stopping = bench.agent.synchronizeModule('delta')
    await bench.run(waitFor(() => bench.received.length > 4))
    await bench.agent.stop()
    expect(await stopping).toMatchObject({ stopped: true, failureReason: 'stopped', consecutiveFailures: 4 })
    bench.answer = cooperative
    expect(await bench.run(bench.agent.synchronizeModule('delta'))).toMatchObject({ success: true, consecutiveFailures: 0 })
    await bench.agent.close()
  })

  it("a FULL sync sends what persistDifferenceInMemory recorded, and clears it whatever the result", async () => {
    const bench = new HandPlayed({ retries: 0, responseTimeoutMs: 1000 })
    bench.agent.persistDifferenceInMemory('m1', 'create', INDEX, 'one')
    bench.agent.persistDifferenceInMemory('m0', 'create', INDEX, 'zero', 0n, true)
    expect((await bench.run(bench.agent.synchronizeModule('full'))).failureReason).toBe('start-timeout')
    bench.answer = cooperative
    bench.received.length = 0
    expect((await bench.run(bench.agent.synchronizeModule('full'))).success).toBe(true)
    expect(bench.received).toEqual([]) // cleared by the failed sync: nothing left
    bench.agent.persistDifferenceInMemory('m1', 'create', INDEX, 'one')
    bench.agent.persistDifferenceInMemory('m0', 'create', INDEX, 'zero', 0n, true)
    expect((await bench.run(bench.agent.synchronizeModule('full'))).success).toBe(true)
    expect(bench.received[0]).toMatchObject({ type: 'start', mode: 'module-full', size: 2 })
    expect(seqsOf(bench.received)).toEqual([0, 1])
    expect(bench.received[2]).toMatchObject({ type: 'data-context', id: 'm0', seq: 1 })
    await bench.agent.close()
  })

  it('requiresFullSync: Start(ModuleCheck, size 0), ChecksumModule, End; true only on ChecksumMismatch', async () => {
    for (const [status, expected] of [['checksum-mismatch', true], ['ok', false], ['offline', false], [null, false]] as const) {
      const bench = new HandPlayed({ retries: 0, responseTimeoutMs: 1000 })
      bench.answer = (message) => {
        if (status === null) return []
        if (message.type === 'start') return [{ type: 'start-ack', status: status === 'offline' ? 'offline' : 'ok', session }]
        if (message.type === 'end') return [{ type: 'end-ack', status, session }]
        return []
      }
      expect(await bench.run(bench.agent.requiresFullSync(INDEX, 'ab'.repeat(20)))).toBe(expected)
      if (status === 'ok') {
        expect(bench.types()).toEqual(['start', 'checksum-module', 'end'])
        expect(bench.received[0]).toMatchObject({ mode: 'module-check', size: 0, index: [INDEX] })
        expect(bench.received[1]).toEqual({ type: 'checksum-module', session, index: INDEX, checksum: 'ab'.repeat(20) })
      }
      await bench.agent.close()
    }
  })

  it('synchronizeMetadataOrGroups: Start(size 0, global version) and End; only metadata and group modes', async () => {
    const bench = new HandPlayed()
    bench.answer = cooperative
    expect((await bench.run(bench.agent.synchronizeMetadataOrGroups('group-delta', 42n))).success).toBe(true)
    expect(bench.types()).toEqual(['start', 'end'])
    expect(bench.received[0]).toMatchObject({ mode: 'group-delta', size: 0, globalVersion: 42n })
    // @ts-expect-error: not a metadata or group mode
    await expect(bench.agent.synchronizeMetadataOrGroups('module-full')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' })
    await bench.agent.close()
  })

  it('notifyDataClean: one DataClean per index (seq i), and the queue forgets those indices on success', async () => {
    const bench = new HandPlayed()
    bench.answer = cooperative
    bench.agent.persistDifference('a', 'create', INDEX, 'x')
    bench.agent.persistDifference('b', 'create', OTHER_INDEX, 'y')
    expect((await bench.run(bench.agent.notifyDataClean([OTHER_INDEX, INDEX]))).success).toBe(true)
    expect(bench.received.slice(0, 3)).toEqual([
      expect.objectContaining({ type: 'start', mode: 'module-delta', size: 2, index: [INDEX, OTHER_INDEX] }),
      { type: 'data-clean', seq: 0, session, index: INDEX },
      { type: 'data-clean', seq: 1, session, index: OTHER_INDEX },
    ])
    expect(bench.agent.queue.counts().pending).toBe(0)
    await expect(bench.agent.notifyDataClean([])).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' })
    await bench.agent.close()
  })

  it('refuses bad arguments with typed errors', async () => {
    const bench = new HandPlayed()
    const { agent } = bench
    // @ts-expect-error: not an operation
    expect(() => agent.persistDifference('a', 'upsert', INDEX, 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => agent.persistDifference('', 'create', INDEX, 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    // @ts-expect-error: not bytes
    expect(() => agent.persistDifference('a', 'create', INDEX, 5)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => agent.persistDifference('a', 'create', INDEX, 'x', -1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    // @ts-expect-error: not a mode
    await expect(agent.synchronizeModule('fast')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' })
    // @ts-expect-error: no module
    expect(() => new SyncAgent({ metadata })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new SyncAgent({ module: 'm', metadata, retries: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    await agent.close()
    expect(() => agent.persistDifference('a', 'create', INDEX, 'x')).toThrow(expect.objectContaining({ code: 'ERR_SYNC_CLOSED' }))
  })
})

describe('SyncAgent: the durable queue', () => {
  it('coalesces: a create then delete of an unsent row sends nothing; an edit while syncing is sent again by the next sync', async () => {
    const bench = new HandPlayed()
    const { agent } = bench
    agent.persistDifference('gone', 'create', INDEX, 'x')
    agent.persistDifference('gone', 'delete', INDEX, 'x')
    agent.persistDifference('kept', 'create', INDEX, 'v1')
    let edited = false
    bench.answer = (message) => {
      if (message.type === 'data-batch' && !edited) {
        edited = true
        agent.persistDifference('kept', 'modify', INDEX, 'v2')
        expect(agent.queue.counts()).toEqual({ pending: 0, syncing: 0, syncingUpdated: 1 })
      }
      return cooperative(message)
    }
    await bench.run(agent.synchronizeModule('delta'))
    const first = bench.received.find((message) => message.type === 'data-batch') as DataBatchMessage
    expect(first.values.map((value) => value.id)).toEqual(['kept'])
    expect(agent.queue.counts()).toEqual({ pending: 1, syncing: 0, syncingUpdated: 0 })
    bench.received.length = 0
    await bench.run(agent.synchronizeModule('delta'))
    const second = bench.received.find((message) => message.type === 'data-batch') as DataBatchMessage
    expect(second.values.map((value) => [value.id, new TextDecoder().decode(value.data)])).toEqual([['kept', 'v2']])
    expect(agent.queue.counts()).toEqual({ pending: 0, syncing: 0, syncingUpdated: 0 })
    await agent.close()
  })

  it('survives a restart: rows persisted before it are synced after it, and a sync cut short by it is taken again', async () => {
    const path = join(work, 'restart.db')
    const first = new HandPlayed({ queuePath: path })
    first.agent.persistDifference('a', 'create', INDEX, 'one')
    first.agent.persistDifference('b', 'create', INDEX, 'two')
    first.agent.persistDifference('b', 'delete', INDEX, 'two') // never synced: gone
    // The process ends in the middle of a sync (no answer to End): closed without finishing it.
    first.answer = (message) => (message.type === 'start' ? [{ type: 'start-ack', status: 'ok', session }] : [])
    const cut = first.agent.synchronizeModule('delta')
    await first.run(waitFor(() => first.received.some((message) => message.type === 'end')))
    expect(first.agent.queue.counts()).toEqual({ pending: 0, syncing: 1, syncingUpdated: 0 })
    await first.agent.close()
    expect((await cut).stopped).toBe(true)

    const second = new HandPlayed({ queuePath: path })
    expect(second.agent.queue.counts()).toEqual({ pending: 1, syncing: 0, syncingUpdated: 0 })
    second.answer = cooperative
    expect((await second.run(second.agent.synchronizeModule('delta'))).success).toBe(true)
    const batch = second.received.find((message) => message.type === 'data-batch') as DataBatchMessage
    expect(batch.values.map((value) => value.id)).toEqual(['a'])
    await second.agent.close()
    const third = new SyncAgent({ module: 'syscollector', metadata, queuePath: path })
    expect(third.queue.counts()).toEqual({ pending: 0, syncing: 0, syncingUpdated: 0 })
    await third.close()
  })
})

/** Runs `work` when the bench's fake clock reaches `at` ms from now. */
function setTimeoutOnClock(bench: HandPlayed, at: number, work: () => void): void {
  const { Timer } = timers
  bench.clock.arm(new Timer(work), bench.clock.now() + at)
}
import * as timers from '../../src/sessions/timers.ts'

/** A promise that resolves once `condition` holds, checked as the clock moves (for drive()). */
function waitFor(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (condition()) resolve()
      else setImmediate(check)
    }
    check()
  })
}

describe('SyncAgent: the queue file and its owner', () => {
  it('refuses a queue a live process holds (ERR_SYNC_FILE_BUSY), and takes over one whose process was killed mid-sync', async () => {
    const path = join(work, 'owned.db')
    const queueModule = new URL('../../src/sessions/sync/queue.ts', import.meta.url).pathname
    const holder = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
      import { SyncQueue } from ${JSON.stringify(queueModule)}
      const queue = new SyncQueue(${JSON.stringify(path)})
      queue.persist('kept', 'create', ${JSON.stringify(INDEX)}, new Uint8Array([1]), 0n, false)
      queue.fetchAndMarkForSync()
      console.log('ready')
      setInterval(() => {}, 1000)
    `], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()))
    expect(() => new SyncAgent({ module: 'syscollector', metadata, queuePath: path })).toThrow(
      expect.objectContaining({ code: 'ERR_SYNC_FILE_BUSY', message: expect.stringContaining(`is open in process ${holder.pid}`) }),
    )
    holder.kill('SIGKILL')
    await once(holder, 'exit')
    // Its lock is left behind, its owner gone: the next process takes the queue, and the row its sync had
    // taken waits for the next one.
    const agent = new SyncAgent({ module: 'syscollector', metadata, queuePath: path })
    expect(agent.queue.counts()).toEqual({ pending: 1, syncing: 0, syncingUpdated: 0 })
    await agent.close()
  })
})
