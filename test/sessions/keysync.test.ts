// The SAE key sync's roles on a fake clock: the full flow, need_more_time, cleanup results, retries, expiry,
// and every refusal (ERROR messages) a pinned peer's bad message gets.
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { MemoryKeyStore } from '../../src/sessions/keysync/keys.ts'
import { KeySyncMaster } from '../../src/sessions/keysync/master.ts'
import { KeySyncSlave } from '../../src/sessions/keysync/slave.ts'
import { FakeClock } from '../../src/sessions/timers.ts'
import { EPOCH_START, KeySyncBench, KmeDouble, MASTER, Puppet, SLAVE, drive, failingPersona, settle } from './keysync-harness.ts'

describe('a rotation', () => {
  it('runs the seed flow: both switch at the agreed instant, then the cleanup deletes the rolled key on both sides', async () => {
    const bench = new KeySyncBench()
    const confirmed: number[] = []
    const rotatedAt: Array<[string, number]> = []
    bench.slave.on('confirmed', (rotation) => confirmed.push(rotation.rotationAt))
    bench.master.on('rotated', () => rotatedAt.push(['master', bench.epochMs()]))
    bench.slave.on('rotated', () => rotatedAt.push(['slave', bench.epochMs()]))
    const first = await drive(bench.clock, bench.master.rotate())
    expect(first.cleanup).toEqual({ sessionId: first.sessionId, status: 'completed', deletedKeyIds: [], failedKeyIds: [] })
    expect(bench.types()).toEqual([
      'M key_notification',
      'S key_acknowledgment',
      'M sync_confirmation',
      'M sync_confirmation',
      'M sync_confirmation',
      'M sync_confirmation',
      'S rotation_completed',
      'M cleanup_status_request',
      'S cleanup_status_response',
      'M cleanup_acknowledgment',
    ])
    // The instant: 300 s after the Get key, whole seconds; both switched at it.
    expect(first.rotationAt).toBe(EPOCH_START + 300_000)
    expect(confirmed).toEqual([first.rotationAt])
    expect(rotatedAt.map(([, at]) => at)).toEqual([first.rotationAt, first.rotationAt])
    expect(first.sessionId).toBe(`${MASTER}_${SLAVE}_${String(bench.log[0]!.message['message_id'])}`)

    bench.log.length = 0
    const second = await drive(bench.clock, bench.master.rotate())
    expect(second.rolledKeyIds).toEqual([first.keyId])
    expect(second.cleanup).toMatchObject({ status: 'completed', deletedKeyIds: [first.keyId], failedKeyIds: [] })
    expect(bench.types().slice(-5)).toEqual(['M cleanup_status_request', 'S cleanup_status_response', 'M cleanup_delete_request', 'S cleanup_delete_response', 'M cleanup_acknowledgment'])
    const status = bench.log.find(({ message }) => message['message_type'] === 'cleanup_status_response')!.message
    expect(status).toMatchObject({ status: 'success', rolled_keys_count: 1, service_status: 'operational' })
    const deleteRequest = bench.log.find(({ message }) => message['message_type'] === 'cleanup_delete_request')!.message
    expect(deleteRequest).toMatchObject({ new_key_id: second.keyId, old_key_ids: [first.keyId], original_message_id: second.sessionId.split('_').at(-1) })
    expect(bench.masterStore.list(SLAVE).map((key) => [key.keyId, key.state])).toEqual([[second.keyId, 'IN_PRODUCTION']])
    expect(bench.slaveStore.list(MASTER).map((key) => [key.keyId, key.state])).toEqual([[second.keyId, 'IN_PRODUCTION']])
    expect(Buffer.from((await bench.master.currentKey())!.key)).toEqual(Buffer.from((await bench.slave.currentKey())!.key))
    expect(bench.master.stats()).toMatchObject({ rotations: 2, cleanups: 2, refused: 0, failures: 0 })
    expect(bench.slave.stats()).toMatchObject({ rotations: 2, cleanups: 2, refused: 0, failures: 0 })
    expect(bench.kme.getKeysWithIdsCalls).toBe(2)
  })

  it('honours need_more_time with the suggested instant, up to maxExtraDelayMs', async () => {
    const bench = new KeySyncBench({ master: { rotationDelayMs: 60_000, maxExtraDelayMs: 600_000 } })
    const result = await drive(bench.clock, bench.master.rotate())
    const ack = bench.log.find(({ message }) => message['message_type'] === 'key_acknowledgment')!.message
    expect(ack).toMatchObject({ status: 'need_more_time', suggested_rotation_timestamp: (EPOCH_START + 60_000 + 120_000) / 1000 })
    expect(result.rotationAt).toBe(EPOCH_START + 180_000)

    const capped = new KeySyncBench({ master: { rotationDelayMs: 60_000, maxExtraDelayMs: 30_000 } })
    expect((await drive(capped.clock, capped.master.rotate())).rotationAt).toBe(EPOCH_START + 90_000)
    const never = new KeySyncBench({ master: { rotationDelayMs: 60_000, maxExtraDelayMs: 0 } })
    expect((await drive(never.clock, never.master.rotate())).rotationAt).toBe(EPOCH_START + 60_000)
  })

  it('reports a cleanup where one key fails: deleted [a], failed [b]; b stays ROLLED on both sides for the next cleanup', async () => {
    const failFor = new Set<string>()
    const onDevice: string[] = []
    let dropCleanup = false
    const bench = new KeySyncBench({
      slave: { persona: failingPersona(failFor, onDevice) },
      master: { retries: 0 },
      filter: (message) => !(dropCleanup && message['message_type'] === 'cleanup_status_request'),
    })
    await drive(bench.clock, bench.master.rotate())
    const a = await drive(bench.clock, bench.master.rotate())
    // The first key is deleted at this cleanup; lose the next one so that two keys are rolled at the third.
    dropCleanup = true
    const failed: string[] = []
    bench.master.on('failed', (error) => failed.push(error.code))
    const slaveCleanups: Array<Record<string, unknown>> = []
    bench.slave.on('cleanup', (result) => slaveCleanups.push({ ...result }))
    const b = await drive(bench.clock, bench.master.rotate())
    expect(b.cleanup).toBeUndefined()
    expect(failed).toEqual(['ERR_KEYSYNC_TIMEOUT'])
    dropCleanup = false
    failFor.add(b.keyId)
    const c = await drive(bench.clock, bench.master.rotate())
    const deleteRequest = bench.log.findLast(({ message }) => message['message_type'] === 'cleanup_delete_request')!.message
    expect(new Set(deleteRequest['old_key_ids'] as string[])).toEqual(new Set([a.keyId, b.keyId]))
    const response = bench.log.findLast(({ message }) => message['message_type'] === 'cleanup_delete_response')!.message
    expect(response).toMatchObject({ status: 'failed', deleted_key_ids: [a.keyId], failed_key_ids: [b.keyId] })
    expect(String(response['error_message'])).toMatch(/^Failed to delete keys: .*device refused/)
    expect(c.cleanup).toMatchObject({ status: 'failed', deletedKeyIds: [a.keyId], failedKeyIds: [b.keyId] })
    expect(slaveCleanups.at(-1)).toMatchObject({ sessionId: c.sessionId, status: 'failed', deletedKeyIds: [a.keyId], failedKeyIds: [b.keyId] })
    expect(bench.log.findLast(({ message }) => message['message_type'] === 'cleanup_acknowledgment')!.message['status']).toBe('failed')
    for (const [store, peer] of [[bench.masterStore, SLAVE], [bench.slaveStore, MASTER]] as const) {
      expect(new Map(store.list(peer).map((key) => [key.keyId, key.state]))).toEqual(new Map([[b.keyId, 'ROLLED'], [c.keyId, 'IN_PRODUCTION']]))
    }
    // The next cleanup asks for b again, and the device lets it go this time.
    failFor.clear()
    const d = await drive(bench.clock, bench.master.rotate())
    expect(new Set(d.cleanup!.deletedKeyIds)).toEqual(new Set([b.keyId, c.keyId]))
    expect(onDevice).toContain(b.keyId)
  })
})

describe('retries and loss', () => {
  it('sends a late notification again under a fresh id; the slave takes the keys from its KME once', async () => {
    let dropped = 0
    const bench = new KeySyncBench({ filter: (message) => !(message['message_type'] === 'key_acknowledgment' && dropped++ < 2) })
    const result = await drive(bench.clock, bench.master.rotate())
    const notifications = bench.log.filter(({ message }) => message['message_type'] === 'key_notification').map(({ message }) => message['message_id'])
    expect(notifications).toHaveLength(3)
    expect(new Set(notifications).size).toBe(3)
    expect(result.sessionId).toBe(`${MASTER}_${SLAVE}_${String(notifications[2])}`)
    expect(bench.kme.getKeysWithIdsCalls).toBe(1)
    expect(result.cleanup?.status).toBe('completed')
    // The rotation waited for the third acknowledgment (2 × 30 s), not the planned instant's 300 s more.
    expect(result.rotationAt).toBe(EPOCH_START + 300_000)
  })

  it('takes a late acknowledgment that crossed the notification sent again: both sides switch to the same key', async () => {
    const bench = new KeySyncBench()
    // The slave's KME answers after 40 s: the master sends its notification again at 30 s, and takes the
    // first acknowledgment, the one of its first notification.
    let open!: () => void
    bench.kme.gate = new Promise((resolve) => (open = resolve))
    const rotation = bench.master.rotate()
    const opened = (async () => {
      while (bench.clock.now() < 40_000) {
        await settle()
        bench.clock.advanceTo(Math.min(bench.clock.nextDeadline, 40_000))
      }
      open()
    })()
    await opened
    const result = await drive(bench.clock, rotation)
    const notifications = bench.log.filter(({ message }) => message['message_type'] === 'key_notification').map(({ message }) => message['message_id'])
    expect(notifications).toHaveLength(2)
    expect(result.sessionId).toBe(`${MASTER}_${SLAVE}_${String(notifications[0])}`)
    expect(bench.kme.getKeysWithIdsCalls).toBe(1)
    expect(result.cleanup?.status).toBe('completed')
    expect((await bench.slave.currentKey())?.keyId).toBe(result.keyId)
    expect(bench.slave.stats()).toMatchObject({ rotations: 1, refused: 0 })
    expect(bench.master.stats().repeats).toBe(1) // the acknowledgment of the second notification
  })

  it('fails a session whose store throws (ERR_KEYSYNC_STORE), with no unhandled rejection', async () => {
    const bench = new KeySyncBench()
    const failures: string[] = []
    bench.slave.on('failed', (error) => failures.push(error.code))
    bench.slaveStore.put = () => {
      throw new Error('disk full')
    }
    const outcome = await drive(bench.clock, bench.master.rotate()).catch((error: unknown) => error)
    // The first notification's keys were taken from the KME but not stored: the master's retry finds them
    // gone from the KME, and is refused with KME_ERROR.
    expect(failures).toEqual(['ERR_KEYSYNC_STORE', 'ERR_KEYSYNC_KME'])
    expect(outcome).toMatchObject({ code: 'ERR_KEYSYNC_REJECTED', message: /KME_ERROR/ })
  })

  it('asks for a lost rotation report with the confirmation again, which a switched slave answers', async () => {
    let dropped = false
    const bench = new KeySyncBench({ filter: (message) => !(message['message_type'] === 'rotation_completed' && !dropped && (dropped = true)) })
    const result = await drive(bench.clock, bench.master.rotate())
    expect(result.cleanup?.status).toBe('completed')
    expect(bench.types().filter((type) => type === 'S rotation_completed')).toHaveLength(2)
    expect(bench.slave.stats().refused).toBe(0)
  })

  it('fails with ERR_KEYSYNC_TIMEOUT after retries + 1 notifications, the keys given back', async () => {
    const bench = new KeySyncBench({ filter: (_message, from) => from === 'a' && false })
    const outcome = drive(bench.clock, bench.master.rotate({ rotationDelayMs: 200_000 })).catch((error: unknown) => error)
    const error = (await outcome) as { code: string }
    expect(error.code).toBe('ERR_KEYSYNC_TIMEOUT')
    expect(bench.types()).toEqual(['M key_notification', 'M key_notification', 'M key_notification', 'M key_notification'])
    expect(bench.epochMs()).toBe(EPOCH_START + 4 * 30_000)
    expect(bench.masterStore.list(SLAVE).map((key) => key.state)).toEqual(['AVAILABLE'])
    expect(bench.master.state).toBe('IDLE')
  })
})

/** A valid message of each type the slave takes, from a master puppet, for session `id`. */
function fromMaster(type: string, nowSec: number, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { message_type: type, message_id: randomUUID(), timestamp: nowSec, master_sae_id: MASTER, slave_sae_id: SLAVE, ...fields }
}

function slaveWithPuppet(options: { kme?: KmeDouble; store?: MemoryKeyStore; sessionExpiryMs?: number } = {}) {
  const clock = new FakeClock(0)
  const epochMs = () => EPOCH_START + clock.now()
  const puppet = new Puppet()
  const kme = options.kme ?? new KmeDouble()
  const store = options.store ?? new MemoryKeyStore()
  const slave = new KeySyncSlave({ saeId: SLAVE, peerSaeId: MASTER, link: puppet.link, kme, store, scheduler: clock, epochMs, prepareMs: 0, ...(options.sessionExpiryMs ? { sessionExpiryMs: options.sessionExpiryMs } : {}) })
  const now = () => Math.floor(epochMs() / 1000)
  /** Notifies a fresh key; resolves with the notification once acknowledged. */
  const notify = async (rotationIn = 300) => {
    const { keys } = await kme.getKeys(SLAVE, { number: 1 })
    const message = fromMaster('key_notification', now(), { key_ids: [keys[0]!.keyId], rotation_timestamp: now() + rotationIn })
    puppet.send(message)
    await settle()
    return message
  }
  return { clock, epochMs, puppet, kme, store, slave, now, notify }
}

describe('the slave refuses with an ERROR message', () => {
  const invalid: Array<[string, (now: number, id: string) => Record<string, unknown>, RegExp]> = [
    ['no message_type', (now) => ({ ...fromMaster('key_notification', now), message_type: undefined }), /message_type/],
    ['an unknown message_type', (now) => fromMaster('key_rotation', now), /message_type/],
    ['a message_id that is no UUID', (now) => ({ ...fromMaster('key_notification', now, { key_ids: ['k'], rotation_timestamp: now + 60 }), message_id: 'x' }), /message_id/],
    ['a fractional timestamp', (now) => fromMaster('key_notification', now, { timestamp: now + 0.5, key_ids: ['k'], rotation_timestamp: now + 60 }), /timestamp/],
    ['a blank key id', (now) => fromMaster('key_notification', now, { key_ids: ['  '], rotation_timestamp: now + 60 }), /key_ids/],
    ['a timestamp that is no number', (now) => fromMaster('key_notification', now, { timestamp: '1', key_ids: ['k'], rotation_timestamp: now + 60 }), /timestamp/],
    ['key_notification with no key_ids', (now) => fromMaster('key_notification', now, { rotation_timestamp: now + 60 }), /key_ids/],
    ['key_notification with empty key_ids', (now) => fromMaster('key_notification', now, { key_ids: [], rotation_timestamp: now + 60 }), /at least one/],
    ['key_notification with an empty key id', (now) => fromMaster('key_notification', now, { key_ids: [''], rotation_timestamp: now + 60 }), /key_ids/],
    ['key_notification with 33 key ids', (now) => fromMaster('key_notification', now, { key_ids: Array.from({ length: 33 }, (_, i) => `k${i}`), rotation_timestamp: now + 60 }), /at most 32/],
    ['a key id of 65 characters', (now) => fromMaster('key_notification', now, { key_ids: ['k'.repeat(65)], rotation_timestamp: now + 60 }), /key_ids/],
    ['key_notification with no rotation_timestamp', (now) => fromMaster('key_notification', now, { key_ids: ['k'] }), /rotation_timestamp/],
    ['sync_confirmation with no original_message_id', (now) => fromMaster('sync_confirmation', now, { final_rotation_timestamp: now + 60 }), /original_message_id/],
    ['sync_confirmation with a string instant', (now, id) => fromMaster('sync_confirmation', now, { original_message_id: id, final_rotation_timestamp: String(now + 60) }), /final_rotation_timestamp/],
    ['cleanup_status_request with no new_key_id', (now, id) => fromMaster('cleanup_status_request', now, { original_message_id: id }), /new_key_id/],
    ['cleanup_delete_request with no old_key_ids', (now, id) => fromMaster('cleanup_delete_request', now, { original_message_id: id, new_key_id: 'k' }), /old_key_ids/],
    ['cleanup_delete_request with a number as a key id', (now, id) => fromMaster('cleanup_delete_request', now, { original_message_id: id, old_key_ids: [7] }), /old_key_ids/],
    ['cleanup_acknowledgment with an unknown status', (now, id) => fromMaster('cleanup_acknowledgment', now, { original_message_id: id, status: 'done' }), /status/],
    ['an array', () => [1, 2] as unknown as Record<string, unknown>, /JSON object/],
  ]
  for (const [what, make, reason] of invalid) {
    it(`INVALID_MESSAGE: ${what}`, async () => {
      const { puppet, now, slave } = slaveWithPuppet()
      const message = make(now(), randomUUID())
      puppet.send(message)
      await settle()
      const [error] = puppet.errors()
      expect(error).toMatchObject({ error_code: 'INVALID_MESSAGE', master_sae_id: MASTER, slave_sae_id: SLAVE })
      expect(error!['error_message']).toMatch(reason)
      if (typeof message['message_id'] === 'string' && message['message_id'] !== 'x' && !Array.isArray(message)) expect(error!['original_message_id']).toBe(message['message_id'])
      expect(slave.stats()).toMatchObject({ refused: 1, errorsSent: 1 })
    })
  }

  it('INVALID_MESSAGE for malformed JSON; an invalid ERROR message is never answered', async () => {
    const { puppet, now, slave } = slaveWithPuppet()
    puppet.send('{"message_type": ')
    puppet.send(fromMaster('error', now(), { error_code: 7 }))
    puppet.send(fromMaster('error', now() - 7200, { error_code: 'X', error_message: 'y' }))
    await settle()
    expect(puppet.errors()).toHaveLength(1)
    expect(slave.stats()).toMatchObject({ refused: 3, errorsSent: 1 })
  })

  it('TIMESTAMP_OUT_OF_WINDOW either way, INVALID_ROTATION_TIME for an instant past or too far ahead', async () => {
    const { puppet, now } = slaveWithPuppet()
    const cases: Array<[Record<string, unknown>, string]> = [
      [fromMaster('key_notification', now() - 3601, { key_ids: ['k'], rotation_timestamp: now() + 60 }), 'TIMESTAMP_OUT_OF_WINDOW'],
      [fromMaster('key_notification', now() + 3601, { key_ids: ['k'], rotation_timestamp: now() + 3700 }), 'TIMESTAMP_OUT_OF_WINDOW'],
      [fromMaster('key_notification', now(), { key_ids: ['k'], rotation_timestamp: now() }), 'INVALID_ROTATION_TIME'],
      [fromMaster('key_notification', now(), { key_ids: ['k'], rotation_timestamp: now() + 3601 }), 'INVALID_ROTATION_TIME'],
      [fromMaster('sync_confirmation', now(), { original_message_id: randomUUID(), final_rotation_timestamp: now() - 1 }), 'INVALID_ROTATION_TIME'],
    ]
    for (const [message] of cases) puppet.send(message)
    await settle()
    expect(puppet.errors().map((error) => error['error_code'])).toEqual(cases.map(([, code]) => code))
  })

  it('WRONG_SAE for another pair, INVALID_MESSAGE for a message of the other direction, NO_SESSION for an unknown session', async () => {
    const { puppet, now } = slaveWithPuppet()
    puppet.send({ ...fromMaster('key_notification', now(), { key_ids: ['k'], rotation_timestamp: now() + 60 }), master_sae_id: 'sae-other' })
    puppet.send(fromMaster('key_acknowledgment', now(), { original_message_id: randomUUID(), status: 'ready' }))
    puppet.send(fromMaster('sync_confirmation', now(), { original_message_id: randomUUID(), final_rotation_timestamp: now() + 60 }))
    puppet.send(fromMaster('cleanup_status_request', now(), { original_message_id: randomUUID(), new_key_id: 'k' }))
    await settle()
    expect(puppet.errors().map((error) => error['error_code'])).toEqual(['WRONG_SAE', 'INVALID_MESSAGE', 'NO_SESSION', 'NO_SESSION'])
  })

  it('INVALID_STATE for each message out of its state', async () => {
    const { puppet, now, notify, kme } = slaveWithPuppet()
    const notification = await notify()
    const id = notification['message_id'] as string
    const keyId = (notification['key_ids'] as string[])[0]!
    // Acknowledged, not switched: no cleanup yet.
    puppet.send(fromMaster('cleanup_status_request', now(), { original_message_id: id, new_key_id: keyId }))
    puppet.send(fromMaster('cleanup_delete_request', now(), { original_message_id: id, old_key_ids: [keyId] }))
    puppet.send(fromMaster('cleanup_acknowledgment', now(), { original_message_id: id, status: 'completed' }))
    await settle()
    // Confirmed: another instant is refused, the same one is a repeat.
    puppet.send(fromMaster('sync_confirmation', now(), { original_message_id: id, final_rotation_timestamp: now() + 100 }))
    puppet.send(fromMaster('sync_confirmation', now(), { original_message_id: id, final_rotation_timestamp: now() + 100 }))
    puppet.send(fromMaster('sync_confirmation', now(), { original_message_id: id, final_rotation_timestamp: now() + 200 }))
    await settle()
    // A notification whose keys are still being fetched takes no confirmation.
    let open!: () => void
    kme.gate = new Promise((resolve) => (open = resolve))
    const pending = fromMaster('key_notification', now(), { key_ids: [(await kme.getKeys(SLAVE, { number: 1 })).keys[0]!.keyId], rotation_timestamp: now() + 300 })
    puppet.send(pending)
    await settle()
    puppet.send(fromMaster('sync_confirmation', now(), { original_message_id: pending['message_id'], final_rotation_timestamp: now() + 100 }))
    await settle()
    open()
    await settle()
    expect(puppet.errors().map((error) => error['error_code'])).toEqual(['INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE', 'INVALID_STATE'])
  })

  it('never deletes a key in production or assigned, whatever a delete request names', async () => {
    const { puppet, now, notify, clock, store, slave } = slaveWithPuppet()
    const rotations: string[] = []
    slave.on('rotated', (rotation) => rotations.push(rotation.keyId))
    const notification = await notify(10)
    const id = notification['message_id'] as string
    const keyId = (notification['key_ids'] as string[])[0]!
    puppet.send(fromMaster('sync_confirmation', now(), { original_message_id: id, final_rotation_timestamp: now() + 10 }))
    await settle()
    clock.advance(10_000)
    await settle()
    expect(rotations).toEqual([keyId])
    const next = await notify(300) // assigned, not switched
    const assigned = (next['key_ids'] as string[])[0]!
    puppet.send(fromMaster('cleanup_status_request', now(), { original_message_id: id, new_key_id: keyId }))
    await settle()
    puppet.send(fromMaster('cleanup_delete_request', now(), { original_message_id: id, old_key_ids: [keyId, assigned, 'never-seen'] }))
    await settle()
    const response = puppet.received.findLast((message) => message['message_type'] === 'cleanup_delete_response')!
    expect(response).toMatchObject({ status: 'failed', deleted_key_ids: ['never-seen'], failed_key_ids: [keyId, assigned] })
    expect(store.get(keyId)?.state).toBe('IN_PRODUCTION')
    expect(store.get(assigned)?.state).toBe('ASSIGNED')
  })
})

describe('slave sessions expire on the fake clock', () => {
  it('an unconfirmed session after sessionExpiryMs: failed, its key AVAILABLE again, a late confirmation refused', async () => {
    const { puppet, now, notify, clock, store, slave } = slaveWithPuppet()
    const failures: string[] = []
    slave.on('failed', (error) => failures.push(error.code))
    const notification = await notify()
    const keyId = (notification['key_ids'] as string[])[0]!
    expect(store.get(keyId)?.state).toBe('ASSIGNED')
    clock.advance(299_999)
    await settle()
    expect(slave.sessions().map((session) => session.state)).toEqual(['ACKNOWLEDGED'])
    clock.advance(1)
    await settle()
    expect(slave.sessions()).toEqual([])
    expect(failures).toEqual(['ERR_KEYSYNC_TIMEOUT'])
    expect(store.get(keyId)?.state).toBe('AVAILABLE')
    puppet.send(fromMaster('sync_confirmation', now(), { original_message_id: notification['message_id'], final_rotation_timestamp: now() + 60 }))
    await settle()
    expect(puppet.errors().map((error) => error['error_code'])).toEqual(['NO_SESSION'])
  })

  it('a confirmed rotation never expires; a switched session waits cleanupExpiryMs for its cleanup', async () => {
    const { puppet, now, notify, clock, slave } = slaveWithPuppet()
    const notification = await notify(3000)
    puppet.send(fromMaster('sync_confirmation', now(), { original_message_id: notification['message_id'], final_rotation_timestamp: now() + 3000 }))
    await settle()
    clock.advance(2_999_000)
    await settle()
    expect(slave.sessions().map((session) => session.state)).toEqual(['ROTATING'])
    clock.advance(1000)
    await settle()
    expect(slave.sessions().map((session) => session.state)).toEqual(['PENDING_DONE'])
    clock.advance(1_800_000)
    await settle()
    expect(slave.sessions()).toEqual([])
    expect(slave.stats()).toMatchObject({ rotations: 1, failures: 0 })
  })
})

function masterWithPuppet(options: { retries?: number } = {}) {
  const clock = new FakeClock(0)
  const epochMs = () => EPOCH_START + clock.now()
  const puppet = new Puppet()
  const kme = new KmeDouble()
  const store = new MemoryKeyStore()
  const master = new KeySyncMaster({ saeId: MASTER, peerSaeId: SLAVE, link: puppet.link, kme, store, scheduler: clock, epochMs, rotationDelayMs: 300_000, ...options })
  const now = () => Math.floor(epochMs() / 1000)
  const fromSlave = (type: string, fields: Record<string, unknown> = {}) => ({ message_type: type, message_id: randomUUID(), timestamp: now(), master_sae_id: MASTER, slave_sae_id: SLAVE, ...fields })
  return { clock, puppet, kme, store, master, now, fromSlave }
}

describe('the master refuses with an ERROR message', () => {
  const invalid: Array<[string, (id: string) => Record<string, unknown>, RegExp]> = [
    ['key_acknowledgment with no original_message_id', () => ({ status: 'ready' }), /original_message_id/],
    ['key_acknowledgment with an unknown status', (id) => ({ original_message_id: id, status: 'later' }), /status/],
    ['key_acknowledgment with a string suggested instant', (id) => ({ original_message_id: id, status: 'need_more_time', suggested_rotation_timestamp: '1800000300' }), /suggested_rotation_timestamp/],
    ['rotation_completed with no new_key_id', (id) => ({ original_message_id: id, rotation_timestamp: 1_800_000_000 }), /new_key_id/],
    ['rotation_completed with no rotation_timestamp', (id) => ({ original_message_id: id, new_key_id: 'k' }), /rotation_timestamp/],
    ['cleanup_status_response with no status', (id) => ({ original_message_id: id }), /status/],
    ['cleanup_status_response with a negative rolled_keys_count', (id) => ({ original_message_id: id, status: 'success', rolled_keys_count: -1 }), /rolled_keys_count/],
    ['cleanup_delete_response with deleted_key_ids not an array', (id) => ({ original_message_id: id, status: 'success', deleted_key_ids: 'k', failed_key_ids: [] }), /deleted_key_ids/],
    ['cleanup_delete_response with no failed_key_ids', (id) => ({ original_message_id: id, status: 'success', deleted_key_ids: [] }), /failed_key_ids/],
  ]
  for (const [what, make, reason] of invalid) {
    it(`INVALID_MESSAGE: ${what}`, async () => {
      const { puppet, master, fromSlave } = masterWithPuppet()
      const rotation = master.rotate().catch(() => {})
      await settle()
      const type = what.split(' ')[0]!
      puppet.send(fromSlave(type, make(String(puppet.received[0]!['message_id']))))
      await settle()
      const [error] = puppet.errors()
      expect(error).toMatchObject({ error_code: 'INVALID_MESSAGE' })
      expect(error!['error_message']).toMatch(reason)
      expect(master.state).toBe('NOTIFIED')
      master.close()
      await rotation
    })
  }

  it('never answers an ERROR, valid or not', async () => {
    const { puppet, master, fromSlave } = masterWithPuppet()
    puppet.send(fromSlave('error', { error_code: 'X', error_message: 'y', original_message_id: randomUUID() }))
    puppet.send(fromSlave('error', { error_code: 7 }))
    await settle()
    expect(puppet.received).toEqual([])
    expect(master.stats()).toMatchObject({ errorsReceived: 1, errorsSent: 0, refused: 1 })
  })
})

describe('the master', () => {
  it('refuses an acknowledgment of a key it did not notify (KEY_MISMATCH), one of no session (NO_SESSION), an answer out of state (INVALID_STATE)', async () => {
    const { puppet, master, clock, fromSlave } = masterWithPuppet()
    const rotation = master.rotate()
    await settle()
    const notification = puppet.received[0]!
    puppet.send(fromSlave('key_acknowledgment', { original_message_id: randomUUID(), status: 'ready' }))
    puppet.send(fromSlave('key_acknowledgment', { original_message_id: notification['message_id'], selected_key_id: 'other', status: 'ready' }))
    puppet.send(fromSlave('cleanup_status_response', { original_message_id: notification['message_id'], status: 'success' }))
    puppet.send(fromSlave('key_notification', { key_ids: ['k'], rotation_timestamp: 0 }))
    await settle()
    expect(puppet.errors().map((error) => error['error_code'])).toEqual(['NO_SESSION', 'KEY_MISMATCH', 'INVALID_STATE', 'INVALID_MESSAGE'])
    expect(master.state).toBe('NOTIFIED')
    master.close()
    await expect(rotation).rejects.toMatchObject({ code: 'ERR_KEYSYNC_CLOSED' })
    void clock
  })

  it('fails a rotation the slave refuses (ERR_KEYSYNC_REJECTED), giving the keys back', async () => {
    const { puppet, master, store, fromSlave } = masterWithPuppet()
    const rotation = master.rotate()
    await settle()
    const notification = puppet.received[0]!
    puppet.send(fromSlave('error', { original_message_id: notification['message_id'], error_code: 'KME_ERROR', error_message: 'one or more keys specified are not found on KME' }))
    await expect(rotation).rejects.toMatchObject({ code: 'ERR_KEYSYNC_REJECTED', message: /KME_ERROR: one or more keys/ })
    expect(store.list(SLAVE).map((key) => key.state)).toEqual(['AVAILABLE'])
    expect(puppet.errors()).toEqual([]) // an ERROR is never answered
  })

  it.each([['sync_confirmation'], ['key_notification']])('cancels its switch when the slave refuses before the instant (the ERROR names its %s)', async (named) => {
    const { puppet, master, clock, fromSlave, store } = masterWithPuppet()
    const rotated: string[] = []
    master.on('rotated', (rotation) => rotated.push(rotation.keyId))
    const rotation = master.rotate()
    await settle()
    const notification = puppet.received[0]!
    puppet.send(fromSlave('key_acknowledgment', { original_message_id: notification['message_id'], selected_key_id: (notification['key_ids'] as string[])[0], status: 'ready' }))
    await settle()
    expect(master.state).toBe('ROTATING')
    const refused = puppet.received.find((message) => message['message_type'] === named)!
    puppet.send(fromSlave('error', { original_message_id: refused['message_id'], error_code: 'INVALID_ROTATION_TIME', error_message: 'final_rotation_timestamp is more than 3600 s ahead' }))
    await expect(rotation).rejects.toMatchObject({ code: 'ERR_KEYSYNC_REJECTED' })
    clock.advance(600_000)
    await settle()
    expect(rotated).toEqual([])
    expect(store.list(SLAVE).map((key) => key.state)).toEqual(['AVAILABLE'])
  })

  it('stops at close() after the confirmation: no switch, no event, the keys kept for the slave that switches', async () => {
    const { puppet, master, clock, fromSlave, store } = masterWithPuppet()
    const events: string[] = []
    for (const event of ['confirmed', 'rotated', 'cleanup'] as const) master.on(event, () => events.push(event))
    const rotation = master.rotate()
    await settle()
    const notification = puppet.received[0]!
    puppet.send(fromSlave('key_acknowledgment', { original_message_id: notification['message_id'], status: 'ready' }))
    await settle()
    master.close()
    await expect(rotation).rejects.toMatchObject({ code: 'ERR_KEYSYNC_CLOSED' })
    clock.advance(600_000)
    await settle()
    expect(events).toEqual(['confirmed'])
    expect(store.list(SLAVE).map((key) => key.state)).toEqual(['ASSIGNED'])
    expect(clock.size).toBe(0)
  })

  it('fails with ERR_KEYSYNC_STORE when its store throws, the store\'s error as the cause', async () => {
    const { master, store } = masterWithPuppet()
    const failures: string[] = []
    master.on('failed', (error) => failures.push(error.code))
    const cause = new Error('disk full')
    store.put = () => {
      throw cause
    }
    await expect(master.rotate()).rejects.toMatchObject({ code: 'ERR_KEYSYNC_STORE', message: /disk full/, cause })
    expect(failures).toEqual(['ERR_KEYSYNC_STORE'])
    expect(master.state).toBe('IDLE')
  })

  it('is one rotation at a time (ERR_KEYSYNC_BUSY), heeds an AbortSignal before the confirmation, and wraps a KME failure (ERR_KEYSYNC_KME)', async () => {
    const { master, kme } = masterWithPuppet()
    const controller = new AbortController()
    const rotation = master.rotate({ signal: controller.signal })
    await expect(master.rotate()).rejects.toMatchObject({ code: 'ERR_KEYSYNC_BUSY' })
    await settle()
    controller.abort()
    await expect(rotation).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError' })
    kme.failNext = new Error('connect ECONNREFUSED')
    await expect(master.rotate()).rejects.toMatchObject({ code: 'ERR_KEYSYNC_KME', message: /ECONNREFUSED/ })
    master.close()
    await expect(master.rotate()).rejects.toMatchObject({ code: 'ERR_KEYSYNC_CLOSED' })
  })

  it('fails with the slave\'s KME error when the slave cannot take the keys', async () => {
    const bench = new KeySyncBench()
    bench.kme.failNext = undefined
    const original = bench.kme.getKeysWithIds.bind(bench.kme)
    bench.kme.getKeysWithIds = async () => {
      throw new Error('one or more keys specified are not found on KME')
    }
    const outcome = await drive(bench.clock, bench.master.rotate()).catch((error: unknown) => error)
    expect(outcome).toMatchObject({ code: 'ERR_KEYSYNC_REJECTED', message: /KME_ERROR/ })
    bench.kme.getKeysWithIds = original
  })
})

describe('options', () => {
  it('are checked with typed errors', () => {
    const [link] = [new Puppet().link]
    const kme = new KmeDouble()
    expect(() => new KeySyncMaster({ saeId: '', peerSaeId: SLAVE, link, kme })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/"saeId"/) }))
    expect(() => new KeySyncMaster({ saeId: MASTER, peerSaeId: SLAVE, link, kme: {} as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/getKeys/) }))
    expect(() => new KeySyncSlave({ saeId: SLAVE, peerSaeId: MASTER, link: {} as never, kme })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/"link"/) }))
    expect(() => new KeySyncMaster({ saeId: MASTER, peerSaeId: SLAVE, link, kme, rotationDelayMs: 10 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new KeySyncSlave({ saeId: SLAVE, peerSaeId: MASTER, link, kme, retries: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new KeySyncSlave({ saeId: SLAVE, peerSaeId: MASTER, link, kme, colour: 1 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
  })
})

describe('the messages as the reference writes them', () => {
  it('parses every payload the reference signed, and writes each back byte for byte (field order, nulls)', async () => {
    const { REFERENCE_SIGNED, OURS_SIGNED } = await import('../fixtures/keysync-reference-vectors.ts')
    const { encodeKeySyncMessage, parseKeySyncMessage } = await import('../../src/sessions/keysync/messages.ts')
    const seen = new Set<string>()
    for (const vector of [...REFERENCE_SIGNED, ...OURS_SIGNED]) {
      const parsed = parseKeySyncMessage(JSON.parse(vector.payloadJson))
      expect(parsed.ok, vector.name).toBe(true)
      if (!parsed.ok) continue
      seen.add(parsed.message.message_type)
      // Our two additions (the seed's rolled_keys_count and new_key_id) are written where the reference has none.
      const ours = JSON.parse(encodeKeySyncMessage(parsed.message)) as Record<string, unknown>
      const reference = JSON.parse(vector.payloadJson) as Record<string, unknown>
      for (const added of ['rolled_keys_count', 'new_key_id']) if (!(added in reference) && added in ours) delete ours[added]
      expect(JSON.stringify(ours), vector.name).toBe(vector.payloadJson)
    }
    expect(seen.size).toBe(10)
  })
})

describe('the largest reply', () => {
  it('fits the reference\'s 8,192-byte datagram once signed: a delete response naming 32 keys of 64 characters and a full reason', async () => {
    const { encodeKeySyncMessage, parseKeySyncMessage, clipText } = await import('../../src/sessions/keysync/messages.ts')
    const { KEYSYNC_MAX_ID, KEYSYNC_MAX_KEY_IDS } = await import('../../src/sessions/keysync/settings.ts')
    const { generateSaeKeyPair, signEnvelope } = await import('../../src/sessions/keysync/envelope.ts')
    const ids = Array.from({ length: KEYSYNC_MAX_KEY_IDS }, (_, i) => String(i).padStart(KEYSYNC_MAX_ID, 'k'))
    const message = {
      message_type: 'cleanup_delete_response' as const,
      message_id: randomUUID(),
      timestamp: 1_800_000_000,
      master_sae_id: 'm'.repeat(KEYSYNC_MAX_ID),
      slave_sae_id: 's'.repeat(KEYSYNC_MAX_ID),
      original_message_id: randomUUID(),
      status: 'failed' as const,
      deleted_key_ids: ids.slice(0, 16),
      failed_key_ids: ids.slice(16),
      error_message: clipText(`Failed to delete keys: ${ids.map((id) => `${id}: device refused`).join('; ')}`),
    }
    expect(parseKeySyncMessage(message).ok).toBe(true)
    const datagram = signEnvelope(encodeKeySyncMessage(message), { saeId: 's'.repeat(KEYSYNC_MAX_ID), ...generateSaeKeyPair() }, 'UNKNOWN')
    expect(datagram.byteLength).toBeLessThan(8192)
  })
})
