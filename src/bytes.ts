// Copies of bytes a caller hands over and may change once the call returns.

/**
 * The bytes, copied into memory of their own. Not data.slice(): on a Node Buffer that is a view of the same
 * memory (Buffer's slice() is subarray()), so a caller reusing its Buffer would change what was queued.
 */
export function copyBytes(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(data)
}
