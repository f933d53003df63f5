// Where sessions live between gateways: the SessionStore interface, and the in-memory store (one process:
// one gateway, or several sharing the instance). RedisSessionStore implements the same contract across
// processes. A gateway keeps its sessions' hot state itself; the store holds what another gateway needs to
// take a session over: who owns it, until when, and the responses it must not compute twice.

/** What a store keeps of a session. */
export interface StoredSession {
  readonly sessionId: string
  /** The netcode client id of the connection that created it: only that client may continue it (undefined: no identity). */
  readonly clientId: bigint | undefined
  readonly capabilities: ReadonlyMap<string, string>
  /** When it expires, ms since the epoch. */
  readonly expiresAt: number
  /** Responses to request ids below this one are gone: such a request is answered ResponseEvicted. */
  readonly evictedBelow: number
}

/** A session claimed by a gateway (a continue reached it), with what it needs to serve it. */
export interface ClaimedSession extends StoredSession {
  /** The gateway that owned it before (the claimer's own id when it owned it already). */
  readonly previousGateway: string
  /** The responses recorded for its requests, by request id. */
  readonly responses: ReadonlyMap<number, Uint8Array>
}

/** Why a claim took nothing. */
export type ClaimRefusal = 'not-found' | 'foreign-client'

/** What a gateway hands the store once per cleanup tick: one round trip, however many heartbeats it carries. */
export interface StoreTick {
  /** ms since the epoch. */
  readonly now: number
  /** A gateway not heard from for this long is gone: another takes its sessions over. */
  readonly gatewayTtlMs: number
  /** New expiries of sessions this gateway owns (heartbeats, continues since the last tick). */
  readonly expiries: ReadonlyArray<readonly [sessionId: string, expiresAt: number]>
  /** Sessions this gateway owns that expired: each is removed once across all gateways (StoreTickResult.ended). */
  readonly expired: readonly string[]
  /** Sessions whose responses below a request id the client no longer needs. */
  readonly evictions: ReadonlyArray<readonly [sessionId: string, below: number]>
  /** The expiry given to sessions taken over from a gone gateway (their grace). */
  readonly graceExpiresAt: number
  /** How many sessions to take over in this tick at most (the rest in the next ticks). */
  readonly takeOverLimit: number
}

export interface StoreTickResult {
  /** The tick's expired sessions that this call removed (the others were gone or another gateway's). */
  readonly ended: readonly string[]
  /** Sessions of gone gateways that this one owns now, disconnected, expiring at graceExpiresAt. */
  readonly taken: readonly StoredSession[]
  /** Sessions among the tick's expiries that another gateway owns now, or that are gone: no longer this one's. */
  readonly lost: readonly string[]
}

// The conformance suite checks this contract on each store.
/**
 * Where gateways share their sessions: what every store does. Each operation is atomic: two gateways racing
 * for a session see one outcome.
 */
export interface SessionStore {
  /** Records a new session owned by `gateway`. */
  create(gateway: string, session: StoredSession): Promise<void>
  /**
   * Makes `gateway` the owner of a session that exists and has not expired at `now` (epoch ms), moving its
   * expiry to `expiresAt`, and tells the gateway that owned it (onClaimedAway). A session created by another
   * client (clientId differs) is not touched. Returns the session with its responses, or why not.
   */
  claim(gateway: string, sessionId: string, clientId: bigint | undefined, now: number, expiresAt: number): Promise<ClaimedSession | ClaimRefusal>
  /** Removes a session `gateway` owns: true for the one call that removed it (expiry happens once), false otherwise. */
  expire(gateway: string, sessionId: string): Promise<boolean>
  /**
   * Records the response to a request unless one is recorded already, and returns the one recorded (the
   * first writer's): however many gateways computed it, the client sees one result.
   */
  recordResponse(sessionId: string, requestId: number, result: Uint8Array): Promise<Uint8Array>
  /** The gateway's periodic round trip: its liveness, batched expiries and evictions, and takeovers. */
  tick(gateway: string, tick: StoreTick): Promise<StoreTickResult>
  /** Calls listener with each session of `gateway` that another gateway claimed; returns what stops it. */
  onClaimedAway(gateway: string, listener: (sessionId: string) => void): () => void
}

/** A session as the memory store keeps it: one mutable record (a tick moves expiries in place). */
interface MemoryEntry {
  readonly sessionId: string
  readonly clientId: bigint | undefined
  readonly capabilities: ReadonlyMap<string, string>
  expiresAt: number
  evictedBelow: number
  gateway: string
  responses: Map<number, Uint8Array> | undefined
}

function snapshot(entry: MemoryEntry, expiresAt = entry.expiresAt): StoredSession {
  return { sessionId: entry.sessionId, clientId: entry.clientId, capabilities: entry.capabilities, expiresAt, evictedBelow: entry.evictedBelow }
}

/**
 * The in-memory store: the default of a SessionServer, and a shared one for gateways in one process. Its
 * operations complete in a microtask, as a remote store's would in a round trip.
 */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, MemoryEntry>()
  readonly #gatewaySeen = new Map<string, number>()
  readonly #owned = new Map<string, Set<string>>()
  readonly #claimedAway = new Map<string, Set<(sessionId: string) => void>>()

  /** How many sessions it holds. */
  get size(): number {
    return this.#sessions.size
  }

  async create(gateway: string, session: StoredSession): Promise<void> {
    const { sessionId, clientId, capabilities, expiresAt, evictedBelow } = session
    this.#sessions.set(sessionId, { sessionId, clientId, capabilities, expiresAt, evictedBelow, gateway, responses: undefined })
    this.#own(gateway, session.sessionId)
  }

  async claim(gateway: string, sessionId: string, clientId: bigint | undefined, now: number, expiresAt: number): Promise<ClaimedSession | ClaimRefusal> {
    const entry = this.#sessions.get(sessionId)
    if (entry === undefined || entry.expiresAt < now) return 'not-found'
    if (entry.clientId !== clientId) return 'foreign-client'
    const previousGateway = entry.gateway
    entry.expiresAt = expiresAt
    if (previousGateway !== gateway) {
      this.#owned.get(previousGateway)?.delete(sessionId)
      entry.gateway = gateway
      this.#own(gateway, sessionId)
      const listeners = this.#claimedAway.get(previousGateway)
      // After this call's own result, as a published message reaches its subscriber.
      if (listeners !== undefined) for (const listener of listeners) queueMicrotask(() => listener(sessionId))
    }
    return { ...snapshot(entry), previousGateway, responses: new Map(entry.responses ?? []) }
  }

  async expire(gateway: string, sessionId: string): Promise<boolean> {
    return this.#remove(gateway, sessionId)
  }

  #remove(gateway: string, sessionId: string): boolean {
    const entry = this.#sessions.get(sessionId)
    if (entry === undefined || entry.gateway !== gateway) return false
    this.#sessions.delete(sessionId)
    this.#owned.get(gateway)?.delete(sessionId)
    return true
  }

  async recordResponse(sessionId: string, requestId: number, result: Uint8Array): Promise<Uint8Array> {
    const entry = this.#sessions.get(sessionId)
    // A session gone meanwhile (expired, closed) keeps nothing: the response still goes to the caller.
    if (entry === undefined) return result
    entry.responses ??= new Map()
    const recorded = entry.responses.get(requestId)
    if (recorded !== undefined) return recorded
    if (requestId < entry.evictedBelow) return result
    const own = result.slice()
    entry.responses.set(requestId, own)
    return own
  }

  async tick(gateway: string, tick: StoreTick): Promise<StoreTickResult> {
    this.#gatewaySeen.set(gateway, tick.now)
    const lost: string[] = []
    for (const [sessionId, expiresAt] of tick.expiries) {
      const entry = this.#sessions.get(sessionId)
      if (entry === undefined || entry.gateway !== gateway) lost.push(sessionId)
      else entry.expiresAt = expiresAt
    }
    for (const [sessionId, below] of tick.evictions) {
      const entry = this.#sessions.get(sessionId)
      if (entry === undefined || entry.gateway !== gateway || below <= entry.evictedBelow) continue
      entry.evictedBelow = below
      if (entry.responses !== undefined) for (const requestId of entry.responses.keys()) if (requestId < below) entry.responses.delete(requestId)
    }
    const ended: string[] = []
    for (const sessionId of tick.expired) if (this.#remove(gateway, sessionId)) ended.push(sessionId)
    const taken: StoredSession[] = []
    for (const [other, seen] of this.#gatewaySeen) {
      if (other === gateway || seen + tick.gatewayTtlMs > tick.now) continue
      const owned = this.#owned.get(other)
      for (const sessionId of owned ?? []) {
        if (taken.length >= tick.takeOverLimit) break
        owned!.delete(sessionId)
        const entry = this.#sessions.get(sessionId)
        if (entry === undefined) continue
        entry.gateway = gateway
        entry.expiresAt = tick.graceExpiresAt
        this.#own(gateway, sessionId)
        taken.push(snapshot(entry))
      }
      if (owned === undefined || owned.size === 0) {
        this.#owned.delete(other)
        this.#gatewaySeen.delete(other)
      }
      if (taken.length >= tick.takeOverLimit) break
    }
    return { ended, taken, lost }
  }

  onClaimedAway(gateway: string, listener: (sessionId: string) => void): () => void {
    let listeners = this.#claimedAway.get(gateway)
    if (listeners === undefined) this.#claimedAway.set(gateway, (listeners = new Set()))
    const own = (sessionId: string): void => listener(sessionId)
    listeners.add(own)
    return () => {
      listeners.delete(own)
      if (listeners.size === 0 && this.#claimedAway.get(gateway) === listeners) this.#claimedAway.delete(gateway)
    }
  }

  #own(gateway: string, sessionId: string): void {
    let owned = this.#owned.get(gateway)
    if (owned === undefined) this.#owned.set(gateway, (owned = new Set()))
    owned.add(sessionId)
  }
}
