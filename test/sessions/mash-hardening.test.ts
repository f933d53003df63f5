// What a hostile or careless peer, or a careless application, can do to a MASH connection, and the races of
// a connection that ends mid-exchange: each answered as MASH says, counted, never a crash or a leak.
import { EventEmitter } from 'node:events'
import { encode } from 'cborg'
import { describe, expect, it } from 'vitest'
import { FakeClock } from '../../src/sessions/timers.ts'
import { MemoryTransport, type SessionTransport, type SessionTransportEvents } from '../../src/sessions/transport.ts'
import { MashController } from '../../src/sessions/mash/controller.ts'
import { MashDevice, type MashDeviceOptions } from '../../src/sessions/mash/device.ts'
import { MashStatusError } from '../../src/sessions/mash/errors.ts'
import { decodeMessage, encodeMessage, subscribeResponsePayload, type MashMessage, type MashValue } from '../../src/sessions/mash/wire.ts'
import { testModel } from './mash-suite.ts'

function setUp(deviceOptions: Partial<MashDeviceOptions> = {}) {
  const clock = new FakeClock()
  const [controllerSide, deviceSide] = MemoryTransport.pair()
  const device = new MashDevice({ endpoints: testModel(), scheduler: clock, keepAlive: false, ...deviceOptions })
  const session = device.serve(deviceSide)
  const controller = new MashController(controllerSide, { scheduler: clock, keepAlive: false })
  return { clock, device, session, controller, controllerSide, deviceSide }
}

/** A controller whose far side is a script: what it receives, decoded, and a way to answer. */
function scripted() {
  const clock = new FakeClock()
  const [controllerSide, far] = MemoryTransport.pair()
  const received: MashMessage[] = []
  far.on('message', (data) => {
    const decoded = decodeMessage(data)
    if (decoded.ok) received.push(decoded.message)
  })
  const controller = new MashController(controllerSide, { scheduler: clock, keepAlive: false })
  const send = (message: MashMessage): boolean => far.send(encodeMessage(message))
  return { clock, controller, far, received, send }
}

const big = (bytes: number): string => 'x'.repeat(bytes)

describe('the device under values past the limits', () => {
  const wide = (): MashDeviceOptions['endpoints'] => [
    { id: 1, features: [{ id: 1, attributes: [1, 2, 3, 4].map((id) => ({ id, type: 'string' as const, access: 'readwrite' as const, value: '' })) }] },
  ]

  it('a write of a value the device could never send back is CONSTRAINT_ERROR, and nothing is stored', async () => {
    const { controller, device, controllerSide } = setUp({ endpoints: wide() })
    // Our controller keeps to the sender limits itself; a hostile one does not.
    await expect(controller.write(1, 1, { 1: big(4_001) })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' })
    const answers: MashMessage[] = []
    controllerSide.on('message', (data) => {
      const decoded = decodeMessage(data)
      if (decoded.ok) answers.push(decoded.message)
    })
    controllerSide.send(encode(new Map<number, unknown>([[1, 77], [2, 2], [3, 1], [4, 1], [5, new Map([[1, big(4_001)]])]])))
    expect(answers).toEqual([expect.objectContaining({ kind: 'response', messageId: 77, status: 11 })])
    expect(device.get(1, 1, 1)).toBe('')
    expect(() => device.set(1, 1, 1, big(4_001))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })

  it('a read-all or a priming past 8,192 bytes is RESOURCE_EXHAUSTED; no subscription is made', async () => {
    const { controller, device, session } = setUp({ endpoints: wide() })
    for (const id of [1, 2, 3, 4]) device.set(1, 1, id, big(3_000))
    await expect(controller.read(1, 1)).rejects.toMatchObject({ statusName: 'RESOURCE_EXHAUSTED' })
    await expect(controller.subscribe(1, 1)).rejects.toMatchObject({ statusName: 'RESOURCE_EXHAUSTED' })
    expect(device.stats().subscriptions).toBe(0)
    expect(session.subscriptionCount).toBe(0)
    expect(session.stats().unsendableAnswers).toBe(2)
    expect(await controller.read(1, 1, [2])).toEqual(new Map([[2, big(3_000)]]))
  })

  it('changes too large for one notification go in several', async () => {
    const { controller, device, clock } = setUp({ endpoints: wide() })
    const subscription = await controller.subscribe(1, 1, { minIntervalMs: 100, maxIntervalMs: 60_000 })
    let notifications = 0
    subscription.on('notification', (_changes, priming) => void (priming || notifications++))
    for (const id of [1, 2, 3, 4]) device.set(1, 1, id, big(3_000))
    clock.advance(100)
    expect(notifications).toBeGreaterThanOrEqual(2)
    expect([...subscription.values.values()]).toEqual([1, 2, 3, 4].map(() => big(3_000)))
  })
})

describe('the device under careless handlers', () => {
  it('a refusal with a status outside a u8 and a command result CBOR cannot carry answer BUSY and are reported', async () => {
    const errors: unknown[] = []
    const endpoints: MashDeviceOptions['endpoints'] = [
      {
        id: 1,
        features: [
          {
            id: 1,
            commands: {
              1: () => {
                throw new MashStatusError(300, 'out of range')
              },
              2: () => ({ plain: 'object' }) as unknown as MashValue,
            },
          },
        ],
      },
    ]
    const { controller, device } = setUp({ endpoints })
    device.on('handlerError', (error) => errors.push(error))
    await expect(controller.invoke(1, 1, 1)).rejects.toMatchObject({ statusName: 'BUSY' })
    await expect(controller.invoke(1, 1, 2)).rejects.toMatchObject({ statusName: 'BUSY' })
    expect(errors).toHaveLength(2)
  })

  it('at most maxPendingHandlers requests per connection wait for handlers; the rest are BUSY', async () => {
    const finishers: (() => void)[] = []
    const { controller, device } = setUp({ maxPendingHandlers: 3, onWrite: () => new Promise<void>((resolve) => finishers.push(resolve)) })
    const writes = [1, 2, 3, 4].map((value) => controller.write(1, 2, { 3: value }).then(() => 'ok', (error: MashStatusError) => error.statusName))
    await new Promise((resolve) => setImmediate(resolve))
    expect(finishers).toHaveLength(3)
    for (const finish of finishers) finish()
    expect(await Promise.all(writes)).toEqual(['ok', 'ok', 'ok', 'BUSY'])
    expect(device.stats().handlersRefused).toBe(1)
  })
})

describe('subscription limits and timing', () => {
  it('a heartbeat period under minHeartbeatIntervalMs is CONSTRAINT_ERROR', async () => {
    const { controller } = setUp()
    await expect(controller.subscribe(1, 2, { minIntervalMs: 0, maxIntervalMs: 999 })).rejects.toMatchObject({ statusName: 'CONSTRAINT_ERROR' })
    const lenient = setUp({ minHeartbeatIntervalMs: 10 })
    await expect(lenient.controller.subscribe(1, 2, { minIntervalMs: 0, maxIntervalMs: 10 })).resolves.toBeDefined()
  })

  it('with minInterval 0, a change held by back-pressure goes out at the drain', async () => {
    const { controller, device, controllerSide } = setUp()
    const subscription = await controller.subscribe(1, 2, { attributeIds: [1], minIntervalMs: 0, maxIntervalMs: 60_000 })
    const seen: MashValue[] = []
    subscription.on('notification', (changes, priming) => void (priming || seen.push(changes.get(1)!)))
    controllerSide.pause()
    device.set(1, 2, 1, 1) // goes into the transport's hold
    device.set(1, 2, 1, 2) // the transport is full: waits in the subscription
    controllerSide.resume()
    expect(seen).toEqual([1, 2])
  })

  it('the keep-alive refuses a pong timeout as long as the interval', () => {
    expect(() => new MashController(null, { keepAlive: { intervalMs: 1_000, pongTimeoutMs: 1_000 } })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })
})

describe('the controller in races', () => {
  it('a notification in the same batch as its subscribe response is delivered, not dropped', async () => {
    const { controller, received, send } = scripted()
    const subscribing = controller.subscribe(1, 2, { attributeIds: [1] })
    const request = received.at(-1) as Extract<MashMessage, { kind: 'request' }>
    send({ kind: 'response', messageId: request.messageId, status: 0, payload: subscribeResponsePayload(9, new Map([[1, 50]])) })
    send({ kind: 'notification', subscriptionId: 9, endpointId: 1, featureId: 2, changes: new Map([[1, 75]]) })
    const subscription = await subscribing
    expect(subscription.values.get(1)).toBe(75)
    expect(controller.stats()!.dropped.unknownSubscriptions).toBe(0)
  })

  it('a connection lost right after the subscribe response leaves the subscription stale, to be made again', async () => {
    const { controller, received, send, far } = scripted()
    const subscribing = controller.subscribe(1, 2, { attributeIds: [1] })
    const request = received.at(-1) as Extract<MashMessage, { kind: 'request' }>
    send({ kind: 'response', messageId: request.messageId, status: 0, payload: subscribeResponsePayload(9, new Map([[1, 50]])) })
    far.close()
    await new Promise((resolve) => setImmediate(resolve))
    const subscription = await subscribing
    expect(subscription.state).toBe('stale')
    expect(controller.staleSubscriptions).toEqual([subscription])
  })

  it('two resubscribes at once make each subscription once', async () => {
    const { controller, device, deviceSide } = setUp()
    const subscription = await controller.subscribe(1, 2, { attributeIds: [1] })
    deviceSide.close()
    await new Promise((resolve) => setImmediate(resolve))
    const [near, far] = MemoryTransport.pair()
    device.serve(far)
    controller.attach(near)
    const [first, second] = await Promise.all([controller.resubscribe(), controller.resubscribe()])
    expect(first.resubscribed).toEqual([subscription])
    expect(second.resubscribed).toEqual([])
    expect(device.stats().subscriptions).toBe(1)
  })

  it('an unsubscribe cut off by the end of the connection ends the subscription and resolves; it does not come back', async () => {
    const { controller, received, send, far } = scripted()
    const subscribing = controller.subscribe(1, 2, { attributeIds: [1] })
    send({ kind: 'response', messageId: (received.at(-1) as { messageId: number }).messageId, status: 0, payload: subscribeResponsePayload(9, new Map()) })
    const subscription = await subscribing
    const unsubscribing = controller.unsubscribe(subscription)
    far.close()
    // The end took the subscription away at the device too: the unsubscribe is done either way.
    await expect(unsubscribing).resolves.toBeUndefined()
    expect(subscription.state).toBe('ended')
    expect(controller.staleSubscriptions).toEqual([])
  })

  it('a request whose send throws rejects at once and leaves nothing pending', async () => {
    class Refusing extends EventEmitter<SessionTransportEvents> implements SessionTransport {
      readonly writable = true
      readonly closed = false
      send(): boolean {
        throw Object.assign(new RangeError('too large for this channel'), { code: 'ERR_MESSAGE_TOO_LARGE' })
      }
      close(): void {}
    }
    const clock = new FakeClock()
    const controller = new MashController(new Refusing(), { scheduler: clock, keepAlive: false })
    await expect(controller.read(1, 2)).rejects.toMatchObject({ code: 'ERR_MESSAGE_TOO_LARGE' })
    expect(controller.pendingRequests).toBe(0)
    expect(clock.size).toBe(0)
  })

  it('attach() from the disconnect handler takes a new connection while the old one finishes its close', () => {
    const { controller, send, received } = scripted()
    const [near, nearFar] = MemoryTransport.pair()
    let attachError: unknown
    controller.once('disconnect', () => {
      try {
        controller.attach(near)
      } catch (error) {
        attachError = error
      }
    })
    send({ kind: 'control', type: 3, seq: 0 }) // the device closes
    expect(received.at(-1)).toMatchObject({ kind: 'control', type: 3 }) // echoed
    expect(attachError).toBeUndefined()
    expect(controller.connected).toBe(true)
    const requests: number[] = []
    nearFar.on('message', (data) => requests.push(data.byteLength))
    void controller.read(1, 2).catch(() => {})
    expect(requests).toHaveLength(1)
  })

  it('message ids wrap from 0xFFFFFFFF to 1 and skip an id still pending', async () => {
    const { controller, received } = scripted()
    void controller.read(1, 2).catch(() => {}) // message 1, never answered
    controller.nextMessageId = 0xffff_ffff
    void controller.read(1, 2).catch(() => {})
    void controller.read(1, 2).catch(() => {})
    expect(received.map((message) => (message as { messageId: number }).messageId)).toEqual([1, 0xffff_ffff, 2])
  })

  it('an invoke with no result resolves undefined whatever its message id', async () => {
    const { controller } = setUp()
    const results: unknown[] = []
    for (let i = 0; i < 5; i++) results.push(await controller.invoke(1, 3, 1, { y: 1 }))
    expect(results).toEqual([null, null, null, null, null]) // the command answers null for no x
    const none = setUp({ endpoints: [{ id: 1, features: [{ id: 1, commands: { 1: () => undefined } }] }] })
    const empty: unknown[] = []
    for (let i = 0; i < 5; i++) empty.push(await none.controller.invoke(1, 1, 1))
    expect(empty).toEqual([undefined, undefined, undefined, undefined, undefined])
  })

  it('close() ends the stale subscriptions too', async () => {
    const { controller, deviceSide } = setUp()
    const subscription = await controller.subscribe(1, 2, { attributeIds: [1] })
    deviceSide.close()
    await new Promise((resolve) => setImmediate(resolve))
    expect(subscription.state).toBe('stale')
    await controller.close()
    expect(subscription.state).toBe('ended')
    expect(controller.staleSubscriptions).toEqual([])
  })
})

describe('ends in the middle of things', () => {
  it('a subscribe answer that overflows a peer that reads nothing ends the connection, and makes no subscription', async () => {
    const clock = new FakeClock()
    // Each answer is 24 bytes: the first is held, the second passes the bound inside the device's answer.
    const [controllerSide, deviceSide] = MemoryTransport.pair({ maxHeldBytes: 30 })
    const device = new MashDevice({ endpoints: testModel(), scheduler: clock, keepAlive: false })
    const session = device.serve(deviceSide)
    controllerSide.pause()
    controllerSide.send(encodeMessage({ kind: 'request', messageId: 1, operation: 3, endpointId: 1, featureId: 2, payload: new Map([[1, [1, 2, 3, 5]]]) }))
    controllerSide.send(encodeMessage({ kind: 'request', messageId: 2, operation: 3, endpointId: 1, featureId: 2, payload: new Map([[1, [1, 2, 3, 5]]]) }))
    expect(deviceSide.closed).toBe(true)
    expect(session.subscriptionCount).toBe(0)
    expect(device.stats()).toMatchObject({ sessions: 0, subscriptions: 0 })
    expect(clock.size).toBe(0)
  })

  it('a notification that overflows the peer ends the connection and leaves no timer armed', async () => {
    const clock = new FakeClock()
    const [controllerSide, deviceSide] = MemoryTransport.pair({ maxHeldBytes: 60 })
    const device = new MashDevice({ endpoints: testModel(), scheduler: clock, keepAlive: false })
    device.serve(deviceSide)
    const controller = new MashController(controllerSide, { scheduler: clock, keepAlive: false })
    await controller.subscribe(1, 2, { attributeIds: [5], minIntervalMs: 0, maxIntervalMs: 60_000 })
    controllerSide.pause()
    // A notification larger than the bound, on a connection that takes nothing: it ends inside notify().
    device.set(1, 2, 5, 'x'.repeat(80))
    expect(deviceSide.closed).toBe(true)
    expect(device.stats()).toMatchObject({ sessions: 0, subscriptions: 0 })
    clock.advance(120_000)
    expect(clock.size).toBe(0)
  })

  it('a priming listener that throws does not leave subscribe() pending', async () => {
    const { controller } = setUp()
    const surfaced: unknown[] = []
    const swallow = (error: unknown): void => void surfaced.push(error)
    process.on('uncaughtException', swallow)
    try {
      controller.once('notification', () => {
        throw new Error('a listener bug')
      })
      const subscription = await controller.subscribe(1, 2, { attributeIds: [1] })
      expect(subscription.state).toBe('active')
      await new Promise((resolve) => setImmediate(resolve))
      expect(surfaced).toEqual([new Error('a listener bug')])
    } finally {
      process.off('uncaughtException', swallow)
    }
  })

  it('a resubscribe cut off by close() ends the subscription', async () => {
    const { clock, controller, received, send, far } = scripted()
    const subscribing = controller.subscribe(1, 2, { attributeIds: [1] })
    send({ kind: 'response', messageId: (received.at(-1) as { messageId: number }).messageId, status: 0, payload: subscribeResponsePayload(9, new Map()) })
    const subscription = await subscribing
    far.close()
    await new Promise((resolve) => setImmediate(resolve))
    const [near] = MemoryTransport.pair()
    controller.attach(near)
    const resubscribing = controller.resubscribe()
    const closed = controller.close()
    const { failed } = await resubscribing
    clock.advance(5_000) // nothing echoes the close on this bare connection: it ends at the close timeout
    await closed
    expect(failed).toHaveLength(1)
    expect(subscription.state).toBe('ended')
    expect(controller.staleSubscriptions).toEqual([])
  })

  it('an unsubscribe refused before it is sent leaves the subscription active', async () => {
    const { controller } = setUp()
    const subscription = await controller.subscribe(1, 2, { attributeIds: [1] })
    const aborted = AbortSignal.abort()
    await expect(controller.unsubscribe(subscription, { signal: aborted })).rejects.toMatchObject({ code: 'ABORT_ERR' })
    await expect(controller.unsubscribe(subscription, { bogus: 1 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' })
    expect(subscription.state).toBe('active')
  })

  it('a device that gives a subscription id in use is refused, not followed', async () => {
    const { controller, received, send } = scripted()
    const first = controller.subscribe(1, 2, { attributeIds: [1] })
    send({ kind: 'response', messageId: (received.at(-1) as { messageId: number }).messageId, status: 0, payload: subscribeResponsePayload(9, new Map()) })
    await first
    const second = controller.subscribe(1, 2, { attributeIds: [2] })
    send({ kind: 'response', messageId: (received.at(-1) as { messageId: number }).messageId, status: 0, payload: subscribeResponsePayload(9, new Map()) })
    await expect(second).rejects.toMatchObject({ code: 'ERR_MASH_STATUS' })
  })

  it('answers and notifications that come after a close are dropped and counted', async () => {
    const { controller, send } = scripted()
    const read = controller.read(1, 2)
    send({ kind: 'control', type: 3, seq: 0 }) // the device closes; the read fails now
    await expect(read).rejects.toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    send({ kind: 'response', messageId: 1, status: 0, payload: new Map() })
    send({ kind: 'notification', subscriptionId: 9, endpointId: 1, featureId: 2, changes: new Map() })
    expect(controller.stats()!.dropped).toMatchObject({ unexpectedResponses: 1, unknownSubscriptions: 1 })
  })
})
