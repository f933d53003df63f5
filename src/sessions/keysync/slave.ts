// The slave SAE (seed 000, research §D.3): answers a notification by taking the keys from its KME (Get key
// with key IDs), acknowledges, switches at the confirmed instant and reports it, then answers the cleanup.
// A session lives sessionExpiryMs until its confirmation, never while its rotation waits, and
// cleanupExpiryMs after its switch. Every request is answered again when it is repeated (the master sends
// one again when the answer is late), and a repeat changes nothing.
import { VolleyError, VolleyTypeError, describe } from '../../util/errors.ts'
import { integerOption } from '../../util/options.ts'
import { Timer } from '../timers.ts'
import { rotateStoredKeys, setKeyState, type KeyState, type StoredKey } from './keys.ts'
import { clipText, type OutgoingMessage } from './messages.ts'
import type {
  CleanupAcknowledgment,
  CleanupDeleteRequest,
  CleanupDeleteResponse,
  CleanupStatusRequest,
  CleanupStatusResponse,
  KeyAcknowledgment,
  KeyNotification,
  KeySyncErrorMessage,
  KeySyncMessage,
  RotationCompleted,
  SyncConfirmation,
} from './messages.ts'
import { KeySyncRole, keyCopy, rejectedBy, roleOptionNames, type DeliveredKey, type KeySyncRoleOptions } from './role.ts'
import { KEYSYNC_CLEANUP_EXPIRY_MS, KEYSYNC_MAX_SESSIONS, KEYSYNC_PREPARE_MS, KEYSYNC_SESSION_EXPIRY_MS } from './settings.ts'

/** What the slave asks of its KME: ETSI 014's Get key with key IDs (KmeClient has this method). */
export interface SlaveKeySource {
  getKeysWithIds(masterSaeId: string, keyIds: readonly string[]): Promise<{ keys: DeliveredKey[] }>
}

export interface KeySyncSlaveOptions extends KeySyncRoleOptions {
  kme: SlaveKeySource
  /**
   * With less than this left before the notified instant, the acknowledgment is need_more_time, suggesting
   * the instant plus this much, ms (default 120,000, the reference's grace_period_seconds).
   */
  prepareMs?: number | undefined
  /** How long a session lives until its confirmation, ms (default 300,000). */
  sessionExpiryMs?: number | undefined
  /** How long a switched session waits for its cleanup, ms (default 1,800,000). */
  cleanupExpiryMs?: number | undefined
}

const slaveOptionNames: ReadonlySet<string> = new Set([...roleOptionNames, 'kme', 'prepareMs', 'sessionExpiryMs', 'cleanupExpiryMs'])

export type SlaveState = 'NOTIFIED' | 'ACKNOWLEDGED' | 'CONFIRMED' | 'ROTATING' | 'PENDING_DONE' | 'CLEANING' | 'ERROR'

interface SlaveSession {
  /** The notification's message id, which every later message names as its original_message_id. */
  id: string
  sessionId: string
  state: SlaveState
  keyIds: string[]
  selectedKeyId: string
  /** The acknowledgment sent, for a repeated notification. */
  acknowledgment: KeyAcknowledgment | undefined
  /** The confirmed instant, epoch seconds. */
  rotationSeconds: number | undefined
  completion: RotationCompleted | undefined
  /** The message ids this side sent in the session. */
  sentIds: Set<string>
  /** What the cleanup's delete requests deleted (or found gone already) and failed to, for the 'cleanup' event. */
  deleted: Set<string>
  failed: Set<string>
  /** Expiry, then the switch at the instant. */
  timer: Timer
}

/** The message ids a session remembers having sent. */
const sentIdsKept = 64

/**
 * The slave SAE: answers the master's notification by taking the same keys from its KME, switches at the
 * confirmed instant, then answers the cleanup.
 */
export class KeySyncSlave extends KeySyncRole {
  readonly role = 'slave'
  readonly #kme: SlaveKeySource
  readonly #prepareMs: number
  readonly #sessionExpiryMs: number
  readonly #cleanupExpiryMs: number
  /** By notification id, oldest first. */
  readonly #sessions = new Map<string, SlaveSession>()
  /** The KME fetch in progress (#fetchKeys). */
  #fetching: Promise<void> = Promise.resolve()

  constructor(options: KeySyncSlaveOptions) {
    super(options, slaveOptionNames, 'KeySyncSlave')
    if (typeof options.kme !== 'object' || options.kme === null || typeof options.kme.getKeysWithIds !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "kme" option must have getKeysWithIds() (a KmeClient). Received ${describe(options.kme)}`)
    }
    this.#kme = options.kme
    this.#prepareMs = integerOption('prepareMs', options.prepareMs, KEYSYNC_PREPARE_MS, 0, this.limits.maxAheadMs)
    this.#sessionExpiryMs = integerOption('sessionExpiryMs', options.sessionExpiryMs, KEYSYNC_SESSION_EXPIRY_MS, 1, 2 ** 31 - 1)
    this.#cleanupExpiryMs = integerOption('cleanupExpiryMs', options.cleanupExpiryMs, KEYSYNC_CLEANUP_EXPIRY_MS, 1, 2 ** 31 - 1)
  }

  /** The sessions held, by notification id, and their states. */
  sessions(): Array<{ id: string; sessionId: string; state: SlaveState; keyId: string; rotationAt: number | undefined }> {
    return [...this.#sessions.values()].map((session) => ({
      id: session.id,
      sessionId: session.sessionId,
      state: session.state,
      keyId: session.selectedKeyId,
      rotationAt: session.rotationSeconds === undefined ? undefined : session.rotationSeconds * 1000,
    }))
  }

  protected override isRepeat(message: KeySyncMessage): boolean {
    // A confirmation sent again after the instant (the master asking for the switch's report) is past its
    // instant by then: a repeat of the agreed one is not refused for it.
    if (message.message_type !== 'sync_confirmation') return false
    const session = this.#sessions.get(message.original_message_id)
    return session?.rotationSeconds === message.final_rotation_timestamp && Math.abs(message.timestamp * 1000 - this.epochMs()) <= this.limits.timestampWindowMs
  }

  protected handle(message: KeySyncMessage): void {
    if (message.message_type === 'key_notification') {
      this.guard(`${this.peerSaeId}_${this.saeId}_${message.message_id}`, this.#notified(message))
      return
    }
    const original = 'original_message_id' in message ? message.original_message_id : undefined
    const session = original === undefined ? undefined : this.#sessions.get(original)
    if (session === undefined) {
      this.noSession(message, original)
      return
    }
    switch (message.message_type) {
      case 'sync_confirmation':
        this.#confirmed(session, message)
        return
      case 'cleanup_status_request':
        this.guard(session.sessionId, this.#statusRequested(session, message))
        return
      case 'cleanup_delete_request':
        this.guard(session.sessionId, this.#deleteRequested(session, message))
        return
      case 'cleanup_acknowledgment':
        this.#acknowledged(session, message)
        return
      default:
        this.refuse('INVALID_MESSAGE', `a slave does not take ${message.message_type}`, message.message_id)
    }
  }

  async #notified(notification: KeyNotification): Promise<void> {
    const repeated = this.#sessions.get(notification.message_id)
    if (repeated !== undefined) {
      this.counters.repeats++
      if (repeated.acknowledgment !== undefined) this.#resend(repeated.acknowledgment)
      return
    }
    const session: SlaveSession = {
      id: notification.message_id,
      sessionId: `${this.peerSaeId}_${this.saeId}_${notification.message_id}`,
      state: 'NOTIFIED',
      keyIds: notification.key_ids,
      selectedKeyId: notification.key_ids[0]!,
      acknowledgment: undefined,
      rotationSeconds: undefined,
      completion: undefined,
      sentIds: new Set(),
      deleted: new Set(),
      failed: new Set(),
      timer: new Timer(() => this.#expire(session)),
    }
    // In the map first, so that the sessions it ends see it holds its key (and leave it ASSIGNED).
    this.#sessions.set(session.id, session)
    // A notification of the same keys is the master's retry of a late acknowledgment: the earlier session
    // stays, in case that acknowledgment is the one the master takes (the first confirmed ends the others).
    // One of other keys ends the unconfirmed sessions: the master gave up on them.
    const sameKeys = (other: SlaveSession): boolean => other.keyIds.length === session.keyIds.length && other.keyIds.every((keyId, i) => keyId === session.keyIds[i])
    for (const other of [...this.#sessions.values()]) if (other !== session && unconfirmed(other) && !sameKeys(other)) this.#drop(other, false)
    while (this.#sessions.size > KEYSYNC_MAX_SESSIONS) this.#drop(this.#sessions.values().next().value!, false)
    this.scheduler.arm(session.timer, this.scheduler.now() + this.#sessionExpiryMs)
    try {
      await this.#fetchKeys(notification.key_ids)
    } catch (error) {
      // The store's own failures go to guard() (ERR_KEYSYNC_STORE); the KME's are the master's to know.
      if (!(error instanceof VolleyError) || error.code !== 'ERR_KEYSYNC_KME' || this.#sessions.get(session.id) !== session) throw error
      session.state = 'ERROR'
      this.refuse('KME_ERROR', `the keys could not be taken from the KME: ${(error.cause as Error | undefined)?.message ?? error.message}`, notification.message_id)
      this.fail(session.sessionId, error)
      return
    }
    if (this.#sessions.get(session.id) !== session || this.closed) return
    await setKeyState(this.store, session.selectedKeyId, 'ASSIGNED', this.epochMs())
    const leftMs = notification.rotation_timestamp * 1000 - this.epochMs()
    const needMoreTime = leftMs < this.#prepareMs
    session.state = 'ACKNOWLEDGED'
    session.acknowledgment = this.#sendIn<KeyAcknowledgment>(session, {
      message_type: 'key_acknowledgment',
      original_message_id: session.id,
      selected_key_id: session.selectedKeyId,
      status: needMoreTime ? 'need_more_time' : 'ready',
      suggested_rotation_timestamp: needMoreTime ? Math.ceil(notification.rotation_timestamp + this.#prepareMs / 1000) : undefined,
    })
  }

  /**
   * The notified keys into the store: those it holds already (a notification sent again) are not asked twice,
   * since a KME gives a key once. One fetch at a time, so that a retried notification waits for the first
   * one's keys rather than asking the KME for them again (and a pinned peer's flood makes one call at a time).
   */
  #fetchKeys(keyIds: readonly string[]): Promise<void> {
    const fetched = this.#fetching.then(() => this.#fetchMissing(keyIds))
    this.#fetching = fetched.catch(() => {})
    return fetched
  }

  async #fetchMissing(keyIds: readonly string[]): Promise<void> {
    const missing: string[] = []
    for (const keyId of keyIds) if ((await this.store.get(keyId)) === undefined) missing.push(keyId)
    if (missing.length === 0) return
    const noKeys = (reason: string, cause?: unknown): VolleyError => new VolleyError('ERR_KEYSYNC_KME', `The KME gave no keys for ${missing.join(', ')}: ${reason}`, { cause })
    let container: { keys: DeliveredKey[] }
    try {
      container = await this.#kme.getKeysWithIds(this.peerSaeId, missing)
    } catch (error) {
      throw noKeys((error as Error)?.message ?? String(error), error)
    }
    const delivered = new Map(container.keys.map((key) => [key.keyId, key]))
    for (const keyId of missing) if (!delivered.has(keyId)) throw noKeys(`it did not deliver ${keyId}`)
    for (const keyId of missing) {
      const key = delivered.get(keyId)!
      await this.store.put({ keyId, key: keyCopy(key), state: 'AVAILABLE', peerSaeId: this.peerSaeId, updatedAt: this.epochMs() })
    }
  }

  #confirmed(session: SlaveSession, confirmation: SyncConfirmation): void {
    if (session.rotationSeconds !== undefined) {
      if (confirmation.final_rotation_timestamp !== session.rotationSeconds) {
        this.refuse('INVALID_STATE', `the rotation is confirmed for ${session.rotationSeconds} already`, confirmation.message_id)
      } else if (session.completion !== undefined) {
        this.#resend(session.completion) // the master asks for the report it did not get
      } else {
        this.counters.repeats++
      }
      return
    }
    if (session.state !== 'ACKNOWLEDGED') {
      this.refuse('INVALID_STATE', `a slave in state ${session.state} does not take sync_confirmation`, confirmation.message_id)
      return
    }
    session.state = 'CONFIRMED'
    session.rotationSeconds = confirmation.final_rotation_timestamp
    const rotationAt = confirmation.final_rotation_timestamp * 1000
    // The retries of its notification have served their purpose.
    for (const other of [...this.#sessions.values()]) if (other !== session && unconfirmed(other)) this.#drop(other, true)
    this.guard(
      session.sessionId,
      Promise.resolve(this.store.get(session.selectedKeyId)).then((key) => {
        if (key !== undefined && this.#sessions.get(session.id) === session) this.announce('confirmed', { sessionId: session.sessionId, keyId: key.keyId, key: keyCopy(key), rotationAt })
      }),
    )
    // A confirmed rotation never expires: the master switches at the instant whatever happens here.
    session.state = 'ROTATING'
    this.scheduler.disarm(session.timer)
    session.timer = new Timer(() => this.guard(session.sessionId, this.#rotate(session)))
    this.#rearm(session, Math.max(0, rotationAt - this.epochMs()))
  }

  async #rotate(session: SlaveSession): Promise<void> {
    const switched = await rotateStoredKeys(this.store, this.peerSaeId, session.selectedKeyId, this.epochMs())
    if (this.#sessions.get(session.id) !== session || this.closed) return
    if (switched === undefined) {
      session.state = 'ERROR'
      this.fail(session.sessionId, new VolleyError('ERR_KEYSYNC_KME', `The key ${session.selectedKeyId} left the store before its rotation`))
      return
    }
    session.state = 'PENDING_DONE'
    this.rotated({
      sessionId: session.sessionId,
      keyId: session.selectedKeyId,
      key: keyCopy(switched.current),
      rotationAt: session.rotationSeconds! * 1000,
      rolledKeyIds: switched.rolled.map((key) => key.keyId),
    })
    session.completion = this.#sendIn<RotationCompleted>(session, {
      message_type: 'rotation_completed',
      original_message_id: session.id,
      new_key_id: session.selectedKeyId,
      rotation_timestamp: Math.floor(this.epochMs() / 1000),
    })
    this.scheduler.disarm(session.timer)
    session.timer = new Timer(() => this.#expire(session))
    this.#rearm(session, this.#cleanupExpiryMs)
  }

  async #statusRequested(session: SlaveSession, request: CleanupStatusRequest): Promise<void> {
    if (session.state !== 'PENDING_DONE' && session.state !== 'CLEANING') {
      this.refuse('INVALID_STATE', `a slave in state ${session.state} does not take cleanup_status_request (it has not switched)`, request.message_id)
      return
    }
    const current = await this.store.get(session.selectedKeyId)
    const rolled = await this.store.list(this.peerSaeId, 'ROLLED')
    if (this.#sessions.get(session.id) !== session) return
    session.state = 'CLEANING'
    const matches = request.new_key_id === session.selectedKeyId && current?.state === 'IN_PRODUCTION'
    this.#sendIn<CleanupStatusResponse>(session, {
      message_type: 'cleanup_status_response',
      original_message_id: session.id,
      status: matches ? 'success' : 'failed',
      rolled_keys_count: rolled.length,
      service_status: 'operational',
      error_message: matches ? undefined : `the key in production is ${current?.state === 'IN_PRODUCTION' ? session.selectedKeyId : 'none'}, not ${request.new_key_id}`,
    })
  }

  async #deleteRequested(session: SlaveSession, request: CleanupDeleteRequest): Promise<void> {
    if (session.state !== 'CLEANING' && session.state !== 'PENDING_DONE') {
      this.refuse('INVALID_STATE', `a slave in state ${session.state} does not take cleanup_delete_request`, request.message_id)
      return
    }
    if (request.new_key_id !== undefined && request.new_key_id !== session.selectedKeyId) {
      this.refuse('KEY_MISMATCH', `new_key_id ${request.new_key_id} is not this session's key ${session.selectedKeyId}`, request.message_id)
      return
    }
    session.state = 'CLEANING'
    const deleted: string[] = []
    const failed: string[] = []
    const reasons: string[] = []
    for (const keyId of new Set(request.old_key_ids)) {
      const key = await this.store.get(keyId)
      if (key === undefined) {
        deleted.push(keyId) // gone already: a request sent again after its answer was lost
        continue
      }
      // Only a key the switch rolled (or one expired or revoked) goes: never one in production or assigned,
      // whatever a request names.
      if (!deletable(key.state) || key.peerSaeId !== this.peerSaeId) {
        failed.push(keyId)
        reasons.push(`${keyId} is ${key.state}`)
        continue
      }
      try {
        await this.persona?.deleteKey(keyId)
        await this.store.delete(keyId)
        deleted.push(keyId)
      } catch (error) {
        failed.push(keyId)
        reasons.push(`${keyId}: ${(error as Error).message}`)
      }
    }
    if (this.#sessions.get(session.id) !== session) return
    for (const keyId of deleted) {
      session.deleted.add(keyId)
      session.failed.delete(keyId)
    }
    for (const keyId of failed) session.failed.add(keyId)
    this.#sendIn<CleanupDeleteResponse>(session, {
      message_type: 'cleanup_delete_response',
      original_message_id: session.id,
      status: failed.length === 0 ? 'success' : 'failed',
      deleted_key_ids: deleted,
      failed_key_ids: failed,
      error_message: failed.length === 0 ? undefined : clipText(`Failed to delete keys: ${reasons.join('; ')}`),
    })
  }

  #acknowledged(session: SlaveSession, acknowledgment: CleanupAcknowledgment): void {
    if (session.state !== 'CLEANING' && session.state !== 'PENDING_DONE') {
      this.refuse('INVALID_STATE', `a slave in state ${session.state} does not take cleanup_acknowledgment`, acknowledgment.message_id)
      return
    }
    this.counters.cleanups++
    this.#drop(session, true)
    this.announce('cleanup', { sessionId: session.sessionId, status: acknowledgment.status, deletedKeyIds: [...session.deleted], failedKeyIds: [...session.failed] })
  }

  protected handlePeerError(message: KeySyncErrorMessage): void {
    const original = message.original_message_id
    // An ERROR names the message it refuses: the session's notification, or one this side sent in it.
    const session = original === undefined ? undefined : (this.#sessions.get(original) ?? [...this.#sessions.values()].find((each) => each.sentIds.has(original)))
    if (session === undefined) return
    // Before the confirmation the session ends; after it the rotation stands (the master switches at the
    // instant): an ERROR never takes a key out of production.
    if (session.state === 'NOTIFIED' || session.state === 'ACKNOWLEDGED') {
      this.fail(session.sessionId, rejectedBy(message))
      this.#drop(session, false)
    }
  }

  #expire(session: SlaveSession): void {
    if (this.#sessions.get(session.id) !== session) return
    const switched = session.state === 'PENDING_DONE' || session.state === 'CLEANING'
    if (!switched) this.fail(session.sessionId, new VolleyError('ERR_KEYSYNC_TIMEOUT', `The session ${session.sessionId} expired in state ${session.state}`))
    // A late confirmation of a session that expired unswitched is refused (NO_SESSION), so that its master
    // does not switch alone; a late repeat of a switched one's cleanup is only ignored.
    this.#drop(session, switched)
  }

  /** Ends a session; one that was not switched gives its assigned key back (AVAILABLE) unless another session holds it. */
  /** Sends a message of a session, and records its id there (an ERROR names the message it refuses). */
  #sendIn<T extends KeySyncMessage>(session: SlaveSession, body: OutgoingMessage<T>): T {
    const message = this.send<T>(body)
    if (session.sentIds.size < sentIdsKept) session.sentIds.add(message.message_id)
    return message
  }

  #drop(session: SlaveSession, remember: boolean): void {
    this.scheduler.disarm(session.timer)
    this.#sessions.delete(session.id)
    if (remember) this.rememberFinished(session.id)
    if (session.rotationSeconds === undefined && ![...this.#sessions.values()].some((other) => other.selectedKeyId === session.selectedKeyId)) {
      void Promise.resolve(this.store.get(session.selectedKeyId)).then((key: StoredKey | undefined) => {
        if (key?.state === 'ASSIGNED') return setKeyState(this.store, key.keyId, 'AVAILABLE', this.epochMs())
        return undefined
      })
    }
  }

  #rearm(session: SlaveSession, delayMs: number): void {
    this.scheduler.arm(session.timer, this.scheduler.now() + delayMs)
  }

  #resend(message: KeySyncMessage): void {
    this.counters.sent++
    this.link.send(message)
  }

  protected closeSessions(): void {
    for (const session of this.#sessions.values()) this.scheduler.disarm(session.timer)
    this.#sessions.clear()
  }
}

function unconfirmed(session: SlaveSession): boolean {
  return session.state === 'NOTIFIED' || session.state === 'ACKNOWLEDGED' || session.state === 'ERROR'
}

function deletable(state: KeyState): boolean {
  return state === 'ROLLED' || state === 'EXPIRED' || state === 'REVOKED'
}

