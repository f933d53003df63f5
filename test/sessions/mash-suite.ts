// The MASH protocol suite (seed 003 TC-PROTO-001..008 and 012, and the rules of issue 57), written once and
// run over each transport: the in-memory pair, Volley on both engines, TLS. Session timers run on a FakeClock
// in every case; only the bytes travel for real, so each step waits for them to arrive.
import { expect, it } from 'vitest'
import { waitFor } from '../helpers.ts'
import { FakeClock } from '../../src/sessions/timers.ts'
import type { SessionTransport } from '../../src/sessions/transport.ts'
import { MashController } from '../../src/sessions/mash/controller.ts'
import { MashDevice, type MashDeviceOptions } from '../../src/sessions/mash/device.ts'
import { MashStatusError } from '../../src/sessions/mash/errors.ts'
import { MashStatus, decodeMessage, encodeMessage, type MashValue } from '../../src/sessions/mash/wire.ts'

export interface TransportPair {
  controllerSide: SessionTransport
  deviceSide: SessionTransport
  /** Ends both sides and what is under them. */
  cleanup(): Promise<void>
}

/** Waits for a condition the network makes true: at once in memory, a few ms over sockets; bounded. */
export function until(condition: () => boolean, what: string): Promise<void> {
  return waitFor(condition, 5_000, what)
}

/** The test device: endpoint 0 (device info) and endpoint 1 with a measurement feature (2) and a control one (3). */
export function testModel(): MashDeviceOptions['endpoints'] {
  return [
    { id: 0, features: [{ id: 1, attributes: [{ id: 1, type: 'string', value: 'volley-test' }] }] },
    {
      id: 1,
      features: [
        {
          id: 2,
          attributes: [
            { id: 1, type: 'float', value: 0 },
            { id: 2, type: 'uint', value: 10 },
            { id: 3, type: 'float', access: 'readwrite', min: 0, max: 100, value: 50 },
            { id: 4, type: 'string', access: 'write' },
            { id: 5, type: 'string', access: 'readwrite', value: 'idle' },
          ],
        },
        {
          id: 3,
          attributes: [{ id: 1, type: 'bool', value: false }],
          commands: {
            1: (params) => {
              const x = params.get('x')
              return typeof x === 'number' ? x * 2 : null
            },
            2: () => {
              throw new MashStatusError(MashStatus.BUSY, 'try later')
            },
          },
        },
      ],
    },
  ]
}

export interface SuiteContext {
  clock: FakeClock
  device: MashDevice
  controller: MashController
  pair: TransportPair
  /** Messages the controller received, decoded, in order. */
  received: ReturnType<typeof decodeMessage>[]
  /** Advances the fake clock, then lets what it sent arrive. */
  advance(ms: number): Promise<void>
}

export async function setUp(makePair: () => Promise<TransportPair>, deviceOptions: Partial<MashDeviceOptions> = {}): Promise<SuiteContext> {
  const clock = new FakeClock(1_000_000)
  const pair = await makePair()
  const device = new MashDevice({ endpoints: testModel(), scheduler: clock, keepAlive: false, ...deviceOptions })
  device.serve(pair.deviceSide)
  const received: ReturnType<typeof decodeMessage>[] = []
  pair.controllerSide.on('message', (data) => received.push(decodeMessage(data)))
  const controller = new MashController(pair.controllerSide, { scheduler: clock })
  return {
    clock,
    device,
    controller,
    pair,
    received,
    async advance(ms: number) {
      clock.advance(ms)
      // Let the bytes cross (a round trip over a socket) before the next step looks.
      await new Promise((resolve) => setTimeout(resolve, 0))
    },
  }
}

/** Waits for the response to a hand-made request, ignoring what else arrives meanwhile (pongs). */
async function responseTo(context: SuiteContext, messageId: number): Promise<unknown> {
  const find = () => context.received.find((decoded) => decoded.ok && decoded.message.kind === 'response' && decoded.message.messageId === messageId)
  await until(() => find() !== undefined, `the response to message ${messageId}`)
  return find()
}

function notifications(context: SuiteContext): { subscriptionId: number; changes: ReadonlyMap<number, MashValue> }[] {
  const out: { subscriptionId: number; changes: ReadonlyMap<number, MashValue> }[] = []
  for (const decoded of context.received) if (decoded.ok && decoded.message.kind === 'notification') out.push(decoded.message)
  return out
}

/** The suite every transport runs. */
export function mashProtocolSuite(makePair: () => Promise<TransportPair>): void {
  const run = (name: string, body: (context: SuiteContext) => Promise<void>, deviceOptions: Partial<MashDeviceOptions> = {}): void => {
    it(name, async () => {
      const context = await setUp(makePair, deviceOptions)
      try {
        await body(context)
      } finally {
        await context.pair.cleanup()
      }
    })
  }

  run('TC-PROTO-001: a response carries its request id, from 1 up', async (context) => {
    const ids: number[] = []
    context.pair.deviceSide.on('message', (data) => {
      const decoded = decodeMessage(data)
      if (decoded.ok && decoded.message.kind === 'request') ids.push(decoded.message.messageId)
    })
    expect(await context.controller.read(0, 1)).toEqual(new Map([[1, 'volley-test']]))
    expect(await context.controller.read(1, 2, [2])).toEqual(new Map([[2, 10]]))
    expect(ids).toEqual([1, 2])
    const responses = context.received.filter((decoded) => decoded.ok && decoded.message.kind === 'response').map((decoded) => decoded.ok && decoded.message.kind === 'response' && decoded.message.messageId)
    expect(responses).toEqual([1, 2])
  })

  run('TC-PROTO-003: concurrent requests each get their own answer', async (context) => {
    const reads = [1, 2, 3, 5, 1, 2, 3, 5].map((attribute) => context.controller.read(1, 2, [attribute]))
    const writes = [10, 20, 30].map((value) => context.controller.write(1, 2, { 3: value }))
    const results = await Promise.all(reads)
    expect(results.map((values) => [...values.keys()][0])).toEqual([1, 2, 3, 5, 1, 2, 3, 5])
    expect((await Promise.all(writes)).map((values) => values.get(3))).toEqual([10, 20, 30])
    expect(context.device.get(1, 2, 3)).toBe(30)
    expect(context.controller.pendingRequests).toBe(0)
  })

  run('TC-PROTO-004: a subscription is primed at once with the current values', async (context) => {
    const primings: ReadonlyMap<number, MashValue>[] = []
    context.controller.on('notification', (_subscription, changes, priming) => {
      if (priming) primings.push(changes)
    })
    const subscription = await context.controller.subscribe(1, 2, { attributeIds: [1, 2, 5] })
    expect(subscription.id).toBeGreaterThan(0)
    expect(subscription.values).toEqual(new Map<number, MashValue>([[1, 0], [2, 10], [5, 'idle']]))
    expect(primings).toEqual([new Map<number, MashValue>([[1, 0], [2, 10], [5, 'idle']])])
    // Empty list: every readable attribute (4 is write-only).
    const all = await context.controller.subscribe(1, 2)
    expect([...all.values.keys()].sort()).toEqual([1, 2, 3, 5])
  })

  run('TC-PROTO-005: rapid changes coalesce into one notification with the latest values, deltas only', async (context) => {
    const subscription = await context.controller.subscribe(1, 2, { attributeIds: [1, 2, 5], minIntervalMs: 1_000, maxIntervalMs: 60_000 })
    context.device.set(1, 2, 1, 1.5)
    await context.advance(500)
    context.device.set(1, 2, 1, 2.5)
    context.device.set(1, 2, 5, 'busy')
    await context.advance(499)
    expect(notifications(context)).toEqual([])
    await context.advance(1)
    await until(() => notifications(context).length === 1, 'the coalesced notification')
    expect(notifications(context)[0]).toEqual({ kind: 'notification', subscriptionId: subscription.id, endpointId: 1, featureId: 2, changes: new Map<number, MashValue>([[1, 2.5], [5, 'busy']]) })
    expect(subscription.values.get(1)).toBe(2.5)
    expect(context.device.stats().changesCoalesced).toBe(1)
    // The window opens at the first change after the last notification (TC-SUB-012), not at that notification.
    await context.advance(5_000)
    context.device.set(1, 2, 2, 11)
    await context.advance(999)
    expect(notifications(context)).toHaveLength(1)
    await context.advance(1)
    await until(() => notifications(context).length === 2, 'the second notification')
    expect(notifications(context)[1]!.changes).toEqual(new Map([[2, 11]]))
  })

  run('TC-PROTO-006: a heartbeat at maxInterval carries every value (full mode)', async (context) => {
    const subscription = await context.controller.subscribe(1, 2, { attributeIds: [1, 2], minIntervalMs: 100, maxIntervalMs: 5_000 })
    await context.advance(4_999)
    expect(notifications(context)).toEqual([])
    await context.advance(1)
    await until(() => notifications(context).length === 1, 'the heartbeat')
    expect(notifications(context)[0]!.changes).toEqual(new Map([[1, 0], [2, 10]]))
    expect(notifications(context)[0]!.subscriptionId).toBe(subscription.id)
    await context.advance(5_000)
    await until(() => notifications(context).length === 2, 'the second heartbeat')
    expect(context.device.stats().heartbeatsSent).toBe(2)
  })

  run(
    'TC-PROTO-006: an empty-mode heartbeat carries no values',
    async (context) => {
      await context.controller.subscribe(1, 2, { attributeIds: [1], minIntervalMs: 100, maxIntervalMs: 2_000 })
      await context.advance(2_000)
      await until(() => notifications(context).length === 1, 'the heartbeat')
      expect(notifications(context)[0]!.changes).toEqual(new Map())
    },
    { heartbeat: 'empty' },
  )

  run('bounce-back suppression: a value changed and changed back inside a window sends nothing', async (context) => {
    await context.controller.subscribe(1, 2, { attributeIds: [2], minIntervalMs: 1_000, maxIntervalMs: 60_000 })
    context.device.set(1, 2, 2, 99)
    context.device.set(1, 2, 2, 10)
    await context.advance(1_000)
    context.device.set(1, 2, 2, 12)
    await context.advance(1_000)
    await until(() => notifications(context).length === 1, 'the notification of 12')
    expect(notifications(context)[0]!.changes).toEqual(new Map([[2, 12]]))
    expect(context.device.stats().bounceBacksSuppressed).toBe(1)
  })

  run('a write from the controller reaches the subscriptions that follow it', async (context) => {
    const subscription = await context.controller.subscribe(1, 2, { attributeIds: [3], minIntervalMs: 0, maxIntervalMs: 60_000 })
    expect(await context.controller.write(1, 2, new Map([[3, 75]]))).toEqual(new Map([[3, 75]]))
    await until(() => subscription.values.get(3) === 75, 'the notification of the write')
  })

  run('invoke runs the command; a handler refusal comes back as its status', async (context) => {
    expect(await context.controller.invoke(1, 3, 1, { x: 21 })).toBe(42)
    const refusal = await context.controller.invoke(1, 3, 2).catch((error: unknown) => error)
    expect(refusal).toBeInstanceOf(MashStatusError)
    expect(refusal).toMatchObject({ code: 'ERR_MASH_STATUS', status: MashStatus.BUSY, statusName: 'BUSY', detail: 'try later' })
  })

  run('the status codes of refused requests', async (context) => {
    const status = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => 'success', (error: MashStatusError) => error.statusName)
    const { controller } = context
    expect(await status(controller.read(9, 2))).toBe('INVALID_ENDPOINT')
    expect(await status(controller.read(1, 9))).toBe('INVALID_FEATURE')
    expect(await status(controller.read(1, 2, [77]))).toBe('INVALID_ATTRIBUTE')
    expect(await status(controller.read(1, 2, [4]))).toBe('WRITE_ONLY')
    expect(await status(controller.write(1, 2, { 1: 3 }))).toBe('READ_ONLY')
    expect(await status(controller.write(1, 2, { 3: 101 }))).toBe('CONSTRAINT_ERROR')
    expect(await status(controller.write(1, 2, { 3: 'high' }))).toBe('INVALID_PARAMETER')
    expect(await status(controller.invoke(1, 3, 9))).toBe('INVALID_COMMAND')
    expect(await status(controller.subscribe(1, 2, { maxIntervalMs: 0 }))).toBe('CONSTRAINT_ERROR')
    expect(await status(controller.subscribe(1, 2, { minIntervalMs: 5_000, maxIntervalMs: 1_000 }))).toBe('CONSTRAINT_ERROR')
    // A write refused in part changes nothing: writes are all or nothing.
    expect(await status(controller.write(1, 2, { 3: 60, 1: 1 }))).toBe('READ_ONLY')
    expect(context.device.get(1, 2, 3)).toBe(50)
    expect(context.controller.connected).toBe(true)
  })

  run('unsubscribe ends the notifications; an unknown id is INVALID_PARAMETER', async (context) => {
    const subscription = await context.controller.subscribe(1, 2, { attributeIds: [1], minIntervalMs: 0, maxIntervalMs: 60_000 })
    await context.controller.unsubscribe(subscription)
    expect(subscription.state).toBe('ended')
    expect(context.device.stats().subscriptions).toBe(0)
    context.device.set(1, 2, 1, 5)
    await context.advance(60_000)
    expect(notifications(context)).toEqual([])
    // A hand-made unsubscribe of an id the device never gave.
    context.pair.controllerSide.send(encodeMessage({ kind: 'request', messageId: 900, operation: 3, endpointId: 0, featureId: 0, payload: new Map([[1, 4242]]) }))
    expect(await responseTo(context, 900)).toMatchObject({ ok: true, message: { kind: 'response', messageId: 900, status: MashStatus.INVALID_PARAMETER } })
  })

  run('TC-PROTO-007: a ping is answered with a pong of the same seq', async (context) => {
    const pongs: number[] = []
    context.pair.controllerSide.on('message', (data) => {
      const decoded = decodeMessage(data)
      // The controller's own keep-alive pings (seq from 1) get pongs too: only the hand-made ones count here.
      if (decoded.ok && decoded.message.kind === 'control' && decoded.message.type === 2 && decoded.message.seq >= 7) pongs.push(decoded.message.seq)
    })
    context.pair.controllerSide.send(encodeMessage({ kind: 'control', type: 1, seq: 7 }))
    context.pair.controllerSide.send(encodeMessage({ kind: 'control', type: 1, seq: 8 }))
    await until(() => pongs.length === 2, 'two pongs')
    expect(pongs).toEqual([7, 8])
  })

  run('TC-PROTO-007: the keep-alive pings every 30 s and reports each round trip', async (context) => {
    let latencies = 0
    context.controller.on('latency', () => latencies++)
    await until(() => context.controller.stats()!.latencyMs >= 0, 'the pong to the first ping')
    const before = latencies
    await context.advance(30_000)
    await until(() => latencies === before + 1, 'the pong to the second ping')
    expect(context.controller.stats()).toMatchObject({ pingsSent: 2, missedPongs: 0 })
    expect(context.controller.connected).toBe(true)
  })

  run('a duplicate key gets INVALID_PARAMETER and the connection stays', async (context) => {
    // {1: 77, 2: 1, 3: 1, 4: 2, 4: 2}: key 4 twice.
    const duplicate = Uint8Array.from([0xa5, 0x01, 0x18, 0x4d, 0x02, 0x01, 0x03, 0x01, 0x04, 0x02, 0x04, 0x02])
    context.pair.controllerSide.send(duplicate)
    expect(await responseTo(context, 77)).toMatchObject({ ok: true, message: { kind: 'response', messageId: 77, status: MashStatus.INVALID_PARAMETER } })
    expect(await context.controller.read(0, 1)).toEqual(new Map([[1, 'volley-test']]))
  })

  run('malformed CBOR and unknown response ids are dropped and counted; the connection stays', async (context) => {
    const session = [...context.device.sessions][0]!
    context.pair.controllerSide.send(Uint8Array.from([0xff, 0x00, 0x13]))
    context.pair.deviceSide.send(encodeMessage({ kind: 'response', messageId: 4_000_000, status: 0 }))
    expect(await context.controller.read(0, 1)).toEqual(new Map([[1, 'volley-test']]))
    await until(() => session.stats().dropped.malformed === 1, 'the device to count the malformed message')
    expect(context.controller.stats()!.dropped.unexpectedResponses).toBe(1)
  })

  run('TC-PROTO-012: after a new connection, resubscribe makes the subscription again with a new priming', async (context) => {
    const subscription = await context.controller.subscribe(1, 2, { attributeIds: [1], minIntervalMs: 0, maxIntervalMs: 60_000 })
    const firstId = subscription.id
    const ended = new Promise((resolve) => context.controller.once('disconnect', resolve))
    context.pair.deviceSide.close()
    await ended
    expect(subscription.state).toBe('stale')
    expect(context.device.stats().subscriptions).toBe(0)
    context.device.set(1, 2, 1, 8)
    const next = await makePair()
    try {
      context.device.serve(next.deviceSide)
      context.controller.attach(next.controllerSide)
      const primed = new Promise<boolean>((resolve) => subscription.once('notification', (_changes, priming) => resolve(priming)))
      const { resubscribed, failed } = await context.controller.resubscribe()
      expect(resubscribed).toEqual([subscription])
      expect(failed).toEqual([])
      expect(await primed).toBe(true)
      expect(subscription.state).toBe('active')
      expect(subscription.id).not.toBe(firstId)
      expect(subscription.values.get(1)).toBe(8)
    } finally {
      await next.cleanup()
    }
  })

  run('close: the device echoes it, and later requests fail with ERR_CONNECTION_CLOSED', async (context) => {
    const session = [...context.device.sessions][0]!
    const sessionClosed = new Promise((resolve) => session.once('close', resolve))
    await context.controller.close()
    expect(await sessionClosed).toBeUndefined()
    await expect(context.controller.read(0, 1)).rejects.toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    expect(context.device.sessions.size).toBe(0)
  })
}
