// The ten messages of the SAE key sync (seed 000, research §D.2): their fields in the reference's order, the
// checks of their shape, and their JSON. What a message means in a state is the roles' business (master.ts,
// slave.ts); the checks against the clock are here, written once for both.
import { randomUUID } from 'node:crypto'
import { KEYSYNC_MAX_ID, KEYSYNC_MAX_KEY_IDS, KEYSYNC_MAX_STRING } from './settings.ts'

interface Common {
  message_id: string
  /** When it was sent: epoch seconds. */
  timestamp: number
  master_sae_id: string
  slave_sae_id: string
}

/** Master → slave: these keys, to be switched to at rotation_timestamp (epoch seconds). */
export interface KeyNotification extends Common {
  message_type: 'key_notification'
  key_ids: string[]
  rotation_timestamp: number
}

/** Slave → master: the keys are fetched and assigned; ready, or need_more_time with a later instant. */
export interface KeyAcknowledgment extends Common {
  message_type: 'key_acknowledgment'
  original_message_id: string
  selected_key_id?: string | undefined
  status: 'ready' | 'need_more_time'
  suggested_rotation_timestamp?: number | undefined
}

/** Master → slave: the instant both switch at. */
export interface SyncConfirmation extends Common {
  message_type: 'sync_confirmation'
  original_message_id: string
  final_rotation_timestamp: number
}

/** Slave → master: switched to new_key_id at rotation_timestamp. */
export interface RotationCompleted extends Common {
  message_type: 'rotation_completed'
  original_message_id: string
  new_key_id: string
  rotation_timestamp: number
}

/** Master → slave: how many rolled keys wait for deletion? */
export interface CleanupStatusRequest extends Common {
  message_type: 'cleanup_status_request'
  original_message_id: string
  new_key_id: string
}

/** Slave → master: the answer (rolled_keys_count is the seed's, the rest the reference's). */
export interface CleanupStatusResponse extends Common {
  message_type: 'cleanup_status_response'
  original_message_id: string
  status: 'success' | 'failed'
  rolled_keys_count?: number | undefined
  service_status?: string | undefined
  error_message?: string | undefined
}

/** Master → slave: delete these rolled keys (new_key_id is the seed's, old_key_ids the reference's). */
export interface CleanupDeleteRequest extends Common {
  message_type: 'cleanup_delete_request'
  original_message_id: string
  new_key_id?: string | undefined
  old_key_ids: string[]
}

/** Slave → master: each key deleted or failed. */
export interface CleanupDeleteResponse extends Common {
  message_type: 'cleanup_delete_response'
  original_message_id: string
  status: 'success' | 'failed'
  deleted_key_ids: string[]
  failed_key_ids: string[]
  error_message?: string | undefined
}

/** Master → slave: the cleanup is over. */
export interface CleanupAcknowledgment extends Common {
  message_type: 'cleanup_acknowledgment'
  original_message_id: string
  status: 'completed' | 'failed'
}

/** Either way: a message was refused. Never answered. */
export interface KeySyncErrorMessage extends Common {
  message_type: 'error'
  original_message_id?: string | undefined
  error_code: string
  error_message: string
  details?: Record<string, unknown> | undefined
}

export type KeySyncMessage =
  | KeyNotification
  | KeyAcknowledgment
  | SyncConfirmation
  | RotationCompleted
  | CleanupStatusRequest
  | CleanupStatusResponse
  | CleanupDeleteRequest
  | CleanupDeleteResponse
  | CleanupAcknowledgment
  | KeySyncErrorMessage

export type KeySyncMessageType = KeySyncMessage['message_type']

/** A message as a role builds it: the common fields are filled in when it is sent. */
export type OutgoingMessage<T extends KeySyncMessage = KeySyncMessage> = T extends KeySyncMessage ? Omit<T, keyof Common> : never

/** The error codes our ERROR messages carry (the reference defines none; these name what was refused). */
export type KeySyncErrorCode =
  | 'INVALID_MESSAGE'
  | 'WRONG_SAE'
  | 'TIMESTAMP_OUT_OF_WINDOW'
  | 'INVALID_ROTATION_TIME'
  | 'INVALID_STATE'
  | 'NO_SESSION'
  | 'KEY_MISMATCH'
  | 'KME_ERROR'

type FieldKind = 'id' | 'uuid' | 'ids' | 'idList' | 'time' | 'count' | 'text' | 'details' | readonly string[]
type FieldSpec = readonly [name: string, kind: FieldKind, optional?: 'optional']

const common: readonly FieldSpec[] = [
  ['message_id', 'uuid'],
  ['timestamp', 'time'],
  ['master_sae_id', 'id'],
  ['slave_sae_id', 'id'],
]

/** Each message's own fields, in the order they are written after message_type and the common ones. */
const fieldsOf: Record<KeySyncMessageType, readonly FieldSpec[]> = {
  key_notification: [
    ['key_ids', 'ids'],
    ['rotation_timestamp', 'time'],
  ],
  key_acknowledgment: [
    ['original_message_id', 'uuid'],
    ['selected_key_id', 'id', 'optional'],
    ['status', ['ready', 'need_more_time']],
    ['suggested_rotation_timestamp', 'time', 'optional'],
  ],
  sync_confirmation: [
    ['original_message_id', 'uuid'],
    ['final_rotation_timestamp', 'time'],
  ],
  rotation_completed: [
    ['original_message_id', 'uuid'],
    ['new_key_id', 'id'],
    ['rotation_timestamp', 'time'],
  ],
  cleanup_status_request: [
    ['original_message_id', 'uuid'],
    ['new_key_id', 'id'],
  ],
  cleanup_status_response: [
    ['original_message_id', 'uuid'],
    ['status', ['success', 'failed']],
    ['rolled_keys_count', 'count', 'optional'],
    ['service_status', 'text', 'optional'],
    ['error_message', 'text', 'optional'],
  ],
  cleanup_delete_request: [
    ['original_message_id', 'uuid'],
    ['new_key_id', 'id', 'optional'],
    ['old_key_ids', 'ids'],
  ],
  cleanup_delete_response: [
    ['original_message_id', 'uuid'],
    ['status', ['success', 'failed']],
    ['deleted_key_ids', 'idList'],
    ['failed_key_ids', 'idList'],
    ['error_message', 'text', 'optional'],
  ],
  cleanup_acknowledgment: [
    ['original_message_id', 'uuid'],
    ['status', ['completed', 'failed']],
  ],
  error: [
    // Not held to a UUID here, as in the reference: an ERROR may answer a message whose id was not one.
    ['original_message_id', 'text', 'optional'],
    ['error_code', 'id'],
    ['error_message', 'text'],
    ['details', 'details', 'optional'],
  ],
}

/** The message types, in the seed's order. */
export const keySyncMessageTypes = Object.keys(fieldsOf) as readonly KeySyncMessageType[]

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export type ParsedMessage =
  | { ok: true; message: KeySyncMessage }
  /** Why it was refused, and its message_id when it had a readable one (an ERROR names it). */
  | { ok: false; reason: string; messageId?: string | undefined }

/** The first reason a field's value is not of its kind, or undefined when it is. */
function fieldProblem(kind: FieldKind, value: unknown): string | undefined {
  if (Array.isArray(kind)) return typeof value === 'string' && kind.includes(value) ? undefined : `one of ${kind.join(', ')}`
  switch (kind) {
    case 'id':
    case 'text': {
      if (typeof value !== 'string') return 'a string'
      const longest = kind === 'id' ? KEYSYNC_MAX_ID : KEYSYNC_MAX_STRING
      if (value.length > longest) return `at most ${longest} characters`
      // The reference refuses a blank key id (whitespace only) as it refuses an empty one.
      return kind === 'id' && value.trim().length === 0 ? 'a non-blank string' : undefined
    }
    case 'uuid':
      return typeof value === 'string' && uuidPattern.test(value) ? undefined : 'a UUID'
    case 'ids':
    case 'idList': {
      if (!Array.isArray(value)) return 'an array of key ids'
      if (value.length > KEYSYNC_MAX_KEY_IDS) return `at most ${KEYSYNC_MAX_KEY_IDS} key ids`
      if (kind === 'ids' && value.length === 0) return 'at least one key id'
      for (const item of value as unknown[]) if (fieldProblem('id', item) !== undefined) return 'an array of non-empty strings'
      return undefined
    }
    case 'time':
      // Whole seconds, as the reference writes and reads them (1795965829.0 parses to an integer too).
      return Number.isSafeInteger(value) && (value as number) >= 0 ? undefined : 'epoch seconds (an integer)'
    case 'count':
      return Number.isSafeInteger(value) && (value as number) >= 0 ? undefined : 'a count (an integer from 0)'
    case 'details':
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? undefined : 'an object'
    default:
      return 'unknown'
  }
}

function checkFields(source: Record<string, unknown>, target: Record<string, unknown>, specs: readonly FieldSpec[]): string | undefined {
  for (const [name, kind, optional] of specs) {
    const value = source[name]
    // null is how the reference writes an absent optional field.
    if (optional !== undefined && (value === undefined || value === null)) continue
    if (value === undefined) return `"${name}" is missing`
    const problem = fieldProblem(kind, value)
    if (problem !== undefined) return `"${name}" must be ${problem}`
    target[name] = Array.isArray(value) ? [...(value as string[])] : kind === 'details' ? { ...(value as object) } : value
  }
  return undefined
}

/**
 * A received message's shape: every field of its type present and of its kind; other fields are ignored (as
 * the reference's models do). Nothing here throws.
 */
export function parseKeySyncMessage(value: unknown): ParsedMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'a message is a JSON object' }
  const source = value as Record<string, unknown>
  const messageId = typeof source['message_id'] === 'string' && uuidPattern.test(source['message_id']) ? source['message_id'] : undefined
  const type = source['message_type']
  if (typeof type !== 'string' || !Object.hasOwn(fieldsOf, type)) return { ok: false, reason: `"message_type" must be one of ${keySyncMessageTypes.join(', ')}`, messageId }
  const message: Record<string, unknown> = { message_type: type }
  const problem = checkFields(source, message, common) ?? checkFields(source, message, fieldsOf[type as KeySyncMessageType])
  if (problem !== undefined) return { ok: false, reason: `${type}: ${problem}`, messageId }
  return { ok: true, message: message as unknown as KeySyncMessage }
}

/** A message's JSON: message_type, the common fields, then its own, in the reference's order; absent optional fields are null, as the reference writes them. */
export function encodeKeySyncMessage(message: KeySyncMessage): string {
  const ordered: Record<string, unknown> = { message_type: message.message_type }
  const source = message as unknown as Record<string, unknown>
  for (const [name] of common) ordered[name] = source[name]
  for (const [name] of fieldsOf[message.message_type]) ordered[name] = source[name] ?? null
  return JSON.stringify(ordered)
}

/** A message ready to send: the common fields filled in (a fresh message id, the time now). */
export function completeMessage<T extends KeySyncMessage>(body: OutgoingMessage<T>, ids: { master: string; slave: string }, nowMs: number): T {
  return { ...body, message_id: randomUUID(), timestamp: Math.floor(nowMs / 1000), master_sae_id: ids.master, slave_sae_id: ids.slave } as unknown as T
}

/** A text field cut to the longest a receiver takes (an ERROR's reason listing many keys, a KME's message). */
export function clipText(text: string): string {
  return text.length <= KEYSYNC_MAX_STRING ? text : `${text.slice(0, KEYSYNC_MAX_STRING - 1)}…`
}

/** The original_message_id a message refers to, when it has one. */
export function originalMessageId(message: KeySyncMessage): string | undefined {
  return message.message_type === 'key_notification' ? undefined : message.original_message_id
}

/** The limits of the clock checks, ms. */
export interface TimeLimits {
  timestampWindowMs: number
  maxAheadMs: number
}

/**
 * The reason a message's times are refused at `nowMs` (epoch ms), or undefined: its timestamp out of the
 * window either way; a rotation instant not in the future or too far ahead; a completed rotation's instant
 * out of the window.
 */
export function timeProblem(message: KeySyncMessage, nowMs: number, limits: TimeLimits): { code: KeySyncErrorCode; reason: string } | undefined {
  const window = (seconds: number, name: string) =>
    Math.abs(seconds * 1000 - nowMs) > limits.timestampWindowMs ? { code: 'TIMESTAMP_OUT_OF_WINDOW' as const, reason: `${name} is more than ${limits.timestampWindowMs / 1000} s from the receiver's clock` } : undefined
  const future = (seconds: number | undefined, name: string) => {
    if (seconds === undefined) return undefined
    if (seconds * 1000 <= nowMs) return { code: 'INVALID_ROTATION_TIME' as const, reason: `${name} is not in the future` }
    if (seconds * 1000 > nowMs + limits.maxAheadMs) return { code: 'INVALID_ROTATION_TIME' as const, reason: `${name} is more than ${limits.maxAheadMs / 1000} s ahead` }
    return undefined
  }
  const stamp = window(message.timestamp, 'timestamp')
  if (stamp !== undefined) return stamp
  switch (message.message_type) {
    case 'key_notification':
      return future(message.rotation_timestamp, 'rotation_timestamp')
    case 'key_acknowledgment':
      return future(message.suggested_rotation_timestamp, 'suggested_rotation_timestamp')
    case 'sync_confirmation':
      return future(message.final_rotation_timestamp, 'final_rotation_timestamp')
    case 'rotation_completed':
      return window(message.rotation_timestamp, 'rotation_timestamp')
    default:
      return undefined
  }
}
