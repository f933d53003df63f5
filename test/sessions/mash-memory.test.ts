// MASH over the in-memory pair: the shared protocol suite, and what needs the whole clock in hand (request
// timeouts, keep-alive misses, connection loss mid-request, back-pressure), all on a FakeClock.
import { describe, expect, it } from 'vitest'
import { FakeClock } from '../../src/sessions/timers.ts'
import { MemoryTransport } from '../../src/sessions/transport.ts'
import { MashController, followingMessageId } from '../../src/sessions/mash/controller.ts'
import { MashDevice } from '../../src/sessions/mash/device.ts'
import { MashStatusError } from '../../src/sessions/mash/errors.ts'
import { MashStatus, decodeMessage, encodeMessage, type MashValue } from '../../src/sessions/mash/wire.ts'
import { ConnectionManager } from '../../src/sessions/connection-manager.ts'
import { mashProtocolSuite, testModel, until, type TransportPair } from './mash-suite.ts'

async function memoryPair(): Promise<TransportPair> {
  const [controllerSide, deviceSide] = MemoryTransport.pair()
  return {
    controllerSide,
    deviceSide,
    async cleanup() {
      controllerSide.close()
      deviceSide.close()
    },
  }
}

describe('MASH over the in-memory pair', () => {
  mashProtocolSuite(memoryPair)
})

/** A controller on one side of a pair whose other side is answered by hand (or not at all). */
function bareController(options: { requestTimeoutMs?: number; filter?: (data: Uint8Array, from: 'a' | 'b') => boolean } = {}) {
  const clock = new FakeClock()
  const [controllerSide, far] = MemoryTransport.pair({ filter: options.filter })
  const requests: { messageId: number; operation: number }[] = []
  far.on('message', (data) => {
    const decoded = decodeMessage(data)
    if (decoded.ok && decoded.message.kind === 'request') requests.push(decoded.message)
  })
  const controller = new MashController(controllerSide, { scheduler: clock, keepAlive: false, ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }) })
  return { clock, controller, controllerSide, far, requests }
}

function deviceAndController(deviceOptions: Partial<ConstructorParameters<typeof MashDevice>[0]> = {}, filter?: (data: Uint8Array, from: 'a' | 'b') => boolean) {
  const clock = new FakeClock()
  const [controllerSide, deviceSide] = MemoryTransport.pair({ filter })
  const device = new MashDevice({ endpoints: testModel(), scheduler: clock, keepAlive: false, ...deviceOptions })
  const session = device.serve(deviceSide)
  const controller = new MashController(controllerSide, { scheduler: clock, keepAlive: false })
  return { clock, device, session, controller, controllerSide, deviceSide }
}

describe('MASH requests on a fake clock', () => {
  it('TC-PROTO-002: a request with no response times out after 30 s with ERR_REQUEST_TIMED_OUT', async () => {
    const { clock, controller } = bareController()
    const read = controller.read(1, 2)
    let settled = false
    read.catch(() => {}).finally(() => (settled = true))
    clock.advance(29_999)
    await Promise.resolve()
    expect(settled).toBe(false)
    clock.advance(1)
    await expect(read).rejects.toMatchObject({ code: 'ERR_REQUEST_TIMED_OUT', name: 'Error' })
    expect(controller.pendingRequests).toBe(0)
    expect(clock.size).toBe(0)
  })

  it('the timeout is configurable (the reference code uses 10 s), per controller and per request', async () => {
    const { clock, controller } = bareController({ requestTimeoutMs: 10_000 })
    const read = controller.read(1, 2)
    const quick = controller.read(1, 2, [], { timeoutMs: 50 })
    clock.advance(50)
    await expect(quick).rejects.toMatchObject({ code: 'ERR_REQUEST_TIMED_OUT' })
    clock.advance(9_950)
    await expect(read).rejects.toMatchObject({ code: 'ERR_REQUEST_TIMED_OUT' })
  })

  it('a late response to a timed-out request is dropped and counted; the connection stays', async () => {
    const { clock, controller, far } = bareController()
    const read = controller.read(1, 2)
    clock.advance(30_000)
    await expect(read).rejects.toMatchObject({ code: 'ERR_REQUEST_TIMED_OUT' })
    far.send(encodeMessage({ kind: 'response', messageId: 1, status: 0, payload: new Map() }))
    expect(controller.stats()!.dropped.unexpectedResponses).toBe(1)
    expect(controller.connected).toBe(true)
  })

  it('TC-PROTO-003: responses out of order reach their own requests', async () => {
    const { controller, far, requests } = bareController()
    const reads = [1, 2, 3].map((attribute) => controller.read(1, 2, [attribute]))
    for (const request of [...requests].reverse()) {
      far.send(encodeMessage({ kind: 'response', messageId: request.messageId, status: 0, payload: new Map([[request.messageId * 100, 'x']]) }))
    }
    const results = await Promise.all(reads)
    expect(results.map((values) => [...values.keys()])).toEqual([[100], [200], [300]])
  })

  it('an AbortSignal rejects its request with ABORT_ERR', async () => {
    const { controller } = bareController()
    const abort = new AbortController()
    const read = controller.read(1, 2, [], { signal: abort.signal })
    abort.abort(new Error('no longer needed'))
    await expect(read).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError', cause: new Error('no longer needed') })
    expect(controller.pendingRequests).toBe(0)
    await expect(controller.read(1, 2, [], { signal: abort.signal })).rejects.toMatchObject({ code: 'ABORT_ERR' })
  })

  it('connection loss: a pending read rejects with ERR_CONNECTION_CLOSED, a write or an invoke with ERR_OUTCOME_UNKNOWN', async () => {
    const { controller, far } = bareController()
    const read = controller.read(1, 2)
    const write = controller.write(1, 2, { 3: 1 })
    const invoke = controller.invoke(1, 3, 1)
    const subscribe = controller.subscribe(1, 2)
    far.close()
    await expect(read).rejects.toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    await expect(write).rejects.toMatchObject({ code: 'ERR_OUTCOME_UNKNOWN' })
    await expect(invoke).rejects.toMatchObject({ code: 'ERR_OUTCOME_UNKNOWN' })
    await expect(subscribe).rejects.toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    await expect(controller.read(1, 2)).rejects.toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
  })

  it('message ids wrap from 0xFFFFFFFF to 1, never 0', () => {
    expect(followingMessageId(1)).toBe(2)
    expect(followingMessageId(0xffff_fffe)).toBe(0xffff_ffff)
    expect(followingMessageId(0xffff_ffff)).toBe(1)
  })

  it('message ids start again at 1 on a new connection', async () => {
    const { controller, far, requests } = bareController()
    void controller.read(1, 2).catch(() => {})
    far.close()
    await Promise.resolve()
    const [next, nextFar] = MemoryTransport.pair()
    const ids: number[] = []
    nextFar.on('message', (data) => {
      const decoded = decodeMessage(data)
      if (decoded.ok && decoded.message.kind === 'request') ids.push(decoded.message.messageId)
    })
    controller.attach(next)
    void controller.read(1, 2).catch(() => {})
    expect(requests.map((request) => request.messageId)).toEqual([1])
    expect(ids).toEqual([1])
  })

  it('misuse: typed errors for bad arguments, and attach() while a connection is open', async () => {
    const { controller, controllerSide } = bareController()
    expect(() => controller.attach(controllerSide)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }))
    await expect(controller.read(1, 2, [], { timeoutMs: -1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' })
    await expect(controller.read(1, 2, [], { bogus: 1 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' })
    await expect(controller.read(1, 2, [70_000])).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' })
    expect(() => new MashController(null, { requestTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })
})

/** A device and a controller whose keep-alive runs, with the device's pongs dropped while `blocking.pongs`. */
function blockablePongs(keepAlive?: { intervalMs: number; pongTimeoutMs: number; maxMissedPongs: number }) {
  const blocking = { pongs: false }
  const clock = new FakeClock()
  const [controllerSide, deviceSide] = MemoryTransport.pair({
    filter: (data, from) => {
      const decoded = decodeMessage(data)
      return !(blocking.pongs && from === 'b' && decoded.ok && decoded.message.kind === 'control' && decoded.message.type === 2)
    },
  })
  new MashDevice({ endpoints: testModel(), scheduler: clock, keepAlive: false }).serve(deviceSide)
  const controller = new MashController(controllerSide, { scheduler: clock, ...(keepAlive === undefined ? {} : { keepAlive }) })
  return { blocking, clock, controller, controllerSide }
}

describe('MASH keep-alive on a fake clock', () => {
  it('TC-PROTO-007: the first ping goes at start, then one every 30 s; each pong reports the latency', () => {
    const clock = new FakeClock()
    const [controllerSide, deviceSide] = MemoryTransport.pair()
    new MashDevice({ endpoints: testModel(), scheduler: clock, keepAlive: false }).serve(deviceSide)
    const controller = new MashController(controllerSide, { scheduler: clock })
    const latencies: number[] = []
    controller.on('latency', (ms) => latencies.push(ms))
    // The in-memory pair answers at once: the round trip takes no fake time.
    expect(controller.stats()!.pingsSent).toBe(1)
    clock.advance(30_000)
    clock.advance(30_000)
    expect(controller.stats()!.pingsSent).toBe(3)
    expect(latencies).toEqual([0, 0])
    expect(controller.connected).toBe(true)
  })

  it('TC-PROTO-008: three missed pongs end the connection; the worst case is 95 s after the last pong', async () => {
    const { blocking, clock, controller, controllerSide } = blockablePongs()
    let endedAt = -1
    let endError: Error | undefined
    controller.on('disconnect', (error) => {
      endedAt = clock.now()
      endError = error
    })
    clock.advance(30_000) // the ping at 30 s is answered: the last pong
    blocking.pongs = true
    clock.advance(94_999) // pings at 60, 90, 120 s; misses at 65 and 95 s
    expect(endedAt).toBe(-1)
    expect(controller.connected).toBe(true)
    clock.advance(1) // the third miss, at 125 s: 95 s after the last pong
    expect(endedAt).toBe(125_000)
    expect(endError).toMatchObject({ code: 'ERR_KEEPALIVE_TIMED_OUT' })
    expect(controllerSide.closed).toBe(true)
    expect(clock.size).toBe(0)
  })

  it('a pong of another seq is ignored and counted', () => {
    const { controller, far } = bareController()
    far.send(encodeMessage({ kind: 'control', type: 2, seq: 99 }))
    expect(controller.stats()!.dropped.strayPongs).toBe(1)
  })

  it('a pong in time resets the count of misses: only misses in a row end the connection', () => {
    const { blocking, clock, controller } = blockablePongs({ intervalMs: 1_000, pongTimeoutMs: 100, maxMissedPongs: 2 })
    blocking.pongs = true
    let endedAt = -1
    controller.on('disconnect', () => (endedAt = clock.now()))
    clock.advance(100) // the ping at 0 missed: 1
    blocking.pongs = false
    clock.advance(900) // the ping at 1,000 answered: 0
    blocking.pongs = true
    clock.advance(1_100) // the ping at 2,000 missed at 2,100: 1, not 2
    expect(endedAt).toBe(-1)
    clock.advance(1_000) // the ping at 3,000 missed at 3,100: 2 in a row
    expect(endedAt).toBe(3_100)
  })

  it('the keep-alive is configurable: interval, pong timeout, misses', () => {
    const clock = new FakeClock()
    const [controllerSide] = MemoryTransport.pair()
    const controller = new MashController(controllerSide, { scheduler: clock, keepAlive: { intervalMs: 1_000, pongTimeoutMs: 100, maxMissedPongs: 2 } })
    let endedAt = -1
    controller.on('disconnect', () => (endedAt = clock.now()))
    clock.advance(1_100) // misses at 100 and 1,100 ms: the second ends it
    expect(endedAt).toBe(1_100)
    expect(() => new MashController(null, { keepAlive: { maxMissedPongs: 0 } })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
  })
})

describe('MASH subscriptions on a fake clock', () => {
  it('50 subscriptions per connection; the 51st is RESOURCE_EXHAUSTED, as is a list of 101 attributes', async () => {
    const { controller } = deviceAndController()
    for (let i = 0; i < 50; i++) await controller.subscribe(1, 2, { attributeIds: [1] })
    await expect(controller.subscribe(1, 2, { attributeIds: [1] })).rejects.toMatchObject({ statusName: 'RESOURCE_EXHAUSTED' })
    const other = deviceAndController({ maxSubscriptions: 5 })
    const tooMany = Array.from({ length: 101 }, (_, i) => i)
    await expect(other.controller.subscribe(1, 2, { attributeIds: tooMany })).rejects.toMatchObject({ statusName: 'RESOURCE_EXHAUSTED' })
  })

  it('defaults when the intervals are absent: 1 s window, 60 s heartbeat; minInterval 0 sends each change at once', async () => {
    const { clock, controller, device } = deviceAndController()
    const defaults = await controller.subscribe(1, 2, { attributeIds: [1] })
    const counts: number[] = []
    defaults.on('notification', (changes, priming) => {
      if (!priming) counts.push(changes.size)
    })
    clock.advance(59_999)
    expect(counts).toEqual([])
    clock.advance(1)
    expect(counts).toEqual([1]) // the full heartbeat
    const immediate = await controller.subscribe(1, 2, { attributeIds: [2], minIntervalMs: 0, maxIntervalMs: 1_000_000 })
    const seen: MashValue[] = []
    immediate.on('notification', (changes) => seen.push(changes.get(2)!))
    device.set(1, 2, 2, 1)
    device.set(1, 2, 2, 2)
    expect(seen).toEqual([1, 2]) // the priming came before the listener, with subscribe()
  })

  it('auto-correct swaps minInterval above maxInterval', async () => {
    const { clock, controller } = deviceAndController({ autoCorrectIntervals: true })
    const subscription = await controller.subscribe(1, 2, { attributeIds: [1], minIntervalMs: 5_000, maxIntervalMs: 1_000 })
    let heartbeats = 0
    subscription.on('notification', (_changes, priming) => void (priming || heartbeats++))
    clock.advance(5_000) // the heartbeat comes at the swapped maxInterval, 5 s
    expect(heartbeats).toBe(1)
  })

  it('without bounce-back suppression, a value set back is notified', async () => {
    const { clock, controller, device } = deviceAndController({ bounceBackSuppression: false })
    const subscription = await controller.subscribe(1, 2, { attributeIds: [2], minIntervalMs: 1_000, maxIntervalMs: 60_000 })
    const seen: ReadonlyMap<number, MashValue>[] = []
    subscription.on('notification', (changes, priming) => void (priming || seen.push(changes)))
    device.set(1, 2, 2, 99)
    device.set(1, 2, 2, 10)
    clock.advance(1_000)
    expect(seen).toEqual([new Map([[2, 10]])])
  })

  it('back-pressure: changes go on coalescing while the connection is full, and go out once it drains', async () => {
    const { clock, controller, device, controllerSide } = deviceAndController()
    const subscription = await controller.subscribe(1, 2, { attributeIds: [1], minIntervalMs: 100, maxIntervalMs: 60_000 })
    const seen: MashValue[] = []
    subscription.on('notification', (changes, priming) => void (priming || seen.push(changes.get(1)!)))
    controllerSide.pause()
    device.set(1, 2, 1, 1)
    clock.advance(100) // the first notification waits in the transport
    device.set(1, 2, 1, 2)
    clock.advance(100)
    device.set(1, 2, 1, 3)
    clock.advance(100)
    expect(seen).toEqual([])
    controllerSide.resume()
    expect(seen).toEqual([1, 3])
    expect(device.stats().changesCoalesced).toBe(1)
  })

  it('subscriptions end with their connection: no timers left, no notifications', async () => {
    const { clock, controller, device, deviceSide } = deviceAndController()
    await controller.subscribe(1, 2, { attributeIds: [1] })
    await controller.subscribe(1, 2)
    expect(device.stats().subscriptions).toBe(2)
    deviceSide.close()
    await Promise.resolve()
    expect(device.stats()).toMatchObject({ sessions: 0, subscriptions: 0 })
    device.set(1, 2, 1, 4)
    expect(clock.size).toBe(0)
  })

  it('an oversized message ends the connection (§A.1), nothing answered', () => {
    const { session, controllerSide, deviceSide } = deviceAndController()
    const answers: Uint8Array[] = []
    controllerSide.on('message', (data) => answers.push(data))
    controllerSide.send(new Uint8Array(8_193))
    expect(deviceSide.closed).toBe(true)
    expect(answers).toEqual([])
    expect(session.stats().dropped.malformed).toBe(1)
  })

  it('device misuse: set() of an unknown attribute or a value of the wrong type throws a typed error', () => {
    const { device } = deviceAndController()
    expect(() => device.set(1, 2, 99, 1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => device.set(1, 2, 2, -1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => device.set(1, 2, 3, 101)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(() => new MashDevice({ endpoints: [] })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => new MashDevice({ endpoints: [{ id: 1, features: [{ id: 1, attributes: [{ id: 1 }, { id: 1 }] }] }] })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
    )
  })

  it('a request after the device got a close gets no answer; the close is echoed', () => {
    const { controllerSide, session } = deviceAndController()
    const kinds: string[] = []
    controllerSide.on('message', (data) => {
      const decoded = decodeMessage(data)
      if (decoded.ok) kinds.push(decoded.message.kind === 'control' ? `control ${decoded.message.type}` : decoded.message.kind)
    })
    controllerSide.send(encodeMessage({ kind: 'control', type: 3, seq: 0 }))
    controllerSide.send(encodeMessage({ kind: 'request', messageId: 5, operation: 1, endpointId: 0, featureId: 1 }))
    expect(kinds).toEqual(['control 3'])
    expect(session.subscriptionCount).toBe(0)
  })
})

describe('MASH with a ConnectionManager on a fake clock', () => {
  it('TC-PROTO-009/012: a lost connection is made again after the backoff, and the subscriptions come back primed', async () => {
    const clock = new FakeClock()
    const device = new MashDevice({ endpoints: testModel(), scheduler: clock, keepAlive: false })
    const farSides: MemoryTransport[] = []
    const attempts: number[] = []
    const manager = new ConnectionManager({
      scheduler: clock,
      backoff: { random: () => 0 },
      connect: async ({ attempt }) => {
        attempts.push(attempt)
        const [near, far] = MemoryTransport.pair()
        device.serve(far)
        farSides.push(far)
        return near
      },
    })
    const controller = new MashController(null, { scheduler: clock, keepAlive: false, connection: manager, resubscribe: true })
    const reconnecting: [number, number][] = []
    manager.on('reconnecting', (attempt, delayMs) => reconnecting.push([attempt, delayMs]))
    await manager.start()
    expect(controller.connected).toBe(true)
    const subscription = await controller.subscribe(1, 2, { attributeIds: [1], minIntervalMs: 0, maxIntervalMs: 60_000 })
    const primings: MashValue[] = []
    subscription.on('notification', (changes, priming) => void (priming && primings.push(changes.get(1)!)))

    farSides[0]!.close()
    await new Promise((resolve) => setImmediate(resolve))
    expect(controller.connected).toBe(false)
    expect(subscription.state).toBe('stale')
    device.set(1, 2, 1, 7)
    clock.advance(999)
    expect(attempts).toEqual([0])
    clock.advance(1) // the first reconnect, 1 s after the loss
    await new Promise((resolve) => setImmediate(resolve))
    expect(attempts).toEqual([0, 1])
    expect(reconnecting).toEqual([[1, 1_000]])
    expect(controller.connected).toBe(true)
    await until(() => subscription.state === 'active', 'the subscription made again')
    expect(primings).toEqual([7])
    expect(subscription.values.get(1)).toBe(7)

    await controller.close()
    expect(manager.state).toBe('closed')
    await new Promise((resolve) => setImmediate(resolve))
    expect(clock.size).toBe(0)
  })
})

describe('MASH device handlers', () => {
  it('onRead and onWrite may refuse with a status, replace values, and an unexpected throw answers BUSY', async () => {
    const seenErrors: unknown[] = []
    const { controller, device } = deviceAndController({
      onRead: (values, context) => {
        if (values.has(2)) throw new MashStatusError(MashStatus.NOT_AUTHORIZED, 'energy is private')
        if (values.has(5)) return new Map([[5, `fresh from endpoint ${context.endpointId}`]])
      },
      onWrite: async (values) => {
        if (values.get(3) === 13) throw new Error('unlucky')
        if (values.get(3) === 99) throw new MashStatusError(MashStatus.BUSY, 'the actuator is moving')
        return new Map([[3, Math.round(values.get(3) as number)]])
      },
    })
    device.on('handlerError', (error) => seenErrors.push(error))
    await expect(controller.read(1, 2, [2])).rejects.toMatchObject({ statusName: 'NOT_AUTHORIZED', detail: 'energy is private' })
    expect(await controller.read(1, 2, [5])).toEqual(new Map([[5, 'fresh from endpoint 1']]))
    expect(await controller.write(1, 2, { 3: 41.6 })).toEqual(new Map([[3, 42]]))
    expect(device.get(1, 2, 3)).toBe(42)
    await expect(controller.write(1, 2, { 3: 99 })).rejects.toMatchObject({ statusName: 'BUSY', detail: 'the actuator is moving' })
    await expect(controller.write(1, 2, { 3: 13 })).rejects.toMatchObject({ statusName: 'BUSY' })
    expect(seenErrors).toEqual([new Error('unlucky')])
    expect(device.get(1, 2, 3)).toBe(42)
  })

  it('an async handler that finishes after the connection ended answers nothing', async () => {
    let finish: (() => void) | undefined
    const { controller, device, controllerSide } = deviceAndController({ onWrite: () => new Promise<void>((resolve) => (finish = resolve)) })
    const write = controller.write(1, 2, { 3: 7 })
    controllerSide.close()
    await expect(write).rejects.toMatchObject({ code: 'ERR_OUTCOME_UNKNOWN' })
    finish!()
    await new Promise((resolve) => setImmediate(resolve))
    // The write was done (the device cannot take it back), and no answer went anywhere.
    expect(device.get(1, 2, 3)).toBe(7)
  })
})
