// Keeps one session connection up (MASH behaviours §5.4–5.7): connects, and when the connection is lost waits
// a backoff delay and connects again, until close(). The connect callback does the whole of an attempt (a
// fresh connect token, the Volley connection, any application handshake): the manager only decides when.
import { EventEmitter } from 'node:events'
import { VolleyError, VolleyTypeError, describe, surfaceLater } from '../util/errors.ts'
import { LifetimeSignal } from '../util/lifetime-signal.ts'
import { checkOptions, integerOption } from '../util/options.ts'
import { Backoff, type BackoffOptions } from './backoff.ts'
import { type Scheduler, Timer, TimerQueue, sessionTimers } from './timers.ts'
import type { SessionTransport } from './transport.ts'

export type ConnectionState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'closed'

/** What the connect callback is given for one attempt. */
export interface ConnectAttempt {
  /**
   * 0 for start()'s first attempt; n ≥ 1 for the n-th reconnect attempt since the last full connection (the
   * number its 'reconnecting' event announced).
   */
  attempt: number
  /** Aborts when the attempt times out (attemptTimeoutMs) or the manager closes: the callback should give up then. */
  signal: AbortSignal
}

export interface ConnectionManagerOptions<T extends SessionTransport> {
  /**
   * Makes one connection; resolves once it is fully up (for a Volley client: connected, and any application
   * handshake done). Each call must fetch a fresh connect token: tokens expire. Rejects on failure. Only its
   * resolving resets the backoff: a refused token or an application's rejection does not.
   */
  connect: (attempt: ConnectAttempt) => Promise<T>
  /** Whether to reconnect after a failed first attempt or a lost connection (default true). */
  autoReconnect?: boolean | undefined
  /** How long an attempt may take, ms (default 30000): then its signal aborts and it counts as failed. */
  attemptTimeoutMs?: number | undefined
  /** The delays between attempts: a Backoff (the manager resets it on each connection) or its options. */
  backoff?: Backoff | BackoffOptions | undefined
  /** Where the waits and attempt timeouts run (default sessionTimers(); a FakeClock in tests). */
  scheduler?: Scheduler | undefined
  /** Aborting it is close(). */
  signal?: AbortSignal | undefined
}

export interface ConnectionManagerEvents<T extends SessionTransport> {
  /** Each change of state, with the one before. */
  state: [state: ConnectionState, previous: ConnectionState]
  /** A connection is fully up: the transport to use until 'disconnected'. */
  connected: [transport: T]
  /** The connection ended by itself (the transport's 'close'; error: why, when not an orderly end). Not emitted for close(). */
  disconnected: [error: Error | undefined]
  /** A reconnect attempt is scheduled: its number since the last full connection, and the wait before it, ms. */
  reconnecting: [attempt: number, delayMs: number]
  /** An attempt failed (rejected, timed out, or gave no usable transport); what follows is in 'state' and 'reconnecting'. */
  attemptFailed: [error: Error, attempt: number]
}

/** What a session protocol's client needs of a ConnectionManager (of any transport type). */
export interface ManagedConnection {
  readonly transport: SessionTransport | null
  on(event: 'connected', listener: (transport: SessionTransport) => void): unknown
  off(event: 'connected', listener: (transport: SessionTransport) => void): unknown
  close(): void
}

const knownOptions: ReadonlySet<string> = new Set(['connect', 'autoReconnect', 'attemptTimeoutMs', 'backoff', 'scheduler', 'signal'])

/** The attempt in progress. */
interface PendingAttempt {
  readonly number: number
  readonly controller: AbortController
}

/**
 * Manages one connection with automatic reconnection. start() makes the first connection; when it fails or
 * a connection is lost, the manager waits backoff.next() and tries again, each attempt bounded by
 * attemptTimeoutMs. Event handlers that throw do not stop it: their errors surface as uncaught exceptions
 * once the manager's step is done.
 */
export class ConnectionManager<T extends SessionTransport = SessionTransport> extends EventEmitter<ConnectionManagerEvents<T>> {
  readonly #connect: (attempt: ConnectAttempt) => Promise<T>
  readonly #autoReconnect: boolean
  readonly #attemptTimeoutMs: number
  readonly #backoff: Backoff
  readonly #scheduler: Scheduler
  readonly #lifetime: LifetimeSignal
  #state: ConnectionState = 'disconnected'
  #started = false
  #transport: T | null = null
  #pending: PendingAttempt | null = null
  /** The number of the attempt the wait timer starts. */
  #nextAttempt = 0
  /** start()'s promise, until the first connection (or the end of trying). */
  #first: { resolve: (transport: T) => void; reject: (error: Error) => void } | null = null
  #holdingProcess = false
  readonly #waitTimer = new Timer(() => this.#runAttempt(this.#nextAttempt))
  readonly #attemptTimer = new Timer(() => this.#timeOut())

  constructor(options: ConnectionManagerOptions<T>) {
    super()
    checkOptions('ConnectionManager options', options, knownOptions)
    const { connect, autoReconnect, backoff, scheduler } = options
    if (typeof connect !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "connect" option must be a function returning a promise of a transport. Received ${describe(connect)}`)
    }
    if (autoReconnect !== undefined && typeof autoReconnect !== 'boolean') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "autoReconnect" option must be of type boolean. Received ${describe(autoReconnect)}`)
    }
    this.#attemptTimeoutMs = integerOption('attemptTimeoutMs', options.attemptTimeoutMs, 30_000, 1, 2 ** 31 - 1)
    if (backoff === undefined || backoff instanceof Backoff) {
      this.#backoff = backoff ?? new Backoff()
    } else if (typeof backoff === 'object' && backoff !== null) {
      this.#backoff = new Backoff(backoff)
    } else {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "backoff" option must be a Backoff or an object of Backoff options. Received ${describe(backoff)}`)
    }
    if (scheduler !== undefined && !isScheduler(scheduler)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "scheduler" option must be a Scheduler (now(), arm(), disarm()). Received ${describe(scheduler)}`)
    }
    this.#connect = connect
    this.#autoReconnect = autoReconnect ?? true
    this.#scheduler = scheduler ?? sessionTimers()
    this.#lifetime = new LifetimeSignal(options.signal)
    // Last: a signal aborted already leaves the manager closed.
    this.#lifetime.watch(() => this.close())
  }

  get state(): ConnectionState {
    return this.#state
  }

  /** The transport of the connection that is up; null in any other state. */
  get transport(): T | null {
    return this.#transport
  }

  /** Reconnect attempts since the last full connection (the backoff's count). */
  get attempts(): number {
    return this.#backoff.attempts
  }

  /**
   * Makes the first connection: resolves with its transport. A failed first attempt is retried after the
   * backoff with autoReconnect (the promise resolves at the first success), and rejects with the attempt's
   * error without it. Rejects with ABORT_ERR when the manager closes first. Once per manager.
   */
  start(): Promise<T> {
    if (this.#started) {
      return Promise.reject(new VolleyError('ERR_INVALID_STATE', `start() was called already (the manager is ${this.#state}): a ConnectionManager starts once, and reconnects by itself`))
    }
    this.#started = true
    if (this.#state === 'closed') return Promise.reject(this.#lifetime.closedError('ABORT_ERR', 'The connection manager was closed before start()'))
    const connected = new Promise<T>((resolve, reject) => {
      this.#first = { resolve, reject }
    })
    if (this.#enter('connecting')) this.#runAttempt(0)
    return connected
  }

  /**
   * Ends it all, from any state: the wait is cancelled, the attempt in progress aborted (its transport, should
   * it still arrive, is closed), the connection closed, start()'s promise rejected (ABORT_ERR) if still pending.
   * Idempotent.
   */
  close(): void {
    if (this.#state === 'closed') return
    const previous = this.#state
    this.#state = 'closed'
    this.#lifetime.release()
    this.#scheduler.disarm(this.#waitTimer)
    this.#scheduler.disarm(this.#attemptTimer)
    this.#updateHold()
    const error = this.#lifetime.closedError('ABORT_ERR', 'The connection manager was closed')
    const pending = this.#pending
    this.#pending = null
    const transport = this.#transport
    this.#transport = null
    const first = this.#first
    this.#first = null
    first?.reject(error)
    guard(() => pending?.controller.abort(error))
    if (transport !== null) {
      transport.off('close', this.#onTransportClose)
      guard(() => transport.close())
    }
    guard(() => this.emit('state', 'closed', previous))
  }

  /** Moves to `state`, emitting 'state'; false when a handler closed the manager meanwhile. */
  #enter(state: ConnectionState): boolean {
    const previous = this.#state
    if (previous === 'closed') return false
    if (previous !== state) {
      this.#state = state
      guard(() => this.emit('state', state, previous))
    }
    return this.#state !== 'closed'
  }

  #runAttempt(number: number): void {
    if (this.#state === 'closed') return
    const controller = new AbortController()
    const pending: PendingAttempt = { number, controller }
    this.#pending = pending
    this.#scheduler.arm(this.#attemptTimer, this.#scheduler.now() + this.#attemptTimeoutMs)
    this.#updateHold()
    let result: Promise<T>
    try {
      result = Promise.resolve(this.#connect({ attempt: number, signal: controller.signal }))
    } catch (error) {
      result = Promise.reject(error)
    }
    result.then(
      (transport) => this.#attemptResolved(pending, transport),
      (error: unknown) => {
        if (this.#pending === pending) this.#attemptFailed(pending, asError(error))
      },
    )
  }

  #attemptResolved(pending: PendingAttempt, transport: unknown): void {
    if (this.#pending !== pending) {
      // Timed out or closed meanwhile: nobody will use this connection.
      if (isTransport(transport)) guard(() => transport.close())
      return
    }
    if (!isTransport(transport)) {
      this.#attemptFailed(pending, new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "connect" option must resolve with a SessionTransport. Received ${describe(transport)}`))
      return
    }
    if (transport.closed) {
      // Not "fully up": taking it would reset the backoff for a connection that never was.
      this.#attemptFailed(pending, new VolleyError('ERR_CONNECTION_CLOSED', `Connection attempt ${pending.number} resolved with a transport that had closed already`))
      return
    }
    this.#endAttempt()
    this.#backoff.reset()
    this.#transport = transport as T
    transport.on('close', this.#onTransportClose)
    const first = this.#first
    this.#first = null
    first?.resolve(transport as T)
    this.#updateHold()
    if (!this.#enter('connected') || this.#transport !== transport) return
    guard(() => this.emit('connected', transport as T))
  }

  #timeOut(): void {
    const pending = this.#pending
    if (pending === null) return
    const error = new VolleyError('ERR_CONNECTION_TIMED_OUT', `Connection attempt ${pending.number} did not complete within ${this.#attemptTimeoutMs} ms (the "attemptTimeoutMs" option)`)
    this.#attemptFailed(pending, error)
  }

  #attemptFailed(pending: PendingAttempt, error: Error): void {
    this.#endAttempt()
    // Aborted in any case (a no-op once the callback has settled): whatever the attempt still holds is let go.
    guard(() => pending.controller.abort(error))
    if (this.#state === 'closed') return
    guard(() => this.emit('attemptFailed', error, pending.number))
    if (this.#state === 'connecting') {
      // start()'s first attempt: disconnected, then retrying if asked to.
      if (!this.#autoReconnect) {
        const first = this.#first
        this.#first = null
        first?.reject(error)
        this.#updateHold()
        this.#enter('disconnected')
        return
      }
      if (!this.#enter('disconnected') || !this.#enter('reconnecting')) return
    }
    if (this.#state === 'reconnecting') this.#scheduleRetry()
  }

  #endAttempt(): void {
    this.#pending = null
    this.#scheduler.disarm(this.#attemptTimer)
  }

  readonly #onTransportClose = (error?: Error): void => {
    const transport = this.#transport
    if (transport === null) return
    transport.off('close', this.#onTransportClose)
    this.#transport = null
    guard(() => this.emit('disconnected', error))
    if (!this.#autoReconnect) {
      this.#enter('disconnected')
      return
    }
    if (this.#enter('reconnecting')) this.#scheduleRetry()
  }

  #scheduleRetry(): void {
    const delay = this.#backoff.next()
    const attempt = this.#backoff.attempts
    this.#nextAttempt = attempt
    // Armed before the event: a handler that closes the manager disarms it.
    this.#scheduler.arm(this.#waitTimer, this.#scheduler.now() + delay)
    this.#updateHold()
    guard(() => this.emit('reconnecting', attempt, delay))
  }

  /**
   * The process's TimerQueue runs on an unreferenced JS timer: while the manager waits or tries, nothing
   * else may keep the process alive, and it would exit in the middle of reconnecting (with start() pending).
   * A manager holds the process open then, as a socket being connected does.
   */
  #updateHold(): void {
    const wanted = this.#state !== 'closed' && (this.#pending !== null || this.#waitTimer.armed) && this.#scheduler instanceof TimerQueue
    if (wanted === this.#holdingProcess) return
    this.#holdingProcess = wanted
    if (wanted) processHold.acquire()
    else processHold.release()
  }
}

/** One referenced JS timer for all managers that hold the process open: 10,000 reconnecting clients are one timer. */
const processHold = {
  count: 0,
  handle: undefined as NodeJS.Timeout | undefined,
  acquire(): void {
    if (this.count++ === 0) this.handle = setInterval(() => {}, 2 ** 31 - 1)
  },
  release(): void {
    if (--this.count === 0) {
      clearInterval(this.handle)
      this.handle = undefined
    }
  },
}

/** Runs an event emission or a callee's callback; what it throws surfaces later, and the manager's step goes on. */
function guard(action: () => void): void {
  try {
    action()
  } catch (error) {
    surfaceLater(error)
  }
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(`The connection attempt failed: ${describe(value)}`, { cause: value })
}

function isScheduler(value: unknown): value is Scheduler {
  const candidate = value as Partial<Scheduler> | null
  return typeof value === 'object' && candidate !== null && typeof candidate.now === 'function' && typeof candidate.arm === 'function' && typeof candidate.disarm === 'function'
}

function isTransport(value: unknown): value is SessionTransport {
  const candidate = value as Partial<SessionTransport> | null
  return (
    typeof value === 'object' &&
    candidate !== null &&
    typeof candidate.on === 'function' &&
    typeof candidate.off === 'function' &&
    typeof candidate.close === 'function' &&
    typeof candidate.closed === 'boolean'
  )
}
