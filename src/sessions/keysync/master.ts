// The master SAE (seed 000, research §D.3): takes keys from its KME, notifies the slave, agrees on an
// instant, switches at it, then runs the cleanup of the keys the switch rolled. One session at a time; each
// request waits responseTimeoutMs for its answer and is sent again (a fresh message id) up to `retries`
// times. Time is the scheduler's and the epochMs clock's, so a fake clock drives all of it.
import { VolleyError, VolleyTypeError, abortedError, checkSignal, describe } from '../../util/errors.ts'
import { integerOption } from '../../util/options.ts'
import { Timer } from '../timers.ts'
import { rotateStoredKeys, setKeyState, type StoredKey } from './keys.ts'
import type {
  OutgoingMessage,
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
import { KeySyncRole, closedError, keyCopy, keySyncFailure, rejectedBy, roleOptionNames, type CleanupResult, type CompletedRotation, type DeliveredKey, type KeySyncRoleOptions } from './role.ts'
import { KEYSYNC_MAX_EXTRA_DELAY_MS, KEYSYNC_MAX_KEY_IDS, KEYSYNC_MIN_LEAD_MS, KEYSYNC_ROTATION_DELAY_MS } from './settings.ts'

/** What the master asks of its KME: ETSI 014's Get key (KmeClient has this method). */
export interface MasterKeySource {
  getKeys(slaveSaeId: string, request: { number: number }): Promise<{ keys: DeliveredKey[] }>
}

export interface KeySyncMasterOptions extends KeySyncRoleOptions {
  kme: MasterKeySource
  /** How far after the Get key the rotation instant is, ms (default 300,000, the reference's). */
  rotationDelayMs?: number | undefined
  /** The most a slave's need_more_time moves the instant later, ms (default 300,000; 0: never). */
  maxExtraDelayMs?: number | undefined
  /** Keys asked of the KME and offered per rotation (default 1; the slave takes the first). */
  keysPerRotation?: number | undefined
}

const masterOptionNames: ReadonlySet<string> = new Set([...roleOptionNames, 'kme', 'rotationDelayMs', 'maxExtraDelayMs', 'keysPerRotation'])

export type MasterState = 'IDLE' | 'NOTIFIED' | 'ACKNOWLEDGED' | 'CONFIRMED' | 'ROTATING' | 'PENDING_DONE' | 'CLEANUP_STATUS_CHECKING' | 'CLEANUP_DELETING'

/** What a rotation ended with: the switch, and its cleanup (absent when the slave never reported its switch). */
export interface KeyRotationResult extends CompletedRotation {
  cleanup: CleanupResult | undefined
}

/** The slave's answers, in the order a session asks for them: an answer to an earlier step is a repeat. */
const answers = ['key_acknowledgment', 'rotation_completed', 'cleanup_status_response', 'cleanup_delete_response'] as const
type Answer = (typeof answers)[number]
const stepOfState: Record<MasterState, number> = {
  IDLE: -1,
  NOTIFIED: 0,
  ACKNOWLEDGED: 1,
  CONFIRMED: 1,
  ROTATING: 1,
  PENDING_DONE: 1,
  CLEANUP_STATUS_CHECKING: 2,
  CLEANUP_DELETING: 3,
}

interface Wait {
  type: Answer
  resolve(message: KeySyncMessage): void
  reject(error: Error): void
}

interface MasterSession {
  /** The message ids of the notifications sent: the first one the slave acknowledges names the session. */
  notificationIds: Set<string>
  /** Every message id sent in the session: an ERROR names the message it refuses. */
  sentIds: Set<string>
  /** The confirmation was sent: from then on the slave switches at the instant whatever happens here. */
  confirmed: boolean
  id: string | undefined
  state: MasterState
  keyIds: string[]
  wait: Wait | undefined
  /** A slave's ROTATION_COMPLETED that came before this side's own switch (its clock a little ahead). */
  earlyCompletion: RotationCompleted | undefined
  timers: Set<Timer>
}

/** The message ids a session remembers having sent (a session sends about 15; retries add a few each). */
const sentIdsKept = 256

/**
 * The master SAE: rotate() takes keys from its KME, notifies the slave, agrees on an instant, switches at it,
 * then runs the cleanup of the keys the switch retired. One rotation at a time.
 */
export class KeySyncMaster extends KeySyncRole {
  readonly role = 'master'
  readonly #kme: MasterKeySource
  readonly #rotationDelayMs: number
  readonly #maxExtraDelayMs: number
  readonly #keysPerRotation: number
  #session: MasterSession | undefined

  constructor(options: KeySyncMasterOptions) {
    super(options, masterOptionNames, 'KeySyncMaster')
    if (typeof options.kme !== 'object' || options.kme === null || typeof options.kme.getKeys !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "kme" option must have getKeys() (a KmeClient). Received ${describe(options.kme)}`)
    }
    this.#kme = options.kme
    this.#rotationDelayMs = integerOption('rotationDelayMs', options.rotationDelayMs, KEYSYNC_ROTATION_DELAY_MS, KEYSYNC_MIN_LEAD_MS, this.limits.maxAheadMs)
    this.#maxExtraDelayMs = integerOption('maxExtraDelayMs', options.maxExtraDelayMs, KEYSYNC_MAX_EXTRA_DELAY_MS, 0, this.limits.maxAheadMs)
    this.#keysPerRotation = integerOption('keysPerRotation', options.keysPerRotation, 1, 1, KEYSYNC_MAX_KEY_IDS)
  }

  get state(): MasterState {
    return this.#session?.state ?? 'IDLE'
  }

  /**
   * One rotation: Get key, notification, acknowledgment, confirmation, the switch at the agreed instant
   * ('confirmed' then 'rotated'), then the cleanup ('cleanup'). Resolves once the cleanup is acknowledged (or
   * the slave stopped answering after the switch: `cleanup` undefined, the rolled keys left for the next
   * cleanup). Rejects before the confirmation with ERR_KEYSYNC_KME, ERR_KEYSYNC_TIMEOUT, ERR_KEYSYNC_REJECTED,
   * ABORT_ERR or ERR_KEYSYNC_CLOSED, no key changed; ERR_KEYSYNC_BUSY while another runs. The signal is
   * heeded until the confirmation: after it the slave switches at the instant, and so does the master.
   */
  async rotate(options: { rotationDelayMs?: number | undefined; signal?: AbortSignal | undefined } = {}): Promise<KeyRotationResult> {
    if (this.closed) throw closedError('KeySyncMaster')
    if (this.#session !== undefined) throw new VolleyError('ERR_KEYSYNC_BUSY', `A rotation is running (state ${this.#session.state}): one at a time`)
    const signal = options.signal
    checkSignal(signal)
    const delayMs = integerOption('rotationDelayMs', options.rotationDelayMs, this.#rotationDelayMs, KEYSYNC_MIN_LEAD_MS, this.limits.maxAheadMs)
    if (signal?.aborted) throw abortedError('The rotation was aborted', signal)
    const session: MasterSession = {
      notificationIds: new Set(),
      sentIds: new Set(),
      confirmed: false,
      id: undefined,
      state: 'IDLE',
      keyIds: [],
      wait: undefined,
      earlyCompletion: undefined,
      timers: new Set(),
    }
    this.#session = session
    const onAbort = (): void => session.wait?.reject(abortedError('The rotation was aborted', signal))
    signal?.addEventListener('abort', onAbort, { once: true })
    /** After each await before the confirmation: a close() or an abort that came meanwhile ends the rotation. */
    const alive = (): void => {
      if (this.#session !== session) throw closedError('KeySyncMaster')
      if (signal?.aborted) throw abortedError('The rotation was aborted', signal)
    }
    try {
      const keys = await this.#getKeys()
      alive()
      for (const key of keys) await this.store.put({ keyId: key.keyId, key: keyCopy(key), state: 'AVAILABLE', peerSaeId: this.peerSaeId, updatedAt: this.epochMs() })
      alive()
      session.keyIds = keys.map((key) => key.keyId)
      const plannedSeconds = Math.ceil((this.epochMs() + delayMs) / 1000)
      session.state = 'NOTIFIED'
      const ack = await this.#exchange<KeyAcknowledgment>(session, 'key_acknowledgment', true, () => {
        const sent = this.send<KeyNotification>({ message_type: 'key_notification', key_ids: session.keyIds, rotation_timestamp: plannedSeconds })
        session.notificationIds.add(sent.message_id)
      })
      const selected = ack.selected_key_id ?? session.keyIds[0]!
      session.state = 'ACKNOWLEDGED'
      const rotationSeconds = this.#agreedInstant(plannedSeconds, ack)
      const stored = await setKeyState(this.store, selected, 'ASSIGNED', this.epochMs())
      if (stored === undefined) throw new VolleyError('ERR_KEYSYNC_KME', `The key ${selected} is no longer in the store`)
      alive()
      signal?.removeEventListener('abort', onAbort)
      return await this.#confirmAndRotate(session, stored, rotationSeconds)
    } catch (error) {
      // Not confirmed, or confirmed and refused by the slave (which then does not switch): the keys go back
      // to AVAILABLE, for the store's owner to reuse or drop. A confirmed rotation closed here keeps them: the
      // slave switches at the instant.
      const failure = keySyncFailure(error)
      const refusedConfirmation = session.confirmed && failure.code === 'ERR_KEYSYNC_REJECTED' && session.state === 'ROTATING'
      if (!session.confirmed || refusedConfirmation) {
        try {
          for (const keyId of session.keyIds) await setKeyState(this.store, keyId, 'AVAILABLE', this.epochMs())
        } catch {
          // The store failing again: the failure to report is the first one.
        }
      }
      this.fail(this.#sessionName(session), failure)
      throw failure
    } finally {
      signal?.removeEventListener('abort', onAbort)
      this.#end(session)
    }
  }

  async #getKeys(): Promise<DeliveredKey[]> {
    let container: { keys: DeliveredKey[] }
    try {
      container = await this.#kme.getKeys(this.peerSaeId, { number: this.#keysPerRotation })
    } catch (error) {
      throw new VolleyError('ERR_KEYSYNC_KME', `The KME gave no key for ${this.peerSaeId}: ${(error as Error).message}`, { cause: error })
    }
    if (container.keys.length === 0) throw new VolleyError('ERR_KEYSYNC_KME', `The KME gave no key for ${this.peerSaeId}`)
    return container.keys
  }

  /**
   * The instant both switch at, epoch seconds: the planned one, or for need_more_time the slave's suggestion
   * up to maxExtraDelayMs later; never sooner than KEYSYNC_MIN_LEAD_MS from now (an answer that came late).
   */
  #agreedInstant(plannedSeconds: number, ack: KeyAcknowledgment): number {
    let seconds = plannedSeconds
    if (ack.status === 'need_more_time' && ack.suggested_rotation_timestamp !== undefined) {
      seconds = Math.min(Math.max(Math.ceil(ack.suggested_rotation_timestamp), plannedSeconds), plannedSeconds + Math.floor(this.#maxExtraDelayMs / 1000))
    }
    // Within the slave's reach: no sooner than the least lead, no later than maxAheadMs from now.
    const soonest = Math.ceil((this.epochMs() + KEYSYNC_MIN_LEAD_MS) / 1000)
    return Math.min(Math.max(seconds, soonest), Math.floor((this.epochMs() + this.limits.maxAheadMs) / 1000))
  }

  async #confirmAndRotate(session: MasterSession, key: StoredKey, rotationSeconds: number): Promise<KeyRotationResult> {
    const notificationId = session.id!
    const sessionId = this.#sessionName(session)
    const confirm = (): void => {
      this.send<SyncConfirmation>({ message_type: 'sync_confirmation', original_message_id: notificationId, final_rotation_timestamp: rotationSeconds })
    }
    session.state = 'CONFIRMED'
    session.confirmed = true
    confirm()
    const rotationAt = rotationSeconds * 1000
    this.announce('confirmed', { sessionId, keyId: key.keyId, key: keyCopy(key), rotationAt })
    // The confirmation has no answer of its own: it goes again `retries` times before the instant, spread
    // out, so that one lost datagram does not leave the slave without the instant.
    const spacing = (rotationAt - this.epochMs()) / (this.retries + 1)
    for (let repeat = 1; repeat <= this.retries; repeat++) this.#after(session, spacing * repeat, confirm)
    session.state = 'ROTATING'
    await this.#until(session, rotationAt)
    const switched = await rotateStoredKeys(this.store, this.peerSaeId, key.keyId, this.epochMs())
    if (switched === undefined) throw new VolleyError('ERR_KEYSYNC_KME', `The key ${key.keyId} left the store before its rotation`)
    if (this.#session !== session) throw closedError('KeySyncMaster')
    session.state = 'PENDING_DONE'
    const rotation: CompletedRotation = { sessionId, keyId: key.keyId, key: keyCopy(switched.current), rotationAt, rolledKeyIds: switched.rolled.map((rolled) => rolled.keyId) }
    this.rotated(rotation)
    let cleanup: CleanupResult | undefined
    try {
      // The slave's report of its own switch; asked again by a repeated confirmation, which a switched slave
      // answers with its report.
      const completed = session.earlyCompletion ?? (await this.#exchange<RotationCompleted>(session, 'rotation_completed', false, confirm))
      if (completed.new_key_id !== key.keyId) {
        this.refuse('KEY_MISMATCH', `new_key_id ${completed.new_key_id} is not the agreed key ${key.keyId}`, completed.message_id)
        throw new VolleyError('ERR_KEYSYNC_REJECTED', `The slave switched to ${completed.new_key_id}, not the agreed key ${key.keyId}`)
      }
      cleanup = await this.#cleanup(session, key.keyId)
    } catch (error) {
      // Switched already: the rotation stands, the rolled keys wait for the next cleanup.
      this.fail(sessionId, keySyncFailure(error))
    }
    return { ...rotation, cleanup }
  }

  async #cleanup(session: MasterSession, newKeyId: string): Promise<CleanupResult> {
    const notificationId = session.id!
    const sessionId = this.#sessionName(session)
    session.state = 'CLEANUP_STATUS_CHECKING'
    const status = await this.#exchange<CleanupStatusResponse>(session, 'cleanup_status_response', true, () => {
      this.send<CleanupStatusRequest>({ message_type: 'cleanup_status_request', original_message_id: notificationId, new_key_id: newKeyId })
    })
    const rolled = (await this.store.list(this.peerSaeId, 'ROLLED')).map((key) => key.keyId).slice(0, KEYSYNC_MAX_KEY_IDS)
    let result: CleanupResult = { sessionId, status: 'completed', deletedKeyIds: [], failedKeyIds: [] }
    if (status.status === 'failed') {
      result = { ...result, status: 'failed' }
    } else if (rolled.length > 0) {
      session.state = 'CLEANUP_DELETING'
      const response = await this.#exchange<CleanupDeleteResponse>(session, 'cleanup_delete_response', true, () => {
        this.send<CleanupDeleteRequest>({ message_type: 'cleanup_delete_request', original_message_id: notificationId, new_key_id: newKeyId, old_key_ids: rolled })
      })
      const asked = new Set(rolled)
      const deleted = response.deleted_key_ids.filter((keyId) => asked.has(keyId))
      const failed = rolled.filter((keyId) => !deleted.includes(keyId))
      // This side's copies of what the slave deleted go too; a key it failed to delete stays ROLLED here, and
      // the next cleanup asks for it again.
      for (const keyId of deleted) {
        try {
          await this.persona?.deleteKey(keyId)
          await this.store.delete(keyId)
        } catch {
          failed.push(keyId)
        }
      }
      result = { sessionId, status: failed.length === 0 && response.status === 'success' ? 'completed' : 'failed', deletedKeyIds: deleted.filter((keyId) => !failed.includes(keyId)), failedKeyIds: failed }
    }
    this.send<CleanupAcknowledgment>({ message_type: 'cleanup_acknowledgment', original_message_id: notificationId, status: result.status })
    this.counters.cleanups++
    this.announce('cleanup', result)
    return result
  }

  /** Sends a request (or waits first, when `sendFirst` is false) and resolves with its answer; sent again on each timeout, up to `retries` times. */
  #exchange<T extends KeySyncMessage>(session: MasterSession, type: Answer, sendFirst: boolean, send: () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.#session !== session) {
        reject(closedError('KeySyncMaster'))
        return
      }
      let attempts = 0
      const timer = new Timer(() => {
        if (attempts++ >= this.retries) {
          session.wait = undefined
          reject(new VolleyError('ERR_KEYSYNC_TIMEOUT', `No ${type} from ${this.peerSaeId} after ${this.retries + 1} waits of ${this.responseTimeoutMs} ms (state ${session.state})`))
          return
        }
        send()
        this.scheduler.arm(timer, this.scheduler.now() + this.responseTimeoutMs)
      })
      session.wait = {
        type,
        resolve: (message) => {
          this.scheduler.disarm(timer)
          session.wait = undefined
          resolve(message as T)
        },
        reject: (error) => {
          this.scheduler.disarm(timer)
          session.wait = undefined
          reject(error)
        },
      }
      if (sendFirst) send()
      this.scheduler.arm(timer, this.scheduler.now() + this.responseTimeoutMs)
    })
  }

  /**
   * The session's name in events and results, the reference's: master_slave_notification-id (the first
   * notification's id until one is acknowledged).
   */
  #sessionName(session: MasterSession): string {
    return `${this.saeId}_${this.peerSaeId}_${session.id ?? session.notificationIds.values().next().value ?? ''}`
  }

  /** Runs `action` after `delayMs`, unless the session ends first. */
  #after(session: MasterSession, delayMs: number, action: () => void): void {
    if (this.#session !== session) return
    const timer = new Timer(() => {
      session.timers.delete(timer)
      action()
    })
    session.timers.add(timer)
    this.scheduler.arm(timer, this.scheduler.now() + delayMs)
  }

  /** Resolves at `epochMs` on the wall clock (timed on the scheduler); rejects when the session is closed. */
  #until(session: MasterSession, epochMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.#session !== session) {
        reject(closedError('KeySyncMaster'))
        return
      }
      // Only for close() and a peer's ERROR: no answer resolves it (an early report is kept aside).
      const wait: Wait = { type: 'rotation_completed', resolve: () => {}, reject }
      session.wait = wait
      this.#after(session, Math.max(0, epochMs - this.epochMs()), () => {
        if (session.wait === wait) session.wait = undefined
        resolve()
      })
    })
  }

  /** Sends, and records the message's id in the running session (an ERROR names what it refuses). */
  protected override send<T extends KeySyncMessage>(body: OutgoingMessage<T>): T {
    const message = super.send<T>(body)
    const session = this.#session
    if (session !== undefined && session.sentIds.size < sentIdsKept) session.sentIds.add(message.message_id)
    return message
  }

  #end(session: MasterSession): void {
    for (const timer of session.timers) this.scheduler.disarm(timer)
    session.timers.clear()
    if (session.id !== undefined) this.rememberFinished(session.id)
    for (const id of session.notificationIds) this.rememberFinished(id)
    if (this.#session === session) this.#session = undefined
  }


  protected handle(message: KeySyncMessage): void {
    const original = 'original_message_id' in message ? message.original_message_id : undefined
    const session = this.#session
    if (session === undefined || original === undefined || !session.notificationIds.has(original)) {
      this.noSession(message, original)
      return
    }
    if (session.id === undefined) {
      if (message.message_type !== 'key_acknowledgment') {
        this.refuse('INVALID_STATE', `a master in state ${session.state} does not take ${message.message_type}`, message.message_id)
        return
      }
      if (!this.#validAcknowledgment(message, session)) return
      session.id = original
    } else if (original !== session.id) {
      this.counters.repeats++ // the answer to a notification sent again, after another one was taken
      return
    }
    if (message.message_type === 'rotation_completed' && (session.state === 'CONFIRMED' || session.state === 'ROTATING')) {
      if (session.earlyCompletion === undefined) session.earlyCompletion = message
      else this.counters.repeats++
      return
    }
    const step = answers.indexOf(message.message_type as Answer)
    if (session.wait?.type === message.message_type && step === stepOfState[session.state]) {
      session.wait.resolve(message)
      return
    }
    // An answer to an earlier step, or to this one while its answer is being handled: a retry crossed it.
    if (step >= 0 && step <= stepOfState[session.state]) {
      this.counters.repeats++
      return
    }
    this.refuse('INVALID_STATE', `a master in state ${session.state} does not take ${message.message_type}`, message.message_id)
  }

  #validAcknowledgment(ack: KeyAcknowledgment, session: MasterSession): boolean {
    if (ack.selected_key_id !== undefined && !session.keyIds.includes(ack.selected_key_id)) {
      this.refuse('KEY_MISMATCH', `selected_key_id ${ack.selected_key_id} is not among the notified keys`, ack.message_id)
      return false
    }
    return true
  }

  protected handlePeerError(message: KeySyncErrorMessage): void {
    const session = this.#session
    const original = message.original_message_id
    if (session === undefined || original === undefined || !session.sentIds.has(original)) return
    // A refusal of a notification that another one superseded changes nothing.
    if (session.id !== undefined && session.notificationIds.has(original) && original !== session.id) return
    // Before the switch the rotation fails; after it the cleanup does (the switch stands).
    session.wait?.reject(rejectedBy(message))
  }

  protected closeSessions(): void {
    const session = this.#session
    if (session === undefined) return
    session.wait?.reject(closedError('KeySyncMaster'))
    this.#end(session)
  }
}
