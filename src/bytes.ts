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

/**
 * Whether the view's memory was transferred away (to a Worker, by structuredClone): its ArrayBuffer is
 * detached and the view reads as empty, so only an empty view is asked (Node 20 has no buffer.detached;
 * a detached buffer refuses a new view).
 */
export function isDetached(data: ArrayBufferView): boolean {
  if (data.byteLength !== 0) return false
  try {
    new Uint8Array(data.buffer)
    return false
  } catch {
    return true
  }
}

/** The error for a detached view handed over to be sent: its bytes are gone, and nothing is sent. */
export function detachedDataError(): VolleyTypeError {
  return new VolleyTypeError(
    'ERR_INVALID_ARG_VALUE',
    'The "data" argument is a view of a detached ArrayBuffer (transferred to a Worker or by structuredClone): its bytes are gone',
  )
}
