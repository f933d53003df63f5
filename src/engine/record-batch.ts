// Records for JavaScript as the fallback engine gathers them in a turn of the event loop: the WebAssembly
// cores write them in the native engine's layout (native/sockets/socket_protocol.h), so that Server and Client
// read either engine's alike.
import { SlabView } from './engine.ts'

/** A batch's first buffer; it doubles as records need. */
const initialBytes = 4096

export class RecordBatch {
  #bytes = new Uint8Array(initialBytes)
  #end = 0
  count = 0

  /** Appends `count` records already in the layout. */
  append(records: Uint8Array, count: number): void {
    if (this.#end + records.byteLength > this.#bytes.byteLength) {
      const grown = new Uint8Array(Math.max(this.#bytes.byteLength * 2, this.#end + records.byteLength))
      grown.set(this.#bytes.subarray(0, this.#end))
      this.#bytes = grown
    }
    this.#bytes.set(records, this.#end)
    this.#end += records.byteLength
    this.count += count
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
    // together) does not make every later turn make a buffer of its size.
    this.#bytes = new Uint8Array(Math.max(initialBytes, Math.min(this.#bytes.byteLength, 2 * this.#end)))
    this.#end = 0
    this.count = 0
    return taken
  }
}
