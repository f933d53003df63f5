// Little-endian readers and writers over fixed buffers. Every read is bounds-checked: a short buffer
// raises WireError, which parsers turn into "malformed".
export class WireError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'WireError'
  }
}

/** A position in a fixed buffer, with the bounds check both directions share. */
class Cursor {
  readonly bytes: Uint8Array
  protected readonly view: DataView
  offset = 0

  constructor(bytes: Uint8Array) {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  protected need(n: number, what: string): void {
    if (this.offset + n > this.bytes.byteLength) throw new WireError(`${what} of ${n} bytes past the end at ${this.offset}`)
  }
}

export class Writer extends Cursor {
  u8(value: number): this {
    this.need(1, 'write')
    this.view.setUint8(this.offset, value)
    this.offset += 1
    return this
  }

  u16(value: number): this {
    this.need(2, 'write')
    this.view.setUint16(this.offset, value, true)
    this.offset += 2
    return this
  }

  u32(value: number): this {
    this.need(4, 'write')
    this.view.setUint32(this.offset, value >>> 0, true)
    this.offset += 4
    return this
  }

  u64(value: bigint): this {
    this.need(8, 'write')
    this.view.setBigUint64(this.offset, value, true)
    this.offset += 8
    return this
  }

  raw(data: Uint8Array): this {
    this.need(data.byteLength, 'write')
    this.bytes.set(data, this.offset)
    this.offset += data.byteLength
    return this
  }
}

export class Reader extends Cursor {
  u8(): number {
    this.need(1, 'read')
    return this.view.getUint8(this.offset++)
  }

  u16(): number {
    this.need(2, 'read')
    const value = this.view.getUint16(this.offset, true)
    this.offset += 2
    return value
  }

  u32(): number {
    this.need(4, 'read')
    const value = this.view.getUint32(this.offset, true)
    this.offset += 4
    return value
  }

  i32(): number {
    this.need(4, 'read')
    const value = this.view.getInt32(this.offset, true)
    this.offset += 4
    return value
  }

  u64(): bigint {
    this.need(8, 'read')
    const value = this.view.getBigUint64(this.offset, true)
    this.offset += 8
    return value
  }

  raw(n: number): Uint8Array {
    this.need(n, 'read')
    // A copy, as a plain Uint8Array: a Buffer's slice() would be a view into the caller's (pooled) memory.
    const value = new Uint8Array(this.bytes.subarray(this.offset, this.offset + n))
    this.offset += n
    return value
  }
}

/** The 12-byte nonce of netcode's ChaCha20-Poly1305-IETF uses: 4 zero bytes, then the sequence little-endian. */
export function sequenceNonce(sequence: bigint): Uint8Array {
  const nonce = new Uint8Array(12)
  // Two BigInt operations, not a DataView per call: this runs for every packet sealed or opened.
  const low = Number(sequence & 0xffff_ffffn)
  const high = Number((sequence >> 32n) & 0xffff_ffffn)
  for (let i = 0; i < 4; i++) {
    nonce[4 + i] = (low >>> (8 * i)) & 0xff
    nonce[8 + i] = (high >>> (8 * i)) & 0xff
  }
  return nonce
}

/** Byte-wise equality (for public fields such as the version info; not constant-time). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}
