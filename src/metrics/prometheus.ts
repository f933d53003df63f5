/**
 * The metric families as prom-client metrics, read from one snapshot per scrape. Needs prom-client, an
 * optional peer dependency: `npm install prom-client`.
 * @module volley/metrics/prometheus
 */
import { Counter, Gauge, Histogram, type OpenMetricsContentType, type PrometheusContentType, type Registry, register as globalRegistry } from 'prom-client'
import { VolleyTypeError, describe } from '../util/errors.ts'
import { checkOptions } from '../util/options.ts'
import type { DistributionSnapshot } from './distribution.ts'
import { type MetricFamily, metricFamilies } from './families.ts'
import { type MetricSnapshot, type MetricSnapshotSource, type MetricsRegistration, isPromiseLike, snapshotTaker } from './snapshot.ts'
import { constantLabelsOption, prefixOption } from './options.ts'

/** A prom-client registry, of either content type. */
export type PrometheusRegistry = Registry<PrometheusContentType> | Registry<OpenMetricsContentType>

export interface PrometheusMetricsOptions {
  /** The registry the metrics join (default: prom-client's global one, `register`). */
  registry?: PrometheusRegistry | undefined
  /** Put before each family's name (default 'volley_'): a Prometheus metric name's characters, or ''. */
  prefix?: string | undefined
  /** Labels every series has, with their values (e.g. { shard: '2' }); none of the families' own (engine, reason, cause). */
  labels?: Readonly<Record<string, string>> | undefined
}

const optionNames: ReadonlySet<string> = new Set(['registry', 'prefix', 'labels'])

type PromMetric = Counter<string> | Gauge<string> | Histogram<string>

/**
 * Registers every metric family in a prom-client registry, read at each scrape from `source`: servers (a
 * ServerMetrics of its own, which close() detaches), a ServerMetrics, or a function returning a snapshot or a
 * promise of one (a main thread's merge of its workers'). One snapshot per scrape, however many families read it.
 * Counters are prom-client Counters set to the servers' totals at each scrape, gauges Gauges; the two peer
 * distributions (RTT, loss) are Histograms rebuilt at each scrape from the peers connected then: a distribution
 * over peers, not a cumulative histogram, which histogram_quantile() reads as it is (no rate()).
 *
 * Throws ERR_INVALID_ARG_TYPE (no source, no registry, an options value of the wrong type) and
 * ERR_INVALID_ARG_VALUE (a prefix or label name Prometheus refuses, a label of a family's own, a metric of the
 * same name in the registry already, an unknown option).
 */
export function registerPrometheusMetrics(source: MetricSnapshotSource, options: PrometheusMetricsOptions = {}): MetricsRegistration {
  checkOptions('"options" argument', options, optionNames)
  const registry = registryOption(options.registry)
  const prefix = prefixOption(options.prefix, 'volley_', /^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'a Prometheus metric name starts with')
  const constantLabels = constantLabelsOption(options.labels)
  const names = metricFamilies.map((family) => `${prefix}${family.name}`)
  const taken = names.find((name) => registry.getSingleMetric(name) !== undefined)
  if (taken !== undefined) {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The registry has a metric named ${taken} already: register volley's metrics once per registry, or give another "prefix"`)
  }
  const taker = snapshotTaker(source, 'registerPrometheusMetrics')
  const current = snapshotPerScrape(taker.take)
  const registered: { name: string; metric: PromMetric }[] = []
  try {
    metricFamilies.forEach((family, index) => {
      const name = names[index]!
      registered.push({ name, metric: promMetric(family, name, registry, constantLabels, current) })
    })
  } catch (error) {
    for (const { name } of registered) registry.removeSingleMetric(name)
    taker.close()
    throw error
  }
  let closed = false
  return {
    close() {
      if (closed) return
      closed = true
      // Only what is still ours: the caller may have cleared the registry and registered others since.
      for (const { name, metric } of registered) if ((registry.getSingleMetric(name) as PromMetric | undefined) === metric) registry.removeSingleMetric(name)
      taker.close()
    },
  }
}

/**
 * The snapshot of the scrape under way: the registry reads every metric's collect() in one turn (a scrape
 * asks each metric in turn, then awaits them all), so the first collect of a turn takes it and the others
 * share it; the next turn (the next scrape) takes a fresh one.
 */
function snapshotPerScrape(take: () => MetricSnapshot | PromiseLike<MetricSnapshot>): () => MetricSnapshot | PromiseLike<MetricSnapshot> {
  let held: MetricSnapshot | PromiseLike<MetricSnapshot> | undefined
  return () => {
    if (held === undefined) {
      held = take()
      queueMicrotask(() => {
        held = undefined
      })
    }
    return held
  }
}

function promMetric(
  family: MetricFamily,
  name: string,
  registry: PrometheusRegistry,
  constantLabels: Readonly<Record<string, string>>,
  current: () => MetricSnapshot | PromiseLike<MetricSnapshot>,
): PromMetric {
  const labelNames = [...Object.keys(constantLabels), ...family.labels]
  const config = { name, help: family.help, labelNames, registers: [registry], aggregator: family.aggregation }
  // collect() fills the metric from the scrape's snapshot; a promise where the source gives one.
  const collecting = (fill: (snapshot: MetricSnapshot) => void) => (): void | Promise<void> => {
    const snapshot = current()
    if (isPromiseLike(snapshot)) return Promise.resolve(snapshot).then(fill)
    fill(snapshot)
  }
  switch (family.type) {
    case 'counter': {
      // A total the servers keep: reset, then increased by it, at each scrape (prom-client's counters have no set()).
      const counter: Counter<string> = new Counter({
        ...config,
        collect: collecting((snapshot) => {
          counter.reset()
          const samples = snapshot.samples[family.name as keyof MetricSnapshot['samples']]
          for (const sample of samples ?? []) counter.inc({ ...constantLabels, ...sample.labels }, sample.value)
          if (samples === undefined && labelNames.length === 0) counter.remove({}) // absent, not 0
        }),
      })
      return counter
    }
    case 'gauge':
    case 'info': {
      const gauge: Gauge<string> = new Gauge({
        ...config,
        collect: collecting((snapshot) => {
          gauge.reset()
          const samples = snapshot.samples[family.name as keyof MetricSnapshot['samples']]
          for (const sample of samples ?? []) gauge.set({ ...constantLabels, ...sample.labels }, sample.value)
          if (samples === undefined && labelNames.length === 0) gauge.remove({}) // absent, not 0
        }),
      })
      return gauge
    }
    case 'distribution': {
      const bounds = family.buckets ?? []
      const histogram: Histogram<string> = new Histogram({
        ...config,
        buckets: [...bounds],
        collect: collecting((snapshot) => {
          histogram.reset()
          const distribution = snapshot.distributions[family.name as keyof MetricSnapshot['distributions']]
          if (distribution !== undefined) rebuildHistogram(histogram, distribution, bounds, constantLabels)
        }),
      })
      return histogram
    }
  }
}

/**
 * Fills a reset histogram with a distribution: each bucket's values observed as its mean, so that the buckets,
 * the count and the sum are the distribution's (prom-client takes observations only). O(count) observations.
 */
function rebuildHistogram(histogram: Histogram<string>, distribution: DistributionSnapshot, bounds: readonly number[], labels: Readonly<Record<string, string>>): void {
  if (distribution.count === 0) {
    histogram.zero({ ...labels }) // no peer measured: zeros, not absent
    return
  }
  const observe = histogram.labels({ ...labels }).observe
  distribution.counts.forEach((count, bucket) => {
    if (count === 0) return
    const value = valueInBucket(distribution.sums[bucket]! / count, bounds, bucket)
    for (let i = 0; i < count; i++) observe(value)
  })
}

/** The mean of a bucket's values, kept inside the bucket (rounding may put a mean of values at a bound past it). */
function valueInBucket(mean: number, bounds: readonly number[], bucket: number): number {
  const upper = bucket < bounds.length ? bounds[bucket]! : Number.POSITIVE_INFINITY
  const lower = bucket === 0 ? Number.NEGATIVE_INFINITY : bounds[bucket - 1]!
  const value = Math.min(mean, upper)
  if (value > lower) return value
  return Number.isFinite(upper) ? upper : lower + Math.max(Number.MIN_VALUE, Math.abs(lower) * Number.EPSILON)
}

function registryOption(value: unknown): PrometheusRegistry {
  if (value === undefined) return globalRegistry
  const candidate = value as Partial<Record<'registerMetric' | 'removeSingleMetric' | 'getSingleMetric', unknown>> | null
  if (
    typeof value !== 'object' ||
    candidate === null ||
    typeof candidate.registerMetric !== 'function' ||
    typeof candidate.removeSingleMetric !== 'function' ||
    typeof candidate.getSingleMetric !== 'function'
  ) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "registry" option must be a prom-client Registry. Received ${describe(value)}`)
  }
  return value as PrometheusRegistry
}
