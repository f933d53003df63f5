// What the master and the slave share: the checks every received message passes before its role sees it
// (shape, the pair's SAE ids, direction, the clock), ERROR messages, sending, the clocks, events and counters.
import { EventEmitter } from 'node:events'
import { VolleyError, VolleyRangeError, VolleyTypeError, describe, surfaceLater } from '../../util/errors.ts'
import { checkOptions, integerOption } from '../../util/options.ts'
import { keySyncFailedChannel, keySyncRotatedChannel } from '../../api/diagnostics.ts'
import type { KeySyncFailedMessage, KeySyncRotatedMessage } from '../diagnostics.ts'
import { sessionTimers, type Scheduler } from '../timers.ts'
import { MemoryKeyStore, type KeyPersona, type KeyStore, type StoredKey } from './keys.ts'
import type { KeySyncLink } from './link.ts'
import {
  clipText,
  completeMessage,
  parseKeySyncMessage,
  timeProblem,
  type KeySyncErrorCode,
  type KeySyncErrorMessage,
  type KeySyncMessage,
  type KeySyncMessageType,
  type OutgoingMessage,
  type TimeLimits,
} from './messages.ts'
import { KEYSYNC_MAX_AHEAD_MS, KEYSYNC_MAX_ID, KEYSYNC_RESPONSE_TIMEOUT_MS, KEYSYNC_RETRIES, KEYSYNC_TIMESTAMP_WINDOW_MS } from './settings.ts'

/** A key as a KME delivers it (KmeClient's key containers have this shape). */
export interface DeliveredKey {
  keyId: string
  key: Uint8Array
}

/** The rotation both sides agreed on: the key and the instant (epoch ms). */
export interface AgreedRotation {
  /** The reference's session id, the same on both sides: `<master SAE>_<slave SAE>_<notification's message_id>`. */
  sessionId: string
  keyId: string
  /** The key's bytes: a copy, the caller's to keep. */
  key: Uint8Array
  rotationAt: number
}

/** A rotation done: the new key in production, the keys it rolled. */
export interface CompletedRotation extends AgreedRotation {
  rolledKeyIds: string[]
}

/** A cleanup's outcome, key by key. */
export interface CleanupResult {
  sessionId: string
  status: 'completed' | 'failed'
  deletedKeyIds: string[]
  failedKeyIds: string[]
}

export interface KeySyncEvents {
  /** Both sides agreed on a key and an instant: a gateway may accept the key from now on. */
  confirmed: [rotation: AgreedRotation]
  /** The key went IN_PRODUCTION at the agreed instant. */
  rotated: [rotation: CompletedRotation]
  /**
   * A cleanup ended: on the master when it acknowledged it, on the slave when the acknowledgment came (with the
   * status the master sent, and the keys this side deleted and failed to).
   */
  cleanup: [result: CleanupResult]
  /** A session failed before its rotation (no key changed), or after it, with its cleanup left for the next one. */
  failed: [error: VolleyError, sessionId: string]
  /** The peer sent an ERROR message. */
  peerError: [message: KeySyncErrorMessage]
}

/** The counters of a role. Nothing dropped by the link below is counted here (see the link's own). */
export interface KeySyncStats {
  sent: number
  received: number
  /** Received messages refused (each answered with an ERROR, unless it was an ERROR itself). */
  refused: number
  /** Repeats of a message already handled (a retry crossing its answer): ignored. */
  repeats: number
  errorsSent: number
  errorsReceived: number
  rotations: number
  cleanups: number
  failures: number
}

export interface KeySyncRoleOptions {
  /** This SAE's id. */
  saeId: string
  /** The peer's id: the one SAE this role syncs keys with. */
  peerSaeId: string
  /** How messages go to and come from the peer (a DatagramLink, or a TransportLink). */
  link: KeySyncLink
  /** Where keys are kept (default: in memory). */
  store?: KeyStore | undefined
  /** The device that uses the keys: what deletes a rolled key from it at cleanup (default: only the store). */
  persona?: KeyPersona | undefined
  /** Timers (default: the process's session timers); tests give a FakeClock. */
  scheduler?: Scheduler | undefined
  /** The wall clock, epoch ms (default Date.now): message timestamps and rotation instants are on it. */
  epochMs?: (() => number) | undefined
  /** How long a request waits for its answer before it is sent again, ms (default 30,000). */
  responseTimeoutMs?: number | undefined
  /** How many times a request is sent again before the session fails (default 3). */
  retries?: number | undefined
  /** How far a message's timestamp may be from this clock, ms (default 3,600,000, the reference's). */
  timestampWindowMs?: number | undefined
  /** How far ahead a rotation instant may be, ms (default 3,600,000). */
  maxAheadMs?: number | undefined
}

export const roleOptionNames = [
  'saeId',
  'peerSaeId',
  'link',
  'store',
  'persona',
  'scheduler',
  'epochMs',
  'responseTimeoutMs',
  'retries',
  'timestampWindowMs',
  'maxAheadMs',
] as const

/** How many ended sessions a role remembers. */
const finishedMemory = 64

/** The messages each role receives (the ERROR message goes either way). */
const fromMaster: ReadonlySet<KeySyncMessageType> = new Set([
  'key_notification',
  'sync_confirmation',
  'cleanup_status_request',
  'cleanup_delete_request',
  'cleanup_acknowledgment',
])

function saeIdOption(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim().length === 0 || value.length > KEYSYNC_MAX_ID) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be a non-blank string of at most ${KEYSYNC_MAX_ID} characters. Received ${describe(value)}`)
  }
  return value
}

/** A copy of a key's bytes, for an event (the store's own may be wiped at cleanup). */
export function keyCopy(key: StoredKey | DeliveredKey): Uint8Array {
  return new Uint8Array(key.key)
}

/** What KeySyncMaster and KeySyncSlave share: their events, counters, current key and close(). */
export abstract class KeySyncRole extends EventEmitter<KeySyncEvents> {
  abstract readonly role: 'master' | 'slave'
  readonly saeId: string
  readonly peerSaeId: string
  protected readonly link: KeySyncLink
  protected readonly store: KeyStore
  protected readonly persona: KeyPersona | undefined
  protected readonly scheduler: Scheduler
  protected readonly epochMs: () => number
  protected readonly responseTimeoutMs: number
  protected readonly retries: number
  protected readonly limits: TimeLimits
  protected readonly counters: KeySyncStats = { sent: 0, received: 0, refused: 0, repeats: 0, errorsSent: 0, errorsReceived: 0, rotations: 0, cleanups: 0, failures: 0 }
  #closed = false
  /** The sessions ended lately, by the ids their messages name: a late repeat of theirs is ignored rather than refused. */
  readonly #finished = new Set<string>()
  readonly #onMessage = (value: unknown): void => this.#receive(value)

  /** For KeySyncMaster and KeySyncSlave: make one of those. @hidden */
  constructor(options: KeySyncRoleOptions, known: ReadonlySet<string>, what: string) {
    super()
    checkOptions(`${what} options`, options, known)
    this.saeId = saeIdOption('saeId', options.saeId)
    this.peerSaeId = saeIdOption('peerSaeId', options.peerSaeId)
    const link = options.link as unknown
    if (typeof link !== 'object' || link === null || typeof (link as KeySyncLink).send !== 'function' || typeof (link as KeySyncLink).on !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "link" option must be a KeySyncLink (a DatagramLink or a TransportLink). Received ${describe(link)}`)
    }
    this.link = options.link
    this.store = options.store ?? new MemoryKeyStore()
    this.persona = options.persona
    this.scheduler = options.scheduler ?? sessionTimers()
    const epochMs = options.epochMs ?? Date.now
    if (typeof epochMs !== 'function') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "epochMs" option must be a function. Received ${describe(epochMs)}`)
    this.epochMs = epochMs
    this.responseTimeoutMs = integerOption('responseTimeoutMs', options.responseTimeoutMs, KEYSYNC_RESPONSE_TIMEOUT_MS, 1, 2 ** 31 - 1)
    this.retries = integerOption('retries', options.retries, KEYSYNC_RETRIES, 0, 100)
    this.limits = {
      timestampWindowMs: integerOption('timestampWindowMs', options.timestampWindowMs, KEYSYNC_TIMESTAMP_WINDOW_MS, 1000, 2 ** 31 - 1),
      maxAheadMs: integerOption('maxAheadMs', options.maxAheadMs, KEYSYNC_MAX_AHEAD_MS, 1000, 2 ** 31 - 1),
    }
    // A link that drops replays remembers each message id for its own window: a wider one here would let a
    // copy that link has forgotten through.
    const linkWindow = (options.link as { timestampWindowMs?: unknown }).timestampWindowMs
    if (typeof linkWindow === 'number' && this.limits.timestampWindowMs > linkWindow) {
      throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "timestampWindowMs" option (${this.limits.timestampWindowMs}) must not exceed its link's (${linkWindow}), which remembers message ids that long`)
    }
    this.link.on('message', this.#onMessage)
  }

  /** The counters (a copy). */
  stats(): KeySyncStats {
    return { ...this.counters }
  }

  get closed(): boolean {
    return this.#closed
  }

  /** The key in production with the peer, from the store. */
  async currentKey(): Promise<StoredKey | undefined> {
    return (await this.store.list(this.peerSaeId, 'IN_PRODUCTION'))[0]
  }

  /** Stops: timers disarmed, the link left open (it is the caller's); what waits fails with ERR_KEYSYNC_CLOSED. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.link.off('message', this.#onMessage)
    this.closeSessions()
  }

  protected abstract closeSessions(): void
  /** A message that passed the common checks, of this role's direction, not an ERROR. */
  protected abstract handle(message: KeySyncMessage): void
  protected abstract handlePeerError(message: KeySyncErrorMessage): void
  /** Whether a message repeats one already handled, so that the clock checks do not apply (a rotation instant now past). */
  protected isRepeat(_message: KeySyncMessage): boolean {
    return false
  }

  protected get masterSaeId(): string {
    return this.role === 'master' ? this.saeId : this.peerSaeId
  }

  protected get slaveSaeId(): string {
    return this.role === 'master' ? this.peerSaeId : this.saeId
  }

  protected send<T extends KeySyncMessage>(body: OutgoingMessage<T>): T {
    const message = completeMessage<T>(body, { master: this.masterSaeId, slave: this.slaveSaeId }, this.epochMs())
    if (this.#closed) return message
    this.counters.sent++
    this.link.send(message)
    return message
  }

  /** Refuses a message of the peer with an ERROR message (never one answering an ERROR). */
  protected refuse(code: KeySyncErrorCode, reason: string, originalMessageId?: string): void {
    this.counters.refused++
    this.counters.errorsSent++
    this.send<KeySyncErrorMessage>({ message_type: 'error', original_message_id: originalMessageId, error_code: code, error_message: clipText(reason) })
  }

  /** Remembers an ended session's id (the last finishedMemory of them). */
  protected rememberFinished(id: string): void {
    this.#finished.add(id)
    if (this.#finished.size > finishedMemory) this.#finished.delete(this.#finished.values().next().value!)
  }

  /** A message naming no session held: a late repeat of an ended one is counted, anything else refused (NO_SESSION). */
  protected noSession(message: KeySyncMessage, original: string | undefined): void {
    if (original !== undefined && this.#finished.has(original)) this.counters.repeats++
    else this.refuse('NO_SESSION', `no session of ${this.saeId} has the original_message_id ${original}`, message.message_id)
  }

  protected fail(sessionId: string, error: VolleyError): void {
    this.counters.failures++
    if (keySyncFailedChannel.hasSubscribers) keySyncFailedChannel.publish({ role: this, sessionId, error } satisfies KeySyncFailedMessage)
    this.announce('failed', error, sessionId)
  }

  /** A rotation done, on either side: counted, published on volley:keysync:rotated (without the key), announced. */
  protected rotated(rotation: CompletedRotation): void {
    this.counters.rotations++
    if (keySyncRotatedChannel.hasSubscribers) {
      const { sessionId, keyId, rotationAt, rolledKeyIds } = rotation
      keySyncRotatedChannel.publish({ role: this, sessionId, keyId, rotationAt, rolledKeyIds: [...rolledKeyIds] } satisfies KeySyncRotatedMessage)
    }
    this.announce('rotated', rotation)
  }

  /**
   * Emits an event whose listener's throw must not stop the protocol (a switch half done, a cleanup not
   * acknowledged): the throw surfaces as an uncaught exception once the role is done with its step.
   */
  protected announce<E extends keyof KeySyncEvents>(event: E, ...args: KeySyncEvents[E]): void {
    try {
      ;(this.emit as (event: E, ...args: KeySyncEvents[E]) => boolean)(event, ...args)
    } catch (error) {
      surfaceLater(error)
    }
  }

  /** Runs a handler of a received message that awaits (the KME, the store): a failure fails its session rather than escaping. */
  protected guard(sessionId: string, work: Promise<void>): void {
    work.catch((error: unknown) => this.fail(sessionId, keySyncFailure(error)))
  }

  #receive(value: unknown): void {
    if (this.#closed) return
    this.counters.received++
    const isError = typeof value === 'object' && value !== null && (value as { message_type?: unknown }).message_type === 'error'
    const parsed = parseKeySyncMessage(value)
    if (!parsed.ok) {
      if (isError) this.counters.refused++
      else this.refuse('INVALID_MESSAGE', parsed.reason, parsed.messageId)
      return
    }
    const message = parsed.message
    const refuse = (code: KeySyncErrorCode, reason: string): void => {
      if (isError) this.counters.refused++
      else this.refuse(code, reason, message.message_id)
    }
    if (message.master_sae_id !== this.masterSaeId || message.slave_sae_id !== this.slaveSaeId) {
      refuse('WRONG_SAE', `master_sae_id and slave_sae_id must be ${this.masterSaeId} and ${this.slaveSaeId}`)
      return
    }
    if (!isError && fromMaster.has(message.message_type) !== (this.role === 'slave')) {
      refuse('INVALID_MESSAGE', `a ${this.role} does not receive ${message.message_type}`)
      return
    }
    if (!this.isRepeat(message)) {
      const problem = timeProblem(message, this.epochMs(), this.limits)
      if (problem !== undefined) {
        refuse(problem.code, problem.reason)
        return
      }
    }
    if (message.message_type === 'error') {
      this.counters.errorsReceived++
      this.emit('peerError', message)
      this.handlePeerError(message)
      return
    }
    this.handle(message)
  }
}

/** A failure as the key sync reports it: its own errors as they are, anything else (a store, a persona) as ERR_KEYSYNC_STORE. */
export function keySyncFailure(error: unknown): VolleyError {
  if (error instanceof VolleyError) return error
  return new VolleyError('ERR_KEYSYNC_STORE', `The key store or the device failed: ${(error as Error | undefined)?.message ?? String(error)}`, { cause: error })
}

/** ERR_KEYSYNC_REJECTED for an ERROR message of the peer. */
export function rejectedBy(message: KeySyncErrorMessage): VolleyError {
  return new VolleyError('ERR_KEYSYNC_REJECTED', `The peer refused a message: ${message.error_code}: ${message.error_message}`)
}

/** ERR_KEYSYNC_CLOSED. */
export function closedError(what: string): VolleyError {
  return new VolleyError('ERR_KEYSYNC_CLOSED', `The ${what} is closed`)
}
