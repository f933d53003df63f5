// Records for JavaScript as the fallback engine writes them: the native engine's layout
// (native/engine/socket_protocol.h), so that Server and Client read either engine's alike.
import type { ServerAddress } from '../protocol/netcode/server-address.ts'
import { SlabView } from './engine.ts'
import { align8, layout } from './layout.ts'

/** A batch of records for JavaScript, in the native layout: u32 length | u8 kind | u8 code | u16 port | u32 peer | u8 family | u8[3] | u8[16] address | data. */
/** A batch's first buffer; it doubles as records need. */
const initialBytes = 4096

export class RecordBatch {
  #bytes = new Uint8Array(initialBytes)
  #view = new DataView(this.#bytes.buffer)
  #end = 0
  count = 0

  /** Appends a record; returns where its data goes in bytes(). */
  add(kind: number, code: number, peer: number, address: ServerAddress | null, data: Uint8Array | null, dataLength = data?.byteLength ?? 0): number {
    const size = align8(layout.peerRecordHeaderSize + dataLength)
    this.#reserve(size)
    const at = this.#end // never written before in this buffer: zero, padding included
    this.#view.setUint32(at, dataLength, true)
    this.#bytes[at + 4] = kind
    this.#bytes[at + 5] = code & 0xff
    this.#view.setUint16(at + 6, address?.port ?? 0, true)
    this.#view.setUint32(at + 8, peer >>> 0, true)
    if (address !== null) {
      this.#bytes[at + 12] = address.family
      this.#bytes.set(address.bytes, at + 16)
    }
    if (data !== null) this.#bytes.set(data, at + layout.peerRecordHeaderSize)
    this.#end = at + size
    this.count++
    return at + layout.peerRecordHeaderSize
  }

  /** Appends `count` records already in the layout (the WebAssembly cores' output). */
  append(records: Uint8Array, count: number): void {
    this.#reserve(records.byteLength)
    this.#bytes.set(records, this.#end)
    this.#end += records.byteLength
    this.count += count
  }

  #reserve(size: number): void {
    if (this.#end + size <= this.#bytes.byteLength) return
    const grown = new Uint8Array(Math.max(this.#bytes.byteLength * 2, this.#end + size))
    grown.set(this.#bytes.subarray(0, this.#end))
    this.#bytes = grown
    this.#view = new DataView(grown.buffer)
  }

  get view(): DataView {
    return this.#view
  }

  /**
   * The records so far as a slab of their own, and a fresh batch begun. A handler may detach the slab's
   * buffer (transfer()): the slab then reopens over a new copy of the records, as the native engine's over
   * its memory, and the batch goes on.
   */
  take(): { slab: SlabView; count: number } {
    // The records stay where they were written (the next batch gets a buffer of its own): one copy each time
    // the slab opens over them.
    const kept = this.#bytes.subarray(0, this.#end)
    const taken = { slab: new SlabView(() => kept.slice().buffer), count: this.count }
    // The next batch's buffer follows what this one needed: one busy turn (a burst of 64 KiB messages released
    // together) does not make every later turn make and zero a buffer of its size.
    this.#bytes = new Uint8Array(Math.max(initialBytes, Math.min(this.#bytes.byteLength, 2 * this.#end)))
    this.#view = new DataView(this.#bytes.buffer)
    this.#end = 0
    this.count = 0
    return taken
  }
}
