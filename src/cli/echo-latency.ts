// `volley load`'s latency: each broadcast carries the time it was sent, and the echo a server sends back
// (volley serve echoes every message as it came) gives one round trip. Measured at the application: the
// client's send queue, both engines, the network and the server's handler, as a user of the server sees it.

/** Marks a broadcast as load's own, so that a message of another shape (a server that answers otherwise) is no sample. */
const marker = Uint8Array.from(Buffer.from('volley:rtt', 'latin1'))
/** Where the send time goes (a float64, little-endian), after the marker. */
const stampOffset = 16
/** The smallest message that carries a stamp. */
export const stampedBytes = stampOffset + 8

/** Writes the marker and the time now (performance.now(), ms) into `payload`, of stampedBytes or more. */
export function stampPayload(payload: Uint8Array): void {
  payload.set(marker)
  new DataView(payload.buffer, payload.byteOffset, payload.byteLength).setFloat64(stampOffset, performance.now(), true)
}

/** The round trip, ms, of an echo of a stamped payload; undefined for any other message. */
export function echoRoundTripMs(data: Uint8Array): number | undefined {
  if (data.byteLength < stampedBytes) return undefined
  for (let i = 0; i < marker.length; i++) if (data[i] !== marker[i]) return undefined
  const sent = new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(stampOffset, true)
  const roundTrip = performance.now() - sent
  return roundTrip >= 0 && Number.isFinite(roundTrip) ? roundTrip : undefined
}

/** Buckets a doubling: each about 2.2 % wide, so that a percentile is within 1.1 % of a value that was measured. */
const bucketsPerDoubling = 32
/** The smallest time told apart, ms (1 µs): below it, the first bucket. */
const smallestMs = 0.001
/** Buckets from 1 µs to 2^30 µs (about 18 minutes): longer ones go in the last. */
const bucketCount = 30 * bucketsPerDoubling

/**
 * Round-trip times in logarithmic buckets: percentiles within about 1 % however many are recorded, in constant
 * memory (a load at 100,000 echoes a second for an hour would otherwise keep 360 million of them).
 */
export class LatencyHistogram {
  readonly #counts = new Float64Array(bucketCount)
  #count = 0
  #max = 0

  get count(): number {
    return this.#count
  }

  record(ms: number): void {
    const bucket = ms <= smallestMs ? 0 : Math.min(bucketCount - 1, Math.floor(Math.log2(ms / smallestMs) * bucketsPerDoubling))
    this.#counts[bucket]!++
    this.#count++
    if (ms > this.#max) this.#max = ms
  }

  /**
   * The q-quantile, ms (q from 0 to 1): the middle of the bucket where the ⌈q·count⌉-th smallest time falls
   * (geometrically), at most the largest time recorded (that time in the last bucket, of the longest); 0 for none.
   */
  quantile(q: number): number {
    const rank = Math.max(1, Math.ceil(q * this.#count))
    let below = 0
    for (let bucket = 0; bucket < bucketCount; bucket++) {
      below += this.#counts[bucket]!
      if (below < rank) continue
      // The last bucket holds every longer time: its middle would say nothing.
      return bucket === bucketCount - 1 ? this.#max : Math.min(this.#max, smallestMs * 2 ** ((bucket + 0.5) / bucketsPerDoubling))
    }
    return this.#max
  }

  /** The summary the report gives: p50, p99 and the largest time, ms, rounded to the microsecond. */
  summary(): { echoes: number; p50Ms: number; p99Ms: number; maxMs: number } {
    const micro = (ms: number): number => Math.round(ms * 1000) / 1000
    return { echoes: this.#count, p50Ms: micro(this.quantile(0.5)), p99Ms: micro(this.quantile(0.99)), maxMs: micro(this.#max) }
  }

  reset(): void {
    this.#counts.fill(0)
    this.#count = 0
    this.#max = 0
  }
}
