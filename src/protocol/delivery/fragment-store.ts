// One message's bytes while it is reassembled, made as its fragments come (native/protocol/delivery/fragment_store.h,
// which says why): in blocks of fragmentsPerBlock fragments, each made at the first fragment that falls in
// it and not zero-filled, never ahead of the fragments. A store serves one message: it goes with it.
import { fragmentBytes } from './wire-format.ts'

export const fragmentsPerBlock = 16
export const blockBytes = fragmentsPerBlock * fragmentBytes
/** A table entry as the native store counts it (a pointer and a word of flags). */
const tableEntryBytes = 16

const noBlocks: (Uint8Array | undefined)[] = []
const noFlags = new Uint32Array(0)

/**
 * Memory of `length` bytes of its own, not zero-filled (every byte is written before it is read): a plain
 * Uint8Array over it, not the Buffer, whose slice() is a view (a message is delivered as this).
 */
function uninitialisedBytes(length: number): Uint8Array<ArrayBuffer> {
  const buffer = Buffer.allocUnsafeSlow(length) // not a slice of Buffer's shared pool either
  return new Uint8Array(buffer.buffer, buffer.byteOffset, length)
}

export const blockCount = (length: number): number => (length === 0 ? 1 : Math.ceil(length / blockBytes))

export class FragmentStore {
  #length = 0
  /** The first block, and a bit per fragment stored in it: a message of one block (every whole one) makes no table. */
  #first: Uint8Array | undefined = undefined
  #firstSeen = 0
  /** The blocks past the first, and a word of flags each. */
  #rest = noBlocks
  #restSeen = noFlags

  /** Ready for a message of `length` bytes (its table of blocks, empty); false when the table could not be made. */
  start(length: number): boolean {
    const blocks = blockCount(length)
    if (blocks > 1) {
      try {
        // Up to 1 GiB / blockBytes entries: a memory limit may refuse them.
        this.#rest = new Array<Uint8Array | undefined>(blocks - 1)
        this.#restSeen = new Uint32Array(blocks - 1)
      } catch {
        this.#rest = noBlocks
        this.#restSeen = noFlags
        return false
      }
    }
    this.#length = length
    return true
  }

  has(fragment: number): boolean {
    const index = Math.floor(fragment / fragmentsPerBlock)
    const seen = index === 0 ? this.#firstSeen : this.#restSeen[index - 1]!
    return ((seen >>> fragment % fragmentsPerBlock) & 1) !== 0
  }

  /**
   * Copies fragment `fragment` (its index and size checked by the caller) into its block, made if need be.
   * Returns the bytes of the block made for it (0: it had one), or -1 when the block could not be made.
   */
  store(fragment: number, data: Uint8Array, at: number, size: number): number {
    const index = Math.floor(fragment / fragmentsPerBlock)
    let block = index === 0 ? this.#first : this.#rest[index - 1]
    let made = 0
    if (block === undefined) {
      made = this.#bytesOf(index)
      try {
        block = uninitialisedBytes(made)
      } catch {
        return -1
      }
      if (index === 0) this.#first = block
      else this.#rest[index - 1] = block
    }
    block.set(data.subarray(at, at + size), (fragment % fragmentsPerBlock) * fragmentBytes)
    const bit = 1 << fragment % fragmentsPerBlock
    if (index === 0) this.#firstSeen |= bit
    else this.#restSeen[index - 1]! |= bit
    return made
  }

  /** The whole message (every fragment stored): its one block, or its blocks joined in a new buffer (owned: the caller's). */
  whole(): { data: Uint8Array; owned: boolean } {
    if (this.#rest.length === 0) return { data: this.#first!.subarray(0, this.#length), owned: false }
    const joined = uninitialisedBytes(this.#length)
    joined.set(this.#first!, 0)
    for (let i = 0; i < this.#rest.length; i++) joined.set(this.#rest[i]!, (i + 1) * blockBytes)
    return { data: joined, owned: true }
  }

  /** Bytes held, as the native store counts them: the blocks made and the table. */
  get held(): number {
    let bytes = (this.#first?.byteLength ?? 0) + this.#rest.length * tableEntryBytes
    for (const block of this.#rest) if (block !== undefined) bytes += block.byteLength
    return bytes
  }

  /** A block's bytes: the last is short. */
  #bytesOf(index: number): number {
    return Math.min(blockBytes, this.#length - index * blockBytes)
  }
}
