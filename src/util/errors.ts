// Errors with Node-style codes. Each class matches the built-in error type Node itself would use.
import { getSystemErrorName } from 'node:util'

/** The codes of VolleyTypeError: a value of the wrong type, or one that is not among those allowed. */
export type VolleyTypeErrorCode = 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE' | 'ERR_INVALID_CONNECT_TOKEN' | 'ERR_ILLEGAL_CONSTRUCTOR' | 'ERR_INVALID_RETURN_VALUE'

/** The codes of VolleyRangeError: a number or a size out of range. */
export type VolleyRangeErrorCode =
  | 'ERR_OUT_OF_RANGE'
  | 'ERR_SOCKET_BAD_PORT'
  | 'ERR_DATAGRAM_TOO_LARGE'
  | 'ERR_PAYLOAD_SIZE'
  | 'ERR_MESSAGE_TOO_LARGE'
  | 'ERR_NO_SUCH_CHANNEL'

/** The codes a ConnectError takes: how an attempt ended (the state table of docs/connections.md). */
export type ConnectErrorCode =
  | 'ERR_CONNECT_TOKEN_EXPIRED'
  | 'ERR_INVALID_CONNECT_TOKEN'
  | 'ERR_CONNECTION_DENIED'
  | 'ERR_CONNECTION_REQUEST_TIMED_OUT'
  | 'ERR_CONNECTION_RESPONSE_TIMED_OUT'
  | 'ERR_CONNECTION_TIMED_OUT'
  | 'ERR_CONNECTION_CLOSED'
  | 'ERR_CHANNELS_MISMATCH'
  | 'ABORT_ERR'

/**
 * The codes of the session protocols' errors (volley/sessions): a request that timed out, a connection that
 * ended under it or was found dead, a device's refusal, a stream frame out of bounds, a resumable session
 * that expired, was refused or closed, a response no longer held, an agent sync closed or its file in use, a
 * key sync that timed out, was refused, got no key from its KME, was busy or closed, or whose key store failed.
 * @inline
 */
export type SessionErrorCode =
  | 'ERR_REQUEST_TIMED_OUT'
  | 'ERR_OUTCOME_UNKNOWN'
  | 'ERR_MASH_STATUS'
  | 'ERR_FRAME_SIZE'
  | 'ERR_KEEPALIVE_TIMED_OUT'
  | 'ERR_INVALID_STATE'
  | 'ERR_SEND_BACKLOG_FULL'
  | 'ERR_SESSION_EXPIRED'
  | 'ERR_SESSION_REJECTED'
  | 'ERR_SESSION_CLOSED'
  | 'ERR_RESPONSE_EVICTED'
  | 'ERR_SYNC_CLOSED'
  | 'ERR_SYNC_FILE_BUSY'
  | 'ERR_KEYSYNC_TIMEOUT'
  | 'ERR_KEYSYNC_REJECTED'
  | 'ERR_KEYSYNC_KME'
  | 'ERR_KEYSYNC_BUSY'
  | 'ERR_KEYSYNC_CLOSED'
  | 'ERR_KEYSYNC_STORE'

/**
 * The codes of KmeError, a KmeClient's request to an ETSI GS QKD 014 KME that failed: refused (400, 401),
 * unavailable (503 or no connection, after the retries), timed out, answered with what the specification
 * does not allow, a TLS handshake that failed (a certificate either side refused), a client closed, aborted.
 */
export type KmeErrorCode =
  | 'ERR_KME_BAD_REQUEST'
  | 'ERR_KME_UNAUTHORIZED'
  | 'ERR_KME_UNAVAILABLE'
  | 'ERR_KME_TIMEOUT'
  | 'ERR_KME_RESPONSE'
  | 'ERR_KME_TLS'
  | 'ERR_KME_CLOSED'
  | 'ABORT_ERR'

/** The codes of VolleyError: a call in the wrong state, an ended connection or attempt, the addon. */
export type VolleyStateErrorCode =
  | ConnectErrorCode
  | SessionErrorCode
  | KmeErrorCode
  | 'ERR_SOCKET_CLOSED'
  | 'ERR_SOCKET_ALREADY_BOUND'
  | 'ERR_SOCKET_NOT_BOUND'
  | 'ERR_PEER_DISCONNECTED'
  | 'ERR_SERVER_NOT_RUNNING'
  | 'ERR_SERVER_RUNNING'
  | 'ERR_CLIENT_NOT_CONNECTED'
  | 'ERR_CLIENT_BUSY'
  | 'ERR_CLIENT_CLOSED'
  | 'ERR_SERVER_CLOSED'
  | 'ERR_ADDON_NOT_FOUND'
  | 'ERR_ADDON_MISMATCH'
  | 'ERR_FALLBACK_UNSUPPORTED'
  | 'ERR_CORES_NOT_FOUND'
  | 'ERR_CRYPTO_UNAVAILABLE'

/** Every code of volley's own errors (isVolleyError() narrows to them). */
export type VolleyErrorCode = VolleyTypeErrorCode | VolleyRangeErrorCode | VolleyStateErrorCode

function named<T extends Error>(error: T, code: string): T & { code: string } {
  Object.defineProperty(error, 'code', { value: code, enumerable: true, writable: true, configurable: true })
  return error as T & { code: string }
}

/**
 * A TypeError with a code (VolleyTypeErrorCode): an argument or an option of the wrong type, or a value not
 * among those allowed. Its name is 'TypeError', as Node's own.
 */
export class VolleyTypeError extends TypeError {
  declare readonly code: VolleyTypeErrorCode
  constructor(code: VolleyTypeErrorCode, message: string) {
    super(message)
    this.name = 'TypeError'
    named(this, code)
  }
}

/** A RangeError with a code (VolleyRangeErrorCode): a number or a size out of range. Its name is 'RangeError'. */
export class VolleyRangeError extends RangeError {
  declare readonly code: VolleyRangeErrorCode
  constructor(code: VolleyRangeErrorCode, message: string) {
    super(message)
    this.name = 'RangeError'
    named(this, code)
  }
}

// ES2022's ErrorOptions, spelled out so that the declarations need no ES2022 lib.
/** A VolleyError's options: `cause`, the error it was caused by (as Error's own `cause` option). */
export interface VolleyErrorOptions {
  cause?: unknown
}

/**
 * An Error with a code (VolleyStateErrorCode): a call in the wrong state, a connection or attempt that
 * ended, an addon that does not load. Its name is 'Error', or 'AbortError' with code ABORT_ERR, as Node's own.
 */
export class VolleyError extends Error {
  declare readonly code: VolleyStateErrorCode
  constructor(code: VolleyStateErrorCode, message: string, options?: VolleyErrorOptions) {
    super(message, options)
    // An aborted operation has the name and code of Node's own (AbortError, ABORT_ERR), so that checks
    // written for them hold.
    this.name = code === 'ABORT_ERR' ? 'AbortError' : 'Error'
    named(this, code)
  }
}

/** What a KME answered, as a KmeError carries it. */
export interface KmeErrorDetail {
  /** The HTTP status of the KME's answer; undefined when there was none (a timeout, no connection, TLS). */
  status?: number | undefined
  /** The message of the KME's error body (§6.5), when it sent one. */
  kmeMessage?: string | undefined
  /** The details of the KME's error body, when it sent them. */
  details?: Record<string, unknown>[] | undefined
}

/** A KmeClient request that failed (the codes of KmeErrorCode). */
export class KmeError extends VolleyError {
  declare readonly code: KmeErrorCode
  /** The HTTP status of the KME's answer; undefined when there was none. */
  readonly status: number | undefined
  /** The message of the KME's error body (§6.5), when it sent one (the error's own message quotes it). */
  readonly kmeMessage: string | undefined
  /** The details of the KME's error body, when it sent them. */
  readonly details: Record<string, unknown>[] | undefined
  constructor(code: KmeErrorCode, message: string, detail: KmeErrorDetail = {}, options?: VolleyErrorOptions) {
    super(code, message, options)
    this.status = detail.status
    this.kmeMessage = detail.kmeMessage
    this.details = detail.details
  }
}

/**
 * Whether an error is one volley made, whichever of its three classes (they extend Error, TypeError and
 * RangeError, as Node's own errors do, so they share no class of their own): then `code` is a
 * VolleyErrorCode. System errors (EADDRINUSE, ...) are not.
 */
export function isVolleyError(error: unknown): error is VolleyError | VolleyTypeError | VolleyRangeError {
  return error instanceof VolleyError || error instanceof VolleyTypeError || error instanceof VolleyRangeError
}

/**
 * An event handler threw while volley delivered events: the error surfaces as an uncaught exception once the
 * delivery is done (so that other peers and sockets still get theirs), each error on its own, as a throw
 * from a node emitter would.
 */
export function surfaceLater(error: unknown): void {
  process.nextTick(() => {
    throw error
  })
}

/** ABORT_ERR for an operation an AbortSignal ended; the signal's reason is the cause. */
export function abortedError(message: string, signal: AbortSignal | undefined): VolleyError {
  return new VolleyError('ABORT_ERR', message, { cause: signal?.reason })
}

/**
 * Throws ERR_INVALID_ARG_TYPE unless the value is absent or an AbortSignal: by its shape, as Node checks
 * one, so that a signal of another realm (a vm context, a test environment's DOM) or a polyfill's serves.
 */
export function checkSignal(signal: unknown): asserts signal is AbortSignal | undefined {
  if (signal === undefined) return
  const candidate = signal as Partial<AbortSignal> | null
  if (typeof signal !== 'object' || candidate === null || typeof candidate.aborted !== 'boolean' || typeof candidate.addEventListener !== 'function' || typeof candidate.removeEventListener !== 'function') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "signal" option must be an AbortSignal. Received ${describe(signal)}`)
  }
}

/**
 * What a promise waiting on `signal` settles with: resolve and reject that also stop listening for the abort,
 * and onAbort listening for it until then.
 */
export function settleUnlistening(
  signal: AbortSignal | undefined,
  onAbort: () => void,
  resolve: () => void,
  reject: (error: Error) => void,
): { resolve: () => void; reject: (error: Error) => void } {
  signal?.addEventListener('abort', onAbort, { once: true })
  return {
    resolve: () => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    },
    reject: (error: Error) => {
      signal?.removeEventListener('abort', onAbort)
      reject(error)
    },
  }
}

/** An error from a system call, shaped like Node's own (code, errno, syscall, address, port). */
export interface SystemError extends Error {
  code: string
  errno: number
  syscall: string
  address?: string
  port?: number
}

export function systemError(errno: number, syscall: string, detail?: { address?: string; port?: number; count?: number }): SystemError {
  const code = errnoName(errno)
  let where = ''
  if (detail?.address !== undefined) where = ` ${detail.address}${detail.port !== undefined ? `:${detail.port}` : ''}`
  const count = detail?.count !== undefined && detail.count > 1 ? ` (${detail.count} datagrams)` : ''
  const error = new Error(`${syscall} ${code}${where}${count}`) as SystemError
  named(error, code)
  error.errno = errno
  error.syscall = syscall
  if (detail?.address !== undefined) error.address = detail.address
  if (detail?.port !== undefined) error.port = detail.port
  return error
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(errno)
  } catch {
    return `Unknown system error ${errno}`
  }
}

/** Turns an error thrown by the addon ({ errno, syscall }) into a Node-style system error. */
export function fromNativeError(error: unknown, detail?: { address?: string; port?: number }): Error {
  if (error instanceof Error && typeof (error as { errno?: unknown }).errno === 'number') {
    const native = error as Error & { errno: number; syscall?: string }
    return systemError(native.errno, native.syscall ?? 'unknown', detail)
  }
  return error instanceof Error ? error : new Error(String(error))
}

export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return `type string ('${value.length > 40 ? `${value.slice(0, 40)}…` : value}')`
  if (ArrayBuffer.isView(value)) {
    let length: number | undefined
    try {
      length = value.byteLength
    } catch {} // a DataView of a detached (or shrunk) buffer throws
    return `an instance of ${value.constructor.name} ${length === undefined ? 'whose bytes are gone (its buffer detached)' : `of ${length} bytes`}`
  }
  if (Array.isArray(value)) return `an array of ${value.length} items`
  // generateKey() and generateConnectToken() return promises: the likely slip is a missing await.
  if (value instanceof Promise) return 'an instance of Promise (missing an await?)'
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`
  if (typeof value === 'function') return 'a function'
  return `type ${typeof value} (${String(value)})`
}
