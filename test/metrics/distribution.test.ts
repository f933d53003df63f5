// The distribution core of volley/metrics: buckets, sums and nearest-rank quantiles from values, the
// histogram_quantile() estimate from buckets, and merges; every figure worked out by hand.
import { describe, expect, it } from 'vitest'
import { distributionOf, emptyDistribution, lossBuckets, mergeDistributions, quantileFromBuckets, rttBucketsSeconds } from '../../src/metrics/index.ts'

describe('distributionOf', () => {
  it('counts RTTs into their buckets, sums them, and takes nearest-rank quantiles; NaN is no value', () => {
    // Bounds 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500 ms, 1, 2 s, then +Inf.
    const values = Float64Array.from([0.25, 3, Number.NaN, 0.003, 0.0004, 0.0015, 0.003])
    const d = distributionOf(values, rttBucketsSeconds)
    // 0.0004 ≤ 0.5 ms; 0.0015 ≤ 2 ms; 0.003 twice ≤ 5 ms; 0.25 ≤ 500 ms; 3 s in +Inf.
    expect(d.counts).toEqual([1, 0, 1, 2, 0, 0, 0, 0, 0, 1, 0, 0, 1])
    expect(d.sums[0]).toBeCloseTo(0.0004, 15)
    expect(d.sums[3]).toBeCloseTo(0.006, 15)
    expect(d.sums[12]).toBe(3)
    expect(d.count).toBe(6)
    expect(d.sum).toBeCloseTo(3.2579, 12)
    // Sorted: 0.0004 0.0015 0.003 0.003 0.25 3. p50: the ⌈3⌉rd = 0.003; p90: the ⌈5.4⌉th = 3; p99: the ⌈5.94⌉th = 3.
    expect([d.p50, d.p90, d.p99, d.max]).toEqual([0.003, 3, 3, 3])
  })

  it('puts a value at a bound in that bound\'s bucket, and no loss at all in the first (le="0")', () => {
    const d = distributionOf(Float64Array.from([0, 0.02, 1, 0, 0.6]), lossBuckets)
    // Bounds 0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, then +Inf.
    expect(d.counts).toEqual([2, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0])
    expect(d.sums.map((sum) => Math.round(sum * 1e12) / 1e12)).toEqual([0, 0, 0, 0, 0.02, 0, 0, 0, 0, 1.6, 0])
    // Sorted: 0 0 0.02 0.6 1. p50: the 3rd; p90: the ⌈4.5⌉th = 5th; p99: the 5th.
    expect([d.count, d.p50, d.p90, d.p99, d.max]).toEqual([5, 0.02, 1, 1, 1])
  })

  it('makes zeros of no value, and of only NaN', () => {
    for (const values of [new Float64Array(0), Float64Array.from([Number.NaN, Number.NaN])]) {
      expect(distributionOf(values, lossBuckets)).toEqual(emptyDistribution(lossBuckets))
    }
    expect(emptyDistribution([1, 2])).toEqual({ counts: [0, 0, 0], sums: [0, 0, 0], count: 0, sum: 0, p50: 0, p90: 0, p99: 0, max: 0 })
  })

  it('takes one value as every quantile', () => {
    const d = distributionOf(Float64Array.from([0.007]), rttBucketsSeconds)
    expect([d.count, d.sum, d.p50, d.p90, d.p99, d.max]).toEqual([1, 0.007, 0.007, 0.007, 0.007, 0.007])
    expect(d.counts[4]).toBe(1) // (5 ms, 10 ms]
  })
})

describe('quantileFromBuckets', () => {
  const bounds = [1, 2, 4]

  it('interpolates in the bucket where the rank falls, from 0 below the first bound, and stays at most max', () => {
    const counts = [2, 2, 4, 0] // 8 values
    // q 0.25: rank 2, the end of the first bucket (0, 1]: 1.
    expect(quantileFromBuckets(counts, bounds, 3.5, 0.25)).toBe(1)
    // q 0.5: rank 4, the end of (1, 2]: 1 + (4 − 2) / 2 × 1 = 2.
    expect(quantileFromBuckets(counts, bounds, 3.5, 0.5)).toBe(2)
    // q 0.75: rank 6, in (2, 4] with 4 below: 2 + (6 − 4) / 4 × 2 = 3.
    expect(quantileFromBuckets(counts, bounds, 3.5, 0.75)).toBe(3)
    // q 0.9: rank 7.2: 2 + 3.2 / 4 × 2 = 3.6, above the largest value: 3.5.
    expect(quantileFromBuckets(counts, bounds, 3.5, 0.9)).toBe(3.5)
    // q 0.1: rank 0.8 in (0, 1]: 0.4.
    expect(quantileFromBuckets(counts, bounds, 3.5, 0.1)).toBeCloseTo(0.4, 15)
  })

  it('answers max in the +Inf bucket, and 0 for no value', () => {
    expect(quantileFromBuckets([1, 0, 0, 3], bounds, 9, 0.5)).toBe(9)
    expect(quantileFromBuckets([1, 0, 0, 3], bounds, 9, 0.2)).toBeCloseTo(0.8, 15) // rank 0.8 of 1 in (0, 1]
    expect(quantileFromBuckets([0, 0, 0, 0], bounds, 0, 0.5)).toBe(0)
  })

  it('reads a first bound of 0 (no loss) as its own bucket', () => {
    const counts = [6, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0] // 10 values: 6 at 0, 2 in (0.01, 0.02], 2 in (0.5, 1]
    expect(quantileFromBuckets(counts, lossBuckets, 0.9, 0.5)).toBe(0)
    // q 0.7: rank 7, in (0.01, 0.02] with 6 below: 0.01 + 1/2 × 0.01 = 0.015.
    expect(quantileFromBuckets(counts, lossBuckets, 0.9, 0.7)).toBeCloseTo(0.015, 15)
    // q 0.95: rank 9.5, in (0.5, 1] with 8 below: 0.5 + 1.5/2 × 0.5 = 0.875.
    expect(quantileFromBuckets(counts, lossBuckets, 0.9, 0.95)).toBeCloseTo(0.875, 15)
  })
})

describe('mergeDistributions', () => {
  const bounds = [1, 2, 4]

  it('adds buckets, sums and counts, keeps the larger max, and estimates the quantiles from the buckets', () => {
    const a = distributionOf(Float64Array.from([0.5, 1.5, 3]), bounds) // counts 1 1 1 0
    const b = distributionOf(Float64Array.from([0.5, 3, 3.5, 10, 0.25]), bounds) // counts 2 0 2 1
    const merged = mergeDistributions(a, b, bounds)
    expect(merged.counts).toEqual([3, 1, 3, 1])
    expect(merged.sums).toEqual([1.25, 1.5, 9.5, 10])
    expect([merged.count, merged.sum, merged.max]).toEqual([8, 22.25, 10])
    // 8 values: p50, rank 4, ends (1, 2]: 2. p90 (rank 7.2) and p99 (rank 7.92) are past the 7 up to 4: +Inf, so max.
    expect([merged.p50, merged.p90, merged.p99]).toEqual([2, 10, 10])
    // Without the 10: 7 values, the largest 3.5. p50, rank 3.5, in (1, 2] with 3 below: 1.5. p90, rank 6.3, in (2, 4]
    // with 4 below: 2 + 2.3/3 × 2 = 3.53, above the largest value: 3.5; p99 likewise.
    const c = mergeDistributions(a, distributionOf(Float64Array.from([0.5, 3, 3.5, 0.25]), bounds), bounds)
    expect([c.p50, c.p90, c.p99, c.max]).toEqual([1.5, 3.5, 3.5, 3.5])
    // The inputs are untouched.
    expect(a.counts).toEqual([1, 1, 1, 0])
  })

  it('keeps the exact quantiles of one where the other is empty', () => {
    const a = distributionOf(Float64Array.from([0.5, 1.5, 3]), bounds)
    const merged = mergeDistributions(emptyDistribution(bounds), a, bounds)
    expect(merged).toEqual(a)
    expect(merged.counts).not.toBe(a.counts) // a copy
    expect(mergeDistributions(a, emptyDistribution(bounds), bounds)).toEqual(a)
  })

  it('refuses distributions of other buckets', () => {
    const other = distributionOf(Float64Array.from([1]), [1, 2])
    expect(() => mergeDistributions(other, emptyDistribution(bounds), bounds)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
  })
})
