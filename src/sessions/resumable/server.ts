// The server side of resumable sessions (seed 004, research §C.3): a session is bound to at most one
// connection at a time and outlives it; a continue from any connection of the same client rebinds it;
// heartbeats hold it; a cleanup tick each second expires what is due. Requests are applied once: each
// response is recorded (in the store, shared by gateways) until the client's lowest pending id passes it.
// I/O is the transports' and the store's; time is the scheduler's, so fake-clock tests drive all of it.
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { copyBytes } from '../../util/bytes.ts'
import { VolleyError, VolleyTypeError, describe, surfaceLater } from '../../util/errors.ts'
import { checkOptions, integerOption } from '../../util/options.ts'
import type { Server } from '../../api/server.ts'
import { resumableSessionContinuedChannel, resumableSessionCreatedChannel, resumableSessionGoneChannel } from '../../api/diagnostics.ts'
import type { ResumableSessionContinuedMessage, ResumableSessionCreatedMessage, ResumableSessionGoneMessage } from '../diagnostics.ts'
import { Timer, sessionTimers, type Scheduler } from '../timers.ts'
import type { SessionTransport } from '../transport.ts'
import { PeerTransport, PeerTransports } from '../volley-transport.ts'
import { ExpiryLane, type ExpiryEntry } from './expiry.ts'
import {
  RESUMABLE_CLEANUP_INTERVAL_MS,
  RESUMABLE_CLOCK_SKEW_MS,
  RESUMABLE_SESSION_TIMEOUT_MS,
  RESUMABLE_WARNING_FRACTION,
} from './settings.ts'
import { MemorySessionStore, type SessionStore, type StoredSession } from './store.ts'
import { type ClientMessage, type MalformedReason, type RejectionReason, type ServerMessage, type SessionCloseReason, decodeClientMessage, encodeServerMessage } from './wire.ts'

/** Who is on the other end of a connection: the netcode client id of its connect token, when it has one. */
export interface ConnectionIdentity {
  clientId?: bigint | undefined
}

/** What the request and query handlers are told besides the payload. */
export interface ResumableRequestContext {
  readonly session: ResumableSession
  /** The client's id of the request (queries: 0). With the session id, a key to make outside effects idempotent. */
  readonly requestId: number
  /** When the client made it, ms since the epoch (the client's clock). */
  readonly createdAt: number
}

/** Why a session ended: its heartbeats stopped (or its grace ran out), or its client closed it. */
export type SessionEndReason = 'expired' | 'closed'

export interface SessionServerOptions {
  /**
   * Applies a client request; its result is the response. Each request id of a session is applied once
   * however often it is resent (the response is recorded); a handler that throws records nothing, and the
   * request runs again when resent (put application errors in the result).
   */
  onRequest: (payload: Uint8Array, context: ResumableRequestContext) => Uint8Array | Promise<Uint8Array>
  /** Answers a query (read-only: run again on each resend). Without it, queries are dropped and counted. */
  onQuery?: ((payload: Uint8Array, context: ResumableRequestContext) => Uint8Array | Promise<Uint8Array>) | undefined
  /**
   * Decides on a CreateSession: true (or nothing) accepts it, false rejects it InvalidCapabilities; a throw
   * or rejection rejects it Other. Default: every session is accepted.
   */
  acceptSession?: ((capabilities: ReadonlyMap<string, string>, identity: ConnectionIdentity) => boolean | void | Promise<boolean | void>) | undefined
  /** Called once per session when it ends (across all gateways sharing the store, once). */
  onSessionEnd?: ((session: ResumableSession, reason: SessionEndReason) => void) | undefined
  /** Where sessions live for other gateways (default: a MemorySessionStore of this server's own). */
  store?: SessionStore | undefined
  /** This gateway's name in the store (default: a random UUID). */
  gatewayId?: string | undefined
  /** How long a session lives without a heartbeat or continue, ms (default 90000, 1000 to 3600000). */
  sessionTimeoutMs?: number | undefined
  /** The expiry given to sessions taken over from a gone gateway, ms from then (default: sessionTimeoutMs). */
  takeOverGraceMs?: number | undefined
  /** A gateway not heard from in the store for this long is gone, ms (default 5000). */
  gatewayTtlMs?: number | undefined
  /** How far a heartbeat's timestamp may be from this server's clock, ms (default 10000). */
  clockSkewMs?: number | undefined
  /** Heartbeats a session may send at once (default 10); then one a second. More are refused and counted. */
  heartbeatBurst?: number | undefined
  /** Requests of one session being applied at once (default 64); more wait for the client's resend. */
  maxPendingRequests?: number | undefined
  /** Responses held per session (default 1024): past it the oldest is evicted (its resend gets ResponseEvicted). */
  maxHeldResponses?: number | undefined
  /** Server requests per session not yet acknowledged (default 1024): past it request() throws. */
  maxServerRequests?: number | undefined
  /** The timers (default sessionTimers(); a FakeClock in tests). */
  scheduler?: Scheduler | undefined
  /** The wall clock, ms since the epoch (default Date.now): heartbeat timestamps and the store's expiries. */
  wallClock?: (() => number) | undefined
}

/** What sessionServer.health() returns: the server's health metrics, and every refusal by cause. */
export interface SessionServerHealth {
  activeSessions: number
  /** Sessions bound to a connection now. */
  boundSessions: number
  sessionsCreated: number
  sessionsRejected: number
  sessionsContinued: number
  /** Continues of a session another gateway held. */
  sessionsTakenOver: number
  /** Sessions this gateway took over from a gone one (with the grace expiry). */
  sessionsAdopted: number
  /** Sessions that expired here (heartbeats stopped). */
  timeouts: number
  /** Sessions their clients closed. */
  closedByClient: number
  heartbeats: {
    answered: number
    /** Refused: the timestamp is past the clock skew either way. */
    clockSkew: number
    /** Refused: the session sent more than its burst allows. */
    rateLimited: number
    /** Refused: no session is bound to the connection. */
    unbound: number
  }
  /**
   * How old heartbeats were when they arrived (this server's clock minus the client's timestamp: network
   * delay plus clock offset), a count per bucket of heartbeatAgeBucketsMs (the last bucket is open-ended).
   */
  heartbeatAge: number[]
  requests: { applied: number; resent: number; evicted: number; failed: number; queries: number }
  /** Continues refused: no such session (or expired), or one another client created. */
  continuesRefused: { notFound: number; foreignClient: number }
  /** Messages dropped undecoded, by cause, and decoded ones that made no sense where they came. */
  dropped: Record<MalformedReason | 'unexpected' | 'overloaded', number>
  /** Store operations that failed (the store's errors go to the 'storeError' event). */
  storeErrors: number
}

/** Bucket upper bounds of SessionServerHealth.heartbeatAge, ms. */
export const heartbeatAgeBucketsMs: readonly number[] = Object.freeze([1, 5, 10, 50, 100, 500, 1_000, 10_000])

/** One session's heartbeat diagnostics, as the server sees them (session.diagnostics()). */
export interface ServerSessionDiagnostics {
  sessionId: string
  /** When the latest heartbeats arrived, ms since the epoch, oldest first (up to 4). */
  lastHeartbeats: number[]
  /** When it expires, ms since the epoch. */
  currentExpiresAt: number
  bound: boolean
  /**
   * The round trip of the bound connection, ms, when it is a Volley connection (its link's smoothed RTT, from
   * Volley's pings); undefined otherwise. The heartbeats' own round trips are the client's to measure
   * (SessionClient.diagnostics()), as are the stale responses it dropped.
   */
  averageRoundTripMs: number | undefined
  minRoundTripMs: number | undefined
  /** Heartbeats answered, and refused for this session (skew, rate). */
  heartbeats: number
  heartbeatsRefused: number
}

export interface SessionServerEvents {
  /** A session was created here. */
  sessionCreated: [session: ResumableSession]
  /** A session was bound to a new connection by a continue (previousGateway: where it was, when elsewhere). */
  sessionContinued: [session: ResumableSession, previousGateway: string | undefined]
  /** A session's connection ended: it waits for a continue until it expires. */
  sessionUnbound: [session: ResumableSession]
  /** A session reached 85 % of its timeout without a heartbeat. */
  sessionWarning: [session: ResumableSession]
  /** A session left this gateway: another took it, or it ended (then onSessionEnd was called). */
  sessionGone: [session: ResumableSession, reason: SessionEndReason | 'moved']
  /** The store failed; what it was for is retried or refused as the docs say. */
  storeError: [error: Error]
  /** A request or query handler threw or rejected: nothing was recorded or answered. */
  requestFailed: [error: unknown, session: ResumableSession, requestId: number]
}

/** The sessions adopted from gone gateways per tick, at most (the rest in the next ticks). */
const TAKE_OVER_PER_TICK = 10_000
/** Messages held for a connection while its create or continue waits on the store. */
const MAX_HELD_WHILE_BINDING = 64
const HEARTBEAT_REFILL_MS = 1_000
const MAX_SHARED_CAPABILITY_SETS = 1_024
const LAST_HEARTBEATS = 4

const knownOptions: ReadonlySet<string> = new Set([
  'onRequest',
  'onQuery',
  'acceptSession',
  'onSessionEnd',
  'store',
  'gatewayId',
  'sessionTimeoutMs',
  'takeOverGraceMs',
  'gatewayTtlMs',
  'clockSkewMs',
  'heartbeatBurst',
  'maxPendingRequests',
  'maxHeldResponses',
  'maxServerRequests',
  'scheduler',
  'wallClock',
])

/** A request answered or being applied: the result, or the marker that it runs. */
const RUNNING: unique symbol = Symbol('running')

interface PendingServerRequest {
  readonly payload: Uint8Array
  readonly createdAt: number
  readonly acked: () => void
  readonly failed: (error: Error) => void
}

/** What a session holds once it has requests or server requests: most sessions of a gateway only heartbeat. */
class SessionWork {
  /** Recorded responses (and RUNNING for one being applied), by request id. */
  readonly responses = new Map<number, Uint8Array | typeof RUNNING>()
  /** Requests and queries being applied. */
  running = 0
  /** Request ids below this have no response any more. */
  evictedBelow = 0
  /** Server requests not yet acknowledged, by id. */
  serverRequests: Map<number, PendingServerRequest> | null = null
  nextServerRequestId = 1
  heartbeatsRefused = 0
}

const ADOPTED = 1
const GONE = 2

/**
 * One session as its gateway holds it. The application sees it in its handlers and events; request() sends
 * it a server request, close() ends it.
 */
// Its fields are few and small on purpose (100,000 sessions a gateway): times are whole ms on the server's
// clock, flags share a field, request state comes when used.
export class ResumableSession {
  /** @internal */ expiresAt = 0
  /** @internal */ previous: ExpiryEntry | null = null
  /** @internal */ next: ExpiryEntry | null = null
  /** @internal */ lane: ExpiryLane | null = null
  /** @internal */ connection: Connection | null = null
  /** @internal Heartbeats answered. */
  heartbeats = 0
  /** @internal The last four heartbeats' times on the server's clock, a ring: heartbeat n in slot (n - 1) % 4. */
  heartbeat0 = 0
  /** @internal */ heartbeat1 = 0
  /** @internal */ heartbeat2 = 0
  /** @internal */ heartbeat3 = 0
  /** @internal The rate limit (GCRA): heartbeats are allowed while this is at most burst seconds ahead of now. */
  allowedFrom = 0
  /** @internal ADOPTED (taken over from a gone gateway: its responses are in the store only), GONE. */
  flags = 0
  /** @internal */ work: SessionWork | null = null

  /** @internal */
  constructor(
    readonly server: SessionServer,
    readonly id: string,
    /** The netcode client id that created it: only that client continues it. */
    readonly clientId: bigint | undefined,
    readonly capabilities: ReadonlyMap<string, string>,
  ) {}

  /** @internal */
  get gone(): boolean {
    return (this.flags & GONE) !== 0
  }

  /** @internal */
  get adopted(): boolean {
    return (this.flags & ADOPTED) !== 0
  }

  /** @internal The request state, made on first use. */
  get busy(): SessionWork {
    return (this.work ??= new SessionWork())
  }

  /** Whether a connection is bound to it now. */
  get bound(): boolean {
    return this.connection !== null
  }

  /** Whether it still lives on this gateway. */
  get active(): boolean {
    return !this.gone
  }

  diagnostics(): ServerSessionDiagnostics {
    return this.server.diagnosticsOf(this)
  }

  /**
   * Sends the client a server request (ServerRequest): delivered in order, resent after each continue until
   * the client acknowledges it; the promise resolves then. Throws ERR_SESSION_CLOSED once the session is
   * gone, ERR_SEND_BACKLOG_FULL past maxServerRequests unacknowledged.
   */
  request(payload: Uint8Array): Promise<void> {
    return this.server.serverRequest(this, payload)
  }

  /** Ends the session here and in the store (onSessionEnd 'closed'), telling a bound client SessionClosed(Shutdown). */
  close(): Promise<void> {
    return this.server.endSession(this, 'closed', 'shutdown')
  }
}

/** @internal One transport served. */
class Connection {
  session: ResumableSession | null = null
  /** A create or continue waits on the store (or the application): messages meanwhile are held. */
  binding = false
  held: Uint8Array[] | null = null
  closed = false

  constructor(
    readonly transport: SessionTransport,
    readonly identity: ConnectionIdentity,
  ) {}
}

/**
 * Serves resumable sessions on any SessionTransport (accept()), or on a Volley Server's reliable channel
 * (listen()). One cleanup tick a second for all sessions; no timer per session.
 */
export class SessionServer extends EventEmitter<SessionServerEvents> {
  readonly gatewayId: string
  readonly store: SessionStore
  readonly sessionTimeoutMs: number
  readonly #onRequest: SessionServerOptions['onRequest']
  readonly #onQuery: SessionServerOptions['onQuery']
  readonly #acceptSession: SessionServerOptions['acceptSession']
  readonly #onSessionEnd: SessionServerOptions['onSessionEnd']
  readonly #takeOverGraceMs: number
  readonly #gatewayTtlMs: number
  readonly #clockSkewMs: number
  readonly #burst: number
  readonly #maxPendingRequests: number
  readonly #maxHeldResponses: number
  readonly #maxServerRequests: number
  readonly #scheduler: Scheduler
  readonly #wallClock: () => number
  readonly #sessions = new Map<string, ResumableSession>()
  readonly #timeoutLane: ExpiryLane
  readonly #graceLane: ExpiryLane
  readonly #connections = new Set<Connection>()
  /** Sessions whose expiry moved since the last tick, for the store's batch. */
  #touched = new Set<ResumableSession>()
  /** Evictions since the last tick, for the store's batch. */
  #evictions = new Map<string, number>()
  /** Sessions expired here since the last tick: the store removes each once, and onSessionEnd follows. */
  #expired: ResumableSession[] = []
  readonly #tick: Timer
  #tickInFlight = false
  /** The store round trip in flight, if any (close() waits for it, then sends what gathered since). */
  #flushing: Promise<void> = Promise.resolve()
  #closed = false
  readonly #stopClaimedAway: () => void
  readonly #listeners: PeerTransports[] = []
  /** Capability sets seen, shared by the sessions that ask for the same (most clients of a gateway do). */
  readonly #capabilitySets = new Map<string, ReadonlyMap<string, string>>()
  readonly #health: SessionServerHealth = {
    activeSessions: 0,
    boundSessions: 0,
    sessionsCreated: 0,
    sessionsRejected: 0,
    sessionsContinued: 0,
    sessionsTakenOver: 0,
    sessionsAdopted: 0,
    timeouts: 0,
    closedByClient: 0,
    heartbeats: { answered: 0, clockSkew: 0, rateLimited: 0, unbound: 0 },
    heartbeatAge: heartbeatAgeBucketsMs.map(() => 0).concat(0),
    requests: { applied: 0, resent: 0, evicted: 0, failed: 0, queries: 0 },
    continuesRefused: { notFound: 0, foreignClient: 0 },
    dropped: { truncated: 0, signature: 0, version: 0, 'unknown-type': 0, 'bad-value': 0, 'trailing-bytes': 0, unexpected: 0, overloaded: 0 },
    storeErrors: 0,
  }

  constructor(options: SessionServerOptions) {
    super()
    checkOptions('"options" argument', options, knownOptions)
    if (typeof options.onRequest !== 'function') throw functionOptionError('onRequest', options.onRequest)
    for (const name of ['onQuery', 'acceptSession', 'onSessionEnd', 'wallClock'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') throw functionOptionError(name, options[name])
    }
    this.#onRequest = options.onRequest
    this.#onQuery = options.onQuery
    this.#acceptSession = options.acceptSession
    this.#onSessionEnd = options.onSessionEnd
    this.sessionTimeoutMs = integerOption('sessionTimeoutMs', options.sessionTimeoutMs, RESUMABLE_SESSION_TIMEOUT_MS, 1_000, 3_600_000)
    this.#takeOverGraceMs = integerOption('takeOverGraceMs', options.takeOverGraceMs, this.sessionTimeoutMs, 1_000, 3_600_000)
    this.#gatewayTtlMs = integerOption('gatewayTtlMs', options.gatewayTtlMs, 5_000, 2 * RESUMABLE_CLEANUP_INTERVAL_MS, 3_600_000)
    this.#clockSkewMs = integerOption('clockSkewMs', options.clockSkewMs, RESUMABLE_CLOCK_SKEW_MS, 0, 3_600_000)
    this.#burst = integerOption('heartbeatBurst', options.heartbeatBurst, 10, 1, 1_000)
    this.#maxPendingRequests = integerOption('maxPendingRequests', options.maxPendingRequests, 64, 1, 65_536)
    this.#maxHeldResponses = integerOption('maxHeldResponses', options.maxHeldResponses, 1024, 1, 1 << 20)
    this.#maxServerRequests = integerOption('maxServerRequests', options.maxServerRequests, 1024, 1, 1 << 20)
    if (options.gatewayId !== undefined && (typeof options.gatewayId !== 'string' || options.gatewayId.length === 0)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "gatewayId" option must be a non-empty string. Received ${describe(options.gatewayId)}`)
    }
    this.gatewayId = options.gatewayId ?? randomUUID()
    this.store = options.store ?? new MemorySessionStore()
    this.#scheduler = options.scheduler ?? sessionTimers()
    this.#wallClock = options.wallClock ?? Date.now
    this.#timeoutLane = new ExpiryLane(this.sessionTimeoutMs, RESUMABLE_WARNING_FRACTION)
    this.#graceLane = new ExpiryLane(this.#takeOverGraceMs, RESUMABLE_WARNING_FRACTION)
    this.#tick = new Timer(this.#onTick)
    this.#scheduler.arm(this.#tick, this.#scheduler.now() + RESUMABLE_CLEANUP_INTERVAL_MS)
    this.#stopClaimedAway = this.store.onClaimedAway(this.gatewayId, this.#onClaimedAway)
  }

  /** The sessions on this gateway now. */
  get size(): number {
    return this.#sessions.size
  }

  /** A session on this gateway, by id. */
  session(sessionId: string): ResumableSession | undefined {
    return this.#sessions.get(sessionId)
  }

  health(): SessionServerHealth {
    const health = structuredClone(this.#health)
    health.activeSessions = this.#sessions.size
    let bound = 0
    for (const connection of this.#connections) if (connection.session !== null) bound++
    health.boundSessions = bound
    return health
  }

  /** Serves the session protocol on one connection; identity.clientId binds the sessions it creates to its client. */
  accept(transport: SessionTransport, identity: ConnectionIdentity = {}): void {
    if (this.#closed) {
      transport.close()
      return
    }
    const connection = new Connection(transport, identity)
    this.#connections.add(connection)
    transport.on('message', (data) => this.#receive(connection, data))
    transport.on('close', () => this.#connectionEnded(connection))
    transport.on('drain', noop)
  }

  /**
   * Serves sessions on a Volley Server's reliable channel (options.channel, default 0): each peer's
   * connection is accepted with its netcode client id. Returns what stops listening there.
   */
  listen(server: Server, options: { channel?: number | undefined; maxHeldBytes?: number | undefined } = {}): () => void {
    const transports = new PeerTransports(server, options, (transport, peer) => this.accept(transport, { clientId: peer.clientId }))
    this.#listeners.push(transports)
    return () => transports.close()
  }

  /**
   * Stops serving: the tick stops, bound clients are told SessionClosed(Shutdown) and their connections end.
   * Sessions stay in the store: another gateway takes them over once this one's entry there goes stale,
   * and their clients continue them there.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#scheduler.disarm(this.#tick)
    this.#stopClaimedAway()
    for (const connection of [...this.#connections]) {
      if (connection.session !== null) this.#send(connection, { type: 'session-closed', reason: 'shutdown' })
      connection.transport.close()
    }
    for (const listener of this.#listeners) listener.close()
    // Expiries since the last tick reach the store, so that a gateway taking over knows them.
    await this.#flushing
    await this.#flush()
  }

  // -------------------------------------------------------------------------------------------------------
  // Messages
  // -------------------------------------------------------------------------------------------------------

  #receive(connection: Connection, data: Uint8Array): void {
    if (connection.binding) {
      // Until the create or continue is settled, later messages wait (a client may send right behind it).
      connection.held ??= []
      if (connection.held.length >= MAX_HELD_WHILE_BINDING) {
        this.#health.dropped.overloaded++
        return
      }
      connection.held.push(copyBytes(data))
      return
    }
    const message = decodeClientMessage(data)
    if (message.type === 'malformed') {
      this.#health.dropped[message.reason]++
      return
    }
    this.#handle(connection, message)
  }

  #handle(connection: Connection, message: ClientMessage): void {
    switch (message.type) {
      case 'create-session':
        void this.#create(connection, message.capabilities, message.nonce)
        return
      case 'continue-session':
        void this.#continue(connection, message.sessionId, message.nonce)
        return
      case 'connection-closed':
        if (connection.session !== null) this.#unbind(connection)
        return
      case 'close-session':
        if (connection.session === null) return void this.#health.dropped.unexpected++
        this.#health.closedByClient++
        void this.endSession(connection.session, 'closed', undefined)
        return
    }
    const session = connection.session
    if (session === null) {
      // The reference's answer to a session message on a connection with no session: SessionClosed(SessionError).
      if (message.type === 'keep-alive') this.#health.heartbeats.unbound++
      else this.#health.dropped.unexpected++
      this.#send(connection, { type: 'session-closed', reason: 'session-error' })
      connection.transport.close()
      return
    }
    switch (message.type) {
      case 'keep-alive':
        this.#keepAlive(connection, session, message.timestamp)
        return
      case 'client-request':
        this.#request(session, message.requestId, message.lowestPendingRequestId, message.payload, message.createdAt)
        return
      case 'server-request-ack':
        this.#serverRequestAck(session, message.requestId)
        return
      case 'query':
        this.#query(connection, session, message.correlationId, message.payload, message.createdAt)
        return
    }
  }

  async #create(connection: Connection, capabilities: ReadonlyMap<string, string>, nonce: bigint): Promise<void> {
    if (connection.session !== null) this.#unbind(connection)
    connection.binding = true
    let rejection: RejectionReason | undefined
    try {
      if (this.#acceptSession !== undefined && (await this.#acceptSession(capabilities, connection.identity)) === false) rejection = 'invalid-capabilities'
    } catch {
      rejection = 'other'
    }
    const session = rejection === undefined ? new ResumableSession(this, newSessionId(), connection.identity.clientId, this.#shared(capabilities)) : undefined
    if (session !== undefined) {
      try {
        await this.store.create(this.gatewayId, this.#stored(session, this.#now() + this.sessionTimeoutMs))
      } catch (error) {
        this.#storeFailed(error)
        rejection = 'other'
      }
    }
    if (rejection !== undefined || session === undefined || this.#closed) {
      this.#health.sessionsRejected++
      this.#send(connection, { type: 'session-rejected', reason: rejection ?? 'other', nonce })
      connection.transport.close()
      this.#bindingDone(connection)
      return
    }
    this.#health.sessionsCreated++
    this.#sessions.set(session.id, session)
    this.#timeoutLane.refresh(session, this.#now())
    // The store has it already, with this expiry.
    if (!connection.closed) {
      this.#bind(connection, session)
      this.#send(connection, { type: 'session-created', sessionId: session.id, nonce })
    }
    if (resumableSessionCreatedChannel.hasSubscribers) resumableSessionCreatedChannel.publish({ server: this, session } satisfies ResumableSessionCreatedMessage)
    this.#emit('sessionCreated', session)
    this.#bindingDone(connection)
  }

  async #continue(connection: Connection, sessionId: string, nonce: bigint): Promise<void> {
    if (connection.session !== null && connection.session.id !== sessionId) this.#unbind(connection)
    const clientId = connection.identity.clientId
    let session = this.#sessions.get(sessionId)
    let previousGateway: string | undefined
    if (session !== undefined && session.clientId !== clientId) {
      this.#refuseContinue(connection, nonce, 'foreign-client')
      return
    }
    if (session === undefined || session.adopted) {
      connection.binding = true
      const now = this.#now()
      let claimed
      try {
        claimed = await this.store.claim(this.gatewayId, sessionId, clientId, this.#wallClock(), this.#toWall(now + this.sessionTimeoutMs, now))
      } catch (error) {
        this.#storeFailed(error)
        // Not a refusal: the client tries again on a new connection (SessionError makes it continue).
        this.#send(connection, { type: 'session-closed', reason: 'session-error' })
        connection.transport.close()
        this.#bindingDone(connection)
        return
      }
      if (typeof claimed === 'string') {
        this.#refuseContinue(connection, nonce, claimed)
        // An adopted session that is gone from the store is not this gateway's any more.
        const stale = this.#sessions.get(sessionId)
        if (stale !== undefined && stale.adopted) this.#removeLocal(stale, 'moved')
        this.#bindingDone(connection)
        return
      }
      session = this.#sessions.get(sessionId)
      if (session === undefined || session.gone) {
        session = new ResumableSession(this, sessionId, claimed.clientId, this.#shared(claimed.capabilities))
        this.#sessions.set(sessionId, session)
      }
      session.flags &= ~ADOPTED
      if (claimed.evictedBelow > 0 || claimed.responses.size > 0) {
        const work = session.busy
        work.evictedBelow = Math.max(work.evictedBelow, claimed.evictedBelow)
        for (const [requestId, result] of claimed.responses) if (!work.responses.has(requestId)) work.responses.set(requestId, result)
      }
      if (claimed.previousGateway !== this.gatewayId) {
        previousGateway = claimed.previousGateway
        this.#health.sessionsTakenOver++
      }
    } else {
      this.#touched.add(session)
    }
    this.#health.sessionsContinued++
    this.#timeoutLane.refresh(session, this.#now())
    if (connection.closed || this.#closed) {
      this.#bindingDone(connection)
      return
    }
    const old = session.connection
    if (old !== null && old !== connection) {
      // The session moved: its old connection is told, and dropped.
      this.#send(old, { type: 'session-closed', reason: 'session-error' })
      old.session = null
      old.transport.close()
    }
    this.#bind(connection, session)
    this.#send(connection, { type: 'session-continued', nonce })
    this.#resendServerRequests(session)
    if (resumableSessionContinuedChannel.hasSubscribers) {
      resumableSessionContinuedChannel.publish({ server: this, session, previousGateway } satisfies ResumableSessionContinuedMessage)
    }
    this.#emit('sessionContinued', session, previousGateway)
    this.#bindingDone(connection)
  }

  #refuseContinue(connection: Connection, nonce: bigint, why: 'not-found' | 'foreign-client'): void {
    // A session of another client is refused as one that does not exist: its id alone tells nothing.
    if (why === 'not-found') this.#health.continuesRefused.notFound++
    else this.#health.continuesRefused.foreignClient++
    this.#send(connection, { type: 'session-rejected', reason: 'session-not-found', nonce })
    connection.transport.close()
  }

  /** A create or continue is settled: the messages held meanwhile are handled now, in order. */
  #bindingDone(connection: Connection): void {
    connection.binding = false
    const held = connection.held
    connection.held = null
    if (held === null) return
    for (let index = 0; index < held.length; index++) {
      if (connection.closed) return
      if (connection.binding) {
        // Another create or continue among them: the rest wait for it.
        connection.held = held.slice(index)
        return
      }
      this.#receive(connection, held[index]!)
    }
  }

  #keepAlive(connection: Connection, session: ResumableSession, timestamp: number): void {
    const now = this.#now()
    // GCRA: each heartbeat moves allowedFrom on by a second; one is refused while allowedFrom is more than
    // burst seconds ahead of now (a burst, then one a second).
    const allowedFrom = Math.max(session.allowedFrom, now)
    if (allowedFrom - now >= this.#burst * HEARTBEAT_REFILL_MS) {
      this.#health.heartbeats.rateLimited++
      session.busy.heartbeatsRefused++
      return
    }
    session.allowedFrom = allowedFrom + HEARTBEAT_REFILL_MS
    const wall = this.#wallClock()
    const age = wall - timestamp
    if (age > this.#clockSkewMs || age < -this.#clockSkewMs) {
      this.#health.heartbeats.clockSkew++
      session.busy.heartbeatsRefused++
      return
    }
    this.#health.heartbeatAge[ageBucket(age)]!++
    this.#health.heartbeats.answered++
    session.heartbeats++
    switch ((session.heartbeats - 1) % LAST_HEARTBEATS) {
      case 0:
        session.heartbeat0 = now
        break
      case 1:
        session.heartbeat1 = now
        break
      case 2:
        session.heartbeat2 = now
        break
      default:
        session.heartbeat3 = now
    }
    this.#timeoutLane.refresh(session, now)
    this.#touched.add(session)
    this.#send(connection, { type: 'keep-alive-response', timestamp })
  }

  #request(session: ResumableSession, requestId: number, lowestPending: number, payload: Uint8Array, createdAt: number): void {
    const work = session.busy
    this.#evictBelow(session, work, lowestPending)
    const responses = work.responses
    const recorded = responses.get(requestId)
    if (recorded === RUNNING) return // answered when it is done
    if (recorded !== undefined) {
      this.#health.requests.resent++
      this.#sendTo(session, { type: 'client-response', requestId, result: recorded })
      return
    }
    if (requestId < work.evictedBelow) {
      this.#health.requests.evicted++
      this.#sendTo(session, { type: 'request-error', requestId, reason: 'response-evicted' })
      return
    }
    if (work.running >= this.#maxPendingRequests) {
      // The client resends it after its request timeout.
      this.#health.dropped.overloaded++
      return
    }
    responses.set(requestId, RUNNING)
    work.running++
    void this.#apply(session, work, requestId, copyBytes(payload), createdAt)
  }

  async #apply(session: ResumableSession, work: SessionWork, requestId: number, payload: Uint8Array, createdAt: number): Promise<void> {
    let result: Uint8Array
    try {
      result = await this.#onRequest(payload, { session, requestId, createdAt })
      if (!(result instanceof Uint8Array)) throw new VolleyTypeError('ERR_INVALID_RETURN_VALUE', `onRequest must return a Uint8Array. Received ${describe(result)}`)
    } catch (error) {
      work.running--
      if (work.responses.get(requestId) === RUNNING) work.responses.delete(requestId)
      this.#health.requests.failed++
      this.#emit('requestFailed', error, session, requestId)
      return
    }
    let recorded = result
    try {
      recorded = await this.store.recordResponse(session.id, requestId, result)
    } catch (error) {
      // Held here even so: a resend to this gateway is answered the same.
      this.#storeFailed(error)
    }
    work.running--
    this.#health.requests.applied++
    if (session.gone) return
    if (requestId >= work.evictedBelow) {
      work.responses.set(requestId, recorded)
      this.#capResponses(session, work)
    } else work.responses.delete(requestId)
    this.#sendTo(session, { type: 'client-response', requestId, result: recorded })
  }

  #evictBelow(session: ResumableSession, work: SessionWork, below: number): void {
    if (below <= work.evictedBelow) return
    work.evictedBelow = below
    const responses = work.responses
    for (const [requestId, result] of responses) if (requestId < below && result !== RUNNING) responses.delete(requestId)
    this.#evictions.set(session.id, below)
  }

  /** Past maxHeldResponses, the oldest recorded responses go; a resend of one gets ResponseEvicted. */
  #capResponses(session: ResumableSession, work: SessionWork): void {
    if (work.responses.size <= this.#maxHeldResponses) return
    let lowest = Infinity
    for (const [requestId, result] of work.responses) if (result !== RUNNING && requestId < lowest) lowest = requestId
    if (lowest !== Infinity) this.#evictBelow(session, work, lowest + 1)
  }

  #query(connection: Connection, session: ResumableSession, correlationId: string, payload: Uint8Array, createdAt: number): void {
    const onQuery = this.#onQuery
    const work = session.busy
    if (onQuery === undefined || work.running >= this.#maxPendingRequests) {
      this.#health.dropped[onQuery === undefined ? 'unexpected' : 'overloaded']++
      return
    }
    work.running++
    const own = copyBytes(payload)
    void (async () => {
      try {
        const result = await onQuery(own, { session, requestId: 0, createdAt })
        if (!(result instanceof Uint8Array)) throw new VolleyTypeError('ERR_INVALID_RETURN_VALUE', `onQuery must return a Uint8Array. Received ${describe(result)}`)
        this.#health.requests.queries++
        // To the connection that asked: a query is not resent across connections by the session.
        if (connection.session === session) this.#send(connection, { type: 'query-response', correlationId, result })
      } catch (error) {
        this.#health.requests.failed++
        this.#emit('requestFailed', error, session, 0)
      } finally {
        work.running--
      }
    })()
  }

  /** @internal ResumableSession.request(). */
  serverRequest(session: ResumableSession, payload: Uint8Array): Promise<void> {
    if (!(payload instanceof Uint8Array)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "payload" argument must be a Uint8Array. Received ${describe(payload)}`)
    if (session.gone) throw new VolleyError('ERR_SESSION_CLOSED', `Session ${session.id} is no longer on this gateway: it ended or moved`)
    const work = session.busy
    const pending = (work.serverRequests ??= new Map())
    if (pending.size >= this.#maxServerRequests) {
      throw new VolleyError('ERR_SEND_BACKLOG_FULL', `Session ${session.id} has ${pending.size} server requests not acknowledged (the maxServerRequests option): its client is not taking them`)
    }
    const requestId = work.nextServerRequestId++
    const createdAt = this.#wallClock()
    let acked!: () => void
    let failed!: (error: Error) => void
    const promise = new Promise<void>((resolve, reject) => {
      acked = resolve
      failed = reject
    })
    const own = copyBytes(payload)
    pending.set(requestId, { payload: own, createdAt, acked, failed })
    this.#sendTo(session, { type: 'server-request', requestId, payload: own, createdAt })
    return promise
  }

  #serverRequestAck(session: ResumableSession, requestId: number): void {
    const pending = session.work?.serverRequests ?? null
    if (pending === null) return void this.#health.dropped.unexpected++
    // The client takes them in order: an ack covers every id up to it.
    for (const [id, request] of pending) {
      if (id > requestId) break
      pending.delete(id)
      request.acked()
    }
  }

  #resendServerRequests(session: ResumableSession): void {
    const pending = session.work?.serverRequests ?? null
    if (pending === null) return
    for (const [requestId, { payload, createdAt }] of pending) this.#sendTo(session, { type: 'server-request', requestId, payload, createdAt })
  }

  // -------------------------------------------------------------------------------------------------------
  // Binding, ending
  // -------------------------------------------------------------------------------------------------------

  #bind(connection: Connection, session: ResumableSession): void {
    connection.session = session
    session.connection = connection
  }

  #unbind(connection: Connection): void {
    const session = connection.session
    connection.session = null
    if (session === null || session.connection !== connection) return
    // The expiry stays as it is: the client has until then to continue.
    session.connection = null
    this.#emit('sessionUnbound', session)
  }

  #connectionEnded(connection: Connection): void {
    connection.closed = true
    connection.held = null
    this.#connections.delete(connection)
    this.#unbind(connection)
  }

  /** @internal Ends a session: in the store first (once across gateways), then here. */
  async endSession(session: ResumableSession, reason: SessionEndReason, tell: SessionCloseReason | undefined): Promise<void> {
    if (session.gone) return
    const connection = session.connection
    this.#removeLocal(session, reason)
    if (tell !== undefined && connection !== null) this.#send(connection, { type: 'session-closed', reason: tell })
    let ended = false
    try {
      ended = await this.store.expire(this.gatewayId, session.id)
    } catch (error) {
      this.#storeFailed(error)
    }
    if (ended) this.#sessionEnded(session, reason)
  }

  #sessionEnded(session: ResumableSession, reason: SessionEndReason): void {
    if (this.#onSessionEnd === undefined) return
    try {
      this.#onSessionEnd(session, reason)
    } catch (error) {
      surfaceLater(error)
    }
  }

  /** Removes a session from this gateway only (ended, or moved to another). */
  #removeLocal(session: ResumableSession, reason: SessionEndReason | 'moved'): void {
    if (session.gone) return
    session.flags |= GONE
    session.lane?.remove(session)
    this.#sessions.delete(session.id)
    this.#touched.delete(session)
    const connection = session.connection
    if (connection !== null) {
      connection.session = null
      session.connection = null
    }
    const pending = session.work?.serverRequests ?? null
    session.work = null
    if (pending !== null && pending.size > 0) {
      const error = new VolleyError(
        'ERR_SESSION_CLOSED',
        reason === 'moved'
          ? `Session ${session.id} moved to another gateway before its client acknowledged this server request: it may not have been delivered`
          : `Session ${session.id} ended (${reason}) before its client acknowledged this server request`,
      )
      for (const request of pending.values()) request.failed(error)
    }
    if (resumableSessionGoneChannel.hasSubscribers) resumableSessionGoneChannel.publish({ server: this, session, reason } satisfies ResumableSessionGoneMessage)
    this.#emit('sessionGone', session, reason)
  }

  readonly #onClaimedAway = (sessionId: string): void => {
    const session = this.#sessions.get(sessionId)
    if (session === undefined) return
    const connection = session.connection
    this.#removeLocal(session, 'moved')
    if (connection !== null) {
      // Another gateway owns it now (the reference's NotLeaderAnymore).
      this.#send(connection, { type: 'session-closed', reason: 'not-leader-anymore' })
      connection.transport.close()
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // The cleanup tick
  // -------------------------------------------------------------------------------------------------------

  readonly #onTick = (now: number): void => {
    if (this.#closed) return
    this.#scheduler.arm(this.#tick, now + RESUMABLE_CLEANUP_INTERVAL_MS)
    for (const lane of [this.#timeoutLane, this.#graceLane]) {
      for (let entry = lane.takeWarning(now); entry !== null; entry = lane.takeWarning(now)) this.#emit('sessionWarning', entry as ResumableSession)
      for (let entry = lane.takeExpired(now); entry !== null; entry = lane.takeExpired(now)) {
        const session = entry as ResumableSession
        this.#health.timeouts++
        const connection = session.connection
        this.#removeLocal(session, 'expired')
        if (connection !== null) this.#send(connection, { type: 'session-closed', reason: 'session-expired' })
        this.#expired.push(session)
      }
    }
    if (!this.#tickInFlight) this.#flushing = this.#flush()
  }

  /** The tick's one store round trip: liveness, expiries, evictions; takes over gone gateways' sessions. */
  async #flush(): Promise<void> {
    if (this.#tickInFlight) return // the next tick carries what gathers meanwhile
    this.#tickInFlight = true
    const now = this.#now()
    const wall = this.#wallClock()
    const touched = this.#touched
    const evictions = this.#evictions
    const expired = this.#expired
    this.#touched = new Set()
    this.#evictions = new Map()
    this.#expired = []
    let failed = false
    const expiries: Array<[string, number]> = []
    for (const session of touched) if (!session.gone) expiries.push([session.id, this.#toWall(session.expiresAt, now)])
    try {
      const result = await this.store.tick(this.gatewayId, {
        now: wall,
        gatewayTtlMs: this.#gatewayTtlMs,
        expiries,
        expired: expired.map((session) => session.id),
        evictions: [...evictions],
        graceExpiresAt: wall + this.#takeOverGraceMs,
        takeOverLimit: this.#closed ? 0 : TAKE_OVER_PER_TICK,
      })
      for (const sessionId of result.lost) this.#onClaimedAway(sessionId)
      for (const stored of result.taken) this.#adopt(stored)
      if (result.ended.length > 0) {
        const byId = new Map(expired.map((session) => [session.id, session]))
        for (const sessionId of result.ended) {
          const session = byId.get(sessionId)
          if (session !== undefined) this.#sessionEnded(session, 'expired')
        }
      }
    } catch (error) {
      failed = true
      this.#storeFailed(error)
      // Kept for the next tick.
      this.#expired.push(...expired)
      for (const session of touched) if (!session.gone) this.#touched.add(session)
      for (const [sessionId, below] of evictions) if (!this.#evictions.has(sessionId)) this.#evictions.set(sessionId, below)
    } finally {
      this.#tickInFlight = false
    }
    // Sessions that expired while this round trip was out are ended now, not a tick later.
    if (!failed && this.#expired.length > 0 && !this.#closed) this.#flushing = this.#flush()
  }

  /** A session taken over from a gone gateway: disconnected, expiring after the grace (the contract's leader change). */
  #adopt(stored: StoredSession): void {
    if (this.#closed) return
    let session = this.#sessions.get(stored.sessionId)
    if (session === undefined) {
      session = new ResumableSession(this, stored.sessionId, stored.clientId, this.#shared(stored.capabilities))
      this.#sessions.set(session.id, session)
    }
    session.flags |= ADOPTED
    if (stored.evictedBelow > 0) session.busy.evictedBelow = Math.max(session.busy.evictedBelow, stored.evictedBelow)
    this.#graceLane.refresh(session, this.#now())
    this.#health.sessionsAdopted++
  }

  // -------------------------------------------------------------------------------------------------------
  // Helpers
  // -------------------------------------------------------------------------------------------------------

  /** The one Map of equal capability sets (up to 1,024 distinct sets; past that each session keeps its own). */
  #shared(capabilities: ReadonlyMap<string, string>): ReadonlyMap<string, string> {
    const key = JSON.stringify([...capabilities])
    const known = this.#capabilitySets.get(key)
    if (known !== undefined) return known
    if (this.#capabilitySets.size < MAX_SHARED_CAPABILITY_SETS) this.#capabilitySets.set(key, capabilities)
    return capabilities
  }

  /** @internal ResumableSession.diagnostics(). */
  diagnosticsOf(session: ResumableSession): ServerSessionDiagnostics {
    const now = this.#now()
    const transport = session.connection?.transport
    const rtt = transport instanceof PeerTransport ? transport.peer.stats().rtt : undefined
    return {
      sessionId: session.id,
      lastHeartbeats: lastHeartbeats(session).map((time) => this.#toWall(time, now)),
      currentExpiresAt: this.#toWall(session.expiresAt, now),
      bound: session.connection !== null,
      averageRoundTripMs: rtt?.smoothedMs,
      minRoundTripMs: rtt?.minMs,
      heartbeats: session.heartbeats,
      heartbeatsRefused: session.work?.heartbeatsRefused ?? 0,
    }
  }

  #stored(session: ResumableSession, expiresAt: number): StoredSession {
    return {
      sessionId: session.id,
      clientId: session.clientId,
      capabilities: session.capabilities,
      expiresAt: this.#toWall(expiresAt, this.#now()),
      evictedBelow: session.work?.evictedBelow ?? 0,
    }
  }

  /**
   * The scheduler's time in whole ms: what sessions keep of it stays a small integer (a fraction would cost
   * each session a boxed number per field, for a precision the 1 s tick does not use).
   */
  #now(): number {
    return Math.floor(this.#scheduler.now())
  }

  /** A time on the scheduler's clock as ms since the epoch. */
  #toWall(time: number, now: number): number {
    return Math.round(this.#wallClock() + (time - now))
  }

  #sendTo(session: ResumableSession, message: ServerMessage): void {
    if (session.connection !== null) this.#send(session.connection, message)
  }

  #send(connection: Connection, message: ServerMessage): void {
    if (connection.closed) return
    try {
      connection.transport.send(encodeServerMessage(message))
    } catch (error) {
      // A result larger than the connection carries: the application's to know.
      if (connection.session !== null && 'requestId' in message) this.#emit('requestFailed', error, connection.session, message.requestId)
      else surfaceLater(error)
    }
  }

  #storeFailed(error: unknown): void {
    this.#health.storeErrors++
    this.#emit('storeError', error instanceof Error ? error : new Error(String(error)))
  }

  /** Events run guarded: a handler that throws must not stop the server's step. */
  #emit<K extends keyof SessionServerEvents>(event: K, ...args: SessionServerEvents[K]): void {
    try {
      ;(this.emit as (event: K, ...args: SessionServerEvents[K]) => boolean)(event, ...args)
    } catch (error) {
      surfaceLater(error)
    }
  }
}

/**
 * A random UUID as one flat string: randomUUID() builds it by concatenation, and a concatenated string
 * held as a session's id keeps its pieces and its flattened copy (about 80 bytes more a session).
 */
function newSessionId(): string {
  return Buffer.from(randomUUID(), 'latin1').toString('latin1')
}

/** A session's last heartbeats (up to four) on the server's clock, oldest first. */
function lastHeartbeats(session: ResumableSession): number[] {
  const ring = [session.heartbeat0, session.heartbeat1, session.heartbeat2, session.heartbeat3]
  const count = session.heartbeats
  const held = Math.min(count, LAST_HEARTBEATS)
  return Array.from({ length: held }, (_, index) => ring[(count - held + index) % LAST_HEARTBEATS]!)
}

function ageBucket(ageMs: number): number {
  const buckets = heartbeatAgeBucketsMs
  for (let index = 0; index < buckets.length; index++) if (ageMs <= buckets[index]!) return index
  return buckets.length
}

function functionOptionError(name: string, value: unknown): VolleyTypeError {
  return new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be a function. Received ${describe(value)}`)
}

function noop(): void {}
