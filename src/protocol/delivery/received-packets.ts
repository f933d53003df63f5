// The packet numbers a receiver has seen, as disjoint ranges newest first (native/protocol/delivery/received_packets.h):
// what its ACK frames say, and whether a packet number is new. At most keptRanges are kept: of a packet
// older than the oldest kept range nothing can be told (remembers() is false). What was forgotten stays so,
// though ranges merge and fewer than keptRanges are kept again.

export interface PacketRange {
  low: number
  /** Inclusive. */
  high: number
}

export class ReceivedPackets {
  static readonly keptRanges = 64
  /** Disjoint, not adjacent, descending. */
  readonly ranges: PacketRange[] = []
  /** Above every range dropped for keptRanges. */
  #forgottenBelow = 0

  /** Records `number`; false when it was seen already (or is too old to tell). */
  add(number: number): boolean {
    const ranges = this.ranges
    if (!this.remembers(number)) return false
    let i = 0
    while (i < ranges.length && ranges[i]!.low - 1 > number) i++ // wholly above number
    const range = ranges[i]
    if (range !== undefined && number >= range.low && number <= range.high) return false
    if (range !== undefined && range.low - 1 === number) {
      range.low = number
      // May now touch the range below.
      const below = ranges[i + 1]
      if (below !== undefined && below.high + 1 === number) {
        range.low = below.low
        ranges.splice(i + 1, 1)
      }
    } else if (range !== undefined && range.high + 1 === number) {
      range.high = number
    } else {
      ranges.splice(i, 0, { low: number, high: number })
      if (ranges.length > ReceivedPackets.keptRanges) this.#forgottenBelow = Math.max(this.#forgottenBelow, ranges.pop()!.high + 1)
    }
    return true
  }

  /**
   * False for a number older than every kept range once keptRanges are kept, or below a range forgotten before:
   * seen or not, forgotten. (Else a late packet that merged two ranges made a copy of a forgotten one new
   * again, and it delivered its unreliable messages twice.)
   */
  remembers(number: number): boolean {
    return number >= this.#forgottenBelow && (this.ranges.length < ReceivedPackets.keptRanges || number >= this.ranges[this.ranges.length - 1]!.low)
  }

  contains(number: number): boolean {
    for (const range of this.ranges) {
      if (number > range.high) return false
      if (number >= range.low) return true
    }
    return false
  }

  get empty(): boolean {
    return this.ranges.length === 0
  }

  get largest(): number {
    return this.ranges.length === 0 ? 0 : this.ranges[0]!.high
  }
}
