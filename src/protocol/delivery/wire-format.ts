// The delivery layer's packet format (native/protocol/delivery/wire_format.h has the whole grammar): the
// constants both sides share, and a reader and a writer of its frames. Varints are LEB128 up to 2^53 − 1,
// the integers JavaScript holds exactly; the native parser refuses larger ones too, so both read every
// packet alike.

export const packetMarker = 0xd1
export const Frame = { ack: 0x01, ping: 0x02, pong: 0x03, probe: 0x04, settings: 0x05, message: 0x10, fragment: 0x11 } as const

/** The largest delivery packet: the netcode payload limit. */
export const maxPacketBytes = 1200
/** Messages up to this size travel whole; larger ones in fragments of exactly this size (the last one less). */
export const fragmentBytes = 1100
/** What a SETTINGS frame may say (the options' own bounds). */
export const maxMessageBytesLimit = 2 ** 30
export const maxChannels = 255
/** Ranges in one ACK frame, newest first; older ones are left out (their packets were acked before). */
export const maxAckRanges = 32

export const ChannelModeCode = { reliable: 1, unreliable: 2, sequenced: 3 } as const
export type ChannelModeCode = (typeof ChannelModeCode)[keyof typeof ChannelModeCode]

export const fragmentCount = (messageBytes: number): number => Math.ceil(messageBytes / fragmentBytes)

/** Bytes a varint of `value` takes. */
export function varintSize(value: number): number {
  let size = 1
  while (value >= 0x80) {
    value = Math.floor(value / 128)
    size++
  }
  return size
}

/**
 * Reads frames over a span. A read past the end, or a varint past 2^53 − 1, sets `failed` rather than
 * throwing (as native/protocol/netcode/wire.h's reader): a parser checks once at the end, and a hostile packet costs
 * no exception.
 */
export class FrameReader {
  failed = false
  offset: number
  #bytes: Uint8Array
  #end: number

  constructor(bytes: Uint8Array, start = 0, end = bytes.byteLength) {
    this.#bytes = bytes
    this.offset = start
    this.#end = end
  }

  /** Reads `bytes` from `start` on, as a new reader would. */
  reset(bytes: Uint8Array, start: number, end = bytes.byteLength): this {
    this.#bytes = bytes
    this.offset = start
    this.#end = end
    this.failed = false
    return this
  }

  get remaining(): number {
    return this.failed ? 0 : this.#end - this.offset
  }

  u8(): number {
    if (this.failed || this.offset >= this.#end) {
      this.failed = true
      return 0
    }
    return this.#bytes[this.offset++]!
  }

  varint(): number {
    let value = 0
    for (let scale = 1, count = 0; count < 8; count++, scale *= 128) {
      if (this.failed || this.offset >= this.#end) break
      const byte = this.#bytes[this.offset++]!
      value += (byte & 0x7f) * scale
      if (byte < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) break
        return value
      }
    }
    this.failed = true
    return 0
  }

  /** Skips `count` bytes; returns where they start (-1, failed, when they are not all there). */
  skip(count: number): number {
    if (this.failed || count > this.#end - this.offset) {
      this.failed = true
      return -1
    }
    const at = this.offset
    this.offset += count
    return at
  }
}

/** Writes frames into a buffer from `offset` on; callers check that a frame fits (varintSize) before writing it. */
export class FrameWriter {
  offset = 0
  constructor(readonly bytes: Uint8Array) {}

  u8(value: number): void {
    this.bytes[this.offset++] = value
  }

  varint(value: number): void {
    while (value >= 0x80) {
      this.bytes[this.offset++] = (value % 128) | 0x80
      value = Math.floor(value / 128)
    }
    this.bytes[this.offset++] = value
  }

  copy(source: Uint8Array, start: number, end: number): void {
    this.bytes.set(start === 0 && end === source.byteLength ? source : source.subarray(start, end), this.offset)
    this.offset += end - start
  }
}
