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
 * Whether the view's bytes are gone: its ArrayBuffer was transferred away (to a Worker, by structuredClone),
 * or resized to end before the view does. A typed array then reads as empty, so only an empty one is asked
 * (Node 20 has no buffer.detached): copying it throws. A DataView's byteLength throws.
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
    new Uint8Array(data as Uint8Array)
    return false
  } catch {
    return true
  }
}

/** The error for a view whose bytes are gone (isDetached), handed over as `what`: nothing is done with it. */
export function detachedDataError(what = 'The "data" argument'): VolleyTypeError {
  return new VolleyTypeError(
    'ERR_INVALID_ARG_VALUE',
    `${what} is a view of a detached ArrayBuffer (transferred to a Worker or by structuredClone), or of one resized to end before it: its bytes are gone`,
  )
}
