// The agent side of agent sync (seed 002, research §B.2): differences recorded in a durable queue (or in
// memory for a recovery), sent to the manager in numbered sessions: Start and its StartAck, the items as
// DataBatches, End, then whatever the manager asks for again (ReqRet) until its EndAck. Every wait is
// bounded by responseTimeoutMs and retried; replies out of phase or for another session are dropped, and
// the phase is kept. I/O is the transport's; time is the scheduler's, so fake-clock tests drive all of it.
import { EventEmitter } from 'node:events'
import { VolleyError, VolleyTypeError, describe } from '../../util/errors.ts'
import { checkOptions, integerOption, uint64Option, uint8ArrayOf } from '../../util/options.ts'
import { ConnectionManager, type ManagedConnection } from '../connection-manager.ts'
import { Timer, sessionTimers, type Scheduler } from '../timers.ts'
import type { SessionTransport } from '../transport.ts'
import { datagramMessageBytes } from '../volley-transport.ts'
import { syncAgentSyncEndedChannel } from '../../api/diagnostics.ts'
import type { SyncAgentSyncEndedMessage } from '../diagnostics.ts'
import { SyncQueue, type DifferenceOperation, type SyncQueueItem } from './queue.ts'
import {
  SYNC_END_DELAY_MS,
  SYNC_END_REPEAT_MS,
  SYNC_FAILURE_STREAK_WARNING,
  SYNC_MAX_BATCH_BYTES,
  SYNC_RESPONSE_TIMEOUT_MS,
  SYNC_RETRIES,
} from './settings.ts'
import {
  BATCH_OVERHEAD_BYTES,
  SyncEncoder,
  decodeSyncMessage,
  estimatedValueBytes,
  syncOptions,
  type DataValueMessage,
  type EndAckMessage,
  type MalformedReason,
  type ReqRetMessage,
  type SeqRange,
  type StartAckMessage,
  type StartMessage,
  type SyncMessage,
  type SyncMode,
  type SyncOption,
} from './wire.ts'

/** Who the agent is: the Start's metadata. agentid and at least one group are required. */
export interface AgentMetadata {
  agentid: string
  groups: readonly string[]
  agentname?: string | undefined
  agentversion?: string | undefined
  architecture?: string | undefined
  hostname?: string | undefined
  osname?: string | undefined
  osplatform?: string | undefined
  ostype?: string | undefined
  osversion?: string | undefined
  clusterName?: string | undefined
  clusterNode?: string | undefined
}

/** Why a sync failed (Wazuh's error codes, as names). */
export type SyncFailureReason =
  | 'busy' // another sync of this agent was running: this one was skipped
  | 'no-metadata' // the metadata provider gave nothing within responseTimeoutMs
  | 'no-groups' // the agent belongs to no group
  | 'protocol-error' // StartAck Error, EndAck Error, or a ReqRet that asks for nothing the sync has
  | 'communication-error' // the manager answered Offline
  | 'start-timeout'
  | 'end-timeout'
  | 'checksum-error' // EndAck ChecksumMismatch
  | 'stopped'

export interface SyncResult {
  readonly success: boolean
  readonly failureReason: SyncFailureReason | null
  /** What happened, for a log. */
  readonly message: string
  /** stop() ended it (not counted as a failure). */
  readonly stopped: boolean
  /** The manager did not answer, or answered Offline: try later. */
  readonly managerNotReady: boolean
  /** Failed synchronizeModule() calls in a row, this one included (0 after a success). */
  readonly consecutiveFailures: number
}

/** Why an agent dropped a message from the manager (stats().dropped). */
export type SyncAgentDropReason = MalformedReason | 'unexpected-type' | 'out-of-phase' | 'wrong-session'

export interface SyncAgentStats {
  /** Sessions run (Start sent), and those the manager took (EndAck Ok). */
  sessions: number
  succeeded: number
  /** Items sent in sessions, and sent again for a ReqRet. */
  itemsSent: number
  itemsResent: number
  /** Messages sent (Start, batches, End, ...), and ReqRets answered. */
  messagesSent: number
  retransmitRequests: number
  /** Start and End sent again after a timeout. */
  retries: number
  /** End sent again after SYNC_END_REPEAT_MS without an answer, on a transport that loses messages (no retry used). */
  endRepeats: number
  dropped: Record<SyncAgentDropReason, number>
}

export interface SyncAgentOptions {
  /** The module synced (Start.module), for example 'syscollector'. */
  module: string
  /** Who the agent is, or a function giving it (null: not known yet; asked again each second). */
  metadata: AgentMetadata | (() => AgentMetadata | null | Promise<AgentMetadata | null>)
  /** The SQLite file of the durable queue (default ':memory:', which does not survive a restart). */
  queuePath?: string | undefined
  /** A ConnectionManager whose connections the agent sends on; without it, attach() gives it its connection. */
  connection?: ManagedConnection | undefined
  /** How long to wait for StartAck, and for EndAck after End, ms (default 30000). */
  responseTimeoutMs?: number | undefined
  /** How often Start or End is sent again after a timeout (default 3). */
  retries?: number | undefined
  /** The wait between the last item and End, ms (default 1000). */
  syncEndDelayMs?: number | undefined
  /** Messages a second at most (default 0: no limit but the connection's back-pressure): after each maxEps, a 1 s pause. */
  maxEps?: number | undefined
  /** The largest DataBatch, by Wazuh's estimate of its size (default 61440, 256 to 16 MiB). */
  maxBatchBytes?: number | undefined
  /** Start.option (default 'sync'). */
  option?: SyncOption | undefined
  /** The timers (default sessionTimers(); a FakeClock in tests). */
  scheduler?: Scheduler | undefined
}

export interface SyncAgentEvents {
  /** A synchronizeModule() ended, whatever its result. */
  syncEnded: [result: SyncResult]
  /**
   * A synchronizeModule() failed (not when stopped): level 'warning' from SYNC_FAILURE_STREAK_WARNING failures
   * in a row, 'info' before.
   */
  syncFailed: [result: SyncResult, level: 'info' | 'warning']
  /** The first drop of each reason (all are counted in stats().dropped), said once. */
  warning: [warning: { readonly reason: SyncAgentDropReason; readonly message: string }]
}

/** What synchronizeMetadataOrGroups() syncs: metadata or groups, as a delta or a check. @inline */
type MetadataMode = 'metadata-delta' | 'metadata-check' | 'group-delta' | 'group-check'
const metadataModes: ReadonlySet<string> = new Set<MetadataMode>(['metadata-delta', 'metadata-check', 'group-delta', 'group-check'])
const differenceOperations: ReadonlySet<string> = new Set<DifferenceOperation>(['create', 'modify', 'delete'])
/** Rows read from the queue at a time: the window a sync holds in memory. */
const PAGE_ITEMS = 512

const agentOptionNames = new Set([
  'module', 'metadata', 'queuePath', 'connection', 'responseTimeoutMs', 'retries', 'syncEndDelayMs', 'maxEps', 'maxBatchBytes', 'option', 'scheduler',
])

/** The items of one session, read a window at a time. */
interface ItemSource {
  /** Items with seq from begin to end (inclusive), in seq order, at most limit. */
  items(begin: number, end: number, limit: number): readonly SyncQueueItem[]
}

/** What a session sends, and how it sends it again. */
interface SessionPlan {
  /** Sends the items (after StartAck), and what goes before End. */
  send(session: bigint): Promise<void>
  /** Sends the items of these ranges again; false when they name nothing the session has. */
  resend(ranges: readonly SeqRange[], session: bigint): Promise<boolean>
}

/** How a session ended, before the entry point turns it into its result. */
type SessionOutcome =
  | { kind: 'ok' }
  | { kind: 'failed'; reason: Exclude<SyncFailureReason, 'busy'>; message: string; managerNotReady: boolean }

type Response = StartAckMessage | EndAckMessage | ReqRetMessage
type Phase = 'idle' | 'waiting-start-ack' | 'sending' | 'waiting-end-ack'

/** One item in memory (persistDifferenceInMemory), until clearInMemoryData() or a FULL sync. */
interface MemoryItem {
  readonly id: string
  readonly index: string
  readonly operation: 'upsert' | 'delete'
  readonly version: bigint
  readonly data: Uint8Array
  readonly context: boolean
}

const textEncoder = new TextEncoder()

/**
 * The agent of agent sync: records differences, and syncs them to a SyncManager over a SessionTransport
 * (attach(), or the connections of a ConnectionManager).
 */
export class SyncAgent extends EventEmitter<SyncAgentEvents> {
  readonly module: string
  readonly queue: SyncQueue
  readonly #metadata: SyncAgentOptions['metadata']
  readonly #connection: ManagedConnection | undefined
  readonly #responseTimeoutMs: number
  readonly #retries: number
  readonly #syncEndDelayMs: number
  readonly #maxEps: number
  readonly #maxBatchBytes: number
  readonly #option: SyncOption
  readonly #scheduler: Scheduler
  readonly #encoder = new SyncEncoder()
  readonly #memoryItems: MemoryItem[] = []
  readonly #warned = new Set<SyncAgentDropReason>()
  readonly #stats: SyncAgentStats = {
    sessions: 0,
    succeeded: 0,
    itemsSent: 0,
    itemsResent: 0,
    messagesSent: 0,
    retransmitRequests: 0,
    retries: 0,
    endRepeats: 0,
    dropped: {
      'too-short': 0, 'out-of-bounds': 0, misaligned: 0, 'bad-vtable': 0, 'bad-string': 0, 'unknown-union-type': 0, 'too-deep': 0,
      'too-many-tables': 0, 'no-content': 0, 'bad-enum': 0, 'unexpected-type': 0, 'out-of-phase': 0, 'wrong-session': 0,
    },
  }
  #transport: SessionTransport | null = null
  /** The transport loses messages (an unreliable channel): each batch must fit one datagram. */
  #datagrams = false
  #phase: Phase = 'idle'
  #session: bigint | null = null
  /** Replies accepted for the running session, waiting for its runner. */
  readonly #responses: Response[] = []
  /** The runner's wait for a reply, a drain or a pause: woken by any of them, by its timer, or by stop(). */
  #wake: (() => void) | null = null
  readonly #wakeTimer = new Timer(() => this.#wakeUp())
  #busy: Promise<unknown> | null = null
  #stopping = false
  #closed = false
  #consecutiveFailures = 0
  #sentSincePause = 0

  constructor(options: SyncAgentOptions) {
    super()
    checkOptions('options', options, agentOptionNames)
    if (typeof options.module !== 'string' || options.module === '') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "options.module" property must be a non-empty string (Start.module). Received ${describe(options.module)}`)
    }
    if (typeof options.metadata !== 'function') checkMetadata(options.metadata)
    if (options.option !== undefined && !syncOptions.includes(options.option)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "options.option" property must be one of ${syncOptions.map((o) => `'${o}'`).join(', ')}. Received ${describe(options.option)}`)
    }
    if (options.queuePath !== undefined && (typeof options.queuePath !== 'string' || options.queuePath === '')) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "options.queuePath" property must be a file path or ':memory:'. Received ${describe(options.queuePath)}`)
    }
    this.module = options.module
    this.#metadata = options.metadata
    this.#responseTimeoutMs = integerOption('responseTimeoutMs', options.responseTimeoutMs, SYNC_RESPONSE_TIMEOUT_MS, 1, 2 ** 31 - 1)
    this.#retries = integerOption('retries', options.retries, SYNC_RETRIES, 0, 1000)
    this.#syncEndDelayMs = integerOption('syncEndDelayMs', options.syncEndDelayMs, SYNC_END_DELAY_MS, 0, 2 ** 31 - 1)
    this.#maxEps = integerOption('maxEps', options.maxEps, 0, 0, 1_000_000_000)
    this.#maxBatchBytes = integerOption('maxBatchBytes', options.maxBatchBytes, SYNC_MAX_BATCH_BYTES, 256, 16 << 20)
    this.#option = options.option ?? 'sync'
    this.#scheduler = options.scheduler ?? sessionTimers()
    const { connection } = options
    if (connection !== undefined && !(connection instanceof ConnectionManager)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "options.connection" property must be a ConnectionManager. Received ${describe(connection)}`)
    }
    this.queue = new SyncQueue(options.queuePath)
    this.#connection = connection
    if (connection !== undefined) {
      connection.on('connected', this.#onConnected)
      if (connection.transport !== null) this.attach(connection.transport)
    }
  }

  /** Sends on this connection from now on (a ConnectionManager's agent is given each new one). */
  attach(transport: SessionTransport): void {
    if (this.#closed) throw new VolleyError('ERR_SYNC_CLOSED', 'The SyncAgent is closed')
    const previous = this.#transport
    if (previous === transport) return
    if (previous !== null) previous.off('message', this.#onMessage).off('drain', this.#onDrain).off('close', this.#onDrain)
    this.#transport = transport
    this.#datagrams = (transport as { reliable?: unknown }).reliable === false
    transport.on('message', this.#onMessage).on('drain', this.#onDrain).on('close', this.#onDrain)
  }

  readonly #onConnected = (transport: SessionTransport): void => this.attach(transport)
  readonly #onMessage = (data: Uint8Array): void => this.#receive(data)
  readonly #onDrain = (): void => this.#wakeUp()

  stats(): SyncAgentStats {
    return { ...this.#stats, dropped: { ...this.#stats.dropped } }
  }

  // -------------------------------------------------------------------------------------------------------
  // Differences
  // -------------------------------------------------------------------------------------------------------

  /**
   * Records a change to a document in the durable queue, coalesced with what it holds for that document (id
   * and index): a create then a delete before any sync took it leaves nothing; a change while the document
   * is being synced is kept and sent by the next sync.
   */
  persistDifference(id: string, operation: DifferenceOperation, index: string, data: string | Uint8Array, version: bigint | number = 0n, isDataContext = false): void {
    this.#checkOpen()
    this.queue.persist(...checkDifference(id, operation, index, data, version, isDataContext))
  }

  /** persistDifference() for many changes, in one transaction (one write to disk). */
  persistDifferences(changes: Iterable<readonly [id: string, operation: DifferenceOperation, index: string, data: string | Uint8Array, version?: bigint | number, isDataContext?: boolean]>): void {
    this.#checkOpen()
    const checked = [...changes].map((change) => checkDifference(change[0], change[1], change[2], change[3], change[4] ?? 0n, change[5] ?? false))
    this.queue.persistMany(checked)
  }

  /**
   * Records an item in memory, for a FULL sync (a recovery: the whole inventory again). The next
   * synchronizeModule('full') sends these and clears them, whatever its result.
   */
  persistDifferenceInMemory(id: string, operation: DifferenceOperation, index: string, data: string | Uint8Array, version: bigint | number = 0n, isDataContext = false): void {
    this.#checkOpen()
    const [, , , bytes, checkedVersion, context] = checkDifference(id, operation, index, data, version, isDataContext)
    this.#memoryItems.push({ id, index, operation: operation === 'delete' ? 'delete' : 'upsert', version: checkedVersion, data: bytes, context })
  }

  /** Drops what persistDifferenceInMemory() recorded. */
  clearInMemoryData(): void {
    this.#memoryItems.length = 0
  }

  // -------------------------------------------------------------------------------------------------------
  // Syncs
  // -------------------------------------------------------------------------------------------------------

  /**
   * Syncs the module: 'delta' sends the durable queue's pending differences, 'full' what
   * persistDifferenceInMemory() recorded. Nothing to send is a success without traffic. While another sync
   * of this agent runs, it is skipped (failureReason 'busy').
   */
  async synchronizeModule(mode: 'full' | 'delta'): Promise<SyncResult> {
    if (mode !== 'full' && mode !== 'delta') {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "mode" argument must be 'full' or 'delta'. Received ${describe(mode)}`)
    }
    this.#checkOpen()
    if (this.#busy !== null) return this.#result({ kind: 'failed', reason: 'busy', message: 'Another sync of this agent is running', managerNotReady: false }, false)
    return this.#exclusive(async () => {
      let outcome: SessionOutcome
      if (mode === 'full') {
        // Values first, then contexts, each in the order recorded: their seqs.
        const items = this.#memoryItems.filter((item) => !item.context).concat(this.#memoryItems.filter((item) => item.context))
        const indices = uniqueSorted(items.filter((item) => !item.context).map((item) => item.index))
        try {
          outcome = items.length === 0 ? { kind: 'ok' } : await this.#runItems('module-full', memorySource(items), items.length, indices)
        } finally {
          this.#memoryItems.length = 0
        }
      } else {
        const marked = this.queue.fetchAndMarkForSync()
        const size = marked.values + marked.contexts
        if (size === 0) {
          outcome = { kind: 'ok' }
        } else {
          outcome = await this.#runItems('module-delta', this.queue, size, this.queue.syncingIndices())
          if (outcome.kind === 'ok') this.queue.clearSyncedItems()
          else this.queue.resetSyncingItems()
        }
      }
      const result = this.#result(outcome, true)
      if (syncAgentSyncEndedChannel.hasSubscribers) syncAgentSyncEndedChannel.publish({ agent: this, mode, result } satisfies SyncAgentSyncEndedMessage)
      this.emit('syncEnded', result)
      if (!result.success && !result.stopped) this.emit('syncFailed', result, result.consecutiveFailures >= SYNC_FAILURE_STREAK_WARNING ? 'warning' : 'info')
      return result
    })
  }

  /**
   * Asks the manager whether its copy of an index matches `checksum` (inventoryChecksum() of the agent's
   * documents there): true only when the manager answers ChecksumMismatch; false when it matches, and when
   * the manager cannot be reached or is offline.
   */
  async requiresFullSync(index: string, checksum: string): Promise<boolean> {
    checkString('index', index)
    checkString('checksum', checksum)
    this.#checkOpen()
    return this.#exclusive(async () => {
      let result = false
      await this.#runSession('module-check', [index], 0, 0n, {
        send: async (session) => {
          await this.#sendMessage({ type: 'checksum-module', session, index, checksum })
        },
        resend: async () => false,
      }, (status) => {
        result = status === 'checksum-mismatch'
      })
      return result
    })
  }

  /** Syncs the agent's metadata or groups: a Start (with the global version) and an End, no items. */
  async synchronizeMetadataOrGroups(mode: MetadataMode, globalVersion: bigint | number = 0n): Promise<SyncResult> {
    if (!metadataModes.has(mode)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "mode" argument must be one of 'metadata-delta', 'metadata-check', 'group-delta', 'group-check'. Received ${describe(mode)}`)
    }
    const version = uint64Option('globalVersion', globalVersion)
    this.#checkOpen()
    return this.#exclusive(async () => this.#result(await this.#runSession(mode, [], 0, version, noItems), false))
  }

  /**
   * Tells the manager to clear these indices of the agent's documents: one DataClean each. On success, the
   * queue's rows of those indices go too.
   */
  async notifyDataClean(indices: readonly string[]): Promise<SyncResult> {
    if (!Array.isArray(indices) || indices.length === 0) {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "indices" argument must be a non-empty array of index names. Received ${describe(indices)}`)
    }
    for (const index of indices) checkString('indices[]', index)
    this.#checkOpen()
    const sorted = [...new Set(indices)].sort()
    return this.#exclusive(async () => {
      const sendCleans = async (session: bigint, from: number, to: number): Promise<number> => {
        let sent = 0
        for (let seq = from; seq <= to && seq < sorted.length; seq++) {
          await this.#sendMessage({ type: 'data-clean', seq, session, index: sorted[seq]! })
          sent++
        }
        return sent
      }
      const outcome = await this.#runSession('module-delta', sorted, sorted.length, 0n, {
        send: async (session) => {
          this.#stats.itemsSent += await sendCleans(session, 0, sorted.length - 1)
        },
        resend: async (ranges, session) => {
          let sent = 0
          for (const range of ranges) sent += await sendCleans(session, range.begin, range.end)
          this.#stats.itemsResent += sent
          return sent > 0
        },
      })
      if (outcome.kind === 'ok') this.queue.clearIndices(sorted)
      return this.#result(outcome, false)
    })
  }

  /**
   * Ends the running sync, if any (its result says stopped), and makes the agent wait for nothing: each
   * later call runs normally.
   */
  async stop(): Promise<void> {
    this.#stopping = true
    this.#wakeUp()
    await this.#busy?.catch(() => {})
    this.#stopping = false
  }

  /** Stops, and closes the queue (its file stays) and the agent's hold on its connection. */
  async close(): Promise<void> {
    if (this.#closed) return
    await this.stop()
    this.#closed = true
    this.#connection?.off('connected', this.#onConnected)
    const transport = this.#transport
    if (transport !== null) transport.off('message', this.#onMessage).off('drain', this.#onDrain).off('close', this.#onDrain)
    this.#transport = null
    this.#scheduler.disarm(this.#wakeTimer)
    this.queue.close()
  }

  // -------------------------------------------------------------------------------------------------------
  // Sessions
  // -------------------------------------------------------------------------------------------------------

  /** Runs one operation at a time: each waits for the one before. */
  async #exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.#busy !== null) await this.#busy.catch(() => {})
    const running = work()
    this.#busy = running
    try {
      return await running
    } finally {
      this.#busy = null
    }
  }

  /** A session of numbered items: values as DataBatches, contexts as DataContexts, in seq order. */
  #runItems(mode: 'module-full' | 'module-delta', source: ItemSource, size: number, indices: readonly string[]): Promise<SessionOutcome> {
    return this.#runSession(mode, indices, size, 0n, {
      send: async (session) => {
        this.#stats.itemsSent += await this.#sendItems(source, session, [{ begin: 0, end: size - 1 }], false)
      },
      resend: async (ranges, session) => {
        const sent = await this.#sendItems(source, session, ranges, true)
        this.#stats.itemsResent += sent
        return sent > 0
      },
    })
  }

  /**
   * Sends the items of the ranges, a page of the source at a time: values as DataBatches of at most
   * maxBatchBytes (estimated), contexts as DataContexts, or as DataValues in the batches when `resending`
   * (the reference answers a ReqRet with DataBatches only). Returns how many went.
   */
  async #sendItems(source: ItemSource, session: bigint, ranges: readonly SeqRange[], resending: boolean): Promise<number> {
    let sent = 0
    let batch: DataValueMessage[] = []
    let batchBytes = BATCH_OVERHEAD_BYTES
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return
      const values = batch
      batch = []
      batchBytes = BATCH_OVERHEAD_BYTES
      await this.#sendMessage({ type: 'data-batch', values })
    }
    for (const { begin, end } of ranges) {
      for (let seq = begin; seq <= end; ) {
        const page = source.items(seq, end, PAGE_ITEMS)
        if (page.length === 0) break
        for (const item of page) {
          if (this.#stopping) return sent
          sent++
          if (item.context && !resending) {
            await flush()
            await this.#sendMessage({ type: 'data-context', seq: item.seq, session, id: item.id, index: item.index, data: item.data })
            continue
          }
          const value: DataValueMessage = {
            type: 'data-value', seq: item.seq, session, operation: item.operation, id: item.id, index: item.index, version: item.version, data: item.data,
          }
          const bytes = estimatedValueBytes(value)
          if (batchBytes + bytes > this.#batchBytes()) await flush()
          batch.push(value)
          batchBytes += bytes
        }
        seq = page[page.length - 1]!.seq + 1
      }
    }
    await flush()
    return sent
  }

  /**
   * One session: Start until StartAck, the plan's items, End until EndAck (answering ReqRets), with the
   * retries and timeouts of §B.2. `onVerdict` hears the EndAck's status.
   */
  async #runSession(
    mode: SyncMode, indices: readonly string[], size: number, globalVersion: bigint, plan: SessionPlan,
    onVerdict?: (status: EndAckMessage['status']) => void,
  ): Promise<SessionOutcome> {
    const metadata = await this.#awaitMetadata()
    if (typeof metadata === 'object' && 'kind' in metadata) return metadata
    const start: StartMessage = {
      type: 'start', module: this.module, mode, size, index: [...indices], option: this.#option,
      architecture: metadata.architecture ?? '', hostname: metadata.hostname ?? '', osname: metadata.osname ?? '', osplatform: metadata.osplatform ?? '',
      ostype: metadata.ostype ?? '', osversion: metadata.osversion ?? '', agentversion: metadata.agentversion ?? '', agentname: metadata.agentname ?? '',
      agentid: metadata.agentid, groups: [...metadata.groups], globalVersion, clusterName: metadata.clusterName ?? '', clusterNode: metadata.clusterNode ?? '',
    }
    this.#stats.sessions++
    this.#responses.length = 0
    this.#sentSincePause = 0
    try {
      // Start, until a StartAck: retries + 1 attempts.
      this.#phase = 'waiting-start-ack'
      let session: bigint | null = null
      for (let attempt = 0; attempt <= this.#retries && session === null; attempt++) {
        if (attempt > 0) this.#stats.retries++
        await this.#sendMessage(start)
        const reply = await this.#nextResponse()
        if (reply === 'stopped') return stopped()
        if (reply === 'timeout') continue
        if (reply.type !== 'start-ack') continue
        if (reply.status === 'offline') return failed('communication-error', 'The manager is offline (StartAck Offline)', true)
        if (reply.status !== 'ok') return failed('protocol-error', `The manager refused the session (StartAck ${reply.status})`, false)
        session = reply.session
      }
      if (session === null) return failed('start-timeout', 'Timed out waiting for manager response to Start message.', true)
      this.#session = session

      this.#phase = 'sending'
      await plan.send(session)
      if (this.#stopping) return stopped()
      if (this.#syncEndDelayMs > 0 && (await this.#pause(this.#syncEndDelayMs)) === 'stopped') return stopped()

      // End, until an EndAck that settles it: Processing waits again, a ReqRet is answered, a timeout resends End.
      // On a transport that loses messages, End also goes again after SYNC_END_REPEAT_MS without a reply, using
      // no retry: the manager answers each End at once (ReqRet, Processing or its verdict, again if need be),
      // so a lost End or a lost answer costs a second, not responseTimeoutMs.
      this.#phase = 'waiting-end-ack'
      await this.#sendMessage({ type: 'end', session })
      let retriesLeft = this.#retries
      let deadline = this.#scheduler.now() + this.#responseTimeoutMs
      let endSentAt = this.#scheduler.now()
      for (;;) {
        const reply = await this.#nextResponse(this.#datagrams ? Math.min(deadline, endSentAt + SYNC_END_REPEAT_MS) : deadline)
        if (reply === 'stopped') return stopped()
        const now = this.#scheduler.now()
        if (reply === 'timeout') {
          if (now < deadline) {
            this.#stats.endRepeats++
          } else {
            if (retriesLeft === 0) return failed('end-timeout', 'Timed out waiting for manager response to End message.', true)
            retriesLeft--
            this.#stats.retries++
            deadline = now + this.#responseTimeoutMs
          }
          endSentAt = now
          await this.#sendMessage({ type: 'end', session })
          continue
        }
        // Any answer restarts the wait.
        deadline = now + this.#responseTimeoutMs
        endSentAt = now
        if (reply.type === 'req-ret') {
          this.#stats.retransmitRequests++
          if (!validRanges(reply.ranges, size) || !(await plan.resend(reply.ranges, session))) {
            return failed('protocol-error', `The manager asked again for items this session does not have (${describeRanges(reply.ranges)})`, false)
          }
          if (this.#stopping) return stopped()
          // The silence that repeats End counts from the end of the resending, not from the ReqRet.
          deadline = this.#scheduler.now() + this.#responseTimeoutMs
          endSentAt = this.#scheduler.now()
          continue
        }
        if (reply.type !== 'end-ack' || reply.status === 'processing') continue
        onVerdict?.(reply.status)
        switch (reply.status) {
          case 'ok':
            this.#stats.succeeded++
            return { kind: 'ok' }
          case 'offline':
            return failed('communication-error', 'The manager is offline (EndAck Offline)', true)
          case 'checksum-mismatch':
            return failed('checksum-error', "The manager's copy does not match (EndAck ChecksumMismatch)", false)
          default:
            return failed('protocol-error', 'The manager could not apply the session (EndAck Error)', false)
        }
      }
    } finally {
      this.#phase = 'idle'
      this.#session = null
      this.#responses.length = 0
    }
  }

  /** The largest batch by the estimate: maxBatchBytes, or a datagram's worth on a transport that loses messages. */
  #batchBytes(): number {
    return this.#datagrams ? Math.min(this.#maxBatchBytes, datagramMessageBytes) : this.#maxBatchBytes
  }

  /** The metadata, asked again each second while the provider has none, for at most responseTimeoutMs. */
  async #awaitMetadata(): Promise<AgentMetadata | SessionOutcome> {
    const deadline = this.#scheduler.now() + this.#responseTimeoutMs
    for (;;) {
      const metadata = typeof this.#metadata === 'function' ? await this.#metadata() : this.#metadata
      if (metadata !== null && metadata !== undefined) {
        checkMetadata(metadata)
        if (metadata.groups.length === 0) return failed('no-groups', 'The agent belongs to no group: the manager takes no sync from it', false)
        return metadata
      }
      if (this.#scheduler.now() >= deadline) return failed('no-metadata', "The agent's metadata was not available", false)
      if ((await this.#pause(1000)) === 'stopped') return stopped()
    }
  }

  #result(outcome: SessionOutcome | { kind: 'failed'; reason: 'busy'; message: string; managerNotReady: boolean }, counts: boolean): SyncResult {
    if (outcome.kind === 'ok') {
      if (counts) this.#consecutiveFailures = 0
      return { success: true, failureReason: null, message: 'Synced', stopped: false, managerNotReady: false, consecutiveFailures: this.#consecutiveFailures }
    }
    const isStopped = outcome.reason === 'stopped'
    if (counts && !isStopped && outcome.reason !== 'busy') this.#consecutiveFailures++
    return {
      success: false, failureReason: outcome.reason, message: outcome.message, stopped: isStopped, managerNotReady: outcome.managerNotReady,
      consecutiveFailures: this.#consecutiveFailures,
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Messages and waits
  // -------------------------------------------------------------------------------------------------------

  #receive(data: Uint8Array): void {
    const message = decodeSyncMessage(data)
    switch (message.type) {
      case 'malformed':
        return this.#dropped(message.reason)
      case 'start-ack':
        if (this.#phase !== 'waiting-start-ack') return this.#dropped('out-of-phase')
        break
      case 'end-ack':
      case 'req-ret':
        if (this.#phase !== 'waiting-end-ack') return this.#dropped('out-of-phase')
        if (message.session !== this.#session) return this.#dropped('wrong-session')
        break
      default:
        return this.#dropped('unexpected-type')
    }
    this.#responses.push(message)
    this.#wakeUp()
  }

  /** The next accepted reply, or 'timeout' at `deadline` (default: responseTimeoutMs from now), or 'stopped'. */
  async #nextResponse(deadline = this.#scheduler.now() + this.#responseTimeoutMs): Promise<Response | 'timeout' | 'stopped'> {
    for (;;) {
      if (this.#stopping) return 'stopped'
      const reply = this.#responses.shift()
      if (reply !== undefined) return reply
      if (this.#scheduler.now() >= deadline) return 'timeout'
      await this.#sleepUntil(deadline)
    }
  }

  /** Waits `ms` (the end delay, maxEps's pause, a metadata poll), or until stop(). */
  async #pause(ms: number): Promise<'done' | 'stopped'> {
    const deadline = this.#scheduler.now() + ms
    while (this.#scheduler.now() < deadline) {
      if (this.#stopping) return 'stopped'
      await this.#sleepUntil(deadline)
    }
    return this.#stopping ? 'stopped' : 'done'
  }

  /** Sleeps until the deadline, a reply, a drain or stop(), whichever comes first. */
  #sleepUntil(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve
      if (deadline !== Infinity) this.#scheduler.arm(this.#wakeTimer, deadline)
    })
  }

  #wakeUp(): void {
    const wake = this.#wake
    if (wake === null) return
    this.#wake = null
    this.#scheduler.disarm(this.#wakeTimer)
    wake()
  }

  /**
   * Sends one message, after the connection has room for it (back-pressure) and within maxEps. Without an
   * open connection the message is lost, as a datagram would be: the session's timeouts and retries cover it.
   */
  async #sendMessage(message: SyncMessage): Promise<void> {
    if (this.#maxEps > 0 && this.#sentSincePause >= this.#maxEps) {
      this.#sentSincePause = 0
      await this.#pause(1000)
    }
    for (;;) {
      const transport = this.#transport
      if (transport === null || transport.closed || this.#stopping) return
      if (transport.writable) break
      await this.#sleepUntil(Infinity)
    }
    const bytes = this.#encoder.encode(message)
    if (this.#datagrams && bytes.byteLength > datagramMessageBytes && message.type === 'data-batch' && message.values.length > 1) {
      // Over the estimate after all: in fragments it would be lost whenever one of them is. Two halves instead.
      const half = message.values.length >>> 1
      await this.#sendMessage({ type: 'data-batch', values: message.values.slice(0, half) })
      await this.#sendMessage({ type: 'data-batch', values: message.values.slice(half) })
      return
    }
    this.#sentSincePause++
    this.#stats.messagesSent++
    this.#transport!.send(bytes)
  }

  #dropped(reason: SyncAgentDropReason): void {
    this.#stats.dropped[reason]++
    if (this.#warned.has(reason)) return
    this.#warned.add(reason)
    this.emit('warning', { reason, message: `agent sync: dropped a message from the manager (${reason}); further drops for this reason are counted in stats().dropped` })
  }

  #checkOpen(): void {
    if (this.#closed) throw new VolleyError('ERR_SYNC_CLOSED', 'The SyncAgent is closed')
  }
}

const noItems: SessionPlan = { send: async () => {}, resend: async () => false }

function stopped(): SessionOutcome {
  return { kind: 'failed', reason: 'stopped', message: 'The sync was stopped', managerNotReady: false }
}

function failed(reason: Exclude<SyncFailureReason, 'busy'>, message: string, managerNotReady: boolean): SessionOutcome {
  return { kind: 'failed', reason, message, managerNotReady }
}

/** A ReqRet's ranges are usable when there is at least one and each is ordered and inside the session. */
function validRanges(ranges: readonly SeqRange[], size: number): boolean {
  return ranges.length > 0 && ranges.every((range) => range.begin <= range.end && range.begin < size)
}

function describeRanges(ranges: readonly SeqRange[]): string {
  if (ranges.length === 0) return 'no ranges'
  const shown = ranges.slice(0, 3).map((range) => `${range.begin}-${range.end}`).join(', ')
  return ranges.length > 3 ? `${shown}, and ${ranges.length - 3} more` : shown
}

function memorySource(items: readonly MemoryItem[]): ItemSource {
  return {
    items(begin, end, limit) {
      const page: SyncQueueItem[] = []
      for (let seq = Math.max(0, begin); seq <= end && seq < items.length && page.length < limit; seq++) page.push({ seq, ...items[seq]! })
      return page
    },
  }
}

function uniqueSorted(values: Iterable<string>): string[] {
  return [...new Set(values)].sort()
}

function checkString(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value === '') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be a non-empty string. Received ${describe(value)}`)
  }
}


function checkDifference(
  id: unknown, operation: unknown, index: unknown, data: unknown, version: unknown, isDataContext: unknown,
): [string, DifferenceOperation, string, Uint8Array, bigint, boolean] {
  checkString('id', id)
  if (typeof operation !== 'string' || !differenceOperations.has(operation)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "operation" argument must be 'create', 'modify' or 'delete'. Received ${describe(operation)}`)
  }
  checkString('index', index)
  const view = typeof data === 'string' ? textEncoder.encode(data) : uint8ArrayOf(data)?.slice()
  if (view === undefined) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "data" argument must be a string or a Uint8Array. Received ${describe(data)}`)
  if (typeof isDataContext !== 'boolean') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "isDataContext" argument must be a boolean. Received ${describe(isDataContext)}`)
  }
  return [id, operation as DifferenceOperation, index, view, uint64Option('version', version), isDataContext]
}

function checkMetadata(metadata: unknown): asserts metadata is AgentMetadata {
  const value = metadata as Partial<AgentMetadata> | null
  if (typeof value !== 'object' || value === null || typeof value.agentid !== 'string' || value.agentid === '' || !Array.isArray(value.groups) || !value.groups.every((group) => typeof group === 'string')) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The agent's metadata must be an object with an "agentid" string and a "groups" array of strings. Received ${describe(metadata)}`)
  }
}
