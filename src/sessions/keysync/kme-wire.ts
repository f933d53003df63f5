// The JSON of ETSI GS QKD 014 V1.1.1 (§5, §6), shared by KmeClient and DevKme: the paths, the field names,
// the normative error messages, and strict checks of each data format. A check returns what is wrong (a
// sentence) or the value; each side turns that into its own kind of error (a KmeError, a 400 response).

/** The root of the API's paths (§5.1, Table 2). */
export const KME_API_PREFIX = '/api/v1/keys'

/**
 * The SAE IDs a DevKme (and `volley kme`) takes: letters, digits and . _ ~ : @ -, up to 64. They are a
 * certificate's CN, a file name of `volley kme`, and a path segment: nothing there needs quoting but the URL
 * encoding. devSaeIdsProblem() adds what a pattern cannot say.
 */
export const DEV_SAE_ID_PATTERN = /^[A-Za-z0-9._~:@-]{1,64}$/

/**
 * What is wrong with the SAE IDs of a DevKme (or `volley kme`'s --sae), a phrase that follows "the SAE IDs":
 * one outside DEV_SAE_ID_PATTERN; `.` or `..`, which a URL path cannot carry (they are resolved away); `ca`
 * in any case, whose files would be the CA's (ca.pem); two that differ only in case, whose files would be one
 * on a case-insensitive file system. Undefined when they are fine. How many there must be is the caller's.
 */
export function devSaeIdsProblem(ids: readonly unknown[]): string | undefined {
  const seen = new Map<string, string>()
  for (const id of ids) {
    if (typeof id !== 'string' || !DEV_SAE_ID_PATTERN.test(id)) {
      return `must each be 1 to 64 letters, digits or . _ ~ : @ -, not ${typeof id === 'string' ? `'${id}'` : typeof id}`
    }
    if (id === '.' || id === '..') return `cannot be '${id}': a URL path cannot carry it`
    const folded = id.toLowerCase()
    if (folded === 'ca') return `cannot be '${id}': its files would be the CA's (ca.pem)`
    const other = seen.get(folded)
    if (other === id) return `name '${id}' twice`
    if (other !== undefined) return `name '${other}' and '${id}', which differ only in case: their files would be one on a case-insensitive file system`
    seen.set(folded, id)
  }
  return undefined
}

/** The three methods of the API: the last segment of their path. */
export type KmeMethod = 'status' | 'enc_keys' | 'dec_keys'

/** The error messages the specification gives word for word (§6.2, §6.4). */
export const KME_MESSAGES = {
  sizeNotMultipleOf8: 'size shall be a multiple of 8',
  extensionMandatoryUnsupported: 'not all extension_mandatory parameters are supported',
  extensionMandatoryUnmet: 'not all extension_mandatory request options could be met',
  extensionOptionalUnhandled: 'not all extension_optional request options handled',
  keysNotFound: 'one or more keys specified are not found on KME',
} as const

/** Status (§6.1): what a KME holds for a master SAE and a slave SAE. */
export interface KmeStatus {
  source_KME_ID: string
  target_KME_ID: string
  master_SAE_ID: string
  slave_SAE_ID: string
  /** The default key size, bits. */
  key_size: number
  stored_key_count: number
  max_key_count: number
  max_key_per_request: number
  max_key_size: number
  min_key_size: number
  /** The most additional_slave_SAE_IDs a Get key may name; 0 when the KME has no key multicast. */
  max_SAE_ID_count: number
  status_extension?: unknown
}

/** Key request (§6.2), the body of a Get key by POST. Every field is optional. */
export interface KeyRequestBody {
  number?: number
  size?: number
  additional_slave_SAE_IDs?: string[]
  extension_mandatory?: Record<string, unknown>[]
  extension_optional?: Record<string, unknown>[]
}

/** Key IDs (§6.4), the body of a Get key with key IDs by POST. */
export interface KeyIdsBody {
  key_IDs: { key_ID: string; key_ID_extension?: unknown }[]
  key_IDs_extension?: unknown
}

/** Key container (§6.3) as it is on the wire: keys in base64. */
export interface KeyContainerBody {
  keys: { key_ID: string; key_ID_extension?: unknown; key: string; key_extension?: unknown }[]
  key_container_extension?: unknown
}

/** Error (§6.5). */
export interface ErrorBody {
  message: string
  details?: Record<string, unknown>[]
}

/** One key of a key container: its ID, and its bytes (the base64 decoded). */
export interface QkdKey {
  keyId: string
  key: Uint8Array
  /** key_ID_extension and key_extension, when the KME sent them. */
  keyIdExtension?: unknown
  keyExtension?: unknown
}

/** A key container, its keys decoded. */
export interface KeyContainer {
  keys: QkdKey[]
  /** key_container_extension, passed through when the KME sent one. */
  extension?: unknown
}

/** A check's outcome: the value, or what is wrong with it. */
export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string }

const ok = <T>(value: T): Checked<T> => ({ ok: true, value })
const wrong = (problem: string): { ok: false; problem: string } => ({ ok: false, problem })

/** The specification's key IDs are UUIDs (§6.3: "UUID format"), in any case of hex digits. */
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isKeyId(value: unknown): value is string {
  return typeof value === 'string' && uuidPattern.test(value)
}

/** A JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** base64 of RFC 4648 §4 (the alphabet with + and /, padded), as §6.3 asks. */
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * The bytes of canonical, padded base64; undefined for anything else (another alphabet, whitespace, missing
 * padding, stray bits in the last character: text that two decoders could read differently).
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (!base64Pattern.test(text)) return undefined
  // Buffer.from() may place small results in node's shared pool: the key is copied into a buffer of its own
  // (that its holder can wipe, and that keeps no pool alive), and the temporary is wiped.
  const decoded = Buffer.from(text, 'base64')
  try {
    if (decoded.toString('base64') !== text) return undefined
    const bytes = new Uint8Array(decoded.byteLength)
    bytes.set(decoded)
    return bytes
  } finally {
    decoded.fill(0)
  }
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/** Whether a Content-Type header names JSON (application/json, parameters allowed, a charset only UTF-8). */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false
  const [type, ...parameters] = header.split(';').map((part) => part.trim().toLowerCase())
  if (type !== 'application/json') return false
  for (const parameter of parameters) {
    const [name, value] = parameter.split('=').map((part) => part.trim())
    if (name === 'charset' && value?.replace(/^"|"$/g, '') !== 'utf-8') return false
  }
  return true
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/** A body's JSON: UTF-8 (§5.1), one JSON value (RFC 8259). */
export function parseJsonBody(body: Uint8Array): Checked<unknown> {
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    return wrong('the body is not UTF-8')
  }
  try {
    return ok(JSON.parse(text) as unknown)
  } catch {
    return wrong('the body is not JSON')
  }
}

const statusStrings = ['source_KME_ID', 'target_KME_ID', 'master_SAE_ID', 'slave_SAE_ID'] as const
const statusIntegers = ['key_size', 'stored_key_count', 'max_key_count', 'max_key_per_request', 'max_key_size', 'min_key_size', 'max_SAE_ID_count'] as const

/** Status (§6.1): each field of its type, the integers whole and not negative. Other fields are left out. */
export function checkStatus(value: unknown): Checked<KmeStatus> {
  if (!isJsonObject(value)) return wrong('the status is not a JSON object')
  const status: Record<string, unknown> = {}
  for (const name of statusStrings) {
    if (typeof value[name] !== 'string') return wrong(`the status's ${name} is ${value[name] === undefined ? 'missing' : 'not a string'}`)
    status[name] = value[name]
  }
  for (const name of statusIntegers) {
    const field = value[name]
    if (typeof field !== 'number' || !Number.isSafeInteger(field) || field < 0) {
      return wrong(`the status's ${name} is ${field === undefined ? 'missing' : 'not a non-negative integer'}`)
    }
    status[name] = field
  }
  if (value.status_extension !== undefined) {
    if (!isJsonObject(value.status_extension)) return wrong("the status's status_extension is not an object")
    status.status_extension = value.status_extension
  }
  return ok(status as unknown as KmeStatus)
}

/** An optional *_extension field: absent, or an object (§6). */
function checkExtension(value: unknown, name: string, where: string): string | undefined {
  return value === undefined || isJsonObject(value) ? undefined : `${where}'s ${name} is not an object`
}

/** Key container (§6.3): keys, each a UUID key_ID and a base64 key, decoded. */
export function checkKeyContainer(value: unknown): Checked<KeyContainer> {
  if (!isJsonObject(value)) return wrong('the key container is not a JSON object')
  if (!Array.isArray(value.keys)) return wrong(`the key container's keys are ${value.keys === undefined ? 'missing' : 'not an array'}`)
  const problem = checkExtension(value.key_container_extension, 'key_container_extension', 'the key container')
  if (problem !== undefined) return wrong(problem)
  const keys: QkdKey[] = []
  for (const [index, item] of (value.keys as unknown[]).entries()) {
    const where = `key ${index}`
    if (!isJsonObject(item)) return wrong(`${where} of the key container is not an object`)
    if (!isKeyId(item.key_ID)) return wrong(`${where}'s key_ID is ${item.key_ID === undefined ? 'missing' : 'not a UUID'}`)
    if (typeof item.key !== 'string') return wrong(`${where}'s key is ${item.key === undefined ? 'missing' : 'not a string'}`)
    const bytes = decodeBase64(item.key)
    if (bytes === undefined || bytes.byteLength === 0) return wrong(`${where}'s key is not base64`)
    const extension = checkExtension(item.key_ID_extension, 'key_ID_extension', where) ?? checkExtension(item.key_extension, 'key_extension', where)
    if (extension !== undefined) return wrong(extension)
    const key: QkdKey = { keyId: item.key_ID, key: bytes }
    if (item.key_ID_extension !== undefined) key.keyIdExtension = item.key_ID_extension
    if (item.key_extension !== undefined) key.keyExtension = item.key_extension
    keys.push(key)
  }
  const container: KeyContainer = { keys }
  if (value.key_container_extension !== undefined) container.extension = value.key_container_extension
  return ok(container)
}

/** Error (§6.5), leniently: the message and details when they have their types, else nothing. */
export function readErrorBody(value: unknown): { message?: string; details?: Record<string, unknown>[] } {
  if (!isJsonObject(value)) return {}
  const error: { message?: string; details?: Record<string, unknown>[] } = {}
  if (typeof value.message === 'string') error.message = value.message
  if (Array.isArray(value.details) && value.details.every(isJsonObject)) error.details = value.details
  return error
}

/** /api/v1/keys/{SAE_ID}/{method}, the SAE ID URL-encoded (§5.2–5.4). */
export function kmePath(saeId: string, method: KmeMethod): string {
  return `${KME_API_PREFIX}/${encodeURIComponent(saeId)}/${method}`
}
