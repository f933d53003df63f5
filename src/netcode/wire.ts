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
    const value = this.bytes.slice(this.offset, this.offset + n)
    this.offset += n
    return value
  }
}
