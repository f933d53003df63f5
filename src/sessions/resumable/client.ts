// The client side of resumable sessions (research §C.4): creates a session on its first connection and
// continues it on every later one, heartbeats, and resends what is unanswered so that each request is
// applied once however many connections it takes. Connections come from a ConnectionManager (reconnects
// with backoff) or from attach(); time from the scheduler, so a fake clock drives all of it.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { copyBytes } from '../../util/bytes.ts'
import { VolleyError, VolleyTypeError, abortedError, checkSignal, describe, surfaceLater } from '../../util/errors.ts'
import { checkOptions, integerOption, signalOnly } from '../../util/options.ts'
import { ConnectionManager, type ManagedConnection } from '../connection-manager.ts'
import { Timer, sessionTimers, type Scheduler } from '../timers.ts'
import type { SessionTransport } from '../transport.ts'
import {
  RESUMABLE_CONNECTION_TIMEOUT_MS,
  RESUMABLE_KEEP_ALIVE_INTERVAL_MS,
  RESUMABLE_MAX_KEEP_ALIVE_INTERVAL_MS,
  RESUMABLE_MIN_KEEP_ALIVE_INTERVAL_MS,
  RESUMABLE_REQUEST_TIMEOUT_MS,
  RESUMABLE_SESSION_TIMEOUT_MS,
} from './settings.ts'
import { type ClientMessage, type RejectionReason, type ServerMessage, type SessionCloseReason, decodeServerMessage, encodeClientMessage } from './wire.ts'

/**
 * disconnected: no connection (waiting for one); connecting-new / connecting-existing: CreateSession /
 * ContinueSession sent, waiting for the answer; connected: the session is bound to the connection. The
 * last three end it: expired (the server no longer has it), rejected (the server refused to create it, or
 * refused a continue for a reason other than its absence), closed (close()).
 */
export type SessionClientState = 'disconnected' | 'connecting-new' | 'connecting-existing' | 'connected' | 'expired' | 'rejected' | 'closed'

export interface SessionClientOptions {
  /** What the client asks for at CreateSession (at least one entry). */
  capabilities: ReadonlyMap<string, string> | Readonly<Record<string, string>>
  /** A ConnectionManager whose connections the client runs on; without it, attach() gives it its connections. */
  connection?: ManagedConnection | undefined
  /** The heartbeat interval, ms (default 30000, 10000 to 120000). */
  keepAliveIntervalMs?: number | undefined
  /** A heartbeat unanswered this long ends the connection (a new one continues the session), ms (default 10000). */
  keepAliveTimeoutMs?: number | undefined
  /** How long to wait for SessionCreated or SessionContinued before trying a new connection, ms (default 5000). */
  connectionTimeoutMs?: number | undefined
  /** A request unanswered this long is sent again on the same connection, ms (default 10000). */
  requestTimeoutMs?: number | undefined
  /** The server's session timeout, for the diagnostics' estimate of the expiry, ms (default 90000). */
  sessionTimeoutMs?: number | undefined
  scheduler?: Scheduler | undefined
  /** The wall clock, ms since the epoch (default Date.now): heartbeat and request timestamps. */
  wallClock?: (() => number) | undefined
}

export interface SessionClientEvents {
  state: [state: SessionClientState, previous: SessionClientState]
  /** The session was created (its id) or continued on a new connection. */
  session: [sessionId: string, continued: boolean]
  /** A server request, in order, each once: acknowledged when the listeners have run. */
  serverRequest: [payload: Uint8Array, requestId: number]
  /** The session ended for good (expired, rejected): every pending request failed with the same error. */
  ended: [error: VolleyError]
}

/** The session's heartbeat diagnostics, as the client measures them (client.diagnostics()). */
export interface HeartbeatDiagnostics {
  sessionId: string | undefined
  /** When the latest heartbeats were sent, ms since the epoch, oldest first (up to 4). */
  lastHeartbeats: number[]
  /** When the session expires at the server if no heartbeat gets through: the last answered one + sessionTimeoutMs. */
  currentExpiresAt: number | undefined
  /** The mean round trip of answered heartbeats, ms (undefined before the first). */
  averageRoundTripMs: number | undefined
  lastRoundTripMs: number | undefined
  /** Responses that echoed an older heartbeat than the latest sent (out of order or late). */
  droppedStaleResponses: number
}

export interface SessionClientStats {
  heartbeatsSent: number
  heartbeatsAnswered: number
  droppedStaleResponses: number
  /** Heartbeats unanswered within keepAliveTimeoutMs (each ended its connection). */
  heartbeatTimeouts: number
  requestsSent: number
  /** Requests sent again (after a continue, or past requestTimeoutMs). */
  requestsResent: number
  /** Connections the session ran on (created or continued). */
  connections: number
  /** Messages dropped: undecodable, a nonce not the pending one, an answer to nothing pending, an out-of-order server request. */
  dropped: { malformed: number; wrongNonce: number; unexpected: number; outOfOrder: number }
}

export interface SessionRequestOptions {
  /** Stops waiting (ABORT_ERR). The request may still be applied at the server: it is not sent again. */
  signal?: AbortSignal | undefined
}

interface PendingRequest {
  readonly payload: Uint8Array
  readonly createdAt: number
  /** When it was last sent, on the scheduler's clock; -Infinity while unsent on this connection. */
  sentAt: number
  readonly resolve: (result: Uint8Array) => void
  readonly reject: (error: Error) => void
  readonly cleanup: () => void
}

const LAST_HEARTBEATS = 4

const knownOptions: ReadonlySet<string> = new Set([
  'capabilities',
  'connection',
  'keepAliveIntervalMs',
  'keepAliveTimeoutMs',
  'connectionTimeoutMs',
  'requestTimeoutMs',
  'sessionTimeoutMs',
  'scheduler',
  'wallClock',
])

/**
 * The client side of a resumable session: creates the session on its first connection and continues it on
 * every later one, sends heartbeats, and resends what is unanswered, so that each request is applied once
 * however many connections it takes. Connections come from a ConnectionManager or from attach().
 */
export class SessionClient extends EventEmitter<SessionClientEvents> {
  readonly keepAliveIntervalMs: number
  readonly #capabilities: ReadonlyMap<string, string>
  readonly #connection: ManagedConnection | undefined
  readonly #keepAliveTimeoutMs: number
  readonly #connectionTimeoutMs: number
  readonly #requestTimeoutMs: number
  readonly #sessionTimeoutMs: number
  readonly #scheduler: Scheduler
  readonly #wallClock: () => number
  #state: SessionClientState = 'disconnected'
  #sessionId: string | undefined
  #transport: SessionTransport | null = null
  /** The nonce of the CreateSession or ContinueSession waiting for its answer. */
  #nonce = 0n
  #nextRequestId = 1
  readonly #requests = new Map<number, PendingRequest>()
  readonly #queries = new Map<string, PendingRequest>()
  #nextCorrelation = 1
  /** The last server request handled (they come in order from 1). */
  #serverRequestsDone = 0
  /** The latest heartbeat's timestamp and when it went (scheduler clock); its first unanswered one's time. */
  #heartbeatTimestamp = -Infinity
  #heartbeatSentAt = 0
  #unansweredSince = Infinity
  /** Timestamps of the heartbeats sent on this connection start here: an echo below it is no heartbeat of ours. */
  #firstTimestampOnConnection = Infinity
  #lastAnsweredAt: number | undefined
  #lastHeartbeats: number[] = []
  #rttSum = 0
  #rttCount = 0
  #lastRtt: number | undefined
  readonly #heartbeat = new Timer(() => this.#onHeartbeatTimer())
  /** The connect timeout, then the heartbeat-answer deadline. */
  readonly #deadline = new Timer(() => this.#onDeadline())
  readonly #resend = new Timer(() => this.#onResendTimer())
  readonly #stats: SessionClientStats = {
    heartbeatsSent: 0,
    heartbeatsAnswered: 0,
    droppedStaleResponses: 0,
    heartbeatTimeouts: 0,
    requestsSent: 0,
    requestsResent: 0,
    connections: 0,
    dropped: { malformed: 0, wrongNonce: 0, unexpected: 0, outOfOrder: 0 },
  }

  constructor(options: SessionClientOptions) {
    super()
    checkOptions('"options" argument', options, knownOptions)
    this.#capabilities = capabilitiesOption(options.capabilities)
    this.keepAliveIntervalMs = integerOption(
      'keepAliveIntervalMs',
      options.keepAliveIntervalMs,
      RESUMABLE_KEEP_ALIVE_INTERVAL_MS,
      RESUMABLE_MIN_KEEP_ALIVE_INTERVAL_MS,
      RESUMABLE_MAX_KEEP_ALIVE_INTERVAL_MS,
    )
    this.#keepAliveTimeoutMs = integerOption('keepAliveTimeoutMs', options.keepAliveTimeoutMs, 10_000, 100, 3_600_000)
    this.#connectionTimeoutMs = integerOption('connectionTimeoutMs', options.connectionTimeoutMs, RESUMABLE_CONNECTION_TIMEOUT_MS, 100, 3_600_000)
    this.#requestTimeoutMs = integerOption('requestTimeoutMs', options.requestTimeoutMs, RESUMABLE_REQUEST_TIMEOUT_MS, 100, 3_600_000)
    this.#sessionTimeoutMs = integerOption('sessionTimeoutMs', options.sessionTimeoutMs, RESUMABLE_SESSION_TIMEOUT_MS, 1_000, 3_600_000)
    if (options.wallClock !== undefined && typeof options.wallClock !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "wallClock" option must be a function. Received ${describe(options.wallClock)}`)
    }
    this.#scheduler = options.scheduler ?? sessionTimers()
    // Whole milliseconds, as the wire carries them.
    const wallClock = options.wallClock ?? Date.now
    this.#wallClock = () => Math.floor(wallClock())
    const { connection } = options
    if (connection !== undefined) {
      if (!(connection instanceof ConnectionManager)) {
        throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "connection" option must be a ConnectionManager. Received ${describe(connection)}`)
      }
      this.#connection = connection
      connection.on('connected', this.#onConnected)
      if (connection.transport !== null) this.attach(connection.transport)
    }
  }

  get state(): SessionClientState {
    return this.#state
  }

  /** The session's id, once the server created it. */
  get sessionId(): string | undefined {
    return this.#sessionId
  }

  /** Requests waiting for their response. */
  get pendingRequests(): number {
    return this.#requests.size
  }

  stats(): SessionClientStats {
    return structuredClone(this.#stats)
  }

  diagnostics(): HeartbeatDiagnostics {
    return {
      sessionId: this.#sessionId,
      lastHeartbeats: [...this.#lastHeartbeats],
      currentExpiresAt: this.#lastAnsweredAt === undefined ? undefined : this.#lastAnsweredAt + this.#sessionTimeoutMs,
      averageRoundTripMs: this.#rttCount === 0 ? undefined : this.#rttSum / this.#rttCount,
      lastRoundTripMs: this.#lastRtt,
      droppedStaleResponses: this.#stats.droppedStaleResponses,
    }
  }

  /**
   * Runs the session on a new connection: CreateSession on the first, ContinueSession after. One connection
   * at a time: ERR_INVALID_STATE while the previous one is open; ERR_SESSION_CLOSED once the session ended.
   */
  attach(transport: SessionTransport): void {
    if (this.#ended) throw this.#endedError()
    if (this.#transport !== null && !this.#transport.closed) {
      throw new VolleyError('ERR_INVALID_STATE', 'The SessionClient is on a connection still open: close it (or wait for its end) before attach()')
    }
    this.#transport = transport
    transport.on('message', (data) => {
      if (this.#transport === transport) this.#receive(data)
    })
    transport.on('close', () => {
      if (this.#transport === transport) this.#connectionLost()
    })
    transport.on('drain', noop)
    this.#nonce = randomNonce()
    this.#firstTimestampOnConnection = Infinity
    this.#unansweredSince = Infinity
    this.#scheduler.arm(this.#deadline, this.#scheduler.now() + this.#connectionTimeoutMs)
    if (this.#sessionId === undefined) {
      this.#setState('connecting-new')
      this.#send({ type: 'create-session', capabilities: this.#capabilities, nonce: this.#nonce })
    } else {
      this.#setState('connecting-existing')
      this.#send({ type: 'continue-session', sessionId: this.#sessionId, nonce: this.#nonce })
    }
  }

  /**
   * Sends a request; resolves with the server's response. Sent again after each reconnect and each
   * requestTimeoutMs without an answer, and applied once at the server whatever the resends. Rejects with
   * ERR_SESSION_EXPIRED / ERR_SESSION_REJECTED / ERR_SESSION_CLOSED when the session ends first, and
   * ERR_RESPONSE_EVICTED when the server applied it but no longer holds its response.
   */
  request(payload: Uint8Array, options: SessionRequestOptions = {}): Promise<Uint8Array> {
    return this.#enqueue(this.#requests, this.#nextRequestId++, payload, options)
  }

  /** Sends a query (read-only, not recorded): answered by the server's onQuery; resent like a request. */
  query(payload: Uint8Array, options: SessionRequestOptions = {}): Promise<Uint8Array> {
    return this.#enqueue(this.#queries, String(this.#nextCorrelation++), payload, options)
  }

  /**
   * Ends the session: CloseSession to the server (which expires it at once) when connected, then the
   * connection (and the ConnectionManager) closes. Pending requests fail with ERR_SESSION_CLOSED.
   */
  async close(): Promise<void> {
    if (this.#ended) return
    if (this.#state === 'connected') this.#send({ type: 'close-session', reason: 'client-shutdown' })
    this.#end('closed', new VolleyError('ERR_SESSION_CLOSED', 'The session client was closed'))
  }

  // -------------------------------------------------------------------------------------------------------

  get #ended(): boolean {
    return this.#state === 'expired' || this.#state === 'rejected' || this.#state === 'closed'
  }

  #endedError(): VolleyError {
    return new VolleyError('ERR_SESSION_CLOSED', `The session has ended (${this.#state}): make a new SessionClient for a new one`)
  }

  #enqueue<K extends number | string>(pending: Map<K, PendingRequest>, key: K, payload: Uint8Array, options: SessionRequestOptions): Promise<Uint8Array> {
    if (!(payload instanceof Uint8Array)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "payload" argument must be a Uint8Array. Received ${describe(payload)}`)
    checkOptions('"options" argument', options, signalOnly)
    const { signal } = options
    checkSignal(signal)
    if (this.#ended) return Promise.reject(this.#endedError())
    if (signal?.aborted) return Promise.reject(abortedError('The request was aborted before it was sent', signal))
    return new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => {
        if (pending.get(key) !== request) return
        pending.delete(key)
        reject(abortedError('The request was aborted: it may still be applied at the server', signal))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      const request: PendingRequest = {
        payload: copyBytes(payload),
        createdAt: this.#wallClock(),
        sentAt: -Infinity,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      }
      pending.set(key, request)
      if (this.#state === 'connected') this.#sendPending(key, request, false)
    })
  }

  #sendPending(key: number | string, request: PendingRequest, resend: boolean): void {
    request.sentAt = this.#scheduler.now()
    if (typeof key === 'number') {
      this.#stats.requestsSent++
      if (resend) this.#stats.requestsResent++
      const lowest = this.#requests.keys().next().value ?? key
      this.#send({ type: 'client-request', requestId: key, lowestPendingRequestId: lowest, payload: request.payload, createdAt: request.createdAt })
    } else {
      this.#send({ type: 'query', correlationId: key, payload: request.payload, createdAt: request.createdAt })
    }
    if (!this.#resend.armed) this.#scheduler.arm(this.#resend, request.sentAt + this.#requestTimeoutMs)
  }

  #receive(data: Uint8Array): void {
    const message = decodeServerMessage(data)
    switch (message.type) {
      case 'malformed':
        this.#stats.dropped.malformed++
        return
      case 'session-created':
      case 'session-continued':
        return this.#onBound(message)
      case 'session-rejected':
        return this.#onRejected(message.reason, message.nonce)
      case 'session-closed':
        return this.#onClosed(message.reason)
      case 'keep-alive-response':
        return this.#onKeepAliveResponse(message.timestamp)
      case 'client-response':
        return this.#settle(this.#requests, message.requestId, message.result)
      case 'query-response':
        return this.#settle(this.#queries, message.correlationId, message.result)
      case 'request-error': {
        const request = this.#requests.get(message.requestId)
        if (request === undefined) return void this.#stats.dropped.unexpected++
        this.#requests.delete(message.requestId)
        request.cleanup()
        request.reject(
          new VolleyError('ERR_RESPONSE_EVICTED', `Request ${message.requestId} was applied, but the server no longer holds its response (ResponseEvicted)`),
        )
        return
      }
      case 'server-request':
        return this.#onServerRequest(message.requestId, message.payload)
    }
  }

  #onBound(message: Extract<ServerMessage, { type: 'session-created' | 'session-continued' }>): void {
    const expected = message.type === 'session-created' ? 'connecting-new' : 'connecting-existing'
    if (this.#state !== expected || message.nonce !== this.#nonce) return void this.#stats.dropped.wrongNonce++
    const continued = message.type === 'session-continued'
    if (message.type === 'session-created') this.#sessionId = message.sessionId
    this.#stats.connections++
    this.#scheduler.disarm(this.#deadline)
    this.#setState('connected')
    this.#scheduler.arm(this.#heartbeat, this.#scheduler.now() + this.keepAliveIntervalMs)
    this.#emitGuarded('session', this.#sessionId!, continued)
    if ((this.#state as SessionClientState) !== 'connected') return
    // Everything unanswered goes again on the new connection, in order.
    for (const [requestId, request] of this.#requests) this.#sendPending(requestId, request, request.sentAt !== -Infinity)
    for (const [correlationId, query] of this.#queries) this.#sendPending(correlationId, query, false)
  }

  #onRejected(reason: RejectionReason, nonce: bigint): void {
    const connecting = this.#state === 'connecting-new' || this.#state === 'connecting-existing'
    if (!connecting || nonce !== this.#nonce) return void this.#stats.dropped.wrongNonce++
    if (reason === 'not-leader') {
      // Another server should be asked: a new connection (the connect token's next address, or a fresh token).
      this.#dropConnection()
      return
    }
    if (this.#state === 'connecting-existing' && reason === 'session-not-found') {
      this.#end('expired', new VolleyError('ERR_SESSION_EXPIRED', `Session ${this.#sessionId} has expired at the server (SessionRejected: session not found)`))
      return
    }
    this.#end('rejected', new VolleyError('ERR_SESSION_REJECTED', `The server refused the session (SessionRejected: ${reason})`))
  }

  #onClosed(reason: SessionCloseReason): void {
    if (this.#state !== 'connected' && this.#state !== 'connecting-existing' && this.#state !== 'connecting-new') return
    if (reason === 'session-expired') {
      this.#end('expired', new VolleyError('ERR_SESSION_EXPIRED', `Session ${this.#sessionId} expired at the server (SessionClosed: session expired)`))
      return
    }
    // Shutdown, another gateway took it, a session error, a lost connection: the session goes on elsewhere.
    this.#dropConnection()
  }

  #onKeepAliveResponse(timestamp: number): void {
    if (this.#state !== 'connected') return void this.#stats.dropped.unexpected++
    if (timestamp === this.#heartbeatTimestamp) {
      const now = this.#scheduler.now()
      const rtt = now - this.#heartbeatSentAt
      this.#lastRtt = rtt
      this.#rttSum += rtt
      this.#rttCount++
      this.#stats.heartbeatsAnswered++
      this.#lastAnsweredAt = timestamp
      this.#unansweredSince = Infinity
      this.#scheduler.disarm(this.#deadline)
      return
    }
    if (timestamp >= this.#firstTimestampOnConnection && timestamp < this.#heartbeatTimestamp) {
      // An answer to an earlier heartbeat, overtaken by a later one: dropped as stale (the contract's rule).
      this.#stats.droppedStaleResponses++
      return
    }
    this.#stats.dropped.unexpected++
  }

  #settle<K>(pending: Map<K, PendingRequest>, key: K, result: Uint8Array): void {
    const request = pending.get(key)
    if (request === undefined) return void this.#stats.dropped.unexpected++
    pending.delete(key)
    request.cleanup()
    request.resolve(copyBytes(result))
  }

  #onServerRequest(requestId: number, payload: Uint8Array): void {
    if (this.#state !== 'connected') return void this.#stats.dropped.unexpected++
    if (requestId <= this.#serverRequestsDone) {
      // Handled already (its ack was lost): acknowledged again.
      this.#send({ type: 'server-request-ack', requestId })
      return
    }
    if (requestId !== this.#serverRequestsDone + 1) return void this.#stats.dropped.outOfOrder++
    this.#serverRequestsDone = requestId
    this.#emitGuarded('serverRequest', copyBytes(payload), requestId)
    this.#send({ type: 'server-request-ack', requestId })
  }

  // -------------------------------------------------------------------------------------------------------
  // Timers
  // -------------------------------------------------------------------------------------------------------

  #onHeartbeatTimer(): void {
    if (this.#state !== 'connected') return
    const now = this.#scheduler.now()
    // Strictly increasing, so that an echo names one heartbeat (two in one millisecond would share it).
    const timestamp = Math.max(this.#wallClock(), this.#heartbeatTimestamp + 1)
    this.#heartbeatTimestamp = timestamp
    this.#heartbeatSentAt = now
    if (this.#firstTimestampOnConnection === Infinity) this.#firstTimestampOnConnection = timestamp
    if (this.#lastHeartbeats.length === LAST_HEARTBEATS) this.#lastHeartbeats.shift()
    this.#lastHeartbeats.push(timestamp)
    this.#stats.heartbeatsSent++
    // Armed before the send: an answer may come back inside it (an in-memory pair), and disarms it.
    if (this.#unansweredSince === Infinity) {
      this.#unansweredSince = now
      this.#scheduler.arm(this.#deadline, now + this.#keepAliveTimeoutMs)
    }
    this.#scheduler.arm(this.#heartbeat, now + this.keepAliveIntervalMs)
    this.#send({ type: 'keep-alive', timestamp })
  }

  #onDeadline(): void {
    // Connecting: no answer to the create or continue. Connected: a heartbeat went unanswered. Either way a
    // new connection continues the session.
    if (this.#state === 'connected') this.#stats.heartbeatTimeouts++
    if (this.#state === 'connected' || this.#state === 'connecting-new' || this.#state === 'connecting-existing') this.#dropConnection()
  }

  #onResendTimer(): void {
    if (this.#state !== 'connected') return
    const now = this.#scheduler.now()
    let next = Infinity
    for (const pending of [this.#requests, this.#queries] as Map<number | string, PendingRequest>[]) {
      for (const [key, request] of pending) {
        if (request.sentAt + this.#requestTimeoutMs <= now) this.#sendPending(key, request, true)
        if (this.#state !== 'connected') return
        next = Math.min(next, request.sentAt + this.#requestTimeoutMs)
      }
    }
    if (next !== Infinity) this.#scheduler.arm(this.#resend, next)
  }

  // -------------------------------------------------------------------------------------------------------
  // Connections
  // -------------------------------------------------------------------------------------------------------

  readonly #onConnected = (transport: SessionTransport): void => {
    if (this.#ended) {
      transport.close()
      return
    }
    try {
      this.attach(transport)
    } catch (error) {
      surfaceLater(error)
    }
  }

  /** Ends the current connection; the session waits for the next (the manager's reconnect, or attach()). */
  #dropConnection(): void {
    const transport = this.#transport
    if (transport !== null && !transport.closed) transport.close()
    else this.#connectionLost()
  }

  #connectionLost(): void {
    this.#transport = null
    this.#scheduler.disarm(this.#heartbeat)
    this.#scheduler.disarm(this.#deadline)
    this.#scheduler.disarm(this.#resend)
    if (this.#ended) return
    // What was sent is unanswered: it goes again on the next connection.
    for (const request of this.#requests.values()) if (request.sentAt !== -Infinity) request.sentAt = 0
    this.#setState('disconnected')
  }

  #end(state: 'expired' | 'rejected' | 'closed', error: VolleyError): void {
    if (this.#ended) return
    this.#setState(state)
    const transport = this.#transport
    this.#transport = null
    this.#scheduler.disarm(this.#heartbeat)
    this.#scheduler.disarm(this.#deadline)
    this.#scheduler.disarm(this.#resend)
    this.#connection?.off('connected', this.#onConnected)
    this.#connection?.close()
    if (transport !== null && !transport.closed) transport.close()
    for (const pending of [this.#requests, this.#queries] as Map<number | string, PendingRequest>[]) {
      for (const request of pending.values()) {
        request.cleanup()
        request.reject(error)
      }
      pending.clear()
    }
    if (state !== 'closed') this.#emitGuarded('ended', error)
  }

  #setState(state: SessionClientState): void {
    const previous = this.#state
    if (previous === state) return
    this.#state = state
    this.#emitGuarded('state', state, previous)
  }

  #send(message: ClientMessage): void {
    const transport = this.#transport
    if (transport === null || transport.closed) return
    // false is back-pressure: the transport holds the message (bounded by its maxHeldBytes).
    transport.send(encodeClientMessage(message))
  }

  #emitGuarded<K extends keyof SessionClientEvents>(event: K, ...args: SessionClientEvents[K]): void {
    try {
      ;(this.emit as (event: K, ...args: SessionClientEvents[K]) => boolean)(event, ...args)
    } catch (error) {
      surfaceLater(error)
    }
  }
}

function capabilitiesOption(value: unknown): ReadonlyMap<string, string> {
  const entries = value instanceof Map ? [...value] : typeof value === 'object' && value !== null ? Object.entries(value) : undefined
  if (entries === undefined) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "capabilities" option must be a Map or an object of strings. Received ${describe(value)}`)
  }
  if (entries.length === 0) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', 'The "capabilities" option must hold at least one entry (the protocol requires one)')
  for (const [key, entry] of entries) {
    if (typeof key !== 'string' || typeof entry !== 'string') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "capabilities" option maps strings to strings. Received ${describe(key)}: ${describe(entry)}`)
    }
  }
  return new Map(entries as Array<[string, string]>)
}

/** A random non-zero 64-bit nonce. */
function randomNonce(): bigint {
  for (;;) {
    const nonce = randomBytes(8).readBigInt64BE()
    if (nonce !== 0n) return nonce
  }
}

function noop(): void {}
