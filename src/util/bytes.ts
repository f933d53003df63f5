// Bytes a caller hands over: copies of them (the caller may change its own once the call returns), and
// whether they are there at all.
import { VolleyTypeError } from './errors.ts'

/**
 * The bytes, copied into memory of their own. Not data.slice(): on a Node Buffer that is a view of the same
 * memory (Buffer's slice() is subarray()), so a caller reusing its Buffer would change what was queued.
 */
export function copyBytes(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(data)
}

/** %TypedArray%.prototype.keys: it validates its typed array first, whatever the element type (a copy into a Uint8Array throws for a BigInt64Array). */
const typedArrayKeys = Object.getPrototypeOf(Uint8Array.prototype).keys as (this: ArrayBufferView) => unknown

/**
 * Whether the view's bytes are gone: its ArrayBuffer was transferred away (to a Worker, by structuredClone),
 * or resized to end before the view does. A typed array then reads as empty, so only an empty one is asked
 * (Node 20 has no buffer.detached), and its validation throws. A DataView's byteLength throws.
 */
export function isDetached(data: ArrayBufferView): boolean {
  let length: number
  try {
    length = data.byteLength
  } catch {
    return true
  }
  if (length !== 0 || data instanceof DataView) return false
  try {
    typedArrayKeys.call(data)
    return false
  } catch {
    return true
  }
}

/** A view whose bytes are gone (isDetached), of no one's buffer: it stands for one a caller gave. */
export function goneBytes(): Uint8Array {
  const view = new Uint8Array(0)
  structuredClone(view.buffer, { transfer: [view.buffer] })
  return view
}

/** Throws ERR_INVALID_ARG_VALUE for a view whose bytes are gone (isDetached), handed over as `what`: nothing is done with it. */
export function checkAttached(data: ArrayBufferView, what = 'The "data" argument'): void {
  if (!isDetached(data)) return
  throw new VolleyTypeError(
    'ERR_INVALID_ARG_VALUE',
    `${what} is a view of a detached ArrayBuffer (transferred to a Worker or by structuredClone), or of one resized to end before it: its bytes are gone`,
  )
}

/** The largest unsigned 64-bit integer: the wire's u64 fields, and a uint64 option's bound. */
export const maxUint64 = (1n << 64n) - 1n
