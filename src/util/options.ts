// Checks of the options objects every constructor takes: one wording and one set of codes for all of them
// (ERR_INVALID_ARG_TYPE for a value of the wrong type, ERR_OUT_OF_RANGE for a number out of its range,
// ERR_INVALID_ARG_VALUE for a name no option has).
import { isAnyArrayBuffer, isUint8Array } from 'node:util/types'
import { VolleyRangeError, VolleyTypeError, describe } from './errors.ts'
import { checkAttached, copyBytes, isDetached, maxUint64 } from './bytes.ts'

/**
 * Throws for an options argument that is not an object, or that names an option not in `known`. An array, a
 * promise (an await missed), bytes or a buffer (an argument out of place) is no options object.
 */
export function checkOptions(what: string, options: unknown, known: ReadonlySet<string>): void {
  const notObject = (): VolleyTypeError => new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The ${what} must be an object. Received ${describe(options)}`)
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw notObject()
  // for…in, not Object.keys(): no array per call (send() checks its options object each time). The other
  // kinds of no options object are asked only of one with no option (a promise, a buffer) or a wrong one (a
  // typed array's indexes): a send() with options pays nothing for them.
  let any = false
  for (const key in options) {
    if (!Object.hasOwn(options, key)) continue
    any = true
    if (!known.has(key)) {
      if (isNoOptionsObject(options)) throw notObject()
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `Unknown option "${key}" in the ${what}. Known options: ${[...known].join(', ')}`)
    }
  }
  if (!any && isNoOptionsObject(options)) throw notObject()
}

/** An object that is no options object, though it names no option of a wrong name: taken, it would be the defaults. */
function isNoOptionsObject(options: object): boolean {
  return options instanceof Promise || ArrayBuffer.isView(options) || isAnyArrayBuffer(options)
}

/** Options once checked and defaulted: each present, none undefined (a caller may pass undefined for "the default"). */
export type Settled<T> = { [K in keyof T]-?: Exclude<T[K], undefined> }

/** The options of a call that takes only an AbortSignal. */
export const signalOnly: ReadonlySet<string> = new Set(['signal'])

/** An integer from min to max, or the fallback when the option is absent. */
export function integerOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be of type number. Received ${describe(value)}`)
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${name}" option must be an integer from ${min} to ${max}. Received ${value}`)
  }
  return value
}

/** A required integer from min to max. */
export function requiredIntegerOption(name: string, value: unknown, min: number, max: number): number {
  if (value === undefined) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option is required: an integer from ${min} to ${max}`)
  }
  return integerOption(name, value, 0, min, max)
}

/** A required 64-bit unsigned integer: a bigint, or a number that is a safe integer. */
export function uint64Option(name: string, value: unknown): bigint {
  if (typeof value !== 'bigint' && typeof value !== 'number') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be a bigint (or a safe integer). Received ${describe(value)}`)
  }
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${name}" option must be an integer from 0 to 2^64 - 1 (a bigint beyond 2^53). Received ${value}`)
  }
  const result = BigInt(value)
  if (result < 0n || result > maxUint64) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${name}" option must fit in 64 bits unsigned. Received ${result}`)
  }
  return result
}

/**
 * `value` as a Uint8Array of this realm, or undefined when it is none. One made in another realm (a vm
 * context, some test environments) fails `instanceof` and libsodium-wrappers' checks: it is viewed anew.
 * Where a Uint8Array is asked for, this is the check (the engines' copies need a real one).
 */
export function uint8ArrayOf(value: unknown): Uint8Array | undefined {
  // isView too: a Proxy of a Uint8Array, or an object on Uint8Array.prototype, passes instanceof and is none.
  if (value instanceof Uint8Array && ArrayBuffer.isView(value)) return value
  if (!isUint8Array(value)) return undefined
  // One whose bytes are gone cannot be viewed anew: as it is, for the caller's check to refuse.
  return isDetached(value) ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
}

/**
 * A required Uint8Array of exactly `length` bytes (a key, a nonce), copied. Its value is never quoted in an error:
 * a key given as its base64 or hex text would be written into the logs, most of it. `kind`: what errors call it,
 * an option (of an options object) or an argument (of a method).
 */
export function bytesOption(name: string, value: unknown, length: number, kind: 'option' | 'argument' = 'option'): Uint8Array {
  const what = `The "${name}" ${kind}`
  const bytes = uint8ArrayOf(value)
  if (bytes === undefined) {
    const received =
      typeof value === 'string'
        ? `type string of ${value.length} characters (decode it first, e.g. Buffer.from(text, 'base64') or Buffer.from(text, 'hex'))`
        : typeof value === 'object' || typeof value === 'function' || value === undefined
          ? describe(value)
          : `type ${typeof value}`
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `${what} must be a Uint8Array of ${length} bytes. Received ${received}`)
  }
  checkAttached(bytes, what)
  if (bytes.byteLength !== length) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `${what} must be ${length} bytes. Received ${bytes.byteLength} bytes`)
  }
  return copyBytes(bytes) // used later (after an await, at listen()): the caller may wipe or reuse its own
}

/** A finite number from min to max (fractions allowed), or the fallback when the option is absent. */
export function numberOption(name: string, value: unknown, fallback: number, min: number, max: number, unit = ''): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be of type number. Received ${describe(value)}`)
  }
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new VolleyRangeError('ERR_OUT_OF_RANGE', `The "${name}" option must be from ${min} to ${max}${unit}. Received ${value}`)
  }
  return value
}

export function booleanOption(name: string, value: unknown): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "${name}" option must be of type boolean. Received ${describe(value)}`)
  }
  return value
}

export function engineOption(value: unknown): 'shared' | 'dedicated' {
  if (value === undefined) return 'shared'
  if (value !== 'shared' && value !== 'dedicated') {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "engine" option must be 'shared' or 'dedicated'. Received ${describe(value)}`)
  }
  return value
}

/** The socket options Server and Client share with createDatagramSocket, validated, with their defaults. */
export interface SocketSettings {
  recvBufferSize: number
  sendBufferSize: number
  coalesceUs: number
  engine: 'shared' | 'dedicated'
}

export const socketOptionNames = ['recvBufferSize', 'sendBufferSize', 'coalesceUs', 'engine'] as const

const maxBufferSize = 1 << 30

export function socketSettings(
  options: { recvBufferSize?: unknown; sendBufferSize?: unknown; coalesceUs?: unknown; engine?: unknown },
  defaultBufferSize: number,
): SocketSettings {
  return {
    // At most 1 GiB: the kernel keeps twice the size in an int, and a process with CAP_NET_ADMIN gets what it asks.
    recvBufferSize: integerOption('recvBufferSize', options.recvBufferSize, defaultBufferSize, 1, maxBufferSize),
    sendBufferSize: integerOption('sendBufferSize', options.sendBufferSize, defaultBufferSize, 1, maxBufferSize),
    coalesceUs: integerOption('coalesceUs', options.coalesceUs, 200, 0, 1_000_000),
    engine: engineOption(options.engine),
  }
}
