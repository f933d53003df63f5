// The manager side of agent sync (seed 002, research §B.3): sessions opened by Start with random u64 ids,
// items staged in a sink as they arrive and their seqs marked in a GapSet, End answered with the gaps
// (ReqRet) or, once nothing is missing, with Processing and then the sink's verdict. Idle sessions are swept.
// I/O is the transports'; time is the scheduler's, so fake-clock tests drive all of it.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { VolleyTypeError, describe } from '../../util/errors.ts'
import { checkOptions, integerOption } from '../../util/options.ts'
import type { Server } from '../../api/server.ts'
import { syncSessionCompletedChannel } from '../../api/diagnostics.ts'
import type { SyncSessionCompletedMessage } from '../diagnostics.ts'
import { Timer, sessionTimers, type Scheduler } from '../timers.ts'
import type { SessionTransport } from '../transport.ts'
import { PeerTransports, datagramMessageBytes, type VolleyTransportOptions } from '../volley-transport.ts'
import { GapSet } from './gap-set.ts'
import {
  SYNC_CHECKSUM_ATTEMPTS,
  SYNC_CHECKSUM_RETRY_MS,
  SYNC_IDLE_TIMEOUT_MS,
  SYNC_NO_SESSION,
  SYNC_SWEEP_INTERVAL_MS,
} from './settings.ts'
import { MemorySyncSink, type SyncItem, type SyncSessionInfo, type SyncSink } from './sink.ts'
import {
  SyncEncoder,
  decodeSyncMessage,
  type DataValueMessage,
  type MalformedReason,
  type SeqRange,
  type StartMessage,
  type SyncMessage,
  type SyncMode,
  type SyncStatus,
} from './wire.ts'

/** Why a manager dropped a message (stats().dropped). */
export type SyncManagerDropReason =
  | MalformedReason
  | 'unexpected-type' // a message only a manager sends
  | 'unknown-session' // no open session has that id (never opened, expired or finished)
  | 'foreign-session' // the session was opened on another connection
  | 'seq-out-of-range' // at or past the session's size
  | 'duplicate' // a seq already received (a retransmission that crossed the original)
  | 'out-of-phase' // a checksum outside a ModuleCheck session, or data after the session completed
  | 'filtered-index' // an index the manager does not accept (its seq still counts as received)

export type SyncManagerDrops = Record<SyncManagerDropReason, number>

export interface SyncManagerStats {
  /** Sessions open now (receiving, waiting for gaps, or being applied). */
  sessions: number
  /** Items (values, contexts, cleans) staged since the start. */
  items: number
  /** Sessions applied (EndAck Ok, or a ModuleCheck's verdict) and failed (EndAck Error). */
  completed: number
  failed: number
  /** Sessions dropped after idleTimeoutMs without anything new. */
  expired: number
  /** StartAcks by status. */
  startAcks: Record<'ok' | 'error' | 'offline', number>
  /** ReqRets sent, and the seqs they asked for. */
  retransmitRequests: number
  retransmitRequestedItems: number
  dropped: SyncManagerDrops
}

export interface SyncManagerOptions {
  /** Where documents go (default: a MemorySyncSink of the manager's own, `manager.sink`). */
  sink?: SyncSink | undefined
  /** Sessions open at once (default 10000); a Start past it is answered Offline. */
  maxSessions?: number | undefined
  /**
   * Items of all open sessions together, by their Start.size (default 100,000,000); a Start that would
   * pass it is answered Offline (Wazuh's quota).
   */
  maxPendingItems?: number | undefined
  /** How long a session lives without anything new, ms (default 1,200,000). */
  idleTimeoutMs?: number | undefined
  /** How often idle sessions are looked for, ms (default 600,000). */
  sweepIntervalMs?: number | undefined
  /** Comparisons of a ModuleCheck's checksum before ChecksumMismatch (default 5), and the wait between them, ms (default 10,000). */
  checksumAttempts?: number | undefined
  checksumRetryMs?: number | undefined
  /** Which indices a session may touch (default: Wazuh's inventory, FIM, SCA and vulnerabilities indices, wazuh-states-*). */
  acceptIndex?: ((index: string) => boolean) | undefined
  /**
   * After End, while gaps remain: how long without a new item before the manager asks again for what is
   * still missing, ms (default 1000). The agent takes a ReqRet at any time while it waits for EndAck; without
   * this, a lost retransmission would wait for the agent's End timeout (30 s).
   */
  repairIntervalMs?: number | undefined
  /** The most ranges in one ReqRet (default 1024); more gaps are asked for as the first ones fill. */
  maxRangesPerRequest?: number | undefined
  /** The timers (default sessionTimers(); a FakeClock in tests). */
  scheduler?: Scheduler | undefined
}

/** A session as events report it. */
export interface SyncSessionEvent {
  readonly session: SyncSessionInfo
}

export interface SyncManagerEvents {
  /** A Start opened a session (StartAck Ok sent). */
  sessionStarted: [event: SyncSessionEvent]
  /** A session ended with the sink's verdict, sent as EndAck: 'ok', 'error' or 'checksum-mismatch'. */
  sessionCompleted: [event: SyncSessionEvent & { readonly status: SyncStatus; readonly error?: Error | undefined }]
  /** A session was dropped after idleTimeoutMs without anything new. */
  sessionExpired: [event: SyncSessionEvent]
  /** The sink threw from discard() (stage() and commit() errors fail their session instead). */
  sinkError: [error: Error, event: SyncSessionEvent]
  /** The first drop of each reason (they are all counted in stats().dropped), said once. */
  warning: [warning: { readonly reason: SyncManagerDropReason; readonly message: string }]
}

// The reference's accepted indices: its inventory, FIM, SCA and vulnerabilities state indices.
const defaultIndexPatterns = [/^wazuh-states-inventory-/, /^wazuh-states-fim-/, /^wazuh-states-sca$/, /^wazuh-states-sca-/, /^wazuh-states-vulnerabilities$/]
function defaultAcceptIndex(index: string): boolean {
  return defaultIndexPatterns.some((pattern) => pattern.test(index))
}

// Modes whose Start may carry size 0: they send no data.
const emptyModes: ReadonlySet<SyncMode> = new Set(['module-check', 'metadata-delta', 'metadata-check', 'group-delta', 'group-check'])
/** Bytes of a ReqRet around its ranges, and per range (a Pair table and its offset), with room to spare. */
const REQRET_OVERHEAD_BYTES = 96
const REQRET_RANGE_BYTES = 32
/** Rounds of asking again without a new item before the manager waits for the agent's End instead. */
const MAX_REPAIR_ROUNDS = 10
/** Finished sessions remembered (their verdict resent to a repeated End whose EndAck was lost). */
const FINISHED_MEMORY = 4096

const managerOptionNames = new Set([
  'sink', 'maxSessions', 'maxPendingItems', 'idleTimeoutMs', 'sweepIntervalMs', 'checksumAttempts', 'checksumRetryMs', 'acceptIndex',
  'repairIntervalMs', 'maxRangesPerRequest', 'scheduler',
])

class Connection {
  /** The most ranges a ReqRet on this connection carries (its transport's largest message). */
  readonly maxRanges: number

  constructor(
    readonly transport: SessionTransport,
    maxRanges: number,
  ) {
    // A ReqRet fits the transport's largest message, and one datagram on a transport that loses messages.
    const { maxMessageBytes, reliable } = transport as { maxMessageBytes?: unknown; reliable?: unknown }
    let bound = typeof maxMessageBytes === 'number' ? maxMessageBytes : Infinity
    if (reliable === false) bound = Math.min(bound, datagramMessageBytes)
    this.maxRanges = Math.max(1, Math.min(maxRanges, Math.floor((bound - REQRET_OVERHEAD_BYTES) / REQRET_RANGE_BYTES)))
  }
}

type SessionPhase = 'receiving' | 'repairing' | 'processing'

class ManagerSession implements SyncSessionInfo {
  readonly gaps: GapSet
  phase: SessionPhase = 'receiving'
  lastActivity: number
  checksum: { index: string; checksum: string } | null = null
  /** Repair: the last range the last ReqRet asked for, how much of it is still missing, the items seen then, and rounds without a new one. */
  lastRange: SeqRange = { begin: -1, end: -1 }
  lastRangeMissing = 0
  observedAtRequest = 0
  idleRounds = 0
  readonly repair: Timer
  failed: Error | null = null

  constructor(
    readonly id: bigint,
    readonly connection: Connection,
    readonly start: Readonly<StartMessage>,
    readonly indices: readonly string[],
    now: number,
    repair: (session: ManagerSession) => void,
  ) {
    this.gaps = new GapSet(start.size)
    this.lastActivity = now
    this.repair = new Timer(() => repair(this))
  }

  get agentId(): string {
    return this.start.agentid
  }
  get module(): string {
    return this.start.module
  }
  get mode(): SyncMode {
    return this.start.mode
  }
  get size(): number {
    return this.start.size
  }
  get key(): string {
    return `${this.start.agentid}\0${this.start.module}`
  }
}

/**
 * The manager of agent sync: accepts agents' connections (any SessionTransport with accept(), or a Volley
 * Server's channel with listen()) and keeps each agent's documents in its sink.
 */
export class SyncManager extends EventEmitter<SyncManagerEvents> {
  readonly sink: SyncSink
  readonly #maxSessions: number
  readonly #maxPendingItems: number
  readonly #idleTimeoutMs: number
  readonly #sweepIntervalMs: number
  readonly #checksumAttempts: number
  readonly #checksumRetryMs: number
  readonly #acceptIndex: (index: string) => boolean
  readonly #repairIntervalMs: number
  readonly #maxRanges: number
  readonly #scheduler: Scheduler
  readonly #encoder = new SyncEncoder()
  readonly #sessions = new Map<bigint, ManagerSession>()
  readonly #byAgentModule = new Map<string, ManagerSession>()
  readonly #finished = new Map<bigint, { status: SyncStatus; connection: Connection }>()
  readonly #connections = new Set<Connection>()
  readonly #listeners: PeerTransports[] = []
  readonly #sweep: Timer
  readonly #warned = new Set<SyncManagerDropReason>()
  #pendingItems = 0
  #closed = false
  readonly #stats: SyncManagerStats = {
    sessions: 0,
    items: 0,
    completed: 0,
    failed: 0,
    expired: 0,
    startAcks: { ok: 0, error: 0, offline: 0 },
    retransmitRequests: 0,
    retransmitRequestedItems: 0,
    dropped: {
      'too-short': 0, 'out-of-bounds': 0, misaligned: 0, 'bad-vtable': 0, 'bad-string': 0, 'unknown-union-type': 0, 'too-deep': 0,
      'too-many-tables': 0, 'no-content': 0, 'bad-enum': 0, 'unexpected-type': 0, 'unknown-session': 0, 'foreign-session': 0,
      'seq-out-of-range': 0, duplicate: 0, 'out-of-phase': 0, 'filtered-index': 0,
    },
  }

  constructor(options: SyncManagerOptions = {}) {
    super()
    checkOptions('options', options, managerOptionNames)
    const sink = options.sink ?? new MemorySyncSink()
    if (typeof sink !== 'object' || sink === null || typeof sink.stage !== 'function' || typeof sink.commit !== 'function' || typeof sink.discard !== 'function' || typeof sink.checksum !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "options.sink" property must be a SyncSink (stage, commit, discard and checksum methods). Received ${describe(options.sink)}`)
    }
    if (options.acceptIndex !== undefined && typeof options.acceptIndex !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "options.acceptIndex" property must be a function. Received ${describe(options.acceptIndex)}`)
    }
    this.sink = sink
    this.#maxSessions = integerOption('maxSessions', options.maxSessions, 10_000, 1, 10_000_000)
    this.#maxPendingItems = integerOption('maxPendingItems', options.maxPendingItems, 100_000_000, 1, Number.MAX_SAFE_INTEGER)
    this.#idleTimeoutMs = integerOption('idleTimeoutMs', options.idleTimeoutMs, SYNC_IDLE_TIMEOUT_MS, 1, 2 ** 31 - 1)
    this.#sweepIntervalMs = integerOption('sweepIntervalMs', options.sweepIntervalMs, SYNC_SWEEP_INTERVAL_MS, 1, 2 ** 31 - 1)
    this.#checksumAttempts = integerOption('checksumAttempts', options.checksumAttempts, SYNC_CHECKSUM_ATTEMPTS, 1, 100)
    this.#checksumRetryMs = integerOption('checksumRetryMs', options.checksumRetryMs, SYNC_CHECKSUM_RETRY_MS, 0, 2 ** 31 - 1)
    this.#acceptIndex = options.acceptIndex ?? defaultAcceptIndex
    this.#repairIntervalMs = integerOption('repairIntervalMs', options.repairIntervalMs, 1000, 1, 2 ** 31 - 1)
    this.#maxRanges = integerOption('maxRangesPerRequest', options.maxRangesPerRequest, 1024, 1, 1_000_000)
    this.#scheduler = options.scheduler ?? sessionTimers()
    this.#sweep = new Timer((now) => this.#sweepIdle(now))
    this.#scheduler.arm(this.#sweep, this.#scheduler.now() + this.#sweepIntervalMs)
  }

  /** Serves one agent's connection. */
  accept(transport: SessionTransport): void {
    if (this.#closed) {
      transport.close()
      return
    }
    const connection = new Connection(transport, this.#maxRanges)
    this.#connections.add(connection)
    transport.on('message', (data) => this.#receive(connection, data))
    transport.on('close', () => this.#connectionEnded(connection))
    transport.on('drain', noop)
  }

  /**
   * Serves agents on a Volley Server's channel (options.channel, default 0): reliable, or unreliable with
   * options.channelMode 'unreliable' (the protocol resends what is lost by itself; each ReqRet then fits one
   * datagram). Returns what stops listening there.
   */
  listen(server: Server, options: VolleyTransportOptions = {}): () => void {
    const transports = new PeerTransports(server, options, (transport) => this.accept(transport))
    this.#listeners.push(transports)
    return () => transports.close()
  }

  stats(): SyncManagerStats {
    return { ...this.#stats, sessions: this.#sessions.size, startAcks: { ...this.#stats.startAcks }, dropped: { ...this.#stats.dropped } }
  }

  /**
   * Stops: open sessions are dropped (their staged items discarded; their agents' End goes unanswered and
   * they sync again later), connections end. Sessions being applied finish in the sink first.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#scheduler.disarm(this.#sweep)
    for (const session of [...this.#sessions.values()]) if (session.phase !== 'processing') this.#drop(session)
    for (const listener of this.#listeners) listener.close()
    for (const connection of [...this.#connections]) connection.transport.close()
  }

  // -------------------------------------------------------------------------------------------------------
  // Messages
  // -------------------------------------------------------------------------------------------------------

  #receive(connection: Connection, data: Uint8Array): void {
    const message = decodeSyncMessage(data)
    switch (message.type) {
      case 'malformed':
        return this.#dropped(message.reason)
      case 'start':
        return this.#start(connection, message)
      case 'data-value':
        return this.#item(connection, message.session, valueItem(message))
      case 'data-batch':
        for (const value of message.values) this.#item(connection, value.session, valueItem(value))
        return
      case 'data-context':
        return this.#item(connection, message.session, { kind: 'context', seq: message.seq, id: message.id, index: message.index, data: message.data })
      case 'data-clean':
        return this.#item(connection, message.session, { kind: 'clean', seq: message.seq, index: message.index })
      case 'checksum-module':
        return this.#checksum(connection, message.session, message.index, message.checksum)
      case 'end':
        return this.#end(connection, message.session)
      default:
        return this.#dropped('unexpected-type')
    }
  }

  #start(connection: Connection, start: StartMessage): void {
    const now = this.#scheduler.now()
    const key = `${start.agentid}\0${start.module}`
    const current = this.#byAgentModule.get(key)
    // The agent's copy of that module is being applied: it is locked until that ends.
    if (current?.phase === 'processing') return this.#startAck(connection, 'error', SYNC_NO_SESSION)
    // A session the agent left behind (it restarted, or gave up on it) is dropped first.
    if (current !== undefined) this.#drop(current)
    if (this.#sessions.size >= this.#maxSessions || this.#pendingItems + start.size > this.#maxPendingItems || this.sink.available?.() === false) {
      return this.#startAck(connection, 'offline', SYNC_NO_SESSION)
    }
    const id = this.#newSessionId()
    if (!Number.isSafeInteger(start.size) || (start.size === 0 && !emptyModes.has(start.mode))) {
      // Invalid size: refused, with the id drawn for it (as the reference does).
      return this.#startAck(connection, 'error', id)
    }
    const indices = [...new Set(start.index.filter((index) => this.#acceptIndex(index)))].sort()
    const session = new ManagerSession(id, connection, start, indices, now, (s) => this.#repairDue(s))
    this.#sessions.set(id, session)
    this.#byAgentModule.set(key, session)
    this.#pendingItems += start.size
    this.#startAck(connection, 'ok', id)
    this.emit('sessionStarted', { session })
  }

  #startAck(connection: Connection, status: 'ok' | 'error' | 'offline', session: bigint): void {
    this.#stats.startAcks[status]++
    this.#send(connection, { type: 'start-ack', status, session })
  }

  /** The session a message names, if it is open and was opened on this connection. */
  #sessionOf(connection: Connection, id: bigint): ManagerSession | undefined {
    const session = this.#sessions.get(id)
    if (session === undefined) {
      this.#dropped('unknown-session')
      return undefined
    }
    if (session.connection !== connection) {
      this.#dropped('foreign-session')
      return undefined
    }
    return session
  }

  #item(connection: Connection, id: bigint, item: SyncItem): void {
    const session = this.#sessionOf(connection, id)
    if (session === undefined) return
    if (session.phase === 'processing') return this.#dropped('out-of-phase')
    const observation = session.gaps.observe(item.seq)
    if (observation === 'out-of-range') return this.#dropped('seq-out-of-range')
    if (observation === 'duplicate') return this.#dropped('duplicate')
    session.lastActivity = this.#scheduler.now()
    // Values and cleans touch only the indices the session's Start named and the manager accepts; contexts are no documents.
    if (item.kind !== 'context' && !session.indices.includes(item.index)) {
      this.#dropped('filtered-index')
    } else if (session.failed === null) {
      try {
        this.sink.stage(session, item)
        this.#stats.items++
      } catch (error) {
        // The session cannot be applied now; it still runs to its End, which gets EndAck Error.
        session.failed = error instanceof Error ? error : new Error(String(error))
      }
    }
    if (session.phase === 'repairing') this.#repairProgress(session, item.seq)
  }

  #checksum(connection: Connection, id: bigint, index: string, checksum: string): void {
    const session = this.#sessionOf(connection, id)
    if (session === undefined) return
    if (session.mode !== 'module-check' || session.phase === 'processing') return this.#dropped('out-of-phase')
    if (!this.#acceptIndex(index)) return this.#dropped('filtered-index')
    session.checksum = { index, checksum }
    session.lastActivity = this.#scheduler.now()
  }

  #end(connection: Connection, id: bigint): void {
    const finished = this.#finished.get(id)
    if (finished !== undefined && finished.connection === connection) {
      // The verdict was sent and the agent did not get it: again.
      return this.#send(connection, { type: 'end-ack', status: finished.status, session: id })
    }
    const session = this.#sessionOf(connection, id)
    if (session === undefined) return
    session.lastActivity = this.#scheduler.now()
    if (session.phase === 'processing') return this.#send(connection, { type: 'end-ack', status: 'processing', session: id })
    if (session.gaps.complete) return this.#process(session)
    session.phase = 'repairing'
    session.idleRounds = 0
    this.#requestGaps(session)
  }

  // -------------------------------------------------------------------------------------------------------
  // Gaps
  // -------------------------------------------------------------------------------------------------------

  #requestGaps(session: ManagerSession): void {
    const ranges = session.gaps.gaps(session.connection.maxRanges)
    let items = 0
    for (const range of ranges) items += range.end - range.begin + 1
    this.#stats.retransmitRequests++
    this.#stats.retransmitRequestedItems += items
    session.lastRange = ranges[ranges.length - 1]!
    session.lastRangeMissing = session.lastRange.end - session.lastRange.begin + 1
    session.observedAtRequest = session.gaps.observed
    this.#scheduler.arm(session.repair, this.#scheduler.now() + this.#repairIntervalMs)
    this.#send(session.connection, { type: 'req-ret', ranges, session: session.id })
  }

  /** A new item while gaps are being filled: the session completes, or the next gaps are asked for. */
  #repairProgress(session: ManagerSession, seq: number): void {
    if (session.gaps.complete) return this.#process(session)
    session.idleRounds = 0
    // The agent resends in seq order: once the last range asked for is here, it has sent the round, and what
    // is still missing of it was lost. The next round asks for that and the gaps past it, at once.
    const { begin, end } = session.lastRange
    if (seq >= begin && seq <= end && --session.lastRangeMissing === 0) this.#requestGaps(session)
  }

  #repairDue(session: ManagerSession): void {
    if (session.phase !== 'repairing' || this.#sessions.get(session.id) !== session) return
    if (session.gaps.observed > session.observedAtRequest) {
      // Retransmissions are still arriving: give them another interval.
      session.observedAtRequest = session.gaps.observed
      this.#scheduler.arm(session.repair, this.#scheduler.now() + this.#repairIntervalMs)
      return
    }
    // What was asked for was lost on the way, or the request was: ask again, a bounded number of times;
    // then the agent's End (sent again at its timeout) asks for it.
    if (++session.idleRounds > MAX_REPAIR_ROUNDS) return
    this.#requestGaps(session)
  }

  // -------------------------------------------------------------------------------------------------------
  // Completion
  // -------------------------------------------------------------------------------------------------------

  /** Every item is here and End was received: Processing now, the verdict when the sink has applied it. */
  #process(session: ManagerSession): void {
    session.phase = 'processing'
    this.#scheduler.disarm(session.repair)
    this.#send(session.connection, { type: 'end-ack', status: 'processing', session: session.id })
    void this.#verdict(session).then(
      (status) => this.#finish(session, status),
      (error: unknown) => this.#finish(session, 'error', error instanceof Error ? error : new Error(String(error))),
    )
  }

  async #verdict(session: ManagerSession): Promise<SyncStatus> {
    if (session.failed !== null) throw session.failed
    if (session.mode !== 'module-check') {
      await this.sink.commit(session)
      return 'ok'
    }
    // ModuleCheck: compare with the sink's checksum, a few times apart (the copy may still be catching up).
    if (session.checksum === null) throw new Error('A ModuleCheck session ended without a ChecksumModule')
    const { index, checksum } = session.checksum
    for (let attempt = 1; ; attempt++) {
      if ((await this.sink.checksum(session.agentId, index)) === checksum) return 'ok'
      if (attempt >= this.#checksumAttempts || this.#closed) return 'checksum-mismatch'
      await this.#wait(this.#checksumRetryMs)
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => this.#scheduler.arm(new Timer(() => resolve()), this.#scheduler.now() + ms))
  }

  #finish(session: ManagerSession, status: SyncStatus, error?: Error): void {
    this.#remove(session)
    if (status === 'error') {
      this.#stats.failed++
      this.#discard(session)
    } else {
      this.#stats.completed++
    }
    this.#finished.set(session.id, { status, connection: session.connection })
    if (this.#finished.size > FINISHED_MEMORY) this.#finished.delete(this.#finished.keys().next().value!)
    this.#send(session.connection, { type: 'end-ack', status, session: session.id })
    if (syncSessionCompletedChannel.hasSubscribers) syncSessionCompletedChannel.publish({ manager: this, session, status, error } satisfies SyncSessionCompletedMessage)
    this.emit('sessionCompleted', { session, status, error })
  }

  #sweepIdle(now: number): void {
    for (const session of [...this.#sessions.values()]) {
      if (session.phase !== 'processing' && now - session.lastActivity > this.#idleTimeoutMs) {
        this.#stats.expired++
        this.#drop(session)
        this.emit('sessionExpired', { session })
      }
    }
    this.#finished.clear()
    if (!this.#closed) this.#scheduler.arm(this.#sweep, now + this.#sweepIntervalMs)
  }

  /** Ends a session that will not complete: its staged items go. */
  #drop(session: ManagerSession): void {
    this.#remove(session)
    this.#discard(session)
  }

  #discard(session: ManagerSession): void {
    try {
      this.sink.discard(session)
    } catch (error) {
      this.emit('sinkError', error instanceof Error ? error : new Error(String(error)), { session })
    }
  }

  #remove(session: ManagerSession): void {
    if (this.#sessions.get(session.id) !== session) return
    this.#sessions.delete(session.id)
    if (this.#byAgentModule.get(session.key) === session) this.#byAgentModule.delete(session.key)
    this.#scheduler.disarm(session.repair)
    this.#pendingItems -= session.size
  }

  #connectionEnded(connection: Connection): void {
    // Its sessions stay until they idle out: the reference's sessions are not tied to a connection, and an
    // agent that reconnects starts again anyway (its Start drops the stale session at once).
    this.#connections.delete(connection)
  }

  #send(connection: Connection, message: SyncMessage): void {
    if (connection.transport.closed) return
    connection.transport.send(this.#encoder.encode(message))
  }

  #dropped(reason: SyncManagerDropReason): void {
    this.#stats.dropped[reason]++
    if (this.#warned.has(reason)) return
    this.#warned.add(reason)
    this.emit('warning', { reason, message: `agent sync: dropped a message (${reason}); further drops for this reason are counted in stats().dropped` })
  }

  #newSessionId(): bigint {
    for (;;) {
      const id = randomBytes(8).readBigUInt64LE()
      if (id !== SYNC_NO_SESSION && !this.#sessions.has(id) && !this.#finished.has(id)) return id
    }
  }
}

function valueItem(value: DataValueMessage): SyncItem {
  return { kind: 'value', seq: value.seq, operation: value.operation, id: value.id, index: value.index, version: value.version, data: value.data }
}

function noop(): void {}
