/**
 * The metric families as OpenTelemetry asynchronous instruments, observed by one batch callback that reads one
 * snapshot per collection. Its types come from @opentelemetry/api, an optional peer dependency
 * (`npm install @opentelemetry/api`); at run time it calls only the meter you pass.
 * @module volley/metrics/opentelemetry
 */
import type { BatchObservableCallback, BatchObservableResult, Meter, MetricOptions, Observable } from '@opentelemetry/api'
import { VolleyTypeError, describe } from '../util/errors.ts'
import { checkOptions } from '../util/options.ts'
import { type MetricFamily, metricFamilies } from './families.ts'
import { type MetricSnapshot, type MetricSnapshotSource, type MetricsRegistration, isPromiseLike, snapshotTaker } from './snapshot.ts'
import { prefixOption } from './options.ts'

export interface OpenTelemetryMetricsOptions {
  /** The meter that makes the instruments (from a MeterProvider: `metrics.getMeter('volley')`). */
  meter: Meter
  /**
   * Put before each family's name (default 'volley.'): an instrument name's characters, or ''. A counter's
   * name loses its _total (an OpenTelemetry counter says so itself; a Prometheus exporter adds it back).
   */
  prefix?: string | undefined
}

const optionNames: ReadonlySet<string> = new Set(['meter', 'prefix'])

/** The quantiles a distribution is observed at, as the `quantile` attribute says them ("1": the largest). */
const quantiles = [
  { attributes: { quantile: '0.5' }, value: (d: DistributionLike) => d.p50 },
  { attributes: { quantile: '0.9' }, value: (d: DistributionLike) => d.p90 },
  { attributes: { quantile: '0.99' }, value: (d: DistributionLike) => d.p99 },
  { attributes: { quantile: '1' }, value: (d: DistributionLike) => d.max },
] as const

type DistributionLike = { p50: number; p90: number; p99: number; max: number }

/** OpenTelemetry's units (UCUM) for the families'. */
const units: Record<NonNullable<MetricFamily['unit']>, string> = { seconds: 's', bytes: 'By', ratio: '1' }

/**
 * Makes an asynchronous instrument for every metric family on `options.meter`, all observed by one batch
 * callback (meter.addBatchObservableCallback) that reads one snapshot of `source` per collection: servers (a
 * ServerMetrics of its own, which close() detaches), a ServerMetrics, or a function returning a snapshot or a
 * promise of one. Counters are observable counters; gauges that add up across servers observable up-down
 * counters, the others (a delay, the keys accepted, engine_info) observable gauges. The API has no asynchronous
 * histogram: each peer distribution is an observable gauge with a `quantile` attribute ("0.5", "0.9", "0.99",
 * "1" for the largest), observed while a peer is measured.
 *
 * close() removes the callback (the instruments stay in the meter, observed no more: the API cannot remove them).
 * Throws ERR_INVALID_ARG_TYPE (no source, no meter, an option of the wrong type) and ERR_INVALID_ARG_VALUE (a
 * prefix an instrument name cannot start with, an unknown option).
 */
export function registerOpenTelemetryMetrics(source: MetricSnapshotSource, options: OpenTelemetryMetricsOptions): MetricsRegistration {
  checkOptions('"options" argument', options, optionNames)
  const meter = meterOption(options.meter)
  const prefix = prefixOption(options.prefix, 'volley.', /^[A-Za-z][A-Za-z0-9_.\-/]*$/, 'an OpenTelemetry instrument name starts with')
  const taker = snapshotTaker(source, 'registerOpenTelemetryMetrics')
  const instruments = metricFamilies.map((family) => ({ family, instrument: instrument(meter, family, `${prefix}${family.name.replace(/_total$/, '')}`) }))
  const observe = (result: BatchObservableResult, snapshot: MetricSnapshot): void => {
    for (const { family, instrument } of instruments) {
      if (family.type === 'distribution') {
        const distribution = snapshot.distributions[family.name as keyof MetricSnapshot['distributions']]
        if (distribution === undefined || distribution.count === 0) continue
        for (const quantile of quantiles) result.observe(instrument, quantile.value(distribution), quantile.attributes)
      } else {
        for (const sample of snapshot.samples[family.name as keyof MetricSnapshot['samples']] ?? []) result.observe(instrument, sample.value, sample.labels)
      }
    }
  }
  const callback: BatchObservableCallback = (result) => {
    const snapshot = taker.take()
    if (isPromiseLike(snapshot)) return Promise.resolve(snapshot).then((taken) => observe(result, taken))
    observe(result, snapshot)
  }
  const observables = instruments.map(({ instrument }) => instrument)
  try {
    meter.addBatchObservableCallback(callback, observables)
  } catch (error) {
    taker.close()
    throw error
  }
  let closed = false
  return {
    close() {
      if (closed) return
      closed = true
      meter.removeBatchObservableCallback(callback, observables)
      taker.close()
    },
  }
}

function instrument(meter: Meter, family: MetricFamily, name: string): Observable {
  const options: MetricOptions = { description: family.help, ...(family.unit === undefined ? {} : { unit: units[family.unit] }) }
  if (family.type === 'counter') return meter.createObservableCounter(name, options)
  if (family.type === 'gauge' && family.aggregation === 'sum') return meter.createObservableUpDownCounter(name, options)
  return meter.createObservableGauge(name, options)
}

function meterOption(value: unknown): Meter {
  const methods = ['createObservableCounter', 'createObservableUpDownCounter', 'createObservableGauge', 'addBatchObservableCallback', 'removeBatchObservableCallback'] as const
  const candidate = value as Partial<Record<(typeof methods)[number], unknown>> | null
  if (typeof value !== 'object' || candidate === null || methods.some((method) => typeof candidate[method] !== 'function')) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "meter" option must be an OpenTelemetry Meter (@opentelemetry/api 1.3 or newer). Received ${describe(value)}`)
  }
  return value as Meter
}
