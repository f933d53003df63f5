// An SAE's client of an ETSI GS QKD 014 V1.1.1 KME: Get status, Get key (enc_keys) and Get key with key IDs
// (dec_keys) over HTTPS with mutual TLS (node:https, a keep-alive agent). Every answer is checked against
// the specification's data formats before it is returned; every failure is a KmeError with a code.
import { setMaxListeners } from 'node:events'
import https from 'node:https'
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { KmeError, type KmeErrorCode, VolleyRangeError, VolleyTypeError, checkSignal, describe } from '../../util/errors.ts'
import { checkOptions, integerOption, uint8ArrayOf } from '../../util/options.ts'
import { Backoff } from '../backoff.ts'
import {
  type KeyContainer,
  type KeyIdsBody,
  type KeyRequestBody,
  type KmeStatus,
  checkKeyContainer,
  checkStatus,
  isJsonContentType,
  isJsonObject,
  isKeyId,
  kmePath,
  parseJsonBody,
  readErrorBody,
} from './kme-wire.ts'

export type { KeyContainer, KmeStatus, QkdKey } from './kme-wire.ts'

export interface KmeClientOptions {
  /** The KME's base URL, https://host:port (a path prefix is kept: https://host/prefix/api/v1/keys/…). */
  url: string
  /** This SAE's client certificate (PEM), whose identity the KME reads its SAE ID from, and its private key. */
  cert: string | Uint8Array
  key: string | Uint8Array
  /** The CA (PEM) the KME's certificate must chain to: the only CA trusted, not the system's. */
  ca: string | Uint8Array
  /** How long one attempt may take, connection to the last byte of the answer, ms (default 10,000). */
  timeoutMs?: number | undefined
  /**
   * How many times a request is tried again after a 503 or a connection that failed before any answer
   * (default 3), after a growing delay. Get key and Get key with key IDs are tried again after a failed
   * connection only when their request cannot have reached the KME (not all of it sent).
   */
  retries?: number | undefined
  /** The first delay before a retry, ms (default 250); each next one doubles, plus up to 25 % jitter. */
  retryDelayMs?: number | undefined
  /** The largest answer body taken, bytes (default 4 MiB); a larger one fails with ERR_KME_RESPONSE. */
  maxResponseBytes?: number | undefined
}

/** A Get key request (§6.2). */
export interface GetKeysRequest {
  /** How many keys (default: the KME's, 1). */
  number?: number | undefined
  /** The size of each key, bits, a multiple of 8 (default: the KME's key_size). */
  size?: number | undefined
  /** More slave SAEs to share the same keys with (needs the KME's max_SAE_ID_count). */
  additionalSlaveSaeIds?: readonly string[] | undefined
  /** Extension parameters the KME must handle (or refuse the request), and ones it may ignore. */
  extensionMandatory?: readonly Record<string, unknown>[] | undefined
  extensionOptional?: readonly Record<string, unknown>[] | undefined
  /** POST (the default) or GET, which only number and size go with (as URL parameters). */
  method?: 'GET' | 'POST' | undefined
  signal?: AbortSignal | undefined
}

/** The options of a Get key with key IDs. */
export interface GetKeysWithIdsOptions {
  /** POST (the default) or GET, which takes a single key ID (?key_ID=). */
  method?: 'GET' | 'POST' | undefined
  signal?: AbortSignal | undefined
}

const clientOptionNames: ReadonlySet<string> = new Set(['url', 'cert', 'key', 'ca', 'timeoutMs', 'retries', 'retryDelayMs', 'maxResponseBytes'])
const getKeysOptionNames: ReadonlySet<string> = new Set(['number', 'size', 'additionalSlaveSaeIds', 'extensionMandatory', 'extensionOptional', 'method', 'signal'])
const getKeysWithIdsOptionNames: ReadonlySet<string> = new Set(['method', 'signal'])
const statusOptionNames: ReadonlySet<string> = new Set(['signal'])

/** The most a timer waits (2^31 - 1 ms). */
const maxTimerMs = 2 ** 31 - 1
/** The longest SAE ID taken: a bound on the URL (the specification leaves the format to the network). */
const maxSaeIdLength = 1024
/** The most key IDs one Get key with key IDs names, and keys one Get key asks for. */
const maxKeysPerRequest = 1_000_000

/**
 * Codes of a connection that failed before any answer and may well succeed if tried again (the KME
 * restarting, a keep-alive connection it had closed). Others (a name that does not resolve, TLS) are final.
 * Of a request that takes keys, only one not all sent is tried again: see Call.
 */
const retryableCodes: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ECONNABORTED'])

/**
 * How long a kept-alive connection may idle before the client closes it, ms: below the 5 s of node's HTTP
 * server (and of many others), so that the client does not send a request on a connection the KME is
 * closing at that moment (a request that then failed after it was sent is not tried again, if it takes keys).
 */
const idleSocketMs = 4000

/** OpenSSL's certificate verification results, as node names them: the KME's certificate was refused. */
const certificateCodes: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
])

/** Whether a socket error is the TLS handshake failing: a certificate refused by either side, or no common ground. */
function isTlsFailure(code: string | undefined): boolean {
  return code !== undefined && (certificateCodes.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code === 'EPROTO')
}

/** The names of the statuses a KME answers with (§5.2–5.4), for messages. */
const statusNames: Record<number, string> = { 400: 'bad request', 401: 'unauthorized', 503: 'unavailable' }

/** What one attempt got: a whole answer. */
interface Answer {
  status: number
  contentType: string | undefined
  retryAfter: string | undefined
  body: Buffer
}

/**
 * A connection that failed before any answer (system or TLS error), for the retry loop to judge.
 * sent: the whole request was handed to the connection (its 'finish'), so the KME may have carried it out;
 * until then it cannot have (it has no whole request), and every connect error comes before.
 * refusedAtHandshake: a new connection the KME ended without an answer during its TLS handshake, or right
 * after it, as node's TLS server does to a client certificate it does not trust (no TLS alert: the client
 * sees a reset, or the socket end). In TLS 1.3 the client's side of the handshake ends first and the request
 * goes with its last message, so a request sent does not tell. What does: the handshake resumed a session
 * (the KME took this certificate before), or a session ticket came after it (node's server sends them a
 * turn later, and a refusing one never). A KME that drops a connection the moment it reads the request is
 * taken for a refusal.
 */
class ConnectionFailure {
  constructor(
    readonly error: Error & { code?: string },
    readonly sent: boolean,
    readonly refusedAtHandshake: boolean,
  ) {}
}

/**
 * One API call: its name, for messages; and, for one that takes keys, what the KME may have done when a
 * connection failed after the request was sent (it is then not tried again). Get status takes nothing: it
 * is tried again after any failure a retry may mend.
 */
interface Call {
  what: string
  ifCarriedOut?: string | undefined
}

const statusCall: Call = { what: 'Get status' }
const getKeysCall: Call = { what: 'Get key', ifCarriedOut: 'keys may have been taken for it, and a second request would take more' }
const getKeysWithIdsCall: Call = {
  what: 'Get key with key IDs',
  ifCarriedOut: 'the keys may have been handed out and are then gone from the KME, which would refuse a second request (400)',
}

function pemOption(name: string, value: unknown): string | Buffer {
  if (typeof value === 'string') {
    if (value.length === 0) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "${name}" option is empty: give PEM text`)
    return value
  }
  const bytes = uint8ArrayOf(value)
  if (bytes === undefined) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be a string or a Buffer (PEM). Received ${describe(value)}`)
  if (bytes.byteLength === 0) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "${name}" option is empty: give PEM text`)
  return Buffer.from(bytes) // a copy: the caller may wipe its own
}

function saeIdArgument(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be of type string. Received ${describe(value)}`)
  if (value.length === 0 || value.length > maxSaeIdLength) {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "${name}" argument must be an SAE ID of 1 to ${maxSaeIdLength} characters. Received ${describe(value)}`)
  }
  return value
}

function methodOption(value: unknown): 'GET' | 'POST' {
  if (value === undefined) return 'POST'
  if (value !== 'GET' && value !== 'POST') throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "method" option must be 'GET' or 'POST'. Received ${describe(value)}`)
  return value
}

/** An array of extension parameters (§6.2): objects of name/value pairs that JSON can carry. */
function extensionsOption(name: string, value: unknown): Record<string, unknown>[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every(isJsonObject)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be an array of objects (name/value pairs). Received ${describe(value)}`)
  }
  try {
    JSON.stringify(value)
  } catch (error) {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "${name}" option must be JSON: ${(error as Error).message}`)
  }
  return value as Record<string, unknown>[]
}

/** "1 key", "3 keys". */
function keyCount(count: number): string {
  return `${count} key${count === 1 ? '' : 's'}`
}

function idsEqual(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase()
}

/**
 * A client of one KME for one SAE (the identity of its certificate). Requests run concurrently over a
 * keep-alive connection pool; close() ends it.
 */
export class KmeClient {
  readonly #agent: https.Agent
  readonly #hostname: string
  readonly #port: number
  /** The base URL's path, without its last slash: what the API's paths go under. */
  readonly #basePath: string
  readonly #timeoutMs: number
  readonly #retries: number
  readonly #retryDelayMs: number
  readonly #maxResponseBytes: number
  /** Aborted by close(): ends requests in flight and retries waiting. */
  readonly #closing = new AbortController()

  constructor(options: KmeClientOptions) {
    checkOptions('KmeClient options', options, clientOptionNames)
    if (typeof options.url !== 'string') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "url" option must be of type string. Received ${describe(options.url)}`)
    let url: URL
    try {
      url = new URL(options.url)
    } catch {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "url" option must be a URL such as https://kme.example:443. Received ${describe(options.url)}`)
    }
    if (url.protocol !== 'https:') throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "url" option must be an https: URL (ETSI GS QKD 014 §5.1). Received ${describe(options.url)}`)
    if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "url" option must be the KME's base URL, with no credentials, query or fragment. Received ${describe(options.url)}`)
    }
    this.#hostname = url.hostname.replace(/^\[(.*)\]$/, '$1')
    this.#port = url.port === '' ? 443 : Number(url.port)
    this.#basePath = url.pathname.replace(/\/+$/, '')
    const cert = pemOption('cert', options.cert)
    const key = pemOption('key', options.key)
    const ca = pemOption('ca', options.ca)
    this.#timeoutMs = integerOption('timeoutMs', options.timeoutMs, 10_000, 1, maxTimerMs)
    this.#retries = integerOption('retries', options.retries, 3, 0, 100)
    this.#retryDelayMs = integerOption('retryDelayMs', options.retryDelayMs, 250, 0, 600_000)
    this.#maxResponseBytes = integerOption('maxResponseBytes', options.maxResponseBytes, 4 << 20, 1024, 1 << 30)
    // Only this CA is trusted, and the KME's name is checked against its certificate (the default
    // checkServerIdentity): "SAE shall verify the validity of a certificate the KME possesses" (§5.1).
    // timeout: how long a kept-alive connection idles (a server's Keep-Alive hint may shorten it).
    this.#agent = new https.Agent({ keepAlive: true, timeout: idleSocketMs, cert, key, ca, minVersion: 'TLSv1.2', rejectUnauthorized: true })
    // Every request in flight listens to it, as many as the caller runs at once: no leak to warn of.
    setMaxListeners(0, this.#closing.signal)
  }

  /** Get status (§5.2): the KME's figures for keys this SAE (the master) would get for `slaveSaeId`. */
  async status(slaveSaeId: string, options: { signal?: AbortSignal | undefined } = {}): Promise<KmeStatus> {
    const slave = saeIdArgument('slaveSaeId', slaveSaeId)
    checkOptions('status options', options, statusOptionNames)
    checkSignal(options.signal)
    const value = await this.#request(statusCall, 'GET', kmePath(slave, 'status'), undefined, options.signal)
    const status = checkStatus(value)
    if (!status.ok) throw new KmeError('ERR_KME_RESPONSE', `Get status: the KME's answer is malformed: ${status.problem}`, { status: 200 })
    return status.value
  }

  /**
   * Get key (§5.3): new keys this SAE (the master) shares with `slaveSaeId` (and any additional slaves), who
   * fetch them from their KME with getKeysWithIds() and the key IDs.
   */
  async getKeys(slaveSaeId: string, request: GetKeysRequest = {}): Promise<KeyContainer> {
    const slave = saeIdArgument('slaveSaeId', slaveSaeId)
    checkOptions('getKeys request', request, getKeysOptionNames)
    const number = request.number === undefined ? undefined : integerOption('number', request.number, 1, 1, maxKeysPerRequest)
    let size: number | undefined
    if (request.size !== undefined) {
      size = integerOption('size', request.size, 8, 8, maxTimerMs)
      if (size % 8 !== 0) throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "size" option must be a multiple of 8 (bits). Received ${size}`)
    }
    let additional: string[] | undefined
    if (request.additionalSlaveSaeIds !== undefined) {
      if (!Array.isArray(request.additionalSlaveSaeIds)) {
        throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "additionalSlaveSaeIds" option must be an array of SAE IDs. Received ${describe(request.additionalSlaveSaeIds)}`)
      }
      additional = request.additionalSlaveSaeIds.map((id, index) => saeIdArgument(`additionalSlaveSaeIds[${index}]`, id))
    }
    const mandatory = extensionsOption('extensionMandatory', request.extensionMandatory)
    const optional = extensionsOption('extensionOptional', request.extensionOptional)
    const method = methodOption(request.method)
    checkSignal(request.signal)
    let path = kmePath(slave, 'enc_keys')
    let body: KeyRequestBody | undefined
    if (method === 'GET') {
      if (additional !== undefined || mandatory !== undefined || optional !== undefined) {
        throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', 'A Get key by GET takes only "number" and "size" (ETSI GS QKD 014 §6.2): use method POST')
      }
      const query = new URLSearchParams()
      if (number !== undefined) query.set('number', String(number))
      if (size !== undefined) query.set('size', String(size))
      if (query.size > 0) path += `?${query}`
    } else {
      body = {}
      if (number !== undefined) body.number = number
      if (size !== undefined) body.size = size
      if (additional !== undefined) body.additional_slave_SAE_IDs = additional
      if (mandatory !== undefined) body.extension_mandatory = mandatory
      if (optional !== undefined) body.extension_optional = optional
    }
    const container = this.#container('Get key', await this.#request(getKeysCall, method, path, body, request.signal))
    const expected = number ?? 1
    if (container.keys.length !== expected) {
      throw new KmeError('ERR_KME_RESPONSE', `Get key: the KME sent ${keyCount(container.keys.length)} for ${expected} asked`, { status: 200 })
    }
    const seen = new Set<string>()
    for (const key of container.keys) {
      if (size !== undefined && key.key.byteLength * 8 !== size) {
        throw new KmeError('ERR_KME_RESPONSE', `Get key: the KME sent a key of ${key.key.byteLength * 8} bits for ${size} asked`, { status: 200 })
      }
      const id = key.keyId.toLowerCase()
      if (seen.has(id)) throw new KmeError('ERR_KME_RESPONSE', `Get key: the KME sent key_ID ${key.keyId} twice`, { status: 200 })
      seen.add(id)
    }
    return container
  }

  /**
   * Get key with key IDs (§5.4): the keys that `masterSaeId` got from Get key naming this SAE as a slave,
   * by their IDs. They leave the KME: a second call for the same IDs is refused.
   */
  async getKeysWithIds(masterSaeId: string, keyIds: readonly string[], options: GetKeysWithIdsOptions = {}): Promise<KeyContainer> {
    const master = saeIdArgument('masterSaeId', masterSaeId)
    if (!Array.isArray(keyIds)) throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "keyIds" argument must be an array of key IDs. Received ${describe(keyIds)}`)
    if (keyIds.length === 0 || keyIds.length > maxKeysPerRequest) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "keyIds" argument must list 1 to ${maxKeysPerRequest} key IDs. Received ${keyIds.length}`)
    }
    const requested = new Set<string>()
    for (const [index, id] of keyIds.entries()) {
      if (!isKeyId(id)) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `keyIds[${index}] must be a key ID, a UUID (ETSI GS QKD 014 §6.4). Received ${describe(id)}`)
      if (requested.has(id.toLowerCase())) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `keyIds lists ${id} twice`)
      requested.add(id.toLowerCase())
    }
    checkOptions('getKeysWithIds options', options, getKeysWithIdsOptionNames)
    const method = methodOption(options.method)
    checkSignal(options.signal)
    let path = kmePath(master, 'dec_keys')
    let body: KeyIdsBody | undefined
    if (method === 'GET') {
      if (keyIds.length !== 1) throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `A Get key with key IDs by GET takes a single key ID (ETSI GS QKD 014 §6.4): use method POST for ${keyIds.length}`)
      path += `?${new URLSearchParams({ key_ID: keyIds[0]! })}`
    } else {
      body = { key_IDs: keyIds.map((id) => ({ key_ID: id })) }
    }
    const container = this.#container('Get key with key IDs', await this.#request(getKeysWithIdsCall, method, path, body, options.signal))
    // Exactly the keys asked for, each once.
    const returned = new Set<string>()
    for (const key of container.keys) {
      const id = key.keyId.toLowerCase()
      if (!requested.has(id)) throw new KmeError('ERR_KME_RESPONSE', `Get key with key IDs: the KME sent key_ID ${key.keyId}, which was not asked for`, { status: 200 })
      if (returned.has(id)) throw new KmeError('ERR_KME_RESPONSE', `Get key with key IDs: the KME sent key_ID ${key.keyId} twice`, { status: 200 })
      returned.add(id)
    }
    if (returned.size !== requested.size) {
      const missing = keyIds.find((id) => !container.keys.some((key) => idsEqual(key.keyId, id)))
      throw new KmeError('ERR_KME_RESPONSE', `Get key with key IDs: the KME sent ${keyCount(returned.size)} for ${requested.size} asked (not ${missing})`, { status: 200 })
    }
    return container
  }

  /** Ends the keep-alive connections; requests in flight and later ones fail with ERR_KME_CLOSED. */
  close(): void {
    if (this.#closing.signal.aborted) return
    this.#closing.abort()
    this.#agent.destroy()
  }

  #container(what: string, value: unknown): KeyContainer {
    const container = checkKeyContainer(value)
    if (!container.ok) throw new KmeError('ERR_KME_RESPONSE', `${what}: the KME's answer is malformed: ${container.problem}`, { status: 200 })
    return container.value
  }

  /** One API call, with its retries: the JSON of a 200 answer, or a KmeError. */
  async #request(call: Call, method: 'GET' | 'POST', path: string, body: object | undefined, signal: AbortSignal | undefined): Promise<unknown> {
    const { what } = call
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8')
    const backoff = new Backoff({ initialMs: Math.max(this.#retryDelayMs, 1), maxMs: Math.max(this.#retryDelayMs, 1) * 16 })
    for (let attempt = 0; ; attempt++) {
      this.#checkOpen(what, signal)
      let answer: Answer
      try {
        answer = await this.#attempt(what, method, path, payload, signal)
      } catch (error) {
        if (!(error instanceof ConnectionFailure)) throw error
        const code = error.error.code
        const because = `${error.error.message}${code === undefined ? '' : ` (${code})`}`
        if (isTlsFailure(code)) {
          throw new KmeError('ERR_KME_TLS', `${what}: the TLS handshake with the KME failed: ${because}`, {}, { cause: error.error })
        }
        if (error.refusedAtHandshake) {
          // In TLS 1.3 the request went with the handshake's last message: the KME cannot have taken it if it
          // refused the certificate, but a KME that took it and dropped the connection at once looks the same.
          const ifNot = error.sent && call.ifCarriedOut !== undefined ? `; if not, it may have carried out the request (${call.ifCarriedOut}): it is not tried again` : ''
          throw new KmeError(
            'ERR_KME_TLS',
            `${what}: the KME ended a new connection at its TLS handshake, without answering (${code ?? error.error.message}): most likely it refused this SAE's certificate (not of a CA it trusts, or of no SAE it knows)${ifNot}`,
            {},
            { cause: error.error },
          )
        }
        // A request that takes keys, once sent, may have been carried out: tried again, it would take more
        // keys (Get key) or find them gone (Get key with key IDs). Said as such, rather than tried again.
        if (error.sent && call.ifCarriedOut !== undefined) {
          throw new KmeError(
            'ERR_KME_UNAVAILABLE',
            `${what}: the connection to the KME failed after the request was sent, before any answer (${because}): the KME may have carried it out; ${call.ifCarriedOut}. It is not tried again`,
            {},
            { cause: error.error },
          )
        }
        if (attempt < this.#retries && code !== undefined && retryableCodes.has(code)) {
          await this.#pause(what, this.#retryDelayMs === 0 ? 0 : backoff.next(), signal)
          continue
        }
        const tries = attempt + 1
        const failed = error.sent ? 'the connection to the KME failed before any answer' : 'no connection to the KME'
        throw new KmeError('ERR_KME_UNAVAILABLE', `${what}: ${failed}${tries > 1 ? ` after ${tries} attempts` : ''}: ${because}`, {}, { cause: error.error })
      }
      if (answer.status === 503 && attempt < this.#retries) {
        let delay = this.#retryDelayMs === 0 ? 0 : backoff.next()
        // Retry-After in seconds, as far as the longest backoff delay.
        const after = answer.retryAfter !== undefined && /^\d+$/.test(answer.retryAfter) ? Number(answer.retryAfter) * 1000 : 0
        delay = Math.max(delay, Math.min(after, this.#retryDelayMs * 16))
        await this.#pause(what, delay, signal)
        continue
      }
      try {
        return this.#interpret(what, answer, attempt + 1)
      } finally {
        answer.body.fill(0) // keys, in base64 (the strings JSON.parse made are V8's, beyond reach)
      }
    }
  }

  /** The JSON of a 200 answer; a KmeError for any other. */
  #interpret(what: string, answer: Answer, tries: number): unknown {
    const { status } = answer
    if (status === 200) {
      if (!isJsonContentType(answer.contentType)) {
        throw new KmeError('ERR_KME_RESPONSE', `${what}: the KME answered with content type ${answer.contentType ?? '(none)'}, not application/json`, { status })
      }
      const json = parseJsonBody(answer.body)
      if (!json.ok) throw new KmeError('ERR_KME_RESPONSE', `${what}: the KME's answer is malformed: ${json.problem}`, { status })
      return json.value
    }
    // An error body (§6.5), if it is one: its message and details, else nothing of it.
    const parsed = isJsonContentType(answer.contentType) ? parseJsonBody(answer.body) : undefined
    const error = parsed?.ok === true ? readErrorBody(parsed.value) : {}
    const code: KmeErrorCode = status === 400 ? 'ERR_KME_BAD_REQUEST' : status === 401 ? 'ERR_KME_UNAUTHORIZED' : status === 503 ? 'ERR_KME_UNAVAILABLE' : 'ERR_KME_RESPONSE'
    const name = statusNames[status] ?? 'unexpected'
    const after = status === 503 && tries > 1 ? ` after ${tries} attempts` : ''
    // The KME's own words, cut to a line's worth in the error's message (kmeMessage keeps them all).
    const quoted = error.message === undefined ? '' : `: ${error.message.length > 300 ? `${error.message.slice(0, 300)}…` : error.message}`
    const message = `${what}: the KME answered ${status} (${name})${after}${quoted}`
    throw new KmeError(code, message, { status, kmeMessage: error.message, details: error.details })
  }

  #checkOpen(what: string, signal: AbortSignal | undefined): void {
    if (this.#closing.signal.aborted) throw new KmeError('ERR_KME_CLOSED', `${what}: the KmeClient is closed`)
    if (signal?.aborted === true) throw new KmeError('ABORT_ERR', `${what}: the request was aborted`, {}, { cause: signal.reason })
  }

  /** Waits before a retry; ends early with ABORT_ERR or ERR_KME_CLOSED. */
  #pause(what: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const end = (error?: Error): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#closing.signal.removeEventListener('abort', onClose)
        if (error === undefined) resolve()
        else reject(error)
      }
      const onAbort = (): void => end(new KmeError('ABORT_ERR', `${what}: the request was aborted`, {}, { cause: signal?.reason }))
      const onClose = (): void => end(new KmeError('ERR_KME_CLOSED', `${what}: the KmeClient was closed`))
      const timer = setTimeout(() => end(), ms)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#closing.signal.addEventListener('abort', onClose, { once: true })
    })
  }

  /**
   * One attempt: the whole answer, or a KmeError (timeout, abort, close, an answer too large or cut short),
   * or a ConnectionFailure for an error before any answer.
   */
  #attempt(what: string, method: 'GET' | 'POST', path: string, payload: Buffer | undefined, signal: AbortSignal | undefined): Promise<Answer> {
    return new Promise((resolve, reject) => {
      let settled = false
      let responded = false
      // What became of a connection this attempt opened (not one kept alive): the TCP connection made, the
      // TLS handshake done (a session resumed, or a ticket come after it: the KME took the certificate); and
      // of the request: all of it sent.
      let newSocket: TLSSocket | undefined
      let connected = false
      let secured = false
      let accepted = false
      let sent = false
      const onConnect = (): void => {
        connected = true
      }
      const onSecure = (): void => {
        secured = true
        if (newSocket?.isSessionReused() === true) accepted = true
      }
      const onTicket = (): void => {
        accepted = true
      }
      // The answer's pieces, wiped once joined or given up (a key container holds keys).
      const chunks: Buffer[] = []
      const headers: Record<string, string | number> = { accept: 'application/json' }
      if (payload !== undefined) {
        headers['content-type'] = 'application/json'
        headers['content-length'] = payload.byteLength
      }
      const request = https.request({ agent: this.#agent, host: this.#hostname, port: this.#port, path: this.#basePath + path, method, headers })
      const cleanUp = (): void => {
        settled = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#closing.signal.removeEventListener('abort', onClose)
        // The socket may serve other requests: this attempt's listeners go (a server without tickets leaves one).
        newSocket?.off('connect', onConnect).off('secureConnect', onSecure).off('session', onTicket)
        for (const chunk of chunks.splice(0)) chunk.fill(0)
      }
      const fail = (error: Error | ConnectionFailure): void => {
        if (settled) return
        cleanUp()
        request.destroy()
        reject(error)
      }
      const onAbort = (): void => fail(new KmeError('ABORT_ERR', `${what}: the request was aborted`, {}, { cause: signal?.reason }))
      const onClose = (): void => fail(new KmeError('ERR_KME_CLOSED', `${what}: the KmeClient was closed`))
      const timer = setTimeout(() => fail(new KmeError('ERR_KME_TIMEOUT', `${what}: the KME did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#closing.signal.addEventListener('abort', onClose, { once: true })
      request.on('socket', (socket: TLSSocket) => {
        if (request.reusedSocket || settled) return
        newSocket = socket
        socket.once('connect', onConnect).once('secureConnect', onSecure).once('session', onTicket)
      })
      // Emitted once the last of the request was handed to the connection: before it, the KME has no whole request.
      request.on('finish', () => {
        sent = true
      })
      request.on('error', (error: Error & { code?: string }) => {
        if (responded) return fail(new KmeError('ERR_KME_RESPONSE', `${what}: the KME's answer was cut short: ${error.message}`, {}, { cause: error }))
        // A reset, or the end ('socket hang up', ECONNRESET too), of a new connection the KME took: during its
        // TLS handshake, or after it with no sign that the KME took the certificate (see ConnectionFailure).
        const ended = error.code === 'ECONNRESET' || error.code === 'EPIPE'
        fail(new ConnectionFailure(error, sent, connected && ended && (!secured || !accepted)))
      })
      request.on('response', (response: IncomingMessage) => {
        responded = true
        const status = response.statusCode ?? 0
        const tooLarge = (): KmeError => new KmeError('ERR_KME_RESPONSE', `${what}: the KME's answer is larger than ${this.#maxResponseBytes} bytes`, { status })
        const declared = response.headers['content-length']
        if (declared !== undefined && Number(declared) > this.#maxResponseBytes) return fail(tooLarge())
        let size = 0
        let ended = false
        response.on('data', (chunk: Buffer) => {
          if (settled) {
            chunk.fill(0) // given up already (too large)
            return
          }
          size += chunk.byteLength
          chunks.push(chunk)
          if (size > this.#maxResponseBytes) fail(tooLarge())
        })
        response.on('end', () => {
          ended = true
          if (settled) return
          const contentType = response.headers['content-type']
          const retryAfter = response.headers['retry-after']
          const body = Buffer.concat(chunks, size)
          cleanUp()
          resolve({ status, contentType, retryAfter, body })
        })
        response.on('error', (error) => fail(new KmeError('ERR_KME_RESPONSE', `${what}: the KME's answer was cut short: ${error.message}`, { status }, { cause: error })))
        response.on('close', () => {
          if (!ended) fail(new KmeError('ERR_KME_RESPONSE', `${what}: the KME's answer was cut short`, { status }))
        })
      })
      request.end(payload)
    })
  }
}
