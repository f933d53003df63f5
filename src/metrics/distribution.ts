// Distributions over peers (their RTT, their loss): fixed buckets, sum, count and a few quantiles, as plain
// numbers that add up across servers and workers. Sans-IO: values in, numbers out.
import { VolleyTypeError } from '../util/errors.ts'

/**
 * A distribution of values over fixed buckets (its family's `buckets`), in numbers only: it crosses threads
 * as it is (postMessage), and two of them add up (mergeDistributions).
 */
export interface DistributionSnapshot {
  /** How many values each bucket holds (not cumulative): one per bound, each bucket up to its bound, then +Inf. */
  readonly counts: readonly number[]
  /** The sum of the values in each bucket, as counts: a histogram rebuilt from the buckets keeps its exact sum. */
  readonly sums: readonly number[]
  readonly count: number
  readonly sum: number
  /**
   * Quantiles: by nearest rank over the values (the ⌈q·count⌉-th smallest); in a merge of two non-empty ones,
   * estimated from the buckets as Prometheus's histogram_quantile() does, at most max. 0 when count is 0.
   */
  readonly p50: number
  readonly p90: number
  readonly p99: number
  /** The largest value (exact, merged or not); 0 when count is 0. */
  readonly max: number
}

/** A distribution of no value. */
export function emptyDistribution(bounds: readonly number[]): DistributionSnapshot {
  const zeros = new Array<number>(bounds.length + 1).fill(0)
  return { counts: zeros, sums: [...zeros], count: 0, sum: 0, p50: 0, p90: 0, p99: 0, max: 0 }
}

/**
 * The distribution of `values` over buckets of these bounds (ascending). NaN stands for no value and is left
 * out. Sorts `values` in place. O(n log n), with no allocation per value.
 */
// `values` is the caller's scratch array, reused from one collection to the next.
export function distributionOf(values: Float64Array, bounds: readonly number[]): DistributionSnapshot {
  values.sort() // numeric, NaN last
  let n = values.length
  while (n > 0 && Number.isNaN(values[n - 1]!)) n--
  if (n === 0) return emptyDistribution(bounds)
  const counts = new Array<number>(bounds.length + 1).fill(0)
  const sums = new Array<number>(bounds.length + 1).fill(0)
  let sum = 0
  let bucket = 0
  for (let i = 0; i < n; i++) {
    const value = values[i]!
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++ // sorted: the buckets are walked once
    counts[bucket]!++
    sums[bucket]! += value
    sum += value
  }
  const rank = (q: number): number => values[Math.max(0, Math.ceil(q * n) - 1)]!
  return { counts, sums, count: n, sum, p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: values[n - 1]! }
}

/**
 * Two distributions over the same bounds as one: buckets, sums and counts add, max is the larger. The
 * quantiles are the other's where one is empty (exact still), else estimated from the merged buckets
 * (quantileFromBuckets). Throws ERR_INVALID_ARG_VALUE for distributions of other buckets than `bounds`.
 */
export function mergeDistributions(a: DistributionSnapshot, b: DistributionSnapshot, bounds: readonly number[]): DistributionSnapshot {
  for (const each of [a, b]) {
    if (each.counts.length !== bounds.length + 1 || each.sums.length !== bounds.length + 1) {
      throw new VolleyTypeError(
        'ERR_INVALID_ARG_VALUE',
        `A distribution to merge must have ${bounds.length + 1} buckets (its family's bounds and +Inf). Received ${each.counts.length} counts and ${each.sums.length} sums`,
      )
    }
  }
  if (b.count === 0) return copyDistribution(a)
  if (a.count === 0) return copyDistribution(b)
  const counts = a.counts.map((count, i) => count + b.counts[i]!)
  const sums = a.sums.map((sum, i) => sum + b.sums[i]!)
  const max = Math.max(a.max, b.max)
  const quantile = (q: number): number => quantileFromBuckets(counts, bounds, max, q)
  return { counts, sums, count: a.count + b.count, sum: a.sum + b.sum, p50: quantile(0.5), p90: quantile(0.9), p99: quantile(0.99), max }
}

function copyDistribution(d: DistributionSnapshot): DistributionSnapshot {
  return { ...d, counts: [...d.counts], sums: [...d.sums] }
}

/**
 * The q-quantile of bucketed values, as histogram_quantile() estimates it: the bucket where the rank q·count
 * falls, interpolated linearly from its lower bound (0 for the first bucket, unless its bound is below 0) to
 * its upper one; in the +Inf bucket, max. At most max (the buckets know no better). 0 for no value.
 */
export function quantileFromBuckets(counts: readonly number[], bounds: readonly number[], max: number, q: number): number {
  let total = 0
  for (const count of counts) total += count
  if (total === 0) return 0
  const rank = q * total
  let below = 0
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i]!
    if (count > 0 && below + count >= rank) {
      if (i === bounds.length) return max
      const upper = bounds[i]!
      const lower = i === 0 ? Math.min(0, upper) : bounds[i - 1]!
      return Math.min(max, lower + ((upper - lower) * (rank - below)) / count)
    }
    below += count
  }
  return max
}
