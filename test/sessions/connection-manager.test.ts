import { describe, expect, it } from 'vitest'
import { VolleyError } from '../../src/util/errors.ts'
import { Backoff } from '../../src/sessions/backoff.ts'
import { type ConnectAttempt, ConnectionManager, type ConnectionManagerOptions } from '../../src/sessions/connection-manager.ts'
import { FakeClock, sessionTimers } from '../../src/sessions/timers.ts'
import { MemoryTransport } from '../../src/sessions/transport.ts'

/** Lets promise callbacks and MemoryTransport's queued closes run (one event-loop turn, no time passes). */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

interface Call {
  attempt: number
  signal: AbortSignal
  /** The clock's time when the manager called connect. */
  at: number
  /** Resolves the attempt with a fresh in-memory connection: [the manager's side, the far side]. */
  succeed(): [MemoryTransport, MemoryTransport]
  fail(error: Error): void
}

/** A connect callback whose every attempt the test settles by hand. */
class Dialer {
  readonly calls: Call[] = []
  constructor(readonly clock: FakeClock) {}

  readonly connect = ({ attempt, signal }: ConnectAttempt): Promise<MemoryTransport> =>
    new Promise((resolve, reject) => {
      this.calls.push({
        attempt,
        signal,
        at: this.clock.now(),
        succeed: () => {
          const pair = MemoryTransport.pair()
          resolve(pair[0])
          return pair
        },
        fail: reject,
      })
    })

  get last(): Call {
    const call = this.calls.at(-1)
    if (call === undefined) throw new Error('connect was not called')
    return call
  }
}

function codeOf(error: Error): string {
  return (error as Error & { code?: string }).code ?? error.message
}

/** Every event of a manager, in order, as text. */
function record(manager: ConnectionManager<MemoryTransport>): string[] {
  const log: string[] = []
  manager.on('state', (state, previous) => log.push(`state ${previous}→${state}`))
  manager.on('connected', (transport) => log.push(`connected ${transport === manager.transport ? 'current' : 'other'}`))
  manager.on('disconnected', (error) => log.push(`disconnected ${error === undefined ? '-' : codeOf(error)}`))
  manager.on('reconnecting', (attempt, delayMs) => log.push(`reconnecting ${attempt} ${delayMs}`))
  manager.on('attemptFailed', (error, attempt) => log.push(`attemptFailed ${attempt} ${codeOf(error)}`))
  return log
}

function setup(options: Partial<ConnectionManagerOptions<MemoryTransport>> = {}) {
  const clock = new FakeClock()
  const dialer = new Dialer(clock)
  const manager = new ConnectionManager<MemoryTransport>({ connect: dialer.connect, scheduler: clock, backoff: { random: () => 0 }, ...options })
  const log = record(manager)
  return { clock, dialer, manager, log }
}

/** start() with its first attempt succeeding: the far side of the connection. */
async function connected(dialer: Dialer, manager: ConnectionManager<MemoryTransport>): Promise<MemoryTransport> {
  const started = manager.start()
  const [, far] = dialer.last.succeed()
  await started
  return far
}

function refusal(message = 'token refused'): VolleyError {
  return new VolleyError('ERR_CONNECTION_DENIED', message)
}

describe('ConnectionManager: first connection', () => {
  it('goes disconnected → connecting → connected and resolves start() with the transport', async () => {
    const { clock, dialer, manager, log } = setup()
    expect(manager.state).toBe('disconnected')
    expect(manager.transport).toBeNull()
    const started = manager.start()
    expect(manager.state).toBe('connecting')
    expect(dialer.calls).toHaveLength(1)
    expect(dialer.last.attempt).toBe(0)
    expect(clock.size).toBe(1) // the attempt's timeout
    const [near] = dialer.last.succeed()
    await expect(started).resolves.toBe(near)
    expect(manager.state).toBe('connected')
    expect(manager.transport).toBe(near)
    expect(manager.attempts).toBe(0)
    expect(clock.size).toBe(0)
    expect(log).toEqual(['state disconnected→connecting', 'state connecting→connected', 'connected current'])
  })

  it('retries a failed first attempt with autoReconnect, and start() resolves at the first success', async () => {
    const { clock, dialer, manager, log } = setup()
    const started = manager.start()
    dialer.last.fail(refusal())
    await flush()
    expect(log).toEqual(['state disconnected→connecting', 'attemptFailed 0 ERR_CONNECTION_DENIED', 'state connecting→disconnected', 'state disconnected→reconnecting', 'reconnecting 1 1000'])
    expect(manager.state).toBe('reconnecting')
    expect(manager.attempts).toBe(1)
    clock.advance(999)
    expect(dialer.calls).toHaveLength(1)
    clock.advance(1)
    expect(dialer.calls).toHaveLength(2)
    expect(dialer.last).toMatchObject({ attempt: 1, at: 1000 })
    dialer.last.fail(refusal())
    await flush()
    clock.advance(2000)
    expect(dialer.last).toMatchObject({ attempt: 2, at: 3000 })
    const [near] = dialer.last.succeed()
    await expect(started).resolves.toBe(near)
    expect(manager.attempts).toBe(0)
    expect(clock.size).toBe(0)
    expect(log.slice(5)).toEqual(['attemptFailed 1 ERR_CONNECTION_DENIED', 'reconnecting 2 2000', 'state reconnecting→connected', 'connected current'])
  })

  it('without autoReconnect, rejects start() with the attempt’s error and stays disconnected', async () => {
    const { clock, dialer, manager, log } = setup({ autoReconnect: false })
    const started = manager.start()
    const error = refusal()
    dialer.last.fail(error)
    await expect(started).rejects.toBe(error)
    expect(manager.state).toBe('disconnected')
    expect(clock.size).toBe(0)
    clock.advance(600_000)
    expect(dialer.calls).toHaveLength(1)
    expect(log).toEqual(['state disconnected→connecting', 'attemptFailed 0 ERR_CONNECTION_DENIED', 'state connecting→disconnected'])
  })

  it('counts a connect callback that throws, or resolves with no transport or a closed one, as a failed attempt', async () => {
    const clock = new FakeClock()
    const outcomes: (() => MemoryTransport)[] = [
      () => {
        throw new Error('no token service')
      },
      () => 42 as unknown as MemoryTransport,
      () => {
        const [near, far] = MemoryTransport.pair()
        near.close()
        void far
        return near
      },
    ]
    let call = 0
    const manager = new ConnectionManager<MemoryTransport>({
      connect: () => {
        const outcome = outcomes[call++]!
        if (call === 1) return outcome() as unknown as Promise<MemoryTransport> // a synchronous throw
        return Promise.resolve(outcome())
      },
      scheduler: clock,
      backoff: { random: () => 0 },
    })
    const log = record(manager)
    void manager.start().catch(() => {})
    await flush()
    clock.advance(1000)
    await flush()
    clock.advance(2000)
    await flush()
    expect(log.filter((line) => line.startsWith('attemptFailed') || line.startsWith('reconnecting'))).toEqual([
      'attemptFailed 0 no token service',
      'reconnecting 1 1000',
      'attemptFailed 1 ERR_INVALID_ARG_TYPE',
      'reconnecting 2 2000',
      'attemptFailed 2 ERR_CONNECTION_CLOSED', // no reset: a closed transport is no connection
      'reconnecting 3 4000',
    ])
    manager.close()
  })

  it('refuses a second start() with a typed error', async () => {
    const { dialer, manager } = setup()
    const first = manager.start()
    await expect(manager.start()).rejects.toMatchObject({ name: 'Error', code: 'ERR_INVALID_STATE' })
    expect(dialer.calls).toHaveLength(1)
    dialer.last.succeed()
    await first
    await expect(manager.start()).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' })
    manager.close()
  })
})

describe('ConnectionManager: reconnection', () => {
  it('TC-PROTO-009: reconnects after a loss with delays that increase exponentially, 1 s to the 60 s cap', async () => {
    const { clock, dialer, manager, log } = setup()
    const far = await connected(dialer, manager)
    log.length = 0
    far.close()
    await flush()
    expect(log).toEqual(['disconnected -', 'state connected→reconnecting', 'reconnecting 1 1000'])
    expect(manager.transport).toBeNull()
    const delays = [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]
    for (const [index, delay] of delays.entries()) {
      const waitFrom = clock.now()
      expect(clock.nextDeadline).toBe(waitFrom + delay)
      clock.advance(delay - 1)
      expect(dialer.calls).toHaveLength(index + 1)
      clock.advance(1)
      expect(dialer.calls).toHaveLength(index + 2)
      expect(dialer.last).toMatchObject({ attempt: index + 1, at: waitFrom + delay })
      expect(manager.state).toBe('reconnecting')
      dialer.last.fail(refusal())
      await flush()
    }
    expect(log.filter((line) => line.startsWith('reconnecting'))).toEqual(delays.map((delay, index) => `reconnecting ${index + 1} ${delay}`).concat('reconnecting 10 60000'))
    expect(manager.attempts).toBe(10)
    manager.close()
  })

  it('passes the transport’s close error on, and reconnects to a new transport', async () => {
    const { clock, dialer, manager, log } = setup()
    await connected(dialer, manager)
    const first = manager.transport!
    log.length = 0
    first.close(new VolleyError('ERR_KEEPALIVE_TIMED_OUT', 'No pong in 95 s'))
    expect(log).toEqual(['disconnected ERR_KEEPALIVE_TIMED_OUT', 'state connected→reconnecting', 'reconnecting 1 1000'])
    clock.advance(1000)
    const [second] = dialer.last.succeed()
    await flush()
    expect(manager.transport).toBe(second)
    expect(second).not.toBe(first)
    expect(manager.state).toBe('connected')
    expect(log.slice(3)).toEqual(['state reconnecting→connected', 'connected current'])
    // The old transport is no longer watched: its events change nothing.
    first.emit('close')
    expect(manager.state).toBe('connected')
    manager.close()
  })

  it('TC-PROTO-010: a successful reconnect resets the backoff, so the next loss waits 1 s again', async () => {
    const { clock, dialer, manager, log } = setup()
    let far = await connected(dialer, manager)
    far.close()
    await flush()
    for (const delay of [1000, 2000, 4000]) {
      clock.advance(delay)
      dialer.last.fail(refusal())
      await flush()
    }
    expect(manager.attempts).toBe(4)
    clock.advance(8000)
    far = dialer.last.succeed()[1]
    await flush()
    expect(manager.state).toBe('connected')
    expect(manager.attempts).toBe(0)
    log.length = 0
    far.close()
    await flush()
    expect(log).toEqual(['disconnected -', 'state connected→reconnecting', 'reconnecting 1 1000'])
    const lostAt = clock.now()
    clock.advance(1000)
    expect(dialer.last).toMatchObject({ attempt: 1, at: lostAt + 1000 })
    manager.close()
  })

  it('does not reset the backoff on a refused attempt (an application rejection)', async () => {
    const { clock, dialer, manager, log } = setup()
    const far = await connected(dialer, manager)
    far.close()
    await flush()
    clock.advance(1000)
    dialer.last.fail(new Error('application rejected the device'))
    await flush()
    clock.advance(2000)
    dialer.last.fail(refusal('connect token expired'))
    await flush()
    expect(log.filter((line) => line.startsWith('reconnecting'))).toEqual(['reconnecting 1 1000', 'reconnecting 2 2000', 'reconnecting 3 4000'])
    expect(manager.attempts).toBe(3)
    manager.close()
  })

  it('a Backoff given as an instance is the one used, and reset on a full connection', async () => {
    const backoff = new Backoff({ initialMs: 500, random: () => 0 })
    backoff.next()
    backoff.next() // the manager takes it as it is: next base 2000
    const { clock, dialer, manager, log } = setup({ backoff })
    void manager.start().catch(() => {})
    dialer.last.fail(refusal())
    await flush()
    expect(log.at(-1)).toBe('reconnecting 3 2000')
    clock.advance(2000)
    dialer.last.succeed()
    await flush()
    expect(backoff.attempts).toBe(0)
    expect(backoff.peek()).toBe(500)
    manager.close()
  })

  it('without autoReconnect, a lost connection leaves it disconnected', async () => {
    const { clock, dialer, manager, log } = setup({ autoReconnect: false })
    const far = await connected(dialer, manager)
    log.length = 0
    far.close()
    await flush()
    expect(log).toEqual(['disconnected -', 'state connected→disconnected'])
    expect(clock.size).toBe(0)
    clock.advance(600_000)
    expect(dialer.calls).toHaveLength(1)
  })

  it('TC-PROTO-011: jitter spreads managers that lost their connections together', async () => {
    const clock = new FakeClock()
    const dialer = new Dialer(clock)
    const managers = Array.from({ length: 20 }, () => new ConnectionManager<MemoryTransport>({ connect: dialer.connect, scheduler: clock }))
    const delays: number[] = []
    const fars: MemoryTransport[] = []
    for (const manager of managers) {
      manager.on('reconnecting', (_attempt, delayMs) => delays.push(delayMs))
      const started = manager.start()
      fars.push(dialer.last.succeed()[1])
      await started
    }
    for (const far of fars) far.close()
    await flush()
    expect(delays).toHaveLength(20)
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(1000)
      expect(delay).toBeLessThanOrEqual(1250)
    }
    expect(new Set(delays).size).toBe(20)
    // The attempts come at as many different times.
    const callsBefore = dialer.calls.length
    clock.advance(1250)
    const attemptTimes = dialer.calls.slice(callsBefore).map((call) => call.at)
    expect(attemptTimes).toHaveLength(20)
    expect(new Set(attemptTimes).size).toBe(20)
    expect(attemptTimes.toSorted((a, b) => a - b)).toEqual(delays.toSorted((a, b) => a - b))
    for (const manager of managers) manager.close()
    expect(clock.size).toBe(0)
  })
})

describe('ConnectionManager: attempt timeout', () => {
  it('aborts an attempt that never resolves at 30 s, counts it failed and waits the next delay', async () => {
    const { clock, dialer, manager, log } = setup()
    const far = await connected(dialer, manager)
    far.close()
    await flush()
    clock.advance(1000)
    const hanging = dialer.last
    expect(hanging.attempt).toBe(1)
    clock.advance(29_999)
    expect(hanging.signal.aborted).toBe(false)
    clock.advance(1)
    expect(hanging.signal.aborted).toBe(true)
    expect(hanging.signal.reason).toMatchObject({ code: 'ERR_CONNECTION_TIMED_OUT', message: expect.stringContaining('30000 ms') })
    expect(log.slice(-2)).toEqual(['attemptFailed 1 ERR_CONNECTION_TIMED_OUT', 'reconnecting 2 2000'])
    expect(manager.state).toBe('reconnecting')
    // Its transport, arriving late, is closed and not taken.
    const [late, lateFar] = hanging.succeed()
    let farClosed = false
    lateFar.on('close', () => (farClosed = true))
    await flush()
    expect(late.closed).toBe(true)
    expect(farClosed).toBe(true)
    expect(manager.transport).toBeNull()
    expect(manager.state).toBe('reconnecting')
    clock.advance(2000)
    expect(dialer.last).toMatchObject({ attempt: 2, at: 1000 + 30_000 + 2000 })
    manager.close()
  })

  it('bounds start()’s first attempt too, by attemptTimeoutMs', async () => {
    const { clock, dialer, manager, log } = setup({ attemptTimeoutMs: 5000, autoReconnect: false })
    const started = manager.start()
    clock.advance(5000)
    expect(dialer.last.signal.aborted).toBe(true)
    await expect(started).rejects.toMatchObject({ code: 'ERR_CONNECTION_TIMED_OUT' })
    // A rejection that follows the abort changes nothing.
    dialer.last.fail(new Error('aborted'))
    await flush()
    expect(log).toEqual(['state disconnected→connecting', 'attemptFailed 0 ERR_CONNECTION_TIMED_OUT', 'state connecting→disconnected'])
    expect(clock.size).toBe(0)
  })
})

describe('ConnectionManager: close', () => {
  it('during the wait: cancels it, rejects start() with ABORT_ERR, leaves no timer', async () => {
    const { clock, dialer, manager, log } = setup()
    const started = manager.start()
    dialer.last.fail(refusal())
    await flush()
    expect(clock.size).toBe(1)
    manager.close()
    await expect(started).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' })
    expect(manager.state).toBe('closed')
    expect(clock.size).toBe(0)
    clock.advance(600_000)
    expect(dialer.calls).toHaveLength(1)
    expect(log.at(-1)).toBe('state reconnecting→closed')
    manager.close() // idempotent
    expect(log.filter((line) => line.endsWith('→closed'))).toHaveLength(1)
  })

  it('during an attempt: aborts it and closes the transport that still arrives', async () => {
    const { clock, dialer, manager, log } = setup()
    const started = manager.start()
    const attempt = dialer.last
    manager.close()
    expect(attempt.signal.aborted).toBe(true)
    expect(attempt.signal.reason).toMatchObject({ code: 'ABORT_ERR' })
    await expect(started).rejects.toMatchObject({ code: 'ABORT_ERR' })
    expect(clock.size).toBe(0)
    const [late] = attempt.succeed()
    await flush()
    expect(late.closed).toBe(true)
    expect(manager.transport).toBeNull()
    expect(manager.state).toBe('closed')
    expect(log).toEqual(['state disconnected→connecting', 'state connecting→closed'])
  })

  it('while connected: closes the transport, with no disconnected event and no reconnect', async () => {
    const { clock, dialer, manager, log } = setup()
    const far = await connected(dialer, manager)
    const near = manager.transport!
    let farClosed = false
    far.on('close', () => (farClosed = true))
    log.length = 0
    manager.close()
    await flush()
    expect(near.closed).toBe(true)
    expect(farClosed).toBe(true)
    expect(manager.transport).toBeNull()
    expect(log).toEqual(['state connected→closed'])
    expect(clock.size).toBe(0)
    clock.advance(600_000)
    expect(dialer.calls).toHaveLength(1)
  })

  it('from a handler of the reconnecting event: no timer is left armed', async () => {
    const { clock, dialer, manager } = setup()
    const started = manager.start().catch((error: unknown) => error)
    manager.on('reconnecting', () => manager.close())
    dialer.last.fail(refusal())
    await flush()
    expect(manager.state).toBe('closed')
    expect(clock.size).toBe(0)
    expect(await started).toMatchObject({ code: 'ABORT_ERR' })
  })

  it('from a handler of the disconnected event: no reconnect is scheduled', async () => {
    const { clock, dialer, manager, log } = setup()
    const far = await connected(dialer, manager)
    manager.on('disconnected', () => manager.close())
    log.length = 0
    far.close()
    await flush()
    expect(log).toEqual(['disconnected -', 'state connected→closed'])
    expect(manager.attempts).toBe(0)
    expect(clock.size).toBe(0)
  })

  it('start() after close() rejects with ABORT_ERR and calls nothing', async () => {
    const { clock, dialer, manager } = setup()
    manager.close()
    await expect(manager.start()).rejects.toMatchObject({ code: 'ABORT_ERR' })
    expect(dialer.calls).toHaveLength(0)
    expect(clock.size).toBe(0)
  })

  it('an AbortSignal closes it, start() rejecting with the reason as cause', async () => {
    const controller = new AbortController()
    const { clock, dialer, manager, log } = setup({ signal: controller.signal })
    const started = manager.start()
    dialer.last.fail(refusal())
    await flush()
    const reason = new Error('shutting down')
    controller.abort(reason)
    const error = await started.catch((thrown: unknown) => thrown)
    expect(error).toMatchObject({ code: 'ABORT_ERR', cause: reason, message: expect.stringContaining('"signal" option aborted') })
    expect(manager.state).toBe('closed')
    expect(clock.size).toBe(0)
    expect(log.at(-1)).toBe('state reconnecting→closed')
  })

  it('a signal aborted already leaves it closed from the start', async () => {
    const { dialer, manager } = setup({ signal: AbortSignal.abort() })
    expect(manager.state).toBe('closed')
    await expect(manager.start()).rejects.toMatchObject({ code: 'ABORT_ERR' })
    expect(dialer.calls).toHaveLength(0)
  })
})

describe('ConnectionManager: options', () => {
  it('refuses bad options with typed errors', () => {
    const clock = new FakeClock()
    const connect = (): Promise<MemoryTransport> => new Promise(() => {})
    const make = (options: unknown) => () => new ConnectionManager(options as ConnectionManagerOptions<MemoryTransport>)
    expect(make(undefined)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(make({})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"connect"') }))
    expect(make({ connect: 'localhost' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(make({ connect, retry: true })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('"retry"') }))
    expect(make({ connect, autoReconnect: 'yes' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"autoReconnect"') }))
    expect(make({ connect, attemptTimeoutMs: 0 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"attemptTimeoutMs"') }))
    expect(make({ connect, attemptTimeoutMs: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }))
    expect(make({ connect, backoff: 1000 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"backoff"') }))
    expect(make({ connect, backoff: { initialMs: 0 } })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"initialMs"') }))
    expect(make({ connect, scheduler: {} })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"scheduler"') }))
    expect(make({ connect, signal: 'abort' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"signal"') }))
    const manager = make({ connect, scheduler: clock, autoReconnect: undefined, attemptTimeoutMs: undefined, backoff: undefined, signal: undefined })()
    expect(manager.state).toBe('disconnected')
  })
})

describe('ConnectionManager: on the process timer queue', () => {
  it('holds the process open while it waits or tries, and lets go once connected or closed', async () => {
    const timeouts = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length
    const queue = sessionTimers()
    const baseline = timeouts()
    const queued = queue.size
    let pair: [MemoryTransport, MemoryTransport] | undefined
    let calls = 0
    const manager = new ConnectionManager<MemoryTransport>({
      // The first attempt fails at once: the manager then waits 1–1.25 s on the unreferenced queue.
      connect: () => (calls++ === 0 ? Promise.reject(refusal()) : new Promise(() => {})),
    })
    const started = manager.start().catch((error: unknown) => error)
    expect(timeouts()).toBe(baseline + 1) // the attempt
    await flush()
    expect(manager.state).toBe('reconnecting')
    expect(queue.size).toBe(queued + 1) // the wait, on the queue
    expect(timeouts()).toBe(baseline + 1) // and the hold, one per process
    const second = new ConnectionManager<MemoryTransport>({
      connect: () => {
        pair = MemoryTransport.pair()
        return Promise.resolve(pair[0])
      },
    })
    const secondStarted = second.start()
    expect(timeouts()).toBe(baseline + 1) // still one hold for both
    await secondStarted
    expect(second.state).toBe('connected')
    expect(timeouts()).toBe(baseline + 1) // the first one's
    manager.close()
    expect(await started).toMatchObject({ code: 'ABORT_ERR' })
    expect(timeouts()).toBe(baseline)
    expect(queue.size).toBe(queued)
    second.close()
    expect(pair?.[0].closed).toBe(true)
    expect(timeouts()).toBe(baseline)
  })
})
