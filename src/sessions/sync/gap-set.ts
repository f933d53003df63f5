// The sequence numbers a manager has of a session, as merged closed intervals, and the gaps between them
// (research §B.3): what a ReqRet asks for. Intervals live in sorted blocks of at most BLOCK intervals, so that
// an observation costs O(log n + BLOCK) however many gaps loss has left, and the usual one, the next seq in
// order, costs O(1). Memory is proportional to the number of gaps, not to the size of the session.
import type { SeqRange } from './wire.ts'

const BLOCK = 256

interface Block {
  begins: number[]
  ends: number[]
}

/** What observe() made of a seq. */
export type Observation = 'new' | 'duplicate' | 'out-of-range'

/**
 * The sequence numbers received of a session of `size` items, and the gaps between them: what a manager asks
 * to have sent again. Its memory grows with the number of gaps, not with the size of the session.
 */
export class GapSet {
  /** The session's size: seqs 0 to size - 1 are expected. */
  readonly size: number
  #blocks: Block[] = []
  #observed = 0
  #intervals = 0

  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`A GapSet's size is an integer from 0 to 2^53 - 1. Received ${size}`)
    this.size = size
  }

  /** How many distinct seqs were observed. */
  get observed(): number {
    return this.#observed
  }

  /** Every seq from 0 to size - 1 observed (a session of size 0 is complete from the start). */
  get complete(): boolean {
    return this.#observed === this.size
  }

  /** How many merged intervals it holds (its memory). */
  get intervals(): number {
    return this.#intervals
  }

  has(seq: number): boolean {
    if (!(seq >= 0 && seq < this.size)) return false
    const [b, i] = this.#floor(seq)
    return b >= 0 && this.#blocks[b]!.ends[i]! >= seq
  }

  /** Records one seq: 'new', 'duplicate', or 'out-of-range' (not an integer from 0 to size - 1). */
  observe(seq: number): Observation {
    if (!Number.isInteger(seq) || seq < 0 || seq >= this.size) return 'out-of-range'
    const blocks = this.#blocks
    const last = blocks[blocks.length - 1]
    // The usual case: the seq just after everything so far.
    if (last !== undefined) {
      const at = last.ends.length - 1
      if (last.ends[at] === seq - 1) {
        last.ends[at] = seq
        this.#observed++
        return 'new'
      }
      if (last.ends[at]! < seq - 1) {
        this.#insert(blocks.length - 1, at + 1, seq)
        this.#observed++
        return 'new'
      }
    }
    // The interval starting at or before seq, and the one after it.
    const [b, i] = this.#floor(seq)
    const previous = b >= 0 ? blocks[b]! : undefined
    if (previous !== undefined && previous.ends[i]! >= seq) return 'duplicate'
    let nb = b
    let ni = i + 1
    if (b < 0) {
      nb = 0
      ni = 0
    } else if (ni >= previous!.begins.length) {
      nb = b + 1
      ni = 0
    }
    const next = blocks[nb]
    const joinsPrevious = previous !== undefined && previous.ends[i] === seq - 1
    const joinsNext = next !== undefined && next.begins[ni] === seq + 1
    if (joinsPrevious && joinsNext) {
      previous.ends[i] = next.ends[ni]!
      this.#remove(nb, ni)
    } else if (joinsPrevious) {
      previous.ends[i] = seq
    } else if (joinsNext) {
      next.begins[ni] = seq
    } else if (b < 0) {
      this.#insert(0, 0, seq)
    } else {
      this.#insert(b, i + 1, seq)
    }
    this.#observed++
    return 'new'
  }

  /**
   * The missing seqs as inclusive ranges, ascending: at most `limit` of them (all by default). Size 10 with
   * {0, 9, 4, 5} observed gives [1, 3] and [6, 8].
   */
  gaps(limit = Infinity): SeqRange[] {
    const ranges: SeqRange[] = []
    let expected = 0
    for (const block of this.#blocks) {
      for (let i = 0; i < block.begins.length; i++) {
        if (ranges.length >= limit) return ranges
        const begin = block.begins[i]!
        if (begin > expected) ranges.push({ begin: expected, end: begin - 1 })
        expected = block.ends[i]! + 1
      }
    }
    if (expected < this.size && ranges.length < limit) ranges.push({ begin: expected, end: this.size - 1 })
    return ranges
  }

  /** The block and index of the last interval whose begin is at most seq; [-1, -1] when there is none. */
  #floor(seq: number): [number, number] {
    const blocks = this.#blocks
    let low = 0
    let high = blocks.length - 1
    let b = -1
    while (low <= high) {
      const middle = (low + high) >>> 1
      if (blocks[middle]!.begins[0]! <= seq) {
        b = middle
        low = middle + 1
      } else {
        high = middle - 1
      }
    }
    if (b < 0) return [-1, -1]
    const begins = blocks[b]!.begins
    low = 0
    high = begins.length - 1
    let i = 0
    while (low <= high) {
      const middle = (low + high) >>> 1
      if (begins[middle]! <= seq) {
        i = middle
        low = middle + 1
      } else {
        high = middle - 1
      }
    }
    return [b, i]
  }

  #insert(b: number, i: number, seq: number): void {
    const blocks = this.#blocks
    if (blocks.length === 0) blocks.push({ begins: [], ends: [] })
    const block = blocks[b]!
    block.begins.splice(i, 0, seq)
    block.ends.splice(i, 0, seq)
    this.#intervals++
    if (block.begins.length > BLOCK) {
      const half = block.begins.length >>> 1
      blocks.splice(b + 1, 0, { begins: block.begins.splice(half), ends: block.ends.splice(half) })
    }
  }

  #remove(b: number, i: number): void {
    const block = this.#blocks[b]!
    block.begins.splice(i, 1)
    block.ends.splice(i, 1)
    this.#intervals--
    if (block.begins.length === 0) this.#blocks.splice(b, 1)
  }
}
